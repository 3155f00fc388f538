"""The parameters of every task a job may name, known without a broker or a worker, so
that `reconcile validate` (and every load of the job files) checks `args` / `kwargs`.

Built-in tasks: their signatures are declared below as plain functions (importing the
real tasks would import Celery, SQLAlchemy and Redis into every `validate`); a test
keeps each declaration equal to the real task's signature.

Your own tasks (RECONCILER_TASK_MODULES): the validator imports each listed module (as
the worker does: importing it must not connect anywhere) and reads the signature of
every Celery task defined in it (`task.run`, without `self` for bound tasks), with its
type hints. A task named by a job but found in no listed module is not checked.

Checks: unknown keyword, missing required argument, too many positional arguments, an
argument given twice, and a value that does not fit its type hint (strict: `"5"` is not
an int; an int is a float). Parameters without a hint, or hinted `Any`, take any value.
`extra_checks` adds the confinement rules of the powerful built-ins (`confine`), when
the value is written in the file.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from reconciler.errors import ConfigError
from reconciler.spec import confine


# --- the built-ins' signatures (kept equal to the real tasks by tests/test_task_params.py)
def example_task(data: Any = None) -> None: ...
def http_probe(url: str, timeout: float = 5, expect_status: int = 200) -> None: ...
def sql_maintenance(statement: str) -> None: ...
def write_report(
    path: str,
    rows: list[dict[str, Any]] | None = None,
    fields: list[str] | None = None,
    append: bool = False,
) -> None: ...
def sleep_task(seconds: float = 1.0, ignore_soft_limit: bool = False) -> None: ...
def fail_task(message: str = "failed on purpose", permanent: bool = False) -> None: ...
def noop() -> None: ...


BUILTINS: dict[str, Callable[..., None]] = {
    f"reconciler.tasks.{function.__name__}": function
    for function in (
        example_task,
        http_probe,
        sql_maintenance,
        write_report,
        sleep_task,
        fail_task,
        noop,
    )
}


@dataclass(frozen=True, slots=True)
class Problem:
    """One argument problem: the job field it is about, a code and a message."""

    field: tuple[str | int, ...]
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class TaskParameters:
    """A task's signature and the type hints of its parameters; `modules`: the modules
    defining the function and the classes its hints name (what a change to either
    is made in)."""

    task: str
    signature: inspect.Signature
    hints: Mapping[str, Any]
    modules: frozenset[str] = frozenset()
    # Read from the signature once: every job of the task is checked against them.
    positional: tuple[str, ...] = dataclasses.field(init=False, repr=False, compare=False)
    takes_any_positional: bool = dataclasses.field(init=False, repr=False, compare=False)
    takes_any_keyword: bool = dataclasses.field(init=False, repr=False, compare=False)
    required: tuple[str, ...] = dataclasses.field(init=False, repr=False, compare=False)
    # The parameters whose values are checked, with their hints (any hint but Any).
    checked: Mapping[str, Any] = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        parameters = self.signature.parameters.values()
        names = self.signature.parameters
        facts = {
            "positional": tuple(p.name for p in parameters if p.kind in _POSITIONAL),
            "takes_any_positional": any(p.kind is p.VAR_POSITIONAL for p in parameters),
            "takes_any_keyword": any(p.kind is p.VAR_KEYWORD for p in parameters),
            "required": tuple(
                p.name
                for p in parameters
                if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
            ),
            "checked": {
                name: hint
                for name, hint in self.hints.items()
                if name in names and hint is not None and hint is not Any
            },
        }
        for name, value in facts.items():
            object.__setattr__(self, name, value)


class CatalogError(ConfigError):
    """A module of RECONCILER_TASK_MODULES could not be imported."""


# Process-wide memo (docs/architecture.md): importing a module is process-wide already
# (sys.modules), and pydantic validators ask for the catalog with no owner to pass in.
@lru_cache(maxsize=8)
def task_catalog(task_modules: tuple[str, ...]) -> Mapping[str, TaskParameters]:
    """The parameters of the built-ins and of the tasks in `task_modules`. Cached per
    module list: importing user modules is done once per process. Raises CatalogError."""
    catalog = {name: _parameters(name, function) for name, function in BUILTINS.items()}
    for module_name in task_modules:
        try:
            module = importlib.import_module(module_name)
        except Exception as error:  # noqa: BLE001 (any import failure is a setting problem)
            raise CatalogError(
                f"cannot import {module_name!r} from RECONCILER_TASK_MODULES: "
                f"{type(error).__name__}: {error}"
            ) from None
        for value in vars(module).values():
            name, run = getattr(value, "name", None), getattr(value, "run", None)
            if isinstance(name, str) and callable(run) and hasattr(value, "apply_async"):
                catalog[name] = _parameters(name, run)
    return catalog


def _parameters(task: str, function: Callable[..., Any]) -> TaskParameters:
    try:
        hints = typing.get_type_hints(function)
    except Exception:  # noqa: BLE001 (an unresolvable hint: check names and arity only)
        hints = {}
    hints.pop("return", None)
    defined_in = getattr(function, "__module__", None)
    modules = _hint_modules(hints.values()) | (
        {defined_in} if isinstance(defined_in, str) else set()
    )
    return TaskParameters(task, inspect.signature(function), hints, frozenset(modules))


def _hint_modules(hints: Iterable[Any]) -> set[str]:
    """The modules of the classes a hint names, arguments of generics and the fields of
    those classes (a TypedDict's, a dataclass's, a model's) included."""
    found: set[str] = set()
    seen: set[int] = set()
    pending = list(hints)
    while pending:
        hint = pending.pop()
        if id(hint) in seen:
            continue
        seen.add(id(hint))
        pending += typing.get_args(hint)
        module = getattr(hint, "__module__", None)
        if isinstance(hint, type) and isinstance(module, str) and module != "builtins":
            found.add(module)
            pending += _field_hints(hint)
    return found


def _field_hints(cls: type) -> list[Any]:
    try:
        return list(typing.get_type_hints(cls).values())
    except Exception:  # noqa: BLE001 (an unresolvable annotation: its module is counted)
        return []


def check_arguments(
    params: TaskParameters, args: list[Any], kwargs: Mapping[str, Any]
) -> list[Problem]:
    """Whether a call with `args` and `kwargs` fits `params` (see the module docstring):
    its arity, then each value whose parameter has a hint, positional ones first."""
    problems = _arity(params, args, kwargs)
    checked = params.checked
    if not checked:
        return problems  # no value to check: most tasks of a folder (`Any`, no hint)
    for index, (name, value) in enumerate(zip(params.positional, args, strict=False)):
        hint = checked.get(name)
        if hint is not None and not _fits(hint, value):
            problems.append(_invalid(params, ("args", index), name, hint))
    for key, value in kwargs.items():
        hint = checked.get(key)
        if hint is not None and not _fits(hint, value):
            problems.append(_invalid(params, ("kwargs", key), key, hint))
    return problems


def _invalid(params: TaskParameters, field: tuple[str | int, ...], name: str, hint: Any) -> Problem:
    message = f"{_dotted(field)}: expected {_hint_text(hint)} for {name!r} of {params.task}"
    return Problem(field, "INVALID_ARGUMENT", message)


_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
_NONE_TAKEN: frozenset[str] = frozenset()


def _arity(params: TaskParameters, args: list[Any], kwargs: Mapping[str, Any]) -> list[Problem]:
    parameters = params.signature.parameters
    positional = params.positional
    problems: list[Problem] = []
    if not params.takes_any_positional and len(args) > len(positional):
        message = (
            f"args: {params.task} takes at most {len(positional)} positional "
            f"argument{'s' if len(positional) != 1 else ''}, {len(args)} given"
        )
        problems.append(Problem(("args",), "INVALID_ARGUMENT", message))
    taken = frozenset(positional[: len(args)]) if args else _NONE_TAKEN
    for key in kwargs:
        if key in taken:
            message = f"kwargs.{key}: also given as a positional argument (args)"
            problems.append(Problem(("kwargs", key), "INVALID_ARGUMENT", message))
        elif key not in parameters and not params.takes_any_keyword:
            known = ", ".join(parameters) or "none"
            message = f"kwargs.{key}: {params.task} has no parameter {key!r} (it takes: {known})"
            problems.append(Problem(("kwargs", key), "UNKNOWN_ARGUMENT", message))
    for name in params.required:
        if name not in kwargs and name not in taken:
            # At the arguments written, else at the task that needs them.
            field: tuple[str | int, ...] = (
                ("kwargs",) if kwargs else ("args",) if args else ("task",)
            )
            message = f"{params.task} needs the argument {name!r} (in kwargs or args)"
            problems.append(Problem(field, "MISSING_ARGUMENT", message))
    return problems


def _dotted(field: tuple[str | int, ...]) -> str:
    return ".".join(str(step) for step in field)


def _fits(hint: Any, value: Any) -> bool:
    try:
        _adapter(hint).validate_python(value, strict=True)
    except ValidationError:
        return False
    except Exception:  # noqa: BLE001 (a hint pydantic cannot check: do not refuse)
        return True
    return True


# Process-wide memo (docs/architecture.md): one TypeAdapter per type hint, asked for by the
# argument checks of validation (no owner to pass in); a hint is an immutable type.
@lru_cache(maxsize=256)
def _adapter(hint: Any) -> TypeAdapter[Any]:
    return TypeAdapter(hint)


def _hint_text(hint: Any) -> str:
    text = getattr(hint, "__name__", None) if not typing.get_args(hint) else None
    return text or str(hint).replace("typing.", "")


# The tasks `extra_checks` has rules for (their arguments name what they touch).
CONFINED_TASKS = frozenset({"reconciler.tasks.sql_maintenance", "reconciler.tasks.write_report"})


def extra_checks(
    task: str,
    args: list[Any],
    kwargs: Mapping[str, Any],
    *,
    sql_statements: tuple[str, ...],
    report_dir: Path,
) -> list[Problem]:
    """The confinement rules of sql_maintenance and write_report, for values written in
    the file (the tasks check again when they run)."""
    name = "statement" if task == "reconciler.tasks.sql_maintenance" else "path"
    value, field = _argument(name, args, kwargs)
    if task == "reconciler.tasks.sql_maintenance" and isinstance(value, str):
        try:
            confine.checked_statement(value, sql_statements)
        except confine.Refused as refused:
            return [Problem(field, "INVALID_ARGUMENT", f"{_dotted(field)}: {refused}")]
    if task == "reconciler.tasks.write_report" and isinstance(value, str):
        try:
            confine.report_path_written(value, report_dir)
        except confine.Refused as refused:
            return [Problem(field, "INVALID_ARGUMENT", f"{_dotted(field)}: {refused}")]
    return []


def _argument(
    name: str, args: list[Any], kwargs: Mapping[str, Any]
) -> tuple[Any, tuple[str | int, ...]]:
    if name in kwargs:
        return kwargs[name], ("kwargs", name)
    if args:
        return args[0], ("args", 0)
    return None, ()
