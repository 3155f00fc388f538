"""apply_plan: write a plan's changes, inside the caller's transaction.

Ordering does not matter for safety (everything commits together), only for the rules:
- a schedule change never causes an immediate extra run: an unchanged trigger keeps its
  row's next_run_time, a changed one gets the first slot strictly after now;
- pausing writes next_run_time NULL (the row stays: APScheduler's own pause semantics);
- resuming computes the next fire from now;
- a completed job (no future fire) gets no row; an existing one is left to APScheduler,
  which removes it after its last fire.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy.engine import Connection

from reconciler.core.plan import Plan, Target
from reconciler.core.triggers import first_fire_after
from reconciler.store.inventory import (
    delete_inventory,
    upsert_inventory,
)
from reconciler.store.scheduler_rows import (
    WrittenRow,
    delete_scheduler_rows,
    read_next_run_times,
    upsert_scheduler_rows,
)


def apply_plan(connection: Connection, plan: Plan, *, now: datetime) -> list[WrittenRow]:
    """Write the plan. Returns the scheduler rows written."""
    removed = [change.job for change in plan.changes if change.action == "remove"]
    delete_scheduler_rows(connection, removed)
    delete_inventory(connection, removed)

    targets = [change.target for change in plan.changes if change.target is not None]
    upsert_inventory(
        connection,
        [c.target for c in plan.changes if c.target is not None and c.action != "repair"],
        now=now,
    )
    kept = read_next_run_times(connection, [t.spec.name for t in targets if t.keep_next_run_time])
    return upsert_scheduler_rows(
        connection,
        [
            (target.scheduler, _next_run_time(target, kept.get(target.spec.name), now))
            for target in targets
            if target.status != "completed"
        ],
    )


def _next_run_time(target: Target, kept: float | None, now: datetime) -> datetime | None:
    if target.status == "paused":
        return None
    if target.keep_next_run_time and kept is not None:
        return datetime.fromtimestamp(kept, ZoneInfo(target.spec.timezone))
    return first_fire_after(target.spec, now=now)
