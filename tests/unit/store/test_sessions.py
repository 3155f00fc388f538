"""store.sessions.idle_bounded_sessions: the bound for PostgreSQL only, and a URL that
is not one still reported as the engine's ConfigError."""

from __future__ import annotations

import pytest

from reconciler.errors import ConfigError
from reconciler.store.sessions import IDLE_SECONDS, idle_bounded_sessions
from reconciler.worker.runtime import ledger_engine


def test_only_postgresql_sessions_are_bounded() -> None:
    options = idle_bounded_sessions("postgresql://u@h/d")
    timeout = int(IDLE_SECONDS * 1000)
    assert options == {
        "connect_args": {"options": f"-c idle_in_transaction_session_timeout={timeout}"}
    }
    assert idle_bounded_sessions("sqlite:///x.db") == {}


def test_the_urls_own_options_are_kept(pg_url: str) -> None:
    """A URL's `options` go to the server beside the bound, not replaced by it."""
    import sqlalchemy as sa

    url = f"{pg_url}?options=-c%20search_path%3Dpg_catalog"
    engine = ledger_engine(url)
    try:
        with engine.connect() as connection:
            path = connection.execute(sa.text("SHOW search_path")).scalar()
            timeout = connection.execute(
                sa.text("SHOW idle_in_transaction_session_timeout")
            ).scalar()
    finally:
        engine.dispose()
    assert (path, timeout) == ("pg_catalog", f"{int(IDLE_SECONDS)}s")


def test_a_worker_given_a_url_that_is_none_gets_the_config_error() -> None:
    with pytest.raises(ConfigError, match="invalid database URL"):
        ledger_engine("not a url")
