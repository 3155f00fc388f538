"""Recording one batch of fires in the ledger, BEFORE anything is published.

`record_batch` decides, inside one transaction, what becomes of each request:

- a slot already in the ledger (another scheduler, a failover, a retry of the same
  slot) is a DUPLICATE: the existing row's `duplicates` is incremented, nothing is
  published; unless the fire is one side of a failover's HAND-OVER, in either order:
  the batch is LATE (recorded by a process that no longer leads,
  `record_batch(late=True)`), or the request is INHERITED (a new leader's fire of a slot
  already due when it took over, which its predecessor may have accepted:
  Dispatcher.take_over). Then nothing is counted and nothing published;
- a job already running `max_concurrent_runs` times is an OVERLAP: the slot is
  recorded 'skipped' (reason 'overlap') and not published;
- a missed slot (misfire, coalesced, catch-up limit) is recorded 'missed' with its reason;
- everything else is recorded 'scheduled' and returned for publishing.

A run counts as "still running" while its row is active (scheduled, published, started
under a live claim lease, retried) and its slot is recent: within the job's time limit
(one hour without one) times its attempts plus the retry delays. Older active rows are
presumed lost (a worker died without reporting) so that one lost run cannot block a job
forever.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.engine import Connection

from reconciler.core.fires import FirePayload
from reconciler.core.vocabulary import RunReason, RunStatus
from reconciler.dispatch.request import FireRequest, ledger_row
from reconciler.store import ledger

DEFAULT_RUN_BOUND = timedelta(hours=1)


@dataclass(slots=True)
class BatchOutcome:
    to_publish: list[FireRequest] = field(default_factory=list)
    duplicates: list[FireRequest] = field(default_factory=list)
    # Fires whose slot was in the ledger, late or inherited: the failover's hand-over.
    handed_over: list[FireRequest] = field(default_factory=list)
    overlaps: list[FireRequest] = field(default_factory=list)
    missed: list[FireRequest] = field(default_factory=list)


def active_window(payload: FirePayload) -> timedelta:
    """How long after its slot a run may plausibly still be running."""
    limit = payload["time_limit_seconds"]
    per_attempt = DEFAULT_RUN_BOUND if limit is None else timedelta(seconds=limit)
    attempts = payload["retries"] + 1
    return per_attempt * attempts + timedelta(seconds=payload["retry_delay_seconds"]) * (
        attempts - 1
    )


def decide_overlaps(
    requests: Sequence[FireRequest],
    active: Mapping[str, Sequence[ledger.ActiveRun]],
    *,
    now: datetime,
) -> set[str]:
    """Ids of fire requests to skip because their job is at max_concurrent_runs.

    Pure. Requests are taken in slot order, and each one not skipped counts against the
    later ones of the same job in the batch (a catch-up of several slots).
    """
    by_job: dict[str, list[FireRequest]] = defaultdict(list)
    for request in requests:
        by_job[request.job].append(request)
    skipped: set[str] = set()
    for job, mine in by_job.items():
        runs = active.get(job, ())
        if not runs and len(mine) <= min(r.payload["max_concurrent_runs"] for r in mine):
            continue  # nothing running and room for all (a burst of distinct jobs)
        skipped |= _overlapping_slots(mine, runs, now=now)
    return skipped


def crowded_jobs(requests: Sequence[FireRequest], active_counts: Mapping[str, int]) -> set[str]:
    """The jobs whose requests `decide_overlaps` must look at run by run: those whose
    active runs (counted over the batch's widest window) plus their requests in the
    batch exceed the smallest max_concurrent_runs among those requests. For any other
    job no request is skipped: a request counts at most the job's active runs plus the
    requests before it, which stays below its limit. Pure."""
    requests_of: Counter[str] = Counter()
    room: dict[str, int] = {}
    for request in requests:
        requests_of[request.job] += 1
        limit = request.payload["max_concurrent_runs"]
        room[request.job] = min(room.get(request.job, limit), limit)
    return {
        job for job, count in requests_of.items() if active_counts.get(job, 0) + count > room[job]
    }


def _overlapping_slots(
    requests: Sequence[FireRequest], active: Sequence[ledger.ActiveRun], *, now: datetime
) -> set[str]:
    """decide_overlaps for the requests of ONE job."""
    running = list(active)
    skipped: set[str] = set()
    for request in sorted(requests, key=lambda r: r.slot):
        since = now - active_window(request.payload)
        runs = [run for run in running if run.id != request.id and run.slot >= since]
        if len(runs) >= request.payload["max_concurrent_runs"]:
            skipped.add(request.id)
        else:
            running.append(ledger.ActiveRun(request.id, request.job, request.slot))
    return skipped


def record_batch(
    connection: Connection,
    requests: Sequence[FireRequest],
    *,
    now: datetime,
    retry_at: datetime,
    late: bool = False,
) -> BatchOutcome:
    """Write the batch's ledger rows (see the module doc). `retry_at` is the
    next_attempt_at of rows to publish: if this process dies before marking them
    published, the retrier (of this or the next leader) publishes them from then on.

    `late`: this process accepted the fires while it led and lost the leadership before
    recording them (a pause between the scheduler's fire and the recorder's insert: a
    SIGSTOP, a VM pause, a GC stall). They are still recorded, since the paused
    scheduler may have moved their rows on and the slot would be neither due nor in the
    ledger; but a slot already there was fired or recorded by the next leader while this
    process was paused: the next leader could not see a fire held in this process's
    memory, and this one publishes nothing. It is handed over, not counted as a
    duplicate (which says a LEADER fired a slot twice: two schedulers, a slot fired
    again after a write-back was lost).

    The other order: the woken process recorded the slot first, then the next leader
    fires it (due when that leader took over: made due again by its rewind, still due,
    or moved back by the woken process's write-back). That request is `inherited`
    (Dispatcher.take_over): handed over too. A leader's second fire of a slot after its
    takeover is still a duplicate."""
    fires = [r for r in requests if r.kind == "fire"]
    skipped = _overlapping(connection, fires, now=now)
    rows, seen = [], set()
    for request in requests:
        if request.id in seen:
            continue  # the same slot twice in one batch: the second is a duplicate
        seen.add(request.id)
        rows.append(_row_for(request, skipped=request.id in skipped, now=now, retry_at=retry_at))
    inserted = ledger.insert_rows(connection, rows)
    outcome = _classify(requests, inserted, skipped)
    refused, outcome.duplicates = outcome.duplicates, []
    for request in refused:
        (outcome.handed_over if late or request.inherited else outcome.duplicates).append(request)
    ledger.add_duplicates(connection, (r.id for r in outcome.duplicates), now=now)
    return outcome


def _overlapping(
    connection: Connection, fires: Sequence[FireRequest], *, now: datetime
) -> set[str]:
    if not fires:
        return set()
    since = now - max(active_window(r.payload) for r in fires)
    # Counted first: the runs themselves are read only for the jobs that could reach
    # their limit (runs pile up when workers lag, or for a high max_concurrent_runs; read
    # run by run, they were most of the recorder's time).
    counts = ledger.count_active_runs(connection, {r.job for r in fires}, since=since, now=now)
    crowded = crowded_jobs(fires, counts)
    if not crowded:
        return set()
    active = ledger.find_active_runs(connection, crowded, since=since, now=now)
    return decide_overlaps([r for r in fires if r.job in crowded], active, now=now)


def _row_for(
    request: FireRequest, *, skipped: bool, now: datetime, retry_at: datetime
) -> dict[str, object]:
    if request.kind == "missed":
        return ledger_row(request, status=RunStatus.MISSED, now=now, next_attempt_at=None)
    if skipped:
        return ledger_row(
            request,
            status=RunStatus.SKIPPED,
            reason=RunReason.OVERLAP,
            now=now,
            next_attempt_at=None,
        )
    return ledger_row(request, status=RunStatus.SCHEDULED, now=now, next_attempt_at=retry_at)


def _classify(
    requests: Sequence[FireRequest], inserted: set[str], skipped: set[str]
) -> BatchOutcome:
    outcome = BatchOutcome()
    for request in requests:
        if request.id not in inserted:
            if request.kind == "fire":
                outcome.duplicates.append(request)
            # a missed slot already in the ledger was fired or recorded: nothing to add
            continue
        inserted.discard(request.id)  # a second request for the id is a duplicate
        if request.kind == "missed":
            outcome.missed.append(request)
        elif request.id in skipped:
            outcome.overlaps.append(request)
        else:
            outcome.to_publish.append(request)
    return outcome
