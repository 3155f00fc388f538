""".env.example lists every setting with its default and description, generated from
`Settings.model_fields`. To rewrite it after changing the settings:

    UPDATE_ENV_EXAMPLE=1 .venv/bin/pytest tests/observability/test_env_example.py
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest

from reconciler.settings import Settings

ENV_EXAMPLE = Path(__file__).resolve().parents[2] / ".env.example"
PREFIX = "RECONCILER_"
HEADER = """\
# Configuration of jobs-reconciler: every setting, as an environment variable, with its
# default and what it does. Generated from reconciler.settings.Settings; the test
# tests/observability/test_env_example.py fails when the two differ, and rewrites this
# file when run with UPDATE_ENV_EXAMPLE=1.
# Lists are comma-separated. Settings without a default are commented out.
"""


def render_env_example() -> str:
    blocks = [HEADER]
    for name, field in Settings.model_fields.items():
        variable = PREFIX + name.upper()
        default = field.get_default(call_default_factory=True)
        line = f"{variable}={_env_value(default)}"
        blocks.append(f"# {field.description}\n{'# ' if default is None else ''}{line}\n")
    return "\n".join(blocks)


def _env_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple | list):
        return ",".join(str(item) for item in value)
    return str(value)


def read_env_file(text: str) -> tuple[dict[str, str], set[str]]:
    """(assignments, every variable named, commented out or not)."""
    assignments: dict[str, str] = {}
    named: set[str] = set()
    for line in text.splitlines():
        match = re.fullmatch(r"(#\s*)?([A-Z][A-Z0-9_]*)=(.*)", line.strip())
        if match:
            named.add(match.group(2))
            if not match.group(1):
                assignments[match.group(2)] = match.group(3)
    return assignments, named


def test_env_example_is_generated_from_the_settings() -> None:
    expected = render_env_example()
    if os.environ.get("UPDATE_ENV_EXAMPLE") == "1":
        ENV_EXAMPLE.write_text(expected)
    assert ENV_EXAMPLE.read_text() == expected, (
        "stale .env.example: rerun with UPDATE_ENV_EXAMPLE=1 (see this module's docstring)"
    )


def test_every_setting_is_listed_once_and_only_settings() -> None:
    _, named = read_env_file(ENV_EXAMPLE.read_text())
    fields = {PREFIX + name.upper() for name in Settings.model_fields}
    assert named == fields
    assert all(field.description for field in Settings.model_fields.values())


def test_the_listed_values_read_back_as_the_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    # Copying .env.example into the environment changes nothing: its values are the
    # defaults, written in a form the settings accept.
    for variable in list(os.environ):
        if variable.startswith(PREFIX):
            monkeypatch.delenv(variable)
    assignments, _ = read_env_file(ENV_EXAMPLE.read_text())
    refused = []
    for variable, value in assignments.items():
        with monkeypatch.context() as one:
            one.setenv(variable, value)
            try:
                Settings()
            except ValueError as error:  # pydantic's ValidationError, SettingsError
                refused.append(f"{variable}={value}: {str(error).splitlines()[0]}")
    assert not refused, "values of .env.example the settings refuse:\n" + "\n".join(refused)
    for variable, value in assignments.items():
        monkeypatch.setenv(variable, value)
    assert Settings() == Settings.model_construct()
