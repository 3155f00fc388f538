"""apply_plan: write a plan's changes, inside the caller's transaction.

Ordering does not matter for safety (everything commits together), only for the rules:
- a schedule change never causes an immediate extra run: an unchanged trigger keeps its
  row's next_run_time, a changed one gets the first slot strictly after now;
- pausing writes next_run_time NULL (the row stays: APScheduler's own pause semantics);
- resuming computes the next fire from now;
- a completed job (no future fire) gets no row; an existing one is left to APScheduler,
  which removes it after its last fire;
- a rename moves the inventory row, the next fire and the run history to the new name.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from typing import NamedTuple
from zoneinfo import ZoneInfo

from sqlalchemy.engine import Connection

from reconciler.core.plan import Plan, Target
from reconciler.core.state import SchedulerJob
from reconciler.core.triggers import TriggerMemory, first_fire_after
from reconciler.core.vocabulary import Action, JobStatus
from reconciler.engine.beside import run_beside
from reconciler.spec.parallel import ChildFailed, Stream
from reconciler.store.db import BULK_ROWS
from reconciler.store.inventory import (
    copy_new_inventory,
    delete_inventory,
    encode_new_inventory,
    rename_inventory,
    rename_ledger,
    upsert_inventory,
)
from reconciler.store.scheduler_rows import (
    WrittenRow,
    copy_new_rows,
    delete_scheduler_rows,
    read_next_run_times,
    stream_new_rows,
    upsert_scheduler_rows,
)


def apply_plan(
    connection: Connection,
    plan: Plan,
    *,
    now: datetime,
    triggers: TriggerMemory | None = None,
    rows_wanted: bool = True,
    meanwhile: Callable[[], object] = lambda: None,
    beside: Callable[[], object] = lambda: None,
) -> list[WrittenRow]:
    """Write the plan. Returns the scheduler rows written. `triggers`: the memory the
    plan was made with (its first fire times are then looked up, not computed again).

    `rows_wanted=False` (a one-shot pass, which remembers nothing): the rows of many
    added jobs are made by a forked child while this process makes their inventory
    rows (a cold apply: pickling 10,000 states and their digests is a third of what
    follows the plan), and they are not among the rows returned. `meanwhile`: the
    caller's own writes in this transaction, made before the added jobs' scheduler
    rows (while the child makes them) and, when a child makes those, before their
    inventory rows. `beside`: the caller's work that does not touch the database (the
    CLI renders the plan's text), done while a thread sends the added jobs' inventory
    rows (when a child makes their scheduler rows), then the child's rows as they come
    (the server inserts the first ones while the child makes the others); done before
    the rows are made here when no child makes them. Called once each, `meanwhile`
    first."""
    removed = [change.job for change in plan.changes if change.action == Action.REMOVE]
    delete_scheduler_rows(connection, removed)
    delete_inventory(connection, removed)
    renames = {c.renamed_from: c.job for c in plan.changes if c.renamed_from is not None}
    # A renamed job keeps its next fire (read under its old name, written under its new
    # one) and its ledger: its slots so far are the new name's, so a slot fired under
    # the old name is never fired again (the ledger is unique on job and slot).
    carried = read_next_run_times(connection, list(renames))
    delete_scheduler_rows(connection, list(renames))
    rename_inventory(connection, renames)
    rename_ledger(connection, renames)

    # An add names a job without an inventory row: its rows are expected to be new (the
    # fast path of a cold apply; store.db.upsert falls back to upserting when a row
    # exists after all); every other change upserts.
    added: list[Target] = []
    others: list[Target] = []
    inventoried: list[Target] = []  # others whose inventory row changes
    for change in plan.changes:
        if change.target is None:
            continue
        (added if change.action == Action.ADD else others).append(change.target)
        # A repair rewrites the scheduler row only: the inventory row is what it repairs to.
        if change.action not in (Action.ADD, Action.REPAIR):
            inventoried.append(change.target)
    ahead = None if rows_wanted else _new_rows_ahead(connection, added, now, triggers)
    try:
        # With a child making the rows, the added jobs' inventory is sent by the thread
        # that sends them (while `beside` runs here), as COPY data made here.
        inventory = None if ahead is None else encode_new_inventory(added, now=now)
        if inventory is None:
            upsert_inventory(connection, added, now=now, expect_new=True)
        upsert_inventory(connection, inventoried, now=now)
        kept = read_next_run_times(
            connection, [t.spec.name for t in others if t.keep_next_run_time]
        )
        kept.update((renames[old], moment) for old, moment in carried.items())
        meanwhile()
        left = _Inventory(added, now, inventory)
        new_rows = _write_added(connection, added, now, triggers, ahead, beside, left)
    finally:
        if ahead is not None:
            ahead.cancel()  # read already, or this pass failed
    return new_rows + upsert_scheduler_rows(
        connection, _scheduled(others, kept, now, triggers), made_for=_made_for(others)
    )


def _new_rows_ahead(
    connection: Connection, added: list[Target], now: datetime, triggers: TriggerMemory | None
) -> Stream | None:
    """A child making the scheduler rows of `added` (store.scheduler_rows.stream_new_rows,
    sent as it makes them), if they are many and go to PostgreSQL; None: made here."""
    if len(added) < BULK_ROWS or connection.dialect.name != "postgresql":
        return None
    return Stream.start(lambda: _new_rows(added, now, triggers))


def _new_rows(
    targets: list[Target], now: datetime, triggers: TriggerMemory | None
) -> Iterator[tuple[int, bytes]]:
    return stream_new_rows(_scheduled(targets, {}, now, triggers), _made_for(targets))


class _Inventory(NamedTuple):
    """The inventory rows of the added jobs, left for `_write_added` to write: `data`,
    their COPY data (store.inventory.encode_new_inventory); None: written already."""

    targets: list[Target]
    now: datetime
    data: bytes | None

    def write(self, connection: Connection) -> None:
        if self.data is not None and not copy_new_inventory(connection, self.data):
            upsert_inventory(connection, self.targets, now=self.now)  # a name was taken


def _write_added(
    connection: Connection,
    added: list[Target],
    now: datetime,
    triggers: TriggerMemory | None,
    ahead: Stream | None,
    beside: Callable[[], object],
    inventory: _Inventory,
) -> list[WrittenRow]:
    """Write the inventory rows left in `inventory` and the scheduler rows of the added
    jobs: those the child made if it could (all sent by a thread while `beside` runs
    here), else made here. Only the rows made here are returned."""
    if ahead is None:
        beside()
    elif _copied_beside(connection, ahead, beside, inventory):
        return []
    new = _scheduled(added, {}, now, triggers)
    return upsert_scheduler_rows(connection, new, expect_new=True, made_for=_made_for(added))


def _copied_beside(
    connection: Connection, ahead: Stream, beside: Callable[[], object], inventory: _Inventory
) -> bool:
    """`beside()` here while a thread writes `inventory`, then COPYs the child's rows,
    each part as it comes (the connection is the thread's alone until it is joined,
    here, whatever happens): the server inserts while this thread and the child work.
    Whether the rows were written (False: none, upsert them; the child failed or died,
    or a row exists; the inventory is written either way, or an error raised)."""

    def copy() -> bool:
        inventory.write(connection)
        try:
            return copy_new_rows(connection, ahead.pieces())
        except ChildFailed:  # the COPY was aborted: nothing of it written
            return False
        finally:
            ahead.cancel()  # read whole, or not wanted any more (a row exists)

    copied, _ = run_beside(copy, beside, name="new-rows")
    return copied


def _made_for(targets: list[Target]) -> dict[str, tuple[str, str | None]]:
    """What each target's scheduler row is made for: it is `scheduler_job` of its spec
    hash and revision (core.plan builds every target so)."""
    return {target.spec.name: (target.spec_hash, target.revision) for target in targets}


def _scheduled(
    targets: list[Target], kept: dict[str, float], now: datetime, triggers: TriggerMemory | None
) -> list[tuple[SchedulerJob, datetime | None]]:
    """The scheduler rows of `targets` with their next run times (completed: none)."""
    firsts = _FirstFires(now, triggers)
    return [
        (target.scheduler, _next_run_time(target, kept.get(target.spec.name), firsts))
        for target in targets
        if target.status != JobStatus.COMPLETED
    ]


def _next_run_time(target: Target, kept: float | None, firsts: _FirstFires) -> datetime | None:
    if target.status == JobStatus.PAUSED:
        return None
    if target.keep_next_run_time and kept is not None:
        return datetime.fromtimestamp(kept, ZoneInfo(target.spec.timezone))
    return firsts.of(target)


class _FirstFires:
    """`first_fire_after(target.spec, now=now, memory=triggers)`, computed once per
    trigger object for the targets without jitter: their first fire is a function of
    the trigger (`target.scheduler.trigger`, built from the spec's timing) and `now`
    alone, and jobs on one schedule share the trigger (core.triggers.TriggerMemory).
    At 100,000 jobs on 890 schedules, looking each job's timing up in the memory took
    0.7 s of the cold apply's rows child (bench/RESULTS.md, helper `rowsfast`)."""

    def __init__(self, now: datetime, triggers: TriggerMemory | None) -> None:
        self._now = now
        self._triggers = triggers
        # id(trigger) -> (trigger, its first fire): the trigger held, its id its own.
        self._known: dict[int, tuple[object, datetime | None]] = {}

    def of(self, target: Target) -> datetime | None:
        spec, trigger = target.spec, target.scheduler.trigger
        known = self._known.get(id(trigger))
        if known is None or known[0] is not trigger:
            first = first_fire_after(spec, now=self._now, memory=self._triggers)
            if spec.jitter_seconds:
                return first  # random: a job's own
            known = self._known[id(trigger)] = (trigger, first)
        return known[1]
