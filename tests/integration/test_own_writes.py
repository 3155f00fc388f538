"""A daemon's pass after its own scheduler wrote fired jobs back scans no table: the
write-backs are logged with their transactions (store.own_writes) and, when the change
counts moved by exactly those, patched into the cached state. Any other writer, before,
between or after them, is still seen (the table scanned as before). Each pass's cached
state is held to a fresh read of both tables (PostgreSQL)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from apscheduler.schedulers.background import BackgroundScheduler

from reconciler.engine import reconcile as reconcile_module
from reconciler.store.jobstore import OwnedJobStore
from reconciler.store.own_writes import OwnWrites, Snapshot, WriteBack, explained
from tests.integration.test_state_cache import Daemonish, actions
from tests.integration.workspace import job_yaml

pytestmark = pytest.mark.services


class Firing:
    """The daemon's job store and a paused scheduler over it: `fire()` takes the due
    jobs and writes them back moved to a later next run time, as a scheduler pass does."""

    def __init__(self, daemon: Daemonish) -> None:
        self.store = OwnedJobStore(engine=daemon.engine, own_writes=daemon.caches.own_writes)
        self.scheduler = BackgroundScheduler(jobstores={"default": self.store}, timezone=UTC)
        self.scheduler.start(paused=True)
        self.later = datetime.now(UTC) + timedelta(days=1)

    def fire(self, *names: str) -> None:
        self.later += timedelta(minutes=5)
        for job in self.store.get_due_jobs(datetime.now(UTC) + timedelta(days=400)):
            if not names or job.id in names:
                job._modify(next_run_time=self.later)
                self.store.update_job(job)
        self.store.flush()


@pytest.fixture
def daemon(tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Daemonish]:
    space = Daemonish.at(tmp_path, pg_url)
    real = reconcile_module.read_fingerprint_since

    def counted(*args: object, inventory: object = None) -> object:
        space.reads["scan"] += 1
        return real(*args, inventory=inventory)  # type: ignore[arg-type]

    monkeypatch.setattr(reconcile_module, "read_fingerprint_since", counted)
    yield space
    space.engine.dispose()


@pytest.fixture
def firing(daemon: Daemonish) -> Iterator[Firing]:
    daemon.write("jobs.yaml", "---\n".join(job_yaml(name) for name in "abcd"))
    daemon.reconcile("startup")
    daemon.reconcile()
    firing = Firing(daemon)
    yield firing
    firing.scheduler.shutdown(wait=False)


def scans(daemon: Daemonish) -> int:
    return daemon.reads["scan"]


def test_a_pass_after_our_write_backs_alone_scans_nothing(
    daemon: Daemonish, firing: Firing
) -> None:
    for names in ("abcd", "a", "ab", ""):
        firing.fire(*names)  # "": a write-back that wrote no row still counts once
        firing.fire(*names)
        before = scans(daemon)
        assert daemon.reconcile().outcome == "no_changes"  # cache == a fresh read
        assert scans(daemon) == before, names


def test_a_foreign_write_between_our_write_back_and_the_pass_is_seen(
    daemon: Daemonish, firing: Firing
) -> None:
    firing.fire()
    daemon.execute("UPDATE apscheduler_jobs SET next_run_time = 12345 WHERE id = 'b'")
    before = scans(daemon)
    assert daemon.reconcile().outcome == "no_changes"
    assert scans(daemon) == before + 1
    firing.fire("a")
    daemon.execute("DELETE FROM apscheduler_jobs WHERE id = 'c'")
    firing.fire("a")
    assert actions(daemon.reconcile()) == [("repair", "c")]
    assert scans(daemon) == before + 2
    # A foreign write that changes nothing the counts would not see: still a write.
    daemon.execute("UPDATE apscheduler_jobs SET job_state = job_state WHERE id = 'a'")
    firing.fire("b")
    assert daemon.reconcile().outcome == "no_changes"
    assert scans(daemon) == before + 3
    # The inventory written by hand, the scheduler only by us: seen.
    firing.fire("b")
    daemon.execute("UPDATE scheduled_jobs SET status = 'paused' WHERE name = 'd'")
    assert actions(daemon.reconcile()) == [("update", "d")]
    # Then nobody else: no scan again.
    firing.fire()
    before = scans(daemon)
    assert daemon.reconcile().outcome == "no_changes"
    assert scans(daemon) == before


def test_our_passes_writes_and_write_backs_interleaved(daemon: Daemonish, firing: Firing) -> None:
    """The rows a pass wrote are read again by the next (its decoder did not read them);
    a write-back after the pass's write, or refused by it (the row rewritten since it was
    read: the compare-and-set), is what the table holds."""
    due = firing.store.get_due_jobs(datetime.now(UTC) + timedelta(days=400))  # read: a, b...
    daemon.write("jobs.yaml", "---\n".join(job_yaml(n, cron="1 * * * *") for n in "abcd"))
    assert len(actions(daemon.reconcile())) == 4  # rewrites every row
    for job in due:  # written back over rows rewritten since: refused, row by row
        job._modify(next_run_time=firing.later)
        firing.store.update_job(job)
    firing.store.flush()
    firing.fire("a", "b")
    before = scans(daemon)
    assert daemon.reconcile().outcome == "no_changes"
    assert scans(daemon) == before
    daemon.write("jobs.yaml", "---\n".join(job_yaml(n) for n in "abc"))  # d removed
    firing.fire("a")
    assert sorted(actions(daemon.reconcile())) == [
        ("remove", "d"),
        ("update", "a"),
        ("update", "b"),
        ("update", "c"),
    ]
    firing.fire("b")
    assert daemon.reconcile().outcome == "no_changes"
    assert scans(daemon) == before


def test_a_lost_log_or_a_resync_reads_as_before(daemon: Daemonish, firing: Firing) -> None:
    firing.fire()
    daemon.caches.own_writes.lose()
    before = scans(daemon)
    assert daemon.reconcile().outcome == "no_changes"
    assert scans(daemon) == before + 1
    firing.fire()
    assert daemon.reconcile("resync").outcome == "no_changes"
    assert scans(daemon) == before + 2
    firing.fire()
    assert daemon.reconcile().outcome == "no_changes"
    assert scans(daemon) == before + 2


def test_write_backs_racing_passes_never_hide_a_foreign_write(
    daemon: Daemonish, firing: Firing
) -> None:
    """The scheduler writes back on its own thread while passes run; a foreign writer
    now and then. Whatever the interleaving, every pass's cache is the table."""
    stop = threading.Event()
    errors: list[BaseException] = []

    def fire_on() -> None:
        try:
            while not stop.is_set():
                firing.fire()
        except BaseException as error:  # reported by the test
            errors.append(error)

    thread = threading.Thread(target=fire_on)
    thread.start()
    try:
        for number in range(30):
            if number % 4 == 1:
                daemon.execute(
                    "UPDATE apscheduler_jobs SET next_run_time = :at WHERE id = 'c'", at=number
                )
            result = reconcile_module.reconcile_once(
                daemon.engine, daemon.settings, trigger="watch", caches=daemon.caches
            )
            assert result.outcome == "no_changes"
            # The cache is compared with the table as of the pass; the scheduler keeps
            # writing meanwhile, so only its rows as of now are compared after it stops.
    finally:
        stop.set()
        thread.join()
    assert not errors
    assert daemon.reconcile().outcome == "no_changes"  # and the cache is the truth


def test_explained_counts_only_the_writes_between_the_two_snapshots() -> None:
    since, now = Snapshot.parse("100:105:102"), Snapshot.parse("104:110:107")
    old, new, late = WriteBack(101), WriteBack(102), WriteBack(107)  # 102: running then
    assert explained((1, 5), (1, 6), since, now, [old, new, late]) == ([new], [late])
    assert explained((1, 5), (1, 7), since, now, [old, new]) is None  # someone else too
    assert explained((1, 5), (2, 6), since, now, [new]) is None  # the table made again
    assert explained((1, 5), (1, 5), since, now, []) == ([], [])


def test_the_log_drops_everything_past_its_limit() -> None:
    log = OwnWrites(limit=5)
    log.add(WriteBack(1, other=("a", "b")))
    assert log.take() == [WriteBack(1, other=("a", "b"))]
    log.add(WriteBack(2, other=("a", "b", "c")))
    log.add(WriteBack(3, other=("a",)))
    assert log.take() is None  # lost: the pass scans
    assert log.take() == []
    log.put_back([WriteBack(4)])
    log.add(WriteBack(5))
    assert log.take() == [WriteBack(4), WriteBack(5)]


def test_counts_read_in_one_statement_fail_once_their_table_is_gone(daemon: Daemonish) -> None:
    daemon.write("jobs.yaml", job_yaml("a"))
    daemon.reconcile("startup")
    daemon.reconcile()
    assert daemon.caches.counts_known
    daemon.execute("DROP TABLE table_changes")
    with pytest.raises(sa.exc.ProgrammingError):
        reconcile_module.reconcile_once(
            daemon.engine, daemon.settings, trigger="watch", caches=daemon.caches
        )
    assert not daemon.caches.counts_known
    assert daemon.reconcile().outcome == "no_changes"  # the counts refused: read as before
