"""Fixtures of the spec tests: settings that ignore the environment, and a way to load
one file's text and get its diagnostics as comparable tuples."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from reconciler.settings import DEFAULT_QUEUES, Settings
from reconciler.spec.loader import FileOutcome, load_bytes

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
JOB = "name: job-a\ntask: reconciler.tasks.example_task\nschedule: {cron: '*/5 * * * *'}\n"


@pytest.fixture
def settings() -> Settings:
    """Default settings, spelled out so that RECONCILER_* variables cannot change them;
    every built-in task allowed (the examples use the powerful ones; the default
    allowlist has its own tests in tests/test_security.py)."""
    return Settings(
        queues=DEFAULT_QUEUES,
        task_allowlist=("reconciler.tasks.*",),
        max_file_bytes=1_048_576,
        max_nesting_depth=32,
    )


@pytest.fixture
def load_text(settings: Settings) -> Callable[[str | bytes], FileOutcome]:
    def load(text: str | bytes) -> FileOutcome:
        data = text.encode() if isinstance(text, str) else text
        return load_bytes("job.yaml", data, settings=settings, now=NOW)

    return load


@pytest.fixture
def problems(
    load_text: Callable[[str | bytes], FileOutcome],
) -> Callable[[str | bytes], list[tuple[int, int, str]]]:
    """(line, column, code) of every diagnostic, sorted."""

    def run(text: str | bytes) -> list[tuple[int, int, str]]:
        return [(d.line, d.column, d.code) for d in load_text(text).diagnostics]

    return run


def write(folder: Path, relative: str, text: str) -> Path:
    path = folder / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path
