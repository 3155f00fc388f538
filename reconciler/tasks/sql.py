"""`reconciler.tasks.sql_maintenance`: one SQL statement, e.g. `VACUUM ANALYZE job_runs`
or `DELETE FROM job_runs WHERE finished_at < now() - interval '90 days'`."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from celery import shared_task

from reconciler.store.db import create_sync_engine
from reconciler.worker.base import BaseTask, PermanentTaskError
from reconciler.worker.runtime import settings_of


@shared_task(base=BaseTask, bind=True, name="reconciler.tasks.sql_maintenance")
def sql_maintenance(
    self: BaseTask, statement: str, database_url: str | None = None
) -> dict[str, Any]:
    """Run ONE statement, in autocommit mode (VACUUM cannot run in a transaction), on
    `database_url` or else the reconciler's own database. Returns {"rowcount"}.

    Raises PermanentTaskError for an empty statement or several statements (a job that
    names one statement must not smuggle in a second); database errors are retried per
    the job's policy."""
    text = single_statement(statement)
    engine = create_sync_engine(database_url or settings_of(self.app).database_url)
    try:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            result = connection.execute(sa.text(text))
            return {"rowcount": result.rowcount}
    finally:
        engine.dispose()


def single_statement(statement: str) -> str:
    """`statement` without its trailing semicolons. Raises PermanentTaskError when it
    holds no statement or more than one. Quotes ('', "", PostgreSQL $tag$...$tag$) and
    comments (--, /* */) are skipped while looking for a separating semicolon."""
    code = _code_only(statement)
    end = len(code.rstrip(" \t\r\n;"))
    if not code[:end].strip():
        raise PermanentTaskError("empty SQL statement")
    if ";" in code[:end]:
        raise PermanentTaskError("only one SQL statement is allowed")
    return statement[:end]


def _code_only(sql: str) -> str:
    """`sql` with quoted literals and comments masked (same length, same positions)."""
    out: list[str] = []
    i, n = 0, len(sql)
    while i < n:
        end = _skip_quoted(sql, i)
        if end > i:
            # A literal is code (never trimmed away); a comment is whitespace.
            filler = " " if sql[i] in "-/" else "x"
            out.append(filler * (end - i))
            i = end
        else:
            out.append(sql[i])
            i += 1
    return "".join(out)


def _skip_quoted(sql: str, i: int) -> int:
    """The index after the quote or comment starting at `i` (its end of input when
    unterminated), or `i` when none starts there."""
    if sql.startswith("--", i):
        newline = sql.find("\n", i)
        return len(sql) if newline < 0 else newline
    if sql.startswith("/*", i):
        close = sql.find("*/", i + 2)
        return len(sql) if close < 0 else close + 2
    char = sql[i]
    if char in ("'", '"'):
        j = i + 1
        while j < len(sql):
            if sql[j] == char:
                if sql.startswith(char * 2, j):  # '' inside a string is a quote
                    j += 2
                    continue
                return j + 1
            j += 1
        return len(sql)
    if char == "$":
        close = sql.find("$", i + 1)
        tag = sql[i : close + 1] if close > 0 else ""
        if tag and (tag == "$$" or tag[1:-1].replace("_", "a").isalnum()):
            end = sql.find(tag, close + 1)
            return len(sql) if end < 0 else end + len(tag)
    return i
