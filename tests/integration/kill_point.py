"""Run one real apply and stop dead at a named point, for kill -9 tests.

Usage: python kill_point.py POINT   (env: RECONCILER_DATABASE_URL, RECONCILER_JOBS_DIR)
POINT is one of: after_inventory (inventory rows written, scheduler rows not yet),
after_apply (everything written, not committed). At the point it prints "AT <POINT>"
and waits to be killed.
"""

from __future__ import annotations

import sys
import threading

import reconciler.engine.apply as apply_module
from reconciler.engine.reconcile import reconcile_once
from reconciler.settings import load_settings
from reconciler.store.db import create_sync_engine
from reconciler.store.migrate import upgrade_database


def stop_here(point: str) -> None:
    print(f"AT {point}", flush=True)
    threading.Event().wait()  # until SIGKILL


def main(point: str) -> None:
    settings = load_settings()
    upgrade_database(settings.database_url)
    if point == "after_inventory":
        original = apply_module.upsert_scheduler_rows

        def write_rows_then_stop(connection, rows, **options):
            stop_here(point)
            original(connection, rows, **options)

        # The kill point: apply writes the inventory, then this process dies.
        apply_module.upsert_scheduler_rows = write_rows_then_stop  # type: ignore[assignment]
    engine = create_sync_engine(settings.database_url)
    reconcile_once(
        engine,
        settings,
        trigger="cli",
        before_commit=(lambda _c, _p: stop_here(point)) if point == "after_apply" else None,
    )


if __name__ == "__main__":
    main(sys.argv[1])
