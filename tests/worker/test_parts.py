"""The worker's parts without a worker: configuration, header parsing, the guard on a
real Redis, the ledger on a real PostgreSQL, the SQL and report tasks' own rules."""

from __future__ import annotations

import argparse
import csv
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis
import sqlalchemy as sa
from celery.app.task import Context

from reconciler.commands.worker import worker_argv
from reconciler.settings import Settings
from reconciler.store.db import create_sync_engine
from reconciler.store.tables import job_runs
from reconciler.worker.app import celery_config, filesystem_folder
from reconciler.worker.base import PermanentTaskError
from reconciler.worker.claims import (
    LEDGER_WRITE_FAILURES,
    Claim,
    Ledger,
    Start,
    describe,
    summarize,
)
from reconciler.worker.context import completed_value, fire_context, owner_value
from reconciler.worker.guard import RedisGuard, Verdict
from reconciler.worker.request import _normalize
from reconciler.worker.writer import LedgerWriter

REDIS_URL = "redis://127.0.0.1:6379/0"


# --- configuration -------------------------------------------------------------------
def test_the_celery_configuration_is_safe_by_default() -> None:
    config = celery_config(Settings(redis_prefix="p:", result_ttl_seconds=3600))
    assert config["accept_content"] == ["json"] and config["task_serializer"] == "json"
    assert config["task_acks_late"] and config["task_reject_on_worker_lost"]
    assert config["worker_prefetch_multiplier"] == 1
    assert config["task_soft_time_limit"] < config["task_time_limit"] < 30 * 60
    assert config["result_expires"] == 3600
    assert config["broker_transport_options"] == {"confirm_publish": True}
    assert config["result_backend_transport_options"]["global_keyprefix"] == "p:"
    assert config["result_backend"].endswith("+redis://127.0.0.1:6379/0")  # tolerant
    assert [queue.name for queue in config["task_queues"]] == [
        "default",
        "high_priority",
        "low_priority",
        "scheduled",
    ]
    assert config["task_default_queue"] == "default" and config["task_track_started"]


def test_a_filesystem_broker_gets_its_folders(tmp_path: Path) -> None:
    beside_db = Settings(broker_url="filesystem://", database_url=f"sqlite:///{tmp_path}/s.db")
    assert filesystem_folder(beside_db) == tmp_path / "broker"
    named = Settings(broker_url=f"filesystem://{tmp_path}/q", database_url="postgresql://x/y")
    config = celery_config(named)
    options = config["broker_transport_options"]
    assert config["broker_url"] == "filesystem://"
    assert options["data_folder_in"] == options["data_folder_out"] == f"{tmp_path}/q/queue"
    assert Path(options["data_folder_in"]).is_dir()


@pytest.mark.parametrize(
    ("hard", "soft", "expected"),
    [
        (None, None, (None, None)),
        (2, None, (2, 1.9)),
        (1500, None, (1500, 1440)),
        (10, 20, (10, 9.5)),
        (10, 5, (10, 5)),
    ],
)
def test_a_hard_time_limit_always_gets_a_soft_one_below_it(
    hard: float | None, soft: float | None, expected: tuple[float | None, float | None]
) -> None:
    assert _normalize(hard, soft) == expected


def test_reconcile_worker_builds_the_celery_command_line() -> None:
    args = argparse.Namespace(
        queues=None, pool="solo", loglevel="INFO", concurrency=3, hostname="w1@%h"
    )
    assert worker_argv(args, default_queues=("default", "scheduled")) == [
        "worker",
        "--queues=default,scheduled",
        "--pool=solo",
        "--loglevel=INFO",
        "--concurrency=3",
        "--hostname=w1@%h",
    ]


# --- headers -------------------------------------------------------------------------
def test_the_fire_is_read_from_the_headers() -> None:
    request = Context(
        {
            "id": "fire-1",
            "idempotency_key": "key-1",
            "job": "billing",
            "max_retries": "2",  # strings are tolerated
            "retry_delay_seconds": None,
            "retries": 1,
            "hostname": "w@h",
            "delivery_info": {"redelivered": True},
        }
    )
    fire = fire_context(request, task="t")
    assert fire is not None
    assert (fire.run_id, fire.idempotency_key, fire.job) == ("fire-1", "key-1", "billing")
    assert (fire.max_retries, fire.retry_delay_seconds, fire.retries) == (2, 10, 1)
    assert fire.redelivered and fire.hostname == "w@h"
    assert fire_context(Context({"id": "by-hand"}), task="t") is None


# --- the guard on a real Redis ---------------------------------------------------------
@pytest.fixture
def guard(redis_prefix: str) -> RedisGuard:
    return RedisGuard(
        redis.Redis.from_url(REDIS_URL),
        prefix=redis_prefix,
        lease_seconds=30,
        completed_ttl_seconds=120,
    )


@pytest.mark.services
def test_a_key_is_claimed_once_then_completed(guard: RedisGuard) -> None:
    mine = owner_value(task_id="f", hostname="a", pid=1)
    other = owner_value(task_id="f", hostname="b", pid=2)
    assert guard.claim("k", mine, redelivered=False).claimed
    duplicate = guard.claim("k", other, redelivered=False)
    assert duplicate.verdict is Verdict.DUPLICATE and duplicate.holder["worker"] == "a"
    assert not guard.release("k", other)  # only the holder releases
    assert guard.mark_completed("k", mine, completed_value(task_id="f", hostname="a"))
    assert guard.lookup("k") == {"task_id": "f", "status": "completed", "worker": "a"}
    assert not guard.claim("k", other, redelivered=True).claimed  # completed is final
    ttl = guard._client.ttl(guard.redis_key("k"))
    assert 60 < ttl <= 120


@pytest.mark.services
def test_a_redelivery_takes_over_a_lapsed_lease(guard: RedisGuard) -> None:
    # The crashed first attempt's key: nobody renews it, it lapses shortly.
    guard._client.set(guard.redis_key("k"), owner_value(task_id="f", hostname="a", pid=1), px=300)
    mine = owner_value(task_id="f", hostname="b", pid=2)
    assert not guard.claim("k", mine, redelivered=False).claimed  # not redelivered: a duplicate
    assert guard.claim("k", mine, redelivered=True).claimed  # waited ~0.3 s, then claimed
    assert guard.lookup("k") == json.loads(mine)


@pytest.mark.services
def test_a_redelivery_leaves_a_live_holder_alone(redis_prefix: str) -> None:
    now = [0.0]
    guard = RedisGuard(
        redis.Redis.from_url(REDIS_URL),
        prefix=redis_prefix,
        lease_seconds=30,
        completed_ttl_seconds=60,
        sleep=lambda seconds: now.__setitem__(0, now[0] + seconds + 5),  # a fast clock
        clock=lambda: now[0],
    )
    holder = owner_value(task_id="f", hostname="a", pid=1)
    assert guard.claim("k", holder, redelivered=False).claimed
    claim = guard.claim("k", owner_value(task_id="f", hostname="b", pid=2), redelivered=True)
    assert claim.verdict is Verdict.DUPLICATE and now[0] > 30  # waited a whole lease
    guard.renew({"k": holder})
    assert guard._client.pttl(guard.redis_key("k")) > 29_000


# --- the ledger on a real PostgreSQL ---------------------------------------------------
def _insert(engine: sa.Engine, run_id: str, status: str) -> None:
    now = datetime.now(UTC)
    with engine.begin() as connection:
        connection.execute(
            job_runs.insert().values(
                id=run_id,
                job_name=f"j-{run_id}",
                scheduled_time=now,
                status=status,
                task="t",
                queue="default",
                idempotency_key=run_id,
                updated_at=now,
            )
        )


@pytest.mark.services
def test_the_ledger_claim_refuses_final_and_live_runs_and_takes_over_expired_ones(
    pg_migrated: str,
) -> None:
    engine = create_sync_engine(pg_migrated)
    ledger = Ledger(engine)
    for run_id, status in [("a", "published"), ("b", "succeeded"), ("c", "retried")]:
        _insert(engine, run_id, status)

    def claim(run_id: str, attempt: str, lease: float = 30) -> Claim:
        return ledger.claim(run_id, attempt=attempt, worker="w", retries=0, lease_seconds=lease)

    assert claim("a", "w/1/x").outcome is Start.STARTED
    busy = claim("a", "w/2/y")  # a second delivery while the first holds a live lease
    assert (busy.outcome, busy.holder) == (Start.BUSY, "w/1/x") and busy.lease_left > 25
    assert claim("b", "w/1/z") == Claim(Start.REFUSED, "succeeded", None, 0, 0.0)
    assert claim("zz", "w/1/q").outcome is Start.NO_ROW
    assert claim("c", "w/1/old", lease=-1).outcome is Start.STARTED  # its lease lapsed at once
    taken = claim("c", "w/2/new")
    assert (taken.outcome, taken.holder) == (Start.TAKEN_OVER, "w/1/old")
    writer = LedgerWriter(ledger, max_delay=0.01)
    # The dead attempt's late report is refused (it no longer holds the run); ours lands.
    writer.write("succeeded", ledger.succeeded_values("c", attempt="w/1/old", result=1))
    writer.write(
        "failed", ledger.failed_values("c", attempt="w/2/new", error=ValueError("x"), worker="w")
    )
    for _ in range(2):  # one batch, one executemany
        writer.write("duplicate", ledger.duplicate_values("a", reason="dup", own_fire=True))
    assert writer.flush(timeout=10)
    with engine.connect() as connection:
        rows = {row.id: row for row in connection.execute(job_runs.select())}
    assert (rows["c"].status, rows["c"].takeovers, rows["c"].attempt) == ("failed", 1, "w/2/new")
    assert (rows["a"].status, rows["a"].duplicates) == ("started", 2)
    engine.dispose()


def test_a_ledger_that_cannot_be_reached_answers_unknown(tmp_path: Path) -> None:
    engine = create_sync_engine(f"sqlite:///{tmp_path}/missing/dir/state.db")
    before = LEDGER_WRITE_FAILURES.labels("claim")._value.get()
    ledger = Ledger(engine)
    claim = ledger.claim("x", attempt="w/1/a", worker="w", retries=0, lease_seconds=30)
    assert claim.outcome is Start.UNKNOWN
    assert LEDGER_WRITE_FAILURES.labels("claim")._value.get() == before + 1
    engine.dispose()


def test_summaries_are_redacted_and_short() -> None:
    assert json.loads(summarize({"password": "p", "n": 1})) == {"n": 1, "password": "***"}
    long = summarize({"x": "y" * 2000})
    assert len(long) == 500 and long.endswith("…")
    assert describe(RuntimeError("a\n  b")) == "RuntimeError: a b"
    assert describe(KeyError()) == "KeyError"


# --- the tasks' own rules ----------------------------------------------------------------
@pytest.mark.parametrize(
    ("statement", "expected"),
    [
        ("VACUUM ANALYZE job_runs;", "VACUUM ANALYZE job_runs"),
        ("SELECT ';' -- trailing; comment", "SELECT ';'"),
        ("SELECT $$a;b$$;;", "SELECT $$a;b$$"),
        ("SELECT 'it''s; fine' /* ; */", "SELECT 'it''s; fine'"),
    ],
)
def test_one_statement_is_accepted(statement: str, expected: str) -> None:
    from reconciler.tasks.sql import single_statement

    assert single_statement(statement) == expected


@pytest.mark.parametrize(
    "statement",
    ["SELECT 1; DROP TABLE job_runs", " ; ", "-- only a comment", "SELECT 1;\nSELECT 2;"],
)
def test_several_or_no_statements_are_refused(statement: str) -> None:
    from reconciler.tasks.sql import single_statement

    with pytest.raises(PermanentTaskError):
        single_statement(statement)


def test_reports_are_appended_and_paths_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from reconciler.tasks.report import write_report

    # The task reads its folder from its app's settings (the worker's, in production).
    settings = Settings(report_dir=tmp_path)
    monkeypatch.setattr(write_report.app, "reconciler_settings", settings, raising=False)
    target = tmp_path / "r" / "out.csv"
    write_report.run(str(target), rows=[{"a": 1, "b": "x"}])
    write_report.run(str(target), rows=[{"a": 2, "b": "y"}], append=True)
    with target.open() as stream:
        assert [row["a"] for row in csv.DictReader(stream)] == ["1", "2"]
    assert [p.name for p in target.parent.iterdir()] == ["out.csv"]  # no temporary left
    write_report.run("relative/in.json", rows=[])
    assert (tmp_path / "relative" / "in.json").is_file()
    for bad in (f"{tmp_path}/../x.json", f"{tmp_path}/x.txt", "/tmp/elsewhere.json"):
        with pytest.raises(PermanentTaskError):
            write_report.run(bad, rows=[])
    with pytest.raises(PermanentTaskError):
        write_report.run(str(tmp_path / "y.json"), rows="not a list")


@pytest.mark.services
def test_spooled_writes_wait_for_the_database_and_land_when_it_answers(pg_migrated: str) -> None:
    """The writer retries a batch while the database does not answer (here: a lock the
    test holds makes every attempt time out) and applies it once it answers."""
    engine = create_sync_engine(pg_migrated, connect_args={"options": "-c lock_timeout=200"})
    ledger = Ledger(engine)
    _insert(engine, "a", "published")
    assert ledger.claim("a", attempt="w/1/a", worker="w", retries=0, lease_seconds=30).outcome is (
        Start.STARTED
    )
    applied: list[list[str]] = []
    writer = LedgerWriter(ledger, max_delay=0.01, on_applied=applied.append)
    blocker = create_sync_engine(pg_migrated)
    with blocker.begin() as connection:
        connection.execute(sa.text("SELECT 1 FROM job_runs WHERE id = 'a' FOR UPDATE"))
        writer.write("succeeded", ledger.succeeded_values("a", attempt="w/1/a", result={"n": 1}))
        assert not writer.flush(timeout=1.5)  # still waiting: the row is locked
        assert writer.pending == 1
    assert writer.flush(timeout=10)
    assert applied == [["a"]] and writer.pending == 0
    with engine.connect() as connection:
        row = connection.execute(job_runs.select().where(job_runs.c.id == "a")).one()
    assert (row.status, row.lease_until) == ("succeeded", None)
    blocker.dispose()
    engine.dispose()


def test_task_logs_redact_secrets_and_url_passwords(caplog: pytest.LogCaptureFixture) -> None:
    import logging

    from reconciler.worker.base import log_event

    with caplog.at_level(logging.INFO, logger="reconciler.worker.task"):
        log_event(
            logging.INFO,
            "task.started",
            kwargs={"database_url": "postgresql://u:pw@db/x", "api_key": "k1", "n": 2},
        )
    assert caplog.messages == [
        'task.started kwargs={"database_url": "postgresql://u:***@db/x", "api_key": "***", "n": 2}'
    ]
