"""store.noop_check's constants and readings equal the store's own."""

from __future__ import annotations

import subprocess
import sys

from reconciler.store import apply_lock, noop_check, scheduler_rows


def test_the_lock_and_the_row_code_are_the_stores() -> None:
    assert noop_check.APPLY_LOCK_KEY == apply_lock.APPLY_LOCK_KEY
    assert noop_check.row_code() == scheduler_rows.row_code()


def test_only_plain_urls_are_read() -> None:
    assert noop_check.read_stored_state("postgresql://u@h/d?sslmode=require") is None
    assert noop_check.read_stored_state("postgresql+psycopg://u@h/d") is None
    assert noop_check.read_stored_state("sqlite:///x.db") is None


def test_library_versions_are_importlib_metadatas() -> None:
    from importlib.metadata import version

    from reconciler.spec import context

    for name in (*context._LIBRARIES, "orjson", "SQLAlchemy", "psycopg", "jobs-reconciler"):
        assert context._version(name) == version(name), name


def test_library_versions_are_read_without_importlib_metadata() -> None:
    """The no-op check reads the versions from the dist-info folders itself: importing
    importlib.metadata costs ~30 ms of a command that should take few more."""
    code = (
        "import sys; from reconciler.spec.context import library_versions; "
        "library_versions(); print('importlib.metadata' in sys.modules)"
    )
    ran = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert ran.stdout.strip() == "False"
