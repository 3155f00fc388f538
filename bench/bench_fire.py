"""Benchmark of firing: 10,000 jobs due at the same instant.

    .venv/bin/python bench/bench_fire.py [--jobs 10000] [--only stock,dispatcher,full]
    .venv/bin/python bench/bench_fire.py --only publisher --window 1   # then --window 3

Each run is on a fresh PostgreSQL database and a fresh RabbitMQ vhost:

- stock:      APScheduler 3 (BackgroundScheduler, SQLAlchemyJobStore on PostgreSQL,
              20 threads) calling a no-op: the scheduler's own ceiling;
- dispatcher: the Dispatcher alone: 10,000 `fire()` calls at the instant (as FireExecutor
              makes them), each slot recorded in the ledger and published to RabbitMQ
              with publisher confirms: the target is all confirmed within 5 s;
- full:       APScheduler with FireExecutor calling fire_job -> Dispatcher -> ledger +
              confirmed publish: what the daemon does end to end.
- publisher:  the broker's side alone (no database): the same fires prebuilt, published in
              batches over the connections, WINDOW batches ahead of their confirms
              (`--window 1`: each batch's confirms awaited before the next).

Reported per run: time from the instant to the last call / last confirmed publish, and the
median. Needs PostgreSQL (127.0.0.1:5432, postgres, trust) and RabbitMQ (guest/guest,
`rabbitmqctl` on PATH). Creates and drops its own database and vhost.
"""

from __future__ import annotations

import argparse
import os
import pickle
import queue
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import benchdb
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from apscheduler.executors.pool import ThreadPoolExecutor  # noqa: E402
from apscheduler.jobstores.memory import MemoryJobStore  # noqa: E402
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore  # noqa: E402
from apscheduler.schedulers.background import BackgroundScheduler  # noqa: E402
from apscheduler.triggers.interval import IntervalTrigger  # noqa: E402

from reconciler.core.fires import FIRE_CALLABLE, fire_payload  # noqa: E402
from reconciler.dispatch.dispatcher import Dispatcher  # noqa: E402
from reconciler.dispatch.executor import FireExecutor  # noqa: E402
from reconciler.dispatch.fire import install_dispatcher  # noqa: E402
from reconciler.dispatch.publisher import Pipeline, Publisher  # noqa: E402
from reconciler.dispatch.request import FireRequest, make_request  # noqa: E402
from reconciler.spec.model import JobSpec  # noqa: E402
from reconciler.store.db import create_sync_engine  # noqa: E402
from reconciler.store.jobstore import OwnedJobStore  # noqa: E402
from reconciler.store.migrate import upgrade_database  # noqa: E402
from reconciler.store.tables import apscheduler_jobs, job_runs, scheduled_jobs  # noqa: E402

LEAD = 4.0  # seconds between setting up and the instant

CALLS: list[float] = []


def noop(**_kwargs: object) -> None:
    CALLS.append(time.time())


class AlwaysLeader:
    def is_leader(self) -> bool:
        return True


@contextmanager
def fresh_database() -> Iterator[str]:
    """A migrated database of its own, dropped afterwards (benchdb); its URL."""
    with benchdb.fresh_database("bench_fire") as name:
        url = f"postgresql://postgres@127.0.0.1:5432/{name}"
        upgrade_database(url)
        yield url


@contextmanager
def fresh_vhost() -> Iterator[str]:
    """A vhost of its own, deleted afterwards (benchdb); its broker URL."""
    with benchdb.fresh_vhost() as name:
        yield f"{benchdb.AMQP_BASE}/{name}"


def payload_for(name: str) -> dict[str, object]:
    spec = JobSpec.model_validate(
        {"name": name, "task": "reconciler.tasks.noop", "schedule": {"interval": {"hours": 1}}}
    )
    return dict(fire_payload(spec, spec_hash="0" * 64, revision="bench"))


def store_jobs(engine: sa.Engine, count: int, func: str | Callable[..., None], at: datetime):
    """Write `count` apscheduler_jobs rows due at `at` in one executemany (built with a
    memory store, pickled as SQLAlchemyJobStore pickles them)."""
    builder = BackgroundScheduler(jobstores={"default": MemoryJobStore()}, timezone=UTC)
    builder.start(paused=True)
    for n in range(count):
        name = f"job-{n:05d}"
        builder.add_job(
            func,
            IntervalTrigger(hours=1, start_date=at, timezone=UTC),
            id=name,
            kwargs={"job": name, "payload": payload_for(name)},
            misfire_grace_time=3600,
            max_instances=10,
        )
    rows = [
        {
            "id": job.id,
            "next_run_time": at.timestamp(),
            "job_state": pickle.dumps(job.__getstate__(), pickle.HIGHEST_PROTOCOL),
        }
        for job in builder.get_jobs()
    ]
    builder.shutdown(wait=False)
    with engine.begin() as connection:
        connection.execute(apscheduler_jobs.insert(), rows)


def own_jobs(engine: sa.Engine, count: int) -> None:
    """Inventory rows for the jobs, so the daemon's OwnedJobStore sees them as ours."""
    now = datetime.now(UTC)
    rows = [
        {
            "name": f"job-{n:05d}",
            "spec": {},
            "spec_hash": "0" * 64,
            "task": "reconciler.tasks.noop",
            "queue": "default",
            "labels": {},
            "status": "active",
            "source_file": "bench.yaml",
            "source_line": 1,
            "created_at": now,
            "updated_at": now,
        }
        for n in range(count)
    ]
    with engine.begin() as connection:
        connection.execute(scheduled_jobs.insert(), rows)


def instant() -> datetime:
    return (datetime.now(UTC) + timedelta(seconds=LEAD)).replace(microsecond=0)


def sleep_until(moment: datetime) -> None:
    time.sleep(max((moment - datetime.now(UTC)).total_seconds(), 0))


BATCH_SIZE = 1000
CONNECTIONS = 2
WINDOW = 3


def make_dispatcher(engine: sa.Engine, broker_url: str) -> Dispatcher:
    publisher = Publisher(broker_url=broker_url, timeout=10, connections=CONNECTIONS)
    return Dispatcher(
        engine=engine,
        publisher=publisher,
        fence=AlwaysLeader(),
        batch_size=BATCH_SIZE,
        publish_window=WINDOW,
    )


def wait_published(engine: sa.Engine, count: int, timeout: float = 120) -> list[float]:
    """Wait until `count` ledger rows are published; their published_at (Unix s).

    Polls a count, not the rows: reading thousands of rows every 50 ms took the GIL
    and the database from the pipeline being measured."""
    published = job_runs.c.status == "published"
    counted = sa.select(sa.func.count()).select_from(job_runs).where(published)
    deadline = time.monotonic() + timeout
    done = 0
    while time.monotonic() < deadline:
        with engine.connect() as connection:
            done = connection.execute(counted).scalar_one()
        if done >= count:
            with engine.connect() as connection:
                query = sa.select(job_runs.c.published_at).where(published)
                return [stamp.timestamp() for stamp in connection.execute(query).scalars()]
        time.sleep(0.1)
    with engine.connect() as connection:
        statuses = dict(
            connection.execute(
                sa.select(job_runs.c.status, sa.func.count()).group_by(job_runs.c.status)
            ).all()
        )
    raise SystemExit(f"only {done} of {count} published after {timeout} s; ledger: {statuses}")


def report(label: str, at: datetime, stamps: list[float]) -> dict[str, float]:
    late = sorted(stamp - at.timestamp() for stamp in stamps)
    result = {"count": len(late), "p50": statistics.median(late), "last": late[-1]}
    print(f"{label:<11} n={len(late):>6}  p50 {result['p50']:6.2f} s  last {result['last']:6.2f} s")
    return result


def run_stock(count: int) -> dict[str, float]:
    with fresh_database() as url, ExitStack() as stack:
        engine = create_sync_engine(url)
        stack.callback(engine.dispose)
        at = instant() + timedelta(seconds=2)
        store_jobs(engine, count, f"{__name__}:noop", at)
        CALLS.clear()
        scheduler = BackgroundScheduler(
            jobstores={"default": SQLAlchemyJobStore(engine=engine)},
            executors={"default": ThreadPoolExecutor(20)},
            timezone=UTC,
        )
        scheduler.start()
        stack.callback(scheduler.shutdown)
        deadline = time.monotonic() + 120
        while len(CALLS) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return report("stock", at, list(CALLS))


def cpu_seconds() -> float:
    """CPU time of this process so far (user + system, all threads)."""
    times = os.times()
    return times.user + times.system


def run_dispatcher(count: int) -> dict[str, float]:
    with fresh_database() as url, fresh_vhost() as broker, ExitStack() as stack:
        engine = create_sync_engine(url, pool_size=5)
        stack.callback(engine.dispose)
        dispatcher = make_dispatcher(engine, broker)
        dispatcher.start()
        stack.callback(dispatcher.stop)
        payloads = {f"job-{n:05d}": payload_for(f"job-{n:05d}") for n in range(count)}
        at = instant()
        sleep_until(at)
        cpu = cpu_seconds()
        for name, payload in payloads.items():
            dispatcher.fire(job=name, payload=payload, scheduled_time=at)  # type: ignore[arg-type]  # a dict shaped as FirePayload
        accepted = time.time() - at.timestamp()
        stamps = wait_published(engine, count)
        cpu = cpu_seconds() - cpu
        print(f"{'':<11} all {count} fire() calls returned {accepted:.2f} s after the instant")
        print(f"{'':<11} CPU time of the process from the instant to the last confirm: {cpu:.2f} s")
        return report("dispatcher", at, stamps)


def run_full(count: int) -> dict[str, float]:
    with fresh_database() as url, fresh_vhost() as broker, ExitStack() as stack:
        engine = create_sync_engine(url, pool_size=5)
        stack.callback(engine.dispose)
        dispatcher = make_dispatcher(engine, broker)
        dispatcher.start()
        stack.callback(dispatcher.stop)
        install_dispatcher(dispatcher)
        stack.callback(install_dispatcher, None)
        at = instant() + timedelta(seconds=2)
        store_jobs(engine, count, FIRE_CALLABLE, at)
        own_jobs(engine, count)
        scheduler = BackgroundScheduler(
            # The daemon's store: only our rows, and one batched UPDATE per pass.
            jobstores={"default": OwnedJobStore(engine=engine)},
            executors={"default": FireExecutor(max_catch_up_runs=10)},
            timezone=UTC,
        )
        cpu = cpu_seconds()
        scheduler.start()
        stack.callback(scheduler.shutdown)
        stamps = wait_published(engine, count)
        cpu = cpu_seconds() - cpu
        print(f"{'':<11} CPU time of the process from the start to the last confirm: {cpu:.2f} s")
        with engine.connect() as connection:
            fired = [
                row.fired_at.timestamp()
                for row in connection.execute(sa.select(job_runs.c.fired_at))
            ]
        report("  fire_job", at, fired)
        return report("full", at, stamps)


def run_publisher(count: int) -> dict[str, float]:
    """The broker's side alone, no database: `count` prebuilt fires in batches of
    BATCH_SIZE over CONNECTIONS threads, each writing up to WINDOW batches ahead of
    their confirms (1: wait for each batch's confirms before the next, as before the
    pipeline). Reports the last confirm, the process's CPU and the seconds the threads
    spent waiting for confirms."""
    with fresh_vhost() as broker:
        publisher = Publisher(broker_url=broker, timeout=30, connections=CONNECTIONS)
        now = datetime.now(UTC)
        requests = [
            make_request(
                job=f"job-{n:05d}",
                payload=payload_for(f"job-{n:05d}"),  # type: ignore[arg-type]  # a dict shaped as FirePayload
                scheduled_time=now,
                now=now,
            )
            for n in range(count)
        ]
        with ExitStack() as stack:  # every connection opened, the queue declared
            for n in range(CONNECTIONS):
                warm = stack.enter_context(publisher.pipeline())
                warm.send(requests[n : n + 1])
                warm.settle_oldest()
        batches: queue.Queue[list[FireRequest]] = queue.Queue()
        for start in range(CONNECTIONS, count, BATCH_SIZE):
            batches.put(requests[start : start + BATCH_SIZE])
        confirmed, waited, stamps = [0], [0.0], []
        lock = threading.Lock()

        def publish_all() -> None:
            with publisher.pipeline() as pipeline:
                while True:
                    # As the Dispatcher does: a batch already confirmed is taken first.
                    while pipeline.pending and pipeline.oldest_answered():
                        settle(pipeline)
                    while pipeline.pending < WINDOW:
                        try:
                            pipeline.send(batches.get_nowait())
                        except queue.Empty:
                            break
                    if not pipeline.pending:
                        return
                    settle(pipeline)

        def settle(pipeline: Pipeline) -> None:
            started = time.monotonic()
            _sent, result = pipeline.settle_oldest()
            with lock:
                waited[0] += time.monotonic() - started
                confirmed[0] += len(result.confirmed)
                stamps.extend([time.time()] * len(result.confirmed))

        threads = [threading.Thread(target=publish_all) for _ in range(CONNECTIONS)]
        at, cpu = time.time(), cpu_seconds()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        cpu = cpu_seconds() - cpu
        publisher.close()
        print(
            f"{'':<11} {confirmed[0]} of {count - CONNECTIONS} confirmed; CPU {cpu:.2f} s; "
            f"threads waiting for confirms {waited[0]:.2f} s (window {WINDOW})"
        )
        return report("publisher", datetime.fromtimestamp(at, UTC), stamps)


RUNS = {
    "stock": run_stock,
    "dispatcher": run_dispatcher,
    "full": run_full,
    "publisher": run_publisher,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--only", default="stock,dispatcher,full")
    parser.add_argument("--batch", type=int, default=1000, help="Dispatcher batch size")
    parser.add_argument("--connections", type=int, default=2, help="publisher connections")
    parser.add_argument(
        "--window",
        type=int,
        default=3,
        help="batches published ahead of confirms per connection (1: wait for each batch)",
    )
    args = parser.parse_args()
    global BATCH_SIZE, CONNECTIONS, WINDOW
    BATCH_SIZE, CONNECTIONS, WINDOW = args.batch, args.connections, args.window
    threading.current_thread().name = "bench"
    for name in args.only.split(","):
        load = os.getloadavg()[0]
        RUNS[name](args.jobs)
        print(
            f"{'':<11} (1-min load average {load:.1f} before, {os.getloadavg()[0]:.1f} after;"
            f" {os.cpu_count()} CPUs)"
        )


if __name__ == "__main__":
    main()
