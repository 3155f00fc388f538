"""A worker frozen (SIGSTOP) inside its claim's transaction, after the UPDATE and before
the COMMIT, holds its run's row lock. Every transaction of a worker's ledger engine is
bounded (store.sessions.idle_bounded_sessions): the server ends the session after
IDLE_SECONDS of silence, so the leader's expiry of that run (or a redelivery's claim)
waits that long, not as long as the freeze. The woken worker's claim is UNKNOWN (its
commit refused): it does not run the fire. PostgreSQL only; no shared service stopped."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from reconciler.store.db import create_sync_engine
from reconciler.store.sessions import IDLE_SECONDS
from reconciler.store.tables import job_runs
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.services

RUN_ID = "frozen-claim-run"
# Far longer than the bound: without it, the expiry waits until this statement timeout.
STATEMENT_TIMEOUT_MS = 20_000


def test_a_worker_frozen_in_its_claim_holds_the_run_no_longer_than_the_bound(
    pg_migrated: str,
) -> None:
    engine = create_sync_engine(pg_migrated)
    now = datetime.now(UTC)
    with engine.begin() as connection:
        connection.execute(
            job_runs.insert().values(
                id=RUN_ID, job_name="frozen", scheduled_time=now, status="published",
                task="reconciler.tasks.noop", queue="default", idempotency_key=RUN_ID,
                fired_at=now, published_at=now, updated_at=now,
            )
        )  # fmt: skip
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.worker.frozen_claimer", pg_migrated, RUN_ID],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "FROZEN"
        started = time.monotonic()
        with engine.begin() as connection:  # the leader's expiry of the run, as the retrier
            connection.execute(sa.text(f"SET LOCAL statement_timeout = {STATEMENT_TIMEOUT_MS}"))
            expired = connection.execute(
                job_runs.update()
                .where(job_runs.c.id == RUN_ID, job_runs.c.status == "published")
                .values(status="expired", updated_at=datetime.now(UTC))
            ).rowcount
        waited = time.monotonic() - started
    finally:
        os.kill(child.pid, signal.SIGCONT)
        output, _ = child.communicate(timeout=60)
        engine.dispose()
    assert waited < IDLE_SECONDS + 3, f"the expiry waited {waited:.1f} s for the frozen claim"
    assert expired == 1  # the frozen claim was rolled back: the row was still 'published'
    assert "CLAIM unknown" in output, output  # refused commit: the fire is not run
    assert child.returncode == 0, output
