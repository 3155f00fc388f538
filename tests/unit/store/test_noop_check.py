"""store.noop_check's constants and readings equal the store's own."""

from __future__ import annotations

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
