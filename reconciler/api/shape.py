"""Rows to response dicts: the shapes described by `reconciler.api.models`. Pure.

Times: PostgreSQL returns aware datetimes; SQLite returns naive ones, which every writer of
this package stores in UTC, so naive means UTC. APScheduler's next_run_time is a UTC epoch.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from reconciler.api.scrub import scrub_text
from reconciler.redact import redact

_CRON_FIELDS = ("year", "month", "week", "day", "day_of_week", "hour", "minute", "second")
_INTERVAL_UNITS = (
    ("weeks", "w"),
    ("days", "d"),
    ("hours", "h"),
    ("minutes", "m"),
    ("seconds", "s"),
)


def as_utc(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def epoch_to_utc(epoch: float | None) -> datetime | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC)


def schedule_summary(schedule: Any, timezone: Any) -> dict[str, str] | None:
    """{kind, value, timezone} from the spec's `schedule`; None if it has an unknown shape."""
    if not isinstance(schedule, Mapping):
        return None
    zone = timezone if isinstance(timezone, str) else "UTC"
    if "cron" in schedule:
        cron = schedule["cron"]
        if isinstance(cron, Mapping):
            cron = " ".join(f"{key}={cron[key]}" for key in _CRON_FIELDS if key in cron)
        return {"kind": "cron", "value": str(cron), "timezone": zone}
    if isinstance(schedule.get("interval"), Mapping):
        interval = schedule["interval"]
        parts = [f"{interval[key]}{unit}" for key, unit in _INTERVAL_UNITS if interval.get(key)]
        return {"kind": "interval", "value": "".join(parts) or "0s", "timezone": zone}
    if "at" in schedule:
        return {"kind": "date", "value": str(schedule["at"]), "timezone": zone}
    return None


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
