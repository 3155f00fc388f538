"""`reconciler.tasks.sql_maintenance`: one allowlisted SQL statement (`VACUUM ANALYZE
job_runs`, `REINDEX TABLE job_runs`) on the database RECONCILER_SQL_MAINTENANCE_URL names.

Off unless configured: the task must be on RECONCILER_TASK_ALLOWLIST, the target
database is a setting (never a job's argument, never the reconciler's own by default),
and the statement must match RECONCILER_SQL_STATEMENT_ALLOWLIST (see `confine`)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from celery import shared_task

from reconciler.spec import confine
from reconciler.store.db import create_sync_engine
from reconciler.worker.base import BaseTask, PermanentTaskError
from reconciler.worker.runtime import settings_of

DISABLED = (
    "sql_maintenance is disabled: set RECONCILER_SQL_MAINTENANCE_URL to the database "
    "it may maintain"
)


@shared_task(base=BaseTask, bind=True, name="reconciler.tasks.sql_maintenance")
def sql_maintenance(self: BaseTask, statement: str) -> dict[str, Any]:
    """Run ONE allowlisted statement, in autocommit mode (VACUUM cannot run in a
    transaction), on RECONCILER_SQL_MAINTENANCE_URL. Returns {"rowcount"}.

    Raises PermanentTaskError when the task is not configured, for an empty statement,
    several statements (a job that names one statement must not smuggle in a second) or
    one off the statement allowlist; database errors are retried per the job's policy."""
    settings = settings_of(self.app)
    if not settings.sql_maintenance_url:
        raise PermanentTaskError(DISABLED)
    try:
        text = confine.checked_statement(statement, settings.sql_statement_allowlist)
    except confine.Refused as refused:
        raise PermanentTaskError(str(refused)) from None
    engine = create_sync_engine(settings.sql_maintenance_url)
    try:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            result = connection.execute(sa.text(text))
            return {"rowcount": result.rowcount}
    finally:
        engine.dispose()


def single_statement(statement: str) -> str:
    """`confine.single_statement`, raising PermanentTaskError."""
    try:
        return confine.single_statement(statement)
    except confine.Refused as refused:
        raise PermanentTaskError(str(refused)) from None
