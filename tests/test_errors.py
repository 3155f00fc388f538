"""The exception hierarchy drawn in reconciler/errors.py is the real one: every public
exception class defined in the package is drawn, under its real base, and every class
drawn exists. Two roots below ReconcilerError: PermanentError and TransientError."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re

import yaml.events

import reconciler
from reconciler import errors

# Imported for their classes only; these run code at import (Alembic's environment).
_SKIPPED = ("reconciler.migrations",)
# A node: the root at the margin, or a name after a branch (`├── ` / `└── `).
_NODE = re.compile(r"^    (?:(?P<lead>[│ ]*)[├└]── )?(?P<name>[A-Z]\w+)\s")


def _drawing() -> dict[str, str | None]:
    """Class name -> the name of the class it is drawn under (None for the root)."""
    assert errors.__doc__ is not None
    parents: dict[str, str | None] = {}
    stack: list[str] = []
    for line in errors.__doc__.splitlines():
        match = _NODE.match(line)
        if not match:
            continue
        lead = match.group("lead")
        depth = 0 if lead is None else len(lead) // 4 + 1
        del stack[depth:]
        parents[match.group("name")] = stack[-1] if stack else None
        stack.append(match.group("name"))
    return parents


def _package_exceptions() -> dict[str, type[BaseException]]:
    found: dict[str, type[BaseException]] = {}
    for module_info in pkgutil.walk_packages(reconciler.__path__, "reconciler."):
        if module_info.name.startswith(_SKIPPED):
            continue
        module = importlib.import_module(module_info.name)
        for name, value in vars(module).items():
            if (
                inspect.isclass(value)
                and issubclass(value, BaseException)
                and value.__module__.startswith("reconciler.")
                and not name.startswith("_")
                # spec.events's YAML events take BaseException's C constructor, never raised
                and not issubclass(value, yaml.events.Event)
            ):
                found[name] = value
    return found


def test_the_drawing_is_the_hierarchy() -> None:
    drawn = _drawing()
    assert drawn["ReconcilerError"] is None
    assert drawn["PermanentError"] == drawn["TransientError"] == "ReconcilerError"
    classes = _package_exceptions()
    assert set(classes) == set(drawn), "errors.py must draw every exception it defines"
    for name, parent in drawn.items():
        if parent is not None:
            assert classes[name].__bases__[0] is classes[parent], (name, parent)


def test_every_error_is_permanent_or_transient() -> None:
    for name, cls in _package_exceptions().items():
        if name not in ("ReconcilerError", "PermanentError", "TransientError"):
            assert issubclass(cls, errors.PermanentError) != issubclass(
                cls, errors.TransientError
            ), name


def test_public_import_paths_still_work() -> None:
    from reconciler.api.problems import ApiProblem
    from reconciler.engine.leader import LeadershipLost
    from reconciler.spec.cron import CronSyntaxError
    from reconciler.worker import PermanentTaskError as from_worker
    from reconciler.worker.base import PermanentTaskError

    assert from_worker is PermanentTaskError is errors.PermanentTaskError
    assert issubclass(CronSyntaxError, ValueError)  # pydantic turns it into a diagnostic
    assert issubclass(LeadershipLost, errors.NotLeaderError)
    assert ApiProblem(404, "x").status == 404
