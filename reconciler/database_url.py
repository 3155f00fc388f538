"""Where the state database is, read from the environment without pydantic-settings.

The read commands (`get`, `describe`, `runs`, `explain`, `status`) need this one setting,
and importing the settings model costs more than their whole work. `Settings` computes
its default from the same function; a test keeps the two readings equal.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

DEFAULT_STATE_DIR = Path(".reconciler")
STATE_DB_NAME = "reconciler.db"


def default_database_url(state_dir: Path) -> str:
    """The SQLite file in the state folder: the database when none is configured."""
    return f"sqlite:///{state_dir / STATE_DB_NAME}"


def database_url_from_env(environ: Mapping[str, str], *, override: str | None = None) -> str:
    """`override` (the --database-url flag) when given, else RECONCILER_DATABASE_URL,
    else the default file under RECONCILER_STATE_DIR. Empty values count as unset, and
    names are matched case-insensitively, as `Settings` reads them."""
    if override:
        return override
    values = {name.upper(): value for name, value in environ.items()}
    return values.get("RECONCILER_DATABASE_URL") or default_database_url(
        Path(values.get("RECONCILER_STATE_DIR") or DEFAULT_STATE_DIR)
    )
