"""/api/v1/jobs, /api/v1/jobs/{name}, /api/v1/jobs/{name}/runs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from reconciler.api import params
from reconciler.api.cursor import decode_cursor, encode_cursor, invalid_cursor
from reconciler.api.deps import Authed, Conn
from reconciler.api.models import JobDetail, JobList, RunList, SlotList
from reconciler.api.problems import ApiProblem
from reconciler.api.queries import runs as run_queries
from reconciler.api.queries.jobs import drift_of, get_job, job_items
from reconciler.api.responses import json_response
from reconciler.api.scrub import redact_spec
from reconciler.api.shape import as_utc, epoch_to_utc, next_fires, schedule_summary
from reconciler.core.status import job_state
from reconciler.core.vocabulary import JobStatus
from reconciler.store.history import explain_window
from reconciler.store.job_reads import JobFilter, count_jobs, read_job_page

router = APIRouter(
    prefix="/api/v1/jobs",
    tags=["jobs"],
    dependencies=[Authed],
    responses={**params.AUTH_PROBLEMS, **params.NOT_MODIFIED, **params.UNAVAILABLE},
)
RUNS_CURSOR = "runs:time-desc"


@router.get("", response_model=JobList, responses=params.BAD_CURSOR, summary="List jobs")
async def jobs_index(
    request: Request, connection: Conn, query: Annotated[params.JobsQuery, Query()]
) -> Response:
    """Jobs in name order. Page with `cursor` (keyset; stable under inserts) and/or
    `offset` (rows skipped after the cursor position, or from the start)."""
    kind = f"jobs:{query.sort}"
    after = decode_cursor(query.cursor, kind, 1)[0] if query.cursor else None
    where = JobFilter(
        status=query.status,
        queue=query.queue,
        prefix=query.prefix,
        labels=tuple(_label_pair(item) for item in query.label),
    )
    limit = query.limit
    rows = job_items(
        await read_job_page(
            connection,
            where=where,
            descending=query.sort == "-name",
            after=after,
            offset=query.offset,
            limit=limit + 1,
        )
    )
    more = len(rows) > limit
    items = rows[:limit]
    body: dict[str, Any] = {
        "items": items,
        "next_cursor": encode_cursor(kind, items[-1]["name"]) if more else None,
    }
    if query.include_total:
        body["total"] = await count_jobs(connection, where=where)
    return json_response(request, body)


@router.get("/{name}", response_model=JobDetail, responses=params.NOT_FOUND, summary="One job")
async def job_detail(request: Request, connection: Conn, name: params.JobName) -> Response:
    """The applied spec (redacted), provenance, scheduler state, last run, run counts,
    quarantine of its file and drift. Two queries. Carries an ETag; If-None-Match: 304."""
    record = await get_job(connection, name)
    if record is None:
        raise ApiProblem(404, "no job has this name")
    job = record.job
    spec = job["spec"] if isinstance(job["spec"], dict) else {}
    body = {
        "name": job["name"],
        "task": job["task"],
        "queue": job["queue"],
        "status": job["status"],
        "state": job_state(
            status=job["status"],
            quarantined=record.quarantine is not None,
            last_run_status=(record.last_run or {}).get("status"),
            next_run_time=record.next_run_time if job["status"] == JobStatus.ACTIVE else None,
            now=datetime.now(UTC),
        ),
        "labels": job["labels"],
        "schedule": schedule_summary(spec.get("schedule"), spec.get("timezone")),
        "spec": redact_spec(spec),
        "spec_hash": job["spec_hash"],
        "source_file": job["source_file"],
        "source_line": job["source_line"],
        "revision": job["revision"],
        "revision_dirty": job["revision_dirty"],
        "generation": job["generation"],
        "created_at": as_utc(job["created_at"]),
        "updated_at": as_utc(job["updated_at"]),
        "next_fire_time": epoch_to_utc(record.next_run_time),
        "next_fires": next_fires(spec, epoch_to_utc(record.next_run_time)),
        "scheduled": record.scheduled,
        "last_run": record.last_run,
        "run_counts": await run_queries.run_counts(connection, name),
        "quarantine": record.quarantine,
        "drift": drift_of(
            job["status"], scheduled=record.scheduled, next_run_time=record.next_run_time
        ),
    }
    return json_response(request, body)


@router.get(
    "/{name}/runs",
    response_model=RunList,
    responses={**params.NOT_FOUND, **params.BAD_CURSOR},
    summary="Run history of a job",
)
async def job_runs(
    request: Request,
    connection: Conn,
    name: params.JobName,
    status: params.Status = None,
    limit: params.Limit = params.DEFAULT_LIMIT,
    cursor: params.Cursor = None,
) -> Response:
    """Runs newest first (scheduled time, then id), keyset-paginated. 404 when neither the
    job nor any run of it exists."""
    before = _runs_position(cursor) if cursor else None
    rows = await run_queries.list_runs(
        connection, job=name, status=status, before=before, limit=limit + 1
    )
    if not rows and before is None and not await _known_job(connection, name):
        raise ApiProblem(404, "no job has this name")
    more = len(rows) > limit
    items = rows[:limit]
    next_cursor = None
    if more:
        last = items[-1]
        next_cursor = encode_cursor(RUNS_CURSOR, last["scheduled_time"].isoformat(), last["id"])
    return json_response(request, {"items": items, "next_cursor": next_cursor})


SLOTS_CURSOR = "slots:time"
DEFAULT_SLOTS_WINDOW = timedelta(hours=24)


@router.get(
    "/{name}/slots",
    response_model=SlotList,
    responses={**params.NOT_FOUND, **params.BAD_WINDOW},
    summary="Every slot of a job in a window, with its fate (explain)",
)
async def job_slots(
    request: Request,
    connection: Conn,
    name: params.JobName,
    start: params.WindowStart = None,
    end: params.WindowEnd = None,
    limit: params.Limit = params.DEFAULT_LIMIT,
    cursor: params.Cursor = None,
) -> Response:
    """`reconcile explain` over HTTP: every slot the schedule defines in [from, to]
    (default: the last 24 h) oldest first, each with its fate (ran, missed, coalesced,
    skipped, absent, not_yet_due), the reason and its ledger row. Paged: at most `limit`
    entries per page whatever the window (a 10-year window of a per-second job is as
    cheap per page as a day's); wall times the DST policy drops are entries too, listed
    `skipped`."""
    now = datetime.now(UTC)
    window_end = as_utc(end) or now
    window_start = as_utc(start) or window_end - DEFAULT_SLOTS_WINDOW
    if window_start > window_end:
        raise ApiProblem(400, "`from` is after `to`")
    after = _slots_position(cursor) if cursor else None
    answer = await connection.run_sync(
        lambda sync: explain_window(
            sync, name, start=window_start, end=window_end, after=after, limit=limit, now=now
        )
    )
    if answer is None:
        raise ApiProblem(404, "no job has this name")
    next_after = answer.next_after
    body = {
        "job": name,
        "from": window_start,
        "to": window_end,
        "items": answer.slots,
        "next_cursor": encode_cursor(SLOTS_CURSOR, next_after.isoformat()) if next_after else None,
    }
    return json_response(request, body)


def _slots_position(cursor: str) -> datetime:
    (moment,) = decode_cursor(cursor, SLOTS_CURSOR, 1)
    try:
        parsed = as_utc(datetime.fromisoformat(moment))
    except ValueError:
        raise invalid_cursor() from None
    assert parsed is not None
    return parsed


def _runs_position(cursor: str) -> tuple[datetime, str]:
    moment, run_id = decode_cursor(cursor, RUNS_CURSOR, 2)
    try:
        parsed = as_utc(datetime.fromisoformat(moment))
    except ValueError:
        raise invalid_cursor() from None
    assert parsed is not None
    return parsed, run_id


async def _known_job(connection: Conn, name: str) -> bool:
    if await run_queries.job_exists(connection, name):
        return True
    return bool(await run_queries.run_counts(connection, name))


def _label_pair(text: str) -> tuple[str, str]:
    key, _, value = text.partition("=")
    return key, value
