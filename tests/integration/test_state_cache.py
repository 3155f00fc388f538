"""A long-running process plans against the state its last pass left, when the tables'
fingerprint says nobody else wrote since (PostgreSQL). These tests hold that cache to
the truth: after every pass it equals a fresh read of both tables, a write by anyone
else is seen by the next pass, and a resync always reads everything."""

from __future__ import annotations

import os
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from reconciler.core.plan import Plan
from reconciler.engine import reconcile as reconcile_module
from reconciler.engine.reconcile import (
    ReconcileCaches,
    ReconcileResult,
    Unsettled,
    reconcile_once,
    warm_caches,
)
from reconciler.settings import Settings
from reconciler.store.apply_lock import APPLY_LOCK_KEY
from reconciler.store.db import create_sync_engine
from reconciler.store.fingerprint import read_fingerprint
from reconciler.store.inventory import read_inventory
from reconciler.store.migrate import upgrade_database
from reconciler.store.scheduler_rows import read_scheduler_rows
from tests.integration.workspace import job_yaml


class Daemonish:
    """What the daemon does: one engine, one set of caches, pass after pass."""

    def __init__(self, jobs_dir: Path, url: str) -> None:
        self.jobs_dir = jobs_dir
        self.settings = Settings(database_url=url, jobs_dir=jobs_dir, max_delete_fraction=1.0)
        self.engine = create_sync_engine(url)
        self.caches = ReconcileCaches(compact=True)  # as the daemon keeps them
        self.reads: Counter[str] = Counter()

    @classmethod
    def at(cls, folder: Path, url: str) -> Daemonish:
        """One on a migrated database, its jobs folder made in `folder`."""
        upgrade_database(url)
        jobs = folder / "jobs.d"
        jobs.mkdir()
        return cls(jobs, url)

    def write(self, name: str, text: str) -> None:
        (self.jobs_dir / name).write_text(text)

    def reconcile(self, trigger: reconcile_module.Trigger = "watch") -> ReconcileResult:
        result = reconcile_once(self.engine, self.settings, trigger=trigger, caches=self.caches)
        self.assert_cache_is_the_truth()
        return result

    def assert_cache_is_the_truth(self) -> None:
        assert self.caches.actual is not None
        fingerprint, cached = self.caches.actual
        with self.engine.connect() as connection:
            assert read_fingerprint(connection) == fingerprint
            assert dict(cached.inventory) == read_inventory(connection)
            assert dict(cached.scheduler) == read_scheduler_rows(connection)

    def execute(self, sql: str, **params: object) -> None:
        with self.engine.begin() as connection:
            connection.execute(sa.text(sql), params)


@pytest.fixture
def daemon(tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Daemonish]:
    space = Daemonish.at(tmp_path, pg_url)
    for reader in ("read_inventory", "read_scheduler_rows"):
        monkeypatch.setattr(reconcile_module, reader, _counted(space, reader))
    monkeypatch.setattr(reconcile_module, "patch_scheduler_rows", _counted_patch(space))
    yield space
    space.engine.dispose()


@pytest.fixture
def sqlite_daemon(
    tmp_path: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Daemonish]:
    """The same on SQLite: no fingerprint, the change counts only."""
    space = Daemonish.at(tmp_path, sqlite_url)
    for reader in ("read_inventory", "read_scheduler_rows", "read_actual"):
        monkeypatch.setattr(reconcile_module, reader, _counted(space, reader))
    yield space
    space.engine.dispose()


def _counted(space: Daemonish, reader: str) -> Callable[..., object]:
    real = getattr(reconcile_module, reader)

    def counting(*args: object, **kwargs: object) -> object:
        space.reads[reader] += 1
        return real(*args, **kwargs)

    return counting


def _counted_patch(space: Daemonish) -> Callable[..., object]:
    """Counts the scheduler rows patched by the rows that moved ("patched"), and the
    patches declined ("not patched": every version is then read)."""
    real = reconcile_module.patch_scheduler_rows

    def counting(*args: object, **kwargs: object) -> object:
        rows = real(*args, **kwargs)  # type: ignore[arg-type]
        space.reads["patched" if rows is not None else "not patched"] += 1
        return rows

    return counting


def actions(result: ReconcileResult) -> list[tuple[str, str]]:
    return [(change.action, change.job) for change in result.plan.changes]


def test_the_cache_follows_every_kind_of_change(daemon: Daemonish) -> None:
    daemon.write("a.yaml", job_yaml("a") + "---\n" + job_yaml("b", paused="true"))
    daemon.write(
        "c.yaml", "name: c\ntask: reconciler.tasks.noop\nschedule: {interval: {minutes: 7}}\n"
    )
    daemon.write("d.yaml", job_yaml("d", cron="0 3 * * *"))
    assert sorted(actions(daemon.reconcile("startup"))) == [
        ("add", "a"),
        ("add", "b"),
        ("add", "c"),
        ("add", "d"),
    ]
    reads = daemon.reads.copy()
    assert daemon.reconcile().outcome == "no_changes"
    assert daemon.reads == reads, "nothing changed: the rows must not be read again"

    daemon.write("d.yaml", job_yaml("d", cron="0 4 * * *"))  # update
    daemon.write("a.yaml", job_yaml("a", paused="true") + "---\n" + job_yaml("b"))  # pause, resume
    assert sorted(actions(daemon.reconcile())) == [("pause", "a"), ("resume", "b"), ("update", "d")]
    daemon.write("c.yaml", "name: c\ntask: [broken\n")  # quarantined: c is left alone
    (daemon.jobs_dir / "d.yaml").unlink()  # remove
    daemon.write("e.yaml", job_yaml("e"))  # add
    result = daemon.reconcile()
    assert sorted(actions(result)) == [("add", "e"), ("remove", "d")]
    assert list(result.plan.quarantined) == ["c.yaml"]
    assert daemon.reads == reads, "our own writes must not force a read"
    assert daemon.reconcile().outcome == "no_changes"

    # A job that completes: its inventory row says so and no scheduler row is written;
    # one whose end has passed keeps the row it had (APScheduler removes it itself).
    past = "2001-01-01T00:00:00Z"
    daemon.write("f.yaml", f"name: f\ntask: reconciler.tasks.noop\nschedule: {{at: '{past}'}}\n")
    assert actions(daemon.reconcile()) == [("add", "f")]
    daemon.write("e.yaml", job_yaml("e", end=f"'{past}'", start="'2000-01-01T00:00:00Z'"))
    assert actions(daemon.reconcile()) == [("update", "e")]
    assert daemon.reads == reads, "our own writes must not force a read"
    assert daemon.reconcile().outcome == "no_changes"


def test_writes_by_anyone_else_are_seen_by_the_next_pass(daemon: Daemonish) -> None:
    daemon.write("jobs.yaml", "---\n".join(job_yaml(name) for name in "abcde"))
    daemon.reconcile("startup")
    reads = daemon.reads.copy()
    daemon.execute("UPDATE apscheduler_jobs SET next_run_time = NULL WHERE id = 'b'")
    assert actions(daemon.reconcile()) == [("repair", "b")]
    # Rows written since the last read (here, and the startup pass's own): only they
    # are fetched.
    assert daemon.reads - reads == Counter({"patched": 1})
    reads = daemon.reads.copy()
    daemon.execute("DELETE FROM apscheduler_jobs WHERE id = 'a'")
    assert actions(daemon.reconcile()) == [("repair", "a")]
    # A row deleted is not among the rows written since: the sums differ, all is read.
    assert daemon.reads - reads == Counter({"not patched": 1, "read_scheduler_rows": 1})
    daemon.execute("UPDATE apscheduler_jobs SET job_state = 'garbage' WHERE id = 'c'")
    assert actions(daemon.reconcile()) == [("repair", "c")]
    daemon.execute("UPDATE scheduled_jobs SET status = 'paused' WHERE name = 'd'")
    assert actions(daemon.reconcile()) == [("update", "d")]
    daemon.execute(
        "INSERT INTO apscheduler_jobs (id, next_run_time, job_state) VALUES ('x', 1, 'x')"
    )
    result = daemon.reconcile()
    assert result.outcome == "no_changes" and result.plan.foreign == ("x",)
    # A write that leaves every value as it was is still a new row version: read again,
    # only the table that was written to (of the scheduler's, only the row written).
    reads = daemon.reads.copy()
    daemon.execute("UPDATE apscheduler_jobs SET next_run_time = next_run_time WHERE id = 'e'")
    assert daemon.reconcile().outcome == "no_changes"
    assert daemon.reads - reads == Counter({"patched": 1})
    reads = daemon.reads.copy()
    daemon.execute("UPDATE scheduled_jobs SET status = status WHERE name = 'e'")
    assert daemon.reconcile().outcome == "no_changes"
    assert daemon.reads - reads == Counter({"read_inventory": 1})


def test_rows_patched_by_what_moved_are_the_table_whatever_is_written_or_the_horizon(
    daemon: Daemonish,
) -> None:
    """Random writes beside the passes (fires moving rows on, rows deleted, broken,
    paused, foreign rows), random file edits (our own writes), and now and then a wrong
    horizon (one that misses rows written since, or that takes them all): after every
    pass the cached state equals a fresh read of both tables (Daemonish.reconcile), its
    plan is the plan of a process with no caches, and most passes patched the rows."""
    rng = random.Random(23)
    names = [f"job-{n}" for n in range(8)]

    def jobs_file(minutes: dict[str, int]) -> str:
        return "---\n".join(job_yaml(name, cron=f"{minutes[name]} * * * *") for name in names)

    minutes = dict.fromkeys(names, 0)
    daemon.write("jobs.yaml", jobs_file(minutes))
    daemon.reconcile("startup")
    writes = {
        "fire": "UPDATE apscheduler_jobs SET next_run_time = next_run_time + 60 WHERE id = :n",
        "delete": "DELETE FROM apscheduler_jobs WHERE id = :n",
        "break": "UPDATE apscheduler_jobs SET job_state = 'garbage' WHERE id = :n",
        "pause": "UPDATE apscheduler_jobs SET next_run_time = NULL WHERE id = :n",
        "foreign": "INSERT INTO apscheduler_jobs (id, next_run_time, job_state)"
        " VALUES ('foreign-' || :n, 1, 'x') ON CONFLICT (id) DO NOTHING",
        "unforeign": "DELETE FROM apscheduler_jobs WHERE id = 'foreign-' || :n",
    }
    weights = [8, 1, 1, 1, 1, 1]
    for step in range(80):
        for _ in range(rng.randint(0, 4)):
            write = rng.choices(list(writes), weights)[0]
            daemon.execute(writes[write], n=rng.choice(names))
        if rng.random() < 0.2:
            minutes[rng.choice(names)] = rng.randint(0, 59)
            daemon.write("jobs.yaml", jobs_file(minutes))
        horizon = daemon.caches.rows.horizon
        if horizon is not None and rng.random() < 0.15:
            wrong = [horizon + 1000, horizon + 2**31, 0, (horizon - 2**31) % 2**32, None]
            daemon.caches.rows.horizon = rng.choice(wrong)
        fresh = reconcile_once(
            daemon.engine,
            daemon.settings,
            trigger="watch",
            apply=False,
            caches=ReconcileCaches(),
        )
        assert sorted(actions(daemon.reconcile())) == sorted(actions(fresh)), step
    assert daemon.reads["patched"] > 30
    assert daemon.reads["not patched"] > 5


def test_a_fingerprint_read_beside_the_files_fails_the_pass_as_it_would_alone(
    daemon: Daemonish, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A watch pass loads the changed files while another thread reads the fingerprint:
    that read's error is the pass's error, and the next pass plans what the failed one
    would have."""
    daemon.write("a.yaml", job_yaml("a"))
    daemon.reconcile("startup")
    daemon.write("a.yaml", job_yaml("a", cron="1 * * * *"))
    # Written by someone else (a fire's write-back): the pass needs the fingerprint.
    daemon.execute("UPDATE apscheduler_jobs SET next_run_time = next_run_time WHERE id = 'a'")
    real = reconcile_module.read_fingerprint_since
    threads: list[str] = []

    def broken(*args: object, **kwargs: object) -> object:
        threads.append(threading.current_thread().name)
        raise sa.exc.OperationalError("SELECT", {}, RuntimeError("server gone"))

    monkeypatch.setattr(reconcile_module, "read_fingerprint_since", broken)
    with pytest.raises(sa.exc.OperationalError):
        reconcile_once(daemon.engine, daemon.settings, trigger="watch", caches=daemon.caches)
    assert threads == ["pass-fingerprint"]
    monkeypatch.setattr(reconcile_module, "read_fingerprint_since", real)
    assert actions(daemon.reconcile()) == [("update", "a")]


def test_resync_reads_everything(daemon: Daemonish) -> None:
    daemon.write("a.yaml", job_yaml("a"))
    daemon.reconcile("startup")
    reads = daemon.reads.copy()
    daemon.reconcile("watch")
    assert daemon.reads == reads
    daemon.reconcile("resync")
    assert daemon.reads - reads == Counter({"read_inventory": 1, "read_scheduler_rows": 1})


def test_a_failed_pass_leaves_no_cache_behind(daemon: Daemonish) -> None:
    daemon.write("a.yaml", job_yaml("a"))
    daemon.reconcile("startup")
    daemon.write("a.yaml", job_yaml("a", cron="1 * * * *"))

    def crash(*_: object) -> None:
        raise RuntimeError("killed before commit")

    with pytest.raises(RuntimeError):
        reconcile_once(
            daemon.engine,
            daemon.settings,
            trigger="watch",
            caches=daemon.caches,
            before_commit=crash,
        )
    assert daemon.caches.actual is None
    assert actions(daemon.reconcile()) == [("update", "a")]


def test_a_large_apply_goes_through_copy_and_reads_back_identically(daemon: Daemonish) -> None:
    """600 jobs: both tables are written by COPY (store.db.BULK_ROWS); what was cached
    equals what is read back, and a second write of the same keys updates them."""
    # A task without declared parameters (allowed by the suite's prefix): any kwargs.
    free = "reconciler.tasks.free_form"
    for index in range(60):
        jobs = [
            job_yaml(f"bulk-{index}-{slot}", task=free, kwargs=f"{{n: {slot}}}")
            for slot in range(10)
        ]
        daemon.write(f"bulk-{index}.yaml", "---\n".join(jobs))
    big = job_yaml("big-int", task=free, kwargs="{n: 123456789012345678901234567890}")
    daemon.write("big.yaml", big)
    assert daemon.reconcile("startup").plan.summary["add"] == 601
    for index in range(60):
        jobs = [job_yaml(f"bulk-{index}-{slot}", cron="7 * * * *") for slot in range(10)]
        daemon.write(f"bulk-{index}.yaml", "---\n".join(jobs))
    assert daemon.reconcile().plan.summary["update"] == 600
    with daemon.engine.connect() as connection:
        generations = connection.execute(
            sa.text("SELECT generation, count(*) FROM scheduled_jobs GROUP BY generation")
        ).all()
        created = connection.execute(
            sa.text("SELECT count(*) FROM scheduled_jobs WHERE created_at = updated_at")
        ).scalar()
        big = connection.execute(
            sa.text("SELECT spec #>> '{kwargs,n}' FROM scheduled_jobs WHERE name = 'big-int'")
        ).scalar()
    assert sorted(generations) == [(1, 1), (2, 600)]
    assert created == 1  # created_at survived the update of the 600
    assert big == "123456789012345678901234567890"
    daemon.reconcile("resync")
    assert daemon.reconcile().outcome == "no_changes"


def test_a_write_by_someone_else_during_a_pass_is_seen_by_the_next_one(
    daemon: Daemonish, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process commits between this pass's read and its write (the leader's
    scheduler moving fired rows on does): to a row the pass then writes, and to one it
    leaves alone. The fingerprint the pass leaves must not match the table's, so the
    next pass reads the table again and finds it as it is."""
    daemon.write("jobs.yaml", "---\n".join(job_yaml(name) for name in "abc"))
    daemon.reconcile("startup")
    daemon.write("jobs.yaml", "---\n".join([job_yaml("a", cron="1 * * * *"), *map(job_yaml, "bc")]))
    real_apply, written_beside = reconcile_module.apply_plan, []

    def apply_beside_another_writer(*args: object, **kwargs: object) -> object:
        if not written_beside:
            daemon.execute(
                "UPDATE apscheduler_jobs SET next_run_time = next_run_time + 60"
                " WHERE id IN ('a', 'b')"
            )
            written_beside.append(True)
        return real_apply(*args, **kwargs)

    monkeypatch.setattr(reconcile_module, "apply_plan", apply_beside_another_writer)
    result = reconcile_once(daemon.engine, daemon.settings, trigger="watch", caches=daemon.caches)
    assert actions(result) == [("update", "a")] and written_beside
    assert daemon.caches.actual is not None
    with daemon.engine.connect() as connection:
        assert read_fingerprint(connection).scheduler != daemon.caches.actual[0].scheduler
    reads = daemon.reads.copy()
    assert daemon.reconcile().outcome == "no_changes"  # and the cache is the truth again
    assert daemon.reads - reads == Counter({"patched": 1})  # the rows written since


def test_caches_warmed_before_leading_plan_what_cold_caches_plan(daemon: Daemonish) -> None:
    """A standby warms its caches (engine.daemon: files parsed, rows decoded, nothing
    written); what changed after that, in the files or in the tables, is in its startup
    pass's plan exactly as in the plan of a process that warmed nothing."""
    daemon.write("a.yaml", "---\n".join(job_yaml(name) for name in "abcd"))
    daemon.write("e.yaml", job_yaml("e"))
    daemon.reconcile("startup")
    warm_caches(daemon.engine, daemon.settings, warmed := ReconcileCaches())
    # After the warm-up: a file edited, one added, one removed; rows written by others.
    daemon.write(
        "a.yaml", "---\n".join(job_yaml(name, paused=str(name == "b").lower()) for name in "abcd")
    )
    daemon.write("f.yaml", job_yaml("f", cron="0 4 * * *"))
    (daemon.jobs_dir / "e.yaml").unlink()
    daemon.execute("DELETE FROM apscheduler_jobs WHERE id = 'c'")
    daemon.execute("UPDATE scheduled_jobs SET status = 'paused' WHERE name = 'd'")
    daemon.execute(
        "INSERT INTO apscheduler_jobs (id, next_run_time, job_state) VALUES ('x', 1, 'x')"
    )

    def plan(caches: ReconcileCaches) -> tuple[str, list[tuple[str, str]], tuple[str, ...]]:
        result = reconcile_once(
            daemon.engine, daemon.settings, trigger="startup", apply=False, caches=caches
        )
        return result.plan.plan_hash, sorted(actions(result)), result.plan.foreign

    cold = plan(ReconcileCaches())
    assert cold[1] == [
        ("add", "f"),
        ("pause", "b"),
        ("remove", "e"),
        ("repair", "c"),
        ("update", "d"),
    ]
    assert plan(warmed) == cold
    daemon.caches = warmed
    assert sorted(actions(daemon.reconcile("startup"))) == cold[1]
    assert daemon.reconcile().outcome == "no_changes"


def test_a_warm_up_stops_between_slices_of_files_and_before_each_table(
    daemon: Daemonish, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A daemon told to stop while it warms its caches (SIGTERM) does not wait for the
    whole warm-up: it is asked between slices of WARM_FILES files and before each table
    read; a warm-up that runs to its end plans as cold caches do."""
    monkeypatch.setattr(reconcile_module, "WARM_FILES", 2)
    for name in "abcde":
        daemon.write(f"{name}.yaml", job_yaml(name))
        # Old enough for the load cache to keep what it parsed (not a racy signature).
        os.utime(daemon.jobs_dir / f"{name}.yaml", (1_700_000_000, 1_700_000_000))
    daemon.reconcile("startup")
    stopped, parsed = ReconcileCaches(), []

    def stop_after_two_slices() -> bool:
        parsed.append(len(stopped.files))
        return len(parsed) > 2

    reads = daemon.reads.copy()
    assert not warm_caches(daemon.engine, daemon.settings, stopped, stopping=stop_after_two_slices)
    assert parsed == [0, 2, 4]  # two slices parsed, then stopped: the fifth file never
    assert daemon.reads == reads  # no table read
    tables: list[int] = []

    def stop_before_the_rows() -> bool:
        tables.append(daemon.reads.total() - reads.total())
        return daemon.reads["read_inventory"] > reads["read_inventory"]

    partly = ReconcileCaches()
    assert not warm_caches(daemon.engine, daemon.settings, partly, stopping=stop_before_the_rows)
    assert len(partly.files) == 5 and tables[-2:] == [0, 1]
    assert daemon.reads - reads == Counter({"read_inventory": 1})
    warmed = ReconcileCaches()
    assert warm_caches(daemon.engine, daemon.settings, warmed)
    assert daemon.reads - reads == Counter({"read_inventory": 2, "read_scheduler_rows": 1})
    for caches in (warmed, stopped, partly):
        result = reconcile_once(
            daemon.engine, daemon.settings, trigger="startup", apply=False, caches=caches
        )
        assert result.outcome == "no_changes"


def test_a_pass_after_nobody_wrote_scans_no_table(
    daemon: Daemonish, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The change counts (store.change_counts) say whether anyone wrote either table
    since the cached state: not moved, no fingerprint is read (its scans are most of a
    no-op pass at 100,000 jobs); only the scheduler's moved (fires), only its table is
    scanned; a write by anyone else is still seen, our own pass's writes are not."""
    real = reconcile_module.read_fingerprint_since
    scans: list[str] = []

    def counted(*args: object, inventory: object = None) -> object:
        scans.append("scheduler" if inventory is not None else "both")
        return real(*args, inventory=inventory)  # type: ignore[arg-type]

    monkeypatch.setattr(reconcile_module, "read_fingerprint_since", counted)
    daemon.write("jobs.yaml", "---\n".join(job_yaml(name) for name in "abc"))
    daemon.reconcile("startup")
    scans.clear()
    assert daemon.reconcile().outcome == "no_changes"
    assert scans == [], "nobody wrote: nothing is scanned"
    daemon.write("jobs.yaml", "---\n".join(job_yaml(name, cron="1 * * * *") for name in "abc"))
    assert len(actions(daemon.reconcile())) == 3
    assert daemon.reconcile().outcome == "no_changes"
    assert scans == [], "our own writes are known: nothing is scanned"

    daemon.execute("UPDATE apscheduler_jobs SET next_run_time = next_run_time WHERE id = 'a'")
    assert daemon.reconcile().outcome == "no_changes"
    assert scans == ["scheduler"]
    daemon.execute("DELETE FROM apscheduler_jobs WHERE id = 'b'")
    assert actions(daemon.reconcile()) == [("repair", "b")]
    daemon.execute("UPDATE scheduled_jobs SET status = 'paused' WHERE name = 'c'")
    assert actions(daemon.reconcile()) == [("update", "c")]
    assert scans == ["scheduler", "scheduler", "both"]
    # Another process's apply (a CLI: no caches) seen by the daemon's next pass.
    daemon.write("jobs.yaml", "---\n".join(job_yaml(name) for name in "abcd"))
    cli = reconcile_once(daemon.engine, daemon.settings, trigger="cli")
    assert sorted(actions(cli)) == [("add", "d"), ("update", "a"), ("update", "b"), ("update", "c")]
    assert daemon.reconcile().outcome == "no_changes"
    assert scans[-1] == "both"
    daemon.execute("TRUNCATE apscheduler_jobs")
    assert len(actions(daemon.reconcile())) == 4


def test_on_sqlite_a_pass_reads_only_the_tables_someone_wrote(sqlite_daemon: Daemonish) -> None:
    daemon = sqlite_daemon

    def reconcile(trigger: reconcile_module.Trigger = "watch") -> ReconcileResult:
        return reconcile_once(daemon.engine, daemon.settings, trigger=trigger, caches=daemon.caches)

    daemon.write("jobs.yaml", "---\n".join(job_yaml(name) for name in "abc"))
    reconcile("startup")
    reconcile()  # our own writes are not tracked on SQLite: this pass reads both
    reads = daemon.reads.copy()
    assert reconcile().outcome == "no_changes"
    assert daemon.reads == reads, "nobody wrote: nothing is read"
    daemon.execute("UPDATE apscheduler_jobs SET job_state = X'00' WHERE id = 'a'")
    assert actions(reconcile()) == [("repair", "a")]
    assert daemon.reads - reads == Counter({"read_scheduler_rows": 1})
    reconcile()  # after the repair (our own write): both read
    reads = daemon.reads.copy()
    daemon.execute("UPDATE scheduled_jobs SET status = 'paused' WHERE name = 'b'")
    assert actions(reconcile()) == [("update", "b")]
    assert daemon.reads - reads == Counter({"read_inventory": 1})
    assert reconcile("resync").outcome == "no_changes"  # a resync reads everything
    reads = daemon.reads.copy()
    assert reconcile().outcome == "no_changes"
    assert daemon.reads == reads


def test_a_pass_told_the_tree_moved_writes_and_records_nothing(daemon: Daemonish) -> None:
    """The daemon's watch pass asks `settled` before it writes (the jobs folder changed
    again while it planned: a checkout in progress): told no, it writes nothing, records
    no pass, and keeps the state it read; the next pass applies the settled tree."""
    daemon.write("a.yaml", job_yaml("a"))
    daemon.reconcile("startup")
    runs = "SELECT count(*) FROM reconcile_runs"
    cron = "SELECT spec->'schedule'->>'cron' FROM scheduled_jobs WHERE name = 'a'"
    with daemon.engine.connect() as connection:
        before = connection.execute(sa.text(runs)).scalar()
    daemon.write("a.yaml", job_yaml("a", cron="1 * * * *"))
    asked: list[list[tuple[str, str]]] = []

    def moved(plan: Plan) -> bool:
        asked.append([(change.action, change.job) for change in plan.changes])
        return False

    with pytest.raises(Unsettled):
        reconcile_once(
            daemon.engine, daemon.settings, trigger="watch", caches=daemon.caches, settled=moved
        )
    assert asked == [[("update", "a")]]
    with daemon.engine.connect() as connection:
        assert connection.execute(sa.text(runs)).scalar() == before
        assert connection.execute(sa.text(cron)).scalar() == "*/5 * * * *"
    daemon.assert_cache_is_the_truth()  # kept: nothing was written
    reads = daemon.reads.copy()
    assert actions(daemon.reconcile()) == [("update", "a")]
    assert daemon.reads == reads, "the state read before was kept"


def test_a_pass_waits_for_the_tree_holding_no_lock_and_writes_from_a_later_now(
    daemon: Daemonish,
) -> None:
    """Review repro (807b2e0): the settle wait ran inside the pass's transaction, after
    the apply lock, with `now` taken before it: every `reconcile apply`/`plan` waited
    behind it (3.5 s here), and a rescheduled job's first fire was computed for a moment
    already past at commit (due at once: an immediate extra run, DESIGN). Now the pass
    rolls back, waits holding nothing, then plans again at a later `now`."""
    daemon.write("a.yaml", job_yaml("a", cron="0 0 * * *"))
    daemon.reconcile("startup")
    daemon.write("a.yaml", job_yaml("a", cron="*/2 * * * * *"))  # every 2 s
    waited: list[float] = []

    def settling(plan: Plan) -> bool:  # a checkout still writing, within the deadline
        time.sleep(3.0)
        waited.append(time.time())
        return True

    def watch_pass() -> None:
        caches = daemon.caches
        reconcile_once(
            daemon.engine, daemon.settings, trigger="watch", caches=caches, settled=settling
        )

    runs = "SELECT count(*) FROM reconcile_runs"
    with daemon.engine.connect() as connection:
        before = connection.execute(sa.text(runs)).scalar()
    worker = threading.Thread(target=watch_pass)
    worker.start()
    time.sleep(1.0)  # the pass has planned and waits
    with daemon.engine.connect() as other:  # what `reconcile apply` does first
        asked = time.monotonic()
        other.execute(sa.select(sa.func.pg_advisory_xact_lock(APPLY_LOCK_KEY)))
        blocked = time.monotonic() - asked
        other.rollback()
    worker.join()
    assert blocked < 0.5, f"a CLI apply waited {blocked:.1f} s for a pass that only waited"
    next_run = "SELECT next_run_time FROM apscheduler_jobs WHERE id = 'a'"
    with daemon.engine.connect() as connection:
        assert connection.execute(sa.text(next_run)).scalar() > waited[0]
        assert connection.execute(sa.text(runs)).scalar() == before + 1
    daemon.assert_cache_is_the_truth()


def test_a_pass_that_writes_nothing_does_not_wait_for_the_tree(daemon: Daemonish) -> None:
    daemon.write("a.yaml", job_yaml("a"))
    daemon.reconcile("startup")
    daemon.write("a.yaml", job_yaml("a") + "\n")  # an event, no change

    def never(plan: Plan) -> bool:
        raise AssertionError("asked to wait for a plan that writes nothing")

    result = reconcile_once(
        daemon.engine, daemon.settings, trigger="watch", caches=daemon.caches, settled=never
    )
    assert result.outcome == "no_changes"
