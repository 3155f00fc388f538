"""Rows to response dicts: the shapes described by `reconciler.api.models`. Pure.

Times: see `reconciler.core.moments` (naive from SQLite means UTC).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from reconciler.api.scrub import scrub_text
from reconciler.core.moments import as_utc, from_epoch
from reconciler.core.readout import schedule_summary
from reconciler.redact import redact

__all__ = ["as_utc", "epoch_to_utc", "quarantine_dict", "run_dict", "schedule_summary"]
epoch_to_utc = from_epoch


def run_dict(row: Mapping[Any, Any]) -> dict[str, Any]:
    """A `job_runs` row (mapping) as the Run model, error and result summary scrubbed."""
    started, finished = as_utc(row["started_at"]), as_utc(row["finished_at"])
    duration = (finished - started).total_seconds() if started and finished else None
    return {
        "id": row["id"],
        "job": row["job_name"],
        "scheduled_time": as_utc(row["scheduled_time"]),
        "status": row["status"],
        "reason": row["reason"],
        "task": row["task"],
        "queue": row["queue"],
        "revision": row["revision"],
        "fired_at": as_utc(row["fired_at"]),
        "published_at": as_utc(row["published_at"]),
        "started_at": started,
        "finished_at": finished,
        "lateness_seconds": row["lateness_seconds"],
        "duration_seconds": duration,
        "retries": row["retries"],
        "duplicates": row["duplicates"],
        "worker": row["worker"],
        "result_summary": scrub_text(row["result_summary"]),
        "error": scrub_text(row["error"]),
    }


def quarantine_dict(row: Mapping[Any, Any]) -> dict[str, Any]:
    """A `quarantined_files` row; its diagnostics redacted (they never quote the source)."""
    return {
        "path": row["path"],
        "since": as_utc(row["since"]),
        "last_seen": as_utc(row["last_seen"]),
        "diagnostics": redact(row["diagnostics"]),
    }


NEXT_FIRES = 5


def next_fires(spec: Mapping[str, Any], first: datetime | None) -> list[dict[str, Any]]:
    """The next NEXT_FIRES fires of an applied spec from the scheduler's next run time on
    (inclusive), computed by the same engine and trigger the daemon runs: [] when the
    job has no next run time (paused, completed, unscheduled) or its spec does not load."""
    from datetime import timedelta

    from pydantic import ValidationError

    from reconciler.core.triggers import upcoming_fires
    from reconciler.spec.model import JobSpec

    if first is None:
        return []
    try:
        job = JobSpec.model_validate(spec)
    except ValidationError:
        return []
    fires = upcoming_fires(job, after=first - timedelta(microseconds=1), count=NEXT_FIRES)
    return [
        {"at": f.at, "dst": None if f.placement.value == "normal" else f.placement.value}
        for f in fires
    ]
