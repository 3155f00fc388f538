"""Log lines people can follow and machines can parse.

Every line starts with an RFC 3339 UTC time (`Z`), and carries the job's name where there
is one: callers pass `extra={"job": name}` (`job_extra(name)`), and the line ends with
`job=<name>`. `RECONCILER_LOG_FORMAT=json` writes one JSON object per line instead
(`time`, `level`, `logger`, `message`, `job` when set, `error` with the traceback).
"""

from __future__ import annotations

import json
import logging
import os
import time
from typing import Any

JOB_FIELD = "job"


def job_extra(job: str | None) -> dict[str, Any]:
    return {JOB_FIELD: job} if job else {}


def _utc(record: logging.LogRecord) -> str:
    seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
    return f"{seconds}.{int(record.msecs):03d}Z"


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = f"{_utc(record)} {record.levelname} {record.name}: {record.getMessage()}"
        job = getattr(record, JOB_FIELD, None)
        if job:
            line += f" job={job}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, Any] = {
            "time": _utc(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        job = getattr(record, JOB_FIELD, None)
        if job:
            document[JOB_FIELD] = job
        if record.exc_info:
            document["error"] = self.formatException(record.exc_info)
        return json.dumps(document, ensure_ascii=False, default=str)


def line_formatter(fmt: str | None = None) -> logging.Formatter:
    """The formatter of every log line: RECONCILER_LOG_FORMAT (text or json) unless `fmt`.
    Also given to the handlers Celery sets up in a worker (reconciler.worker.runtime)."""
    chosen = (fmt or os.environ.get("RECONCILER_LOG_FORMAT") or "text").lower()
    return JsonFormatter() if chosen == "json" else TextFormatter()


def configure_logging(*, level: str | None = None, fmt: str | None = None) -> None:
    """The root handler of a `reconcile` process: level from RECONCILER_LOG_LEVEL (default
    WARNING), format from RECONCILER_LOG_FORMAT (text or json). Replaces any handler a
    library installed first, so every line has one shape."""
    handler = logging.StreamHandler()
    handler.setFormatter(line_formatter(fmt))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel((level or os.environ.get("RECONCILER_LOG_LEVEL") or "WARNING").upper())
