"""Configuration: every setting is an environment variable prefixed `RECONCILER_`.

`.env.example` lists them all; a test keeps the two in step.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from reconciler.database_url import DEFAULT_STATE_DIR, STATE_DB_NAME, default_database_url

DEFAULT_QUEUES = ("default", "high_priority", "low_priority", "scheduled")
# Task names and prefixes a job may name unless RECONCILER_TASK_ALLOWLIST says otherwise.
# A trailing dot or `*` marks a prefix. Whoever can merge a job file can call an allowed
# task with any arguments, so the default holds only harmless tasks: the seed's example
# and the HTTP probe. The powerful built-ins (SQL, file writes) are opt-in, and confined
# by their own settings even then; the demo helpers belong to `reconcile dev`.
DEFAULT_TASK_ALLOWLIST = ("reconciler.tasks.example_task", "reconciler.tasks.http_probe")
POWERFUL_TASKS = ("reconciler.tasks.sql_maintenance", "reconciler.tasks.write_report")
DEMO_TASKS = ("reconciler.tasks.sleep_task", "reconciler.tasks.fail_task", "reconciler.tasks.noop")
# What `reconcile dev` allows (unless RECONCILER_TASK_ALLOWLIST is set): everything built
# in, each powerful task confined to the dev state folder.
DEV_TASK_ALLOWLIST = (*DEFAULT_TASK_ALLOWLIST, *POWERFUL_TASKS, *DEMO_TASKS)
DEFAULT_SQL_STATEMENTS = ("VACUUM", "ANALYZE", "REINDEX")
# Distinct default /metrics ports per process kind: a daemon and a worker on one host
# must not fight over one port (the API serves /metrics on its own port).
DAEMON_METRICS_PORT = 9101
WORKER_METRICS_PORT = 9102
# Everything the reconciler writes on its own (the default SQLite file, a bare
# `filesystem://` broker's folders) lives under this folder, never loose in the
# working directory.
REPORTS_FOLDER = "reports"


class Settings(BaseSettings):
    """Runtime configuration. Immutable once read."""

    model_config = SettingsConfigDict(env_prefix="RECONCILER_", frozen=True, extra="ignore")

    state_dir: Path = Field(
        default=DEFAULT_STATE_DIR,
        description="Folder for local state: the default SQLite file, a local broker's files",
    )
    database_url: str = Field(
        default=default_database_url(DEFAULT_STATE_DIR),
        description=(
            "Where state lives: postgresql://user@host/db or sqlite:///path "
            f"(unset or empty: sqlite:///<state_dir>/{STATE_DB_NAME})"
        ),
    )
    jobs_dir: Path = Field(default=Path("jobs.d"), description="Folder of job YAML files")
    broker_url: str = Field(
        default="amqp://guest:guest@127.0.0.1:5672//", description="Celery broker"
    )
    result_backend: str = Field(
        default="redis://127.0.0.1:6379/0", description="Celery result backend"
    )
    redis_url: str = Field(
        default="redis://127.0.0.1:6379/0", description="Idempotency keys and locks"
    )
    redis_prefix: str = Field(default="", description="Prefix for every Redis key we write")
    result_ttl_seconds: int = Field(default=86_400, ge=60, description="Celery result TTL")
    idempotency_ttl_seconds: int = Field(
        default=86_400, ge=60, description="How long a completed fire is remembered"
    )
    # NoDecode: a comma list from the environment reaches `_split_csv` instead of failing
    # pydantic-settings' JSON decoding of complex fields; `_split_csv` takes JSON too.
    queues: Annotated[tuple[str, ...], NoDecode] = Field(
        default=DEFAULT_QUEUES, description="Allowed queues (comma list)"
    )
    task_allowlist: Annotated[tuple[str, ...], NoDecode] = Field(
        default=DEFAULT_TASK_ALLOWLIST,
        description="Exact task names, or prefixes ending in '.' or '*'",
    )
    task_modules: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(),
        description="Extra modules of Celery tasks the worker imports (comma list)",
    )
    sql_maintenance_url: str | None = Field(
        default=None,
        description=(
            "The database reconciler.tasks.sql_maintenance runs on (unset: the task refuses "
            "to run); never the reconciler's own unless you name it here"
        ),
    )
    sql_statement_allowlist: Annotated[tuple[str, ...], NoDecode] = Field(
        default=DEFAULT_SQL_STATEMENTS,
        description=(
            "Statements sql_maintenance may run: each entry is the leading words a "
            "statement must start with, case-insensitive (comma list)"
        ),
    )
    report_dir: Path = Field(
        default=DEFAULT_STATE_DIR / REPORTS_FOLDER,
        description=(
            "The only folder reconciler.tasks.write_report writes into "
            f"(unset or empty: <state_dir>/{REPORTS_FOLDER})"
        ),
    )
    idempotency_lease_seconds: int = Field(
        default=30,
        ge=2,
        le=3600,
        description="TTL of a running fire's idempotency key, renewed while it runs",
    )
    max_delete_fraction: float = Field(
        default=0.5, ge=0.0, le=1.0, description="Share of jobs one apply may remove"
    )
    resync_interval: float = Field(
        default=60.0, gt=0, description="Seconds between full resyncs of the daemon"
    )
    settle_seconds: float = Field(
        default=0.3, ge=0, description="Quiet time after file events before a watch pass writes"
    )
    poll_interval: float = Field(
        default=0.5, gt=0, description="How often the leader checks for outside changes"
    )
    publish_timeout: float = Field(
        default=5.0, gt=0, description="Seconds to wait for a broker confirm"
    )
    max_file_bytes: int = Field(default=1_048_576, ge=1024, description="Largest job file")
    max_nesting_depth: int = Field(default=32, ge=4, description="Deepest YAML nesting")
    max_catch_up_runs: int = Field(
        default=10, ge=1, description="Most missed slots fired after downtime (catch_up: all)"
    )
    probe_base_url: str = Field(
        default="http://127.0.0.1:8000",
        description="Base of the http_probe URLs a job writes as a path (`url: /health/live`)",
    )
    api_host: str = Field(default="127.0.0.1", description="API bind address")
    api_port: int = Field(default=8000, ge=1, le=65535, description="API port")
    api_token: str | None = Field(default=None, description="Bearer token for the API")
    api_public_docs: bool = Field(
        default=True,
        description=(
            "Serve /docs and /openapi.json without the API token (they describe the API "
            "and hold no data); false: they need the token too"
        ),
    )
    api_cache_seconds: float = Field(
        default=1.0, ge=0, le=60, description="API micro-cache of GET responses (0: off)"
    )
    metrics_port: int | None = Field(
        default=None,
        ge=0,
        le=65535,
        description=(
            f"/metrics port (unset: {DAEMON_METRICS_PORT} for `run`, {WORKER_METRICS_PORT} "
            "for `worker`, so both fit on one host; 0: off)"
        ),
    )
    metrics_host: str = Field(
        default="127.0.0.1",
        description="/metrics bind address of `run` and `worker` (0.0.0.0 in containers)",
    )
    startup_timeout: float = Field(
        default=0.0,
        ge=0,
        description=(
            "Seconds `run` and `worker` keep retrying an unreachable database, broker or "
            "Redis at start, with backoff "
            "(0: fail at once, with one line naming the setting)"
        ),
    )
    instance_id: str | None = Field(
        default=None, description="Name of this replica in leader records (default host:pid)"
    )
    log_level: str = Field(default="INFO", description="Logging level")
    sync: Literal["auto", "manual"] = Field(
        default="auto",
        description="auto: the daemon applies the job files; manual: it only fires and "
        "reports pending changes, `reconcile apply` is the only writer",
    )
    source: str = Field(
        default="worktree",
        pattern=r"^(worktree|git:[^\s]+)$",
        description="worktree: the files on disk; git:REF (git:HEAD): the files as "
        "committed at REF, never uncommitted edits",
    )
    log_format: Literal["text", "json"] = Field(
        default="text", description="Log lines as text or one JSON object per line"
    )
    fast_plan: bool = Field(
        default=True,
        description="A fresh `reconcile plan` or `reconcile apply` with nothing changed may "
        "answer from its no-op check, without loading the full path (false: always the full "
        "path; for debugging)",
    )

    @model_validator(mode="before")
    @classmethod
    def _default_in_state_dir(cls, data: object) -> object:
        # The default database and report folder follow the state folder, whichever way
        # that was set.
        if not isinstance(data, dict):
            return data
        state_dir = Path(data.get("state_dir") or DEFAULT_STATE_DIR)
        if not data.get("database_url"):
            data = {**data, "database_url": default_database_url(state_dir)}
        if not data.get("report_dir"):
            data = {**data, "report_dir": state_dir / REPORTS_FOLDER}
        return data

    @field_validator(
        "queues", "task_allowlist", "task_modules", "sql_statement_allowlist", mode="before"
    )
    @classmethod
    def _split_csv(cls, value: object) -> object:
        # Environment variables are strings: accept "a,b,c" as well as JSON lists.
        if isinstance(value, str):
            if value.lstrip().startswith("["):
                return json.loads(value)
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value


def load_settings(**overrides: object) -> Settings:
    """Read settings from the environment, with explicit overrides (CLI flags) on top."""
    clean: dict[str, Any] = {key: value for key, value in overrides.items() if value is not None}
    return Settings(**clean)
