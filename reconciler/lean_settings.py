"""The settings a no-op `reconcile plan` needs, read from the environment without
pydantic-settings (whose import costs more than the whole no-op check).

`lean_settings` gives the values `reconciler.settings.load_settings` would give for
the fields the check reads, or None whenever it cannot be sure of them or of the whole
environment being valid: a value it does not parse exactly as the settings model does,
a constrained setting it cannot vouch for, two names that differ only in case. None
sends the command down its full path, which reads the real settings (and reports an
invalid one). tests/unit/test_lean_settings.py compares both readings on random
environments.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from reconciler.database_url import DEFAULT_STATE_DIR, database_url_from_env

PREFIX = "RECONCILER_"
# The defaults of reconciler.settings (a test keeps them equal).
DEFAULT_QUEUES = ("default", "high_priority", "low_priority", "scheduled")
DEFAULT_TASK_ALLOWLIST = ("reconciler.tasks.example_task", "reconciler.tasks.http_probe")
DEFAULT_SQL_STATEMENTS = ("VACUUM", "ANALYZE", "REINDEX")
REPORTS_FOLDER = "reports"

# What pydantic reads as a bool, whatever the case.
_TRUE = ("1", "on", "t", "true", "y", "yes")
_FALSE = ("0", "off", "f", "false", "n", "no")
_INT = re.compile(r"(0|[1-9][0-9]{0,17})")
_FLOAT = re.compile(r"(0|[1-9][0-9]{0,9})(\.[0-9]{1,9})?")


@dataclass(frozen=True, slots=True)
class LeanSettings:
    jobs_dir: Path
    database_url: str
    max_file_bytes: int
    max_nesting_depth: int
    queues: tuple[str, ...]
    task_allowlist: tuple[str, ...]
    sql_statement_allowlist: tuple[str, ...]
    report_dir: Path
    fast_plan: bool


def _integer(low: int, high: int | None = None) -> Callable[[str], bool]:
    return lambda text: bool(_INT.fullmatch(text)) and low <= int(text) <= (high or int(text))


def _number(low: float, high: float | None = None, *, above: bool = False) -> Callable[[str], bool]:
    def valid(text: str) -> bool:
        if not _FLOAT.fullmatch(text):
            return False
        value = float(text)
        return (value > low if above else value >= low) and (high is None or value <= high)

    return valid


def _one_of(*words: str) -> Callable[[str], bool]:
    return lambda text: text in words


def _any(text: str) -> bool:
    return True


# Every setting the model declares, with what the lean reading accepts of it. The fields
# the check reads are parsed below; for the others, a value this does not vouch for
# (one the model might refuse) sends the command down its full path.
_ACCEPTS: dict[str, Callable[[str], bool]] = {
    "STATE_DIR": lambda text: text != "",
    "DATABASE_URL": _any,
    "JOBS_DIR": lambda text: text != "",
    "BROKER_URL": _any,
    "RESULT_BACKEND": _any,
    "REDIS_URL": _any,
    "REDIS_PREFIX": _any,
    "RESULT_TTL_SECONDS": _integer(60),
    "IDEMPOTENCY_TTL_SECONDS": _integer(60),
    "QUEUES": _any,
    "TASK_ALLOWLIST": _any,
    "TASK_MODULES": _any,
    "SQL_MAINTENANCE_URL": _any,
    "SQL_STATEMENT_ALLOWLIST": _any,
    "REPORT_DIR": _any,
    "IDEMPOTENCY_LEASE_SECONDS": _integer(2, 3600),
    "MAX_DELETE_FRACTION": _number(0.0, 1.0),
    "RESYNC_INTERVAL": _number(0.0, above=True),
    "SETTLE_SECONDS": _number(0.0),
    "POLL_INTERVAL": _number(0.0, above=True),
    "PUBLISH_TIMEOUT": _number(0.0, above=True),
    "MAX_FILE_BYTES": _integer(1024),
    "MAX_NESTING_DEPTH": _integer(4),
    "MAX_CATCH_UP_RUNS": _integer(1),
    "PROBE_BASE_URL": _any,
    "API_HOST": _any,
    "API_PORT": _integer(1, 65535),
    "API_TOKEN": _any,
    "API_PUBLIC_DOCS": _one_of("true", "false"),
    "API_CACHE_SECONDS": _number(0.0, 60.0),
    "METRICS_PORT": _integer(0, 65535),
    "METRICS_HOST": _any,
    "STARTUP_TIMEOUT": _number(0.0),
    "INSTANCE_ID": _any,
    "LOG_LEVEL": _any,
    "SYNC": _one_of("auto", "manual"),
    "SOURCE": _one_of("worktree"),  # git:REF: the check reads the working tree only
    "LOG_FORMAT": _one_of("text", "json"),
    "FAST_PLAN": lambda text: text.lower() in _TRUE + _FALSE,
}


def lean_settings(
    environ: Mapping[str, str], *, jobs_dir: str | None = None, database_url: str | None = None
) -> LeanSettings | None:
    """The settings `load_settings(jobs_dir=, database_url=)` would give for the fields
    of LeanSettings, or None when this reading cannot vouch for them (see the module)."""
    values: dict[str, str] = {}
    for name, value in environ.items():
        upper = name.upper()
        if not upper.startswith(PREFIX):
            continue
        if upper in values:
            return None  # two spellings of one setting: which one wins is not ours to say
        values[upper] = value
    for upper, value in values.items():
        accepts = _ACCEPTS.get(upper[len(PREFIX) :])
        if accepts is not None and not accepts(value):
            return None
    lists = {}
    for field in ("QUEUES", "TASK_ALLOWLIST", "TASK_MODULES", "SQL_STATEMENT_ALLOWLIST"):
        text = values.get(PREFIX + field)
        lists[field] = None if text is None else _split_csv(text)
        if text is not None and lists[field] is None:
            return None
    if lists["TASK_MODULES"]:
        return None  # the context then digests the imported task catalog
    if jobs_dir == "" or database_url == "":
        return None
    state_dir = Path(values.get(PREFIX + "STATE_DIR") or DEFAULT_STATE_DIR)
    return LeanSettings(
        jobs_dir=Path(jobs_dir or values.get(PREFIX + "JOBS_DIR") or "jobs.d"),
        database_url=database_url_from_env(environ, override=database_url),
        max_file_bytes=int(values.get(PREFIX + "MAX_FILE_BYTES", 1_048_576)),
        max_nesting_depth=int(values.get(PREFIX + "MAX_NESTING_DEPTH", 32)),
        queues=lists["QUEUES"] if lists["QUEUES"] is not None else DEFAULT_QUEUES,
        task_allowlist=lists["TASK_ALLOWLIST"]
        if lists["TASK_ALLOWLIST"] is not None
        else DEFAULT_TASK_ALLOWLIST,
        sql_statement_allowlist=lists["SQL_STATEMENT_ALLOWLIST"]
        if lists["SQL_STATEMENT_ALLOWLIST"] is not None
        else DEFAULT_SQL_STATEMENTS,
        report_dir=Path(values.get(PREFIX + "REPORT_DIR") or state_dir / REPORTS_FOLDER),
        fast_plan=values.get(PREFIX + "FAST_PLAN", "true").lower() in _TRUE,
    )


def _split_csv(text: str) -> tuple[str, ...] | None:
    """Settings._split_csv and the model's tuple[str, ...]; None: not vouched for."""
    if text.lstrip().startswith("["):
        try:
            items = json.loads(text)
        except ValueError:
            return None
        if not isinstance(items, list) or not all(type(item) is str for item in items):
            return None
        return tuple(items)
    return tuple(part.strip() for part in text.split(",") if part.strip())
