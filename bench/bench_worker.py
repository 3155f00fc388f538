"""Worker throughput: the full guard + ledger against plain Celery, same broker/backend.

    .venv/bin/python bench/bench_worker.py [--fires 5000] [--concurrency 2]

Needs the loopback services (RabbitMQ, Redis, PostgreSQL). For each variant it creates a
fresh RabbitMQ vhost (an empty queue), publishes all fires first, then starts ONE worker
(`celery -A reconciler.worker worker --pool=prefork`, log level WARNING) and measures the
drain rate from the results' `date_done` (first to last completion):

- plain    a plain Celery no-op task (`bench.plain_noop`, defined here), no headers;
- base     `reconciler.tasks.noop` without headers: BaseTask hooks and metrics only;
- guarded  `reconciler.tasks.noop` published as the dispatcher does (ledger row first,
           then the headers): Redis SET NX claim + lease, ledger started -> succeeded,
           key completed.

Overhead per task = (1/rate_variant - 1/rate_plain) * concurrency: the extra time each
pool process spends per task. Everything it creates (vhosts, database, keys) is removed.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import redis
from benchdb import AMQP_BASE, fresh_database, fresh_vhost, report_leftover
from celery import Celery, shared_task

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
REDIS_URL = "redis://127.0.0.1:6379/0"

if TYPE_CHECKING:
    from reconciler.settings import Settings


@shared_task(name="bench.plain_noop")
def plain_noop() -> None:
    """The baseline: a plain Celery task (no BaseTask)."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fires", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--variants", default="plain,base,guarded")
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()
    with fresh_database() as database:
        from reconciler.store.migrate import upgrade_database

        database_url = f"postgresql://postgres@127.0.0.1:5432/{database}"

        upgrade_database(database_url)
        # Rounds alternate the variants, each round in another order (a variant that always
        # ran second would always follow the previous one's cleanup), so that a noisy
        # neighbour hurts all of them alike; the median of each variant is reported.
        variants = options.variants.split(",")
        rates: dict[str, list[float]] = {variant: [] for variant in variants}
        cpu: dict[str, list[float]] = {variant: [] for variant in variants}
        for round_number in range(options.rounds):
            shift = round_number % len(variants)
            for variant in variants[shift:] + variants[:shift]:
                rate, cpu_ms = run_variant(
                    variant,
                    fires=options.fires,
                    concurrency=options.concurrency,
                    database_url=database_url,
                )
                rates[variant].append(rate)
                cpu[variant].append(cpu_ms)
        protocol_ms = measure_protocol(database_url, fires=min(options.fires, 2000))
        report(
            rates,
            cpu,
            fires=options.fires,
            concurrency=options.concurrency,
            protocol_ms=protocol_ms,
        )


def run_variant(
    variant: str, *, fires: int, concurrency: int, database_url: str
) -> tuple[float, float]:
    """One worker draining `fires` pre-published fires: (tasks/s, worker CPU ms/task),
    on a vhost and a Redis key prefix of its own, both removed afterwards."""
    prefix = f"bench_{uuid.uuid4().hex[:8]}:"
    with fresh_vhost() as vhost, ExitStack() as cleanup:
        client = redis.Redis.from_url(REDIS_URL)
        cleanup.callback(client.close)
        cleanup.callback(_delete_keys, client, prefix)
        return _drain(
            variant,
            fires=fires,
            concurrency=concurrency,
            database_url=database_url,
            broker_url=f"{AMQP_BASE}/{vhost}",
            prefix=prefix,
            client=client,
        )


def _drain(
    variant: str,
    *,
    fires: int,
    concurrency: int,
    database_url: str,
    broker_url: str,
    prefix: str,
    client: redis.Redis,
) -> tuple[float, float]:
    from reconciler.settings import Settings
    from reconciler.worker.app import create_celery_app

    settings = Settings(
        broker_url=broker_url,
        result_backend=REDIS_URL,
        redis_url=REDIS_URL,
        redis_prefix=prefix,
        database_url=database_url,
    )
    app = create_celery_app(settings)
    worker = None
    try:
        started = time.perf_counter()
        ids = publish(app, variant, fires=fires, database_url=database_url)
        print(f"{variant}: published {fires} in {time.perf_counter() - started:.1f} s", flush=True)
        worker = start_worker(settings, concurrency=concurrency)
        keys = [f"{prefix}celery-task-meta-{task_id}" for task_id in ids]
        # CPU of the worker's processes (main + pool, all their threads) from its first
        # result to its last: start-up excluded, and a CPU second is a CPU second however
        # busy the machine's other tenants keep it (a rate is not).
        first_done = _wait_results(client, keys, worker, at_least=1, every=0.01)
        cpu_before = tree_cpu_seconds(worker.pid)
        _wait_results(client, keys, worker, at_least=fires, every=0.2)
        cpu_ms = (tree_cpu_seconds(worker.pid) - cpu_before) * 1000 / (fires - first_done)
        done = sorted(_date_done(raw) for raw in client.mget(keys))
        rate = (fires - 1) / (done[-1] - done[0]).total_seconds()
        print(f"{variant}: {rate:,.0f} tasks/s, {cpu_ms:.3f} worker CPU ms per task", flush=True)
        return rate, cpu_ms
    finally:
        if worker is not None:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()
        app.close()


def _delete_keys(client: redis.Redis, prefix: str) -> None:
    """Every key under `prefix`; a failure reported on stderr (benchdb's rule)."""
    try:
        for batch in _batches(list(client.scan_iter(f"{prefix}*", count=1000)), 1000):
            client.delete(*batch)
    except redis.RedisError as error:
        report_leftover(f"Redis keys {prefix}*", f"redis-cli --scan --pattern '{prefix}*'", error)


def _wait_results(
    client: redis.Redis,
    keys: list[str],
    worker: subprocess.Popen[bytes],
    *,
    at_least: int,
    every: float,
) -> int:
    deadline = time.monotonic() + 600
    while (count := client.exists(*keys)) < at_least:
        if time.monotonic() > deadline or worker.poll() is not None:
            raise SystemExit("the worker did not finish")
        time.sleep(every)
    return int(count)


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU of `pid` and its children (the pool), from /proc (Linux)."""
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(entry) == pid or int(fields[1]) == pid:
            total += int(fields[11]) + int(fields[12])  # utime, stime (clock ticks)
    return total / os.sysconf("SC_CLK_TCK")


def publish(app: Celery, variant: str, *, fires: int, database_url: str) -> list[str]:
    """Publish every fire (and, for `guarded`, its ledger row first, as the dispatcher)."""
    from reconciler.core.fires import fire_id
    from reconciler.store.db import create_sync_engine
    from reconciler.store.tables import job_runs

    job = f"bench-{variant}-{uuid.uuid4().hex[:6]}"
    base = datetime(2026, 1, 1, tzinfo=UTC)
    slots = [base + timedelta(seconds=index) for index in range(fires)]
    ids = [fire_id(job, slot) for slot in slots]
    if variant == "guarded":
        now = datetime.now(UTC)
        engine = create_sync_engine(database_url)
        with engine.begin() as connection:
            connection.execute(job_runs.insert(), published_rows(job, ids, slots, now))
        engine.dispose()
    task = "bench.plain_noop" if variant == "plain" else "reconciler.tasks.noop"
    with app.producer_or_acquire() as producer:
        for run_id, slot in zip(ids, slots, strict=True):
            headers = (
                {
                    "idempotency_key": run_id,
                    "job": job,
                    "revision": None,
                    "scheduled_time": slot.isoformat(),
                    "max_retries": 0,
                    "retry_delay_seconds": 0,
                }
                if variant == "guarded"
                else {}
            )
            app.send_task(task, queue="default", task_id=run_id, headers=headers, producer=producer)
    return ids


def start_worker(settings: Settings, *, concurrency: int) -> subprocess.Popen[bytes]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("RECONCILER_")}
    env.update(
        RECONCILER_BROKER_URL=settings.broker_url,
        RECONCILER_RESULT_BACKEND=settings.result_backend,
        RECONCILER_REDIS_URL=settings.redis_url,
        RECONCILER_REDIS_PREFIX=settings.redis_prefix,
        RECONCILER_DATABASE_URL=settings.database_url,
        RECONCILER_TASK_MODULES="bench_worker",
        PYTHONPATH=os.pathsep.join([str(ROOT / "bench"), str(ROOT)]),
    )
    command = [
        str(BIN / "celery"),
        "-A",
        "reconciler.worker",
        "worker",
        "-Q",
        "default",
        f"--concurrency={concurrency}",
        "--pool=prefork",
        "--loglevel=WARNING",
        "--without-gossip",
        "--without-mingle",
        "--hostname=bench@%h",
    ]
    return subprocess.Popen(
        command,
        env=env,
        cwd=ROOT,
        start_new_session=True,
        stdout=open(os.environ.get("BENCH_WORKER_LOG", os.devnull), "ab"),
        stderr=subprocess.STDOUT,
    )


def measure_protocol(database_url: str, *, fires: int) -> dict[str, float]:
    """The guard + ledger protocol alone, in this process (no Celery): mean ms per fire of
    admit() (Redis SET NX, ledger read, `started` queued) and succeeded() (Redis
    compare-and-set, `succeeded` queued), the batched writes flushed at the end."""
    from reconciler.core.fires import fire_id
    from reconciler.settings import Settings
    from reconciler.store.tables import job_runs
    from reconciler.worker.context import FireContext
    from reconciler.worker.runtime import WorkerRuntime

    prefix = f"bench_{uuid.uuid4().hex[:8]}:"
    runtime = WorkerRuntime.from_settings(
        Settings(database_url=database_url, redis_url=REDIS_URL, redis_prefix=prefix)
    )
    try:
        job = f"bench-protocol-{uuid.uuid4().hex[:6]}"
        slots = [datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=i) for i in range(fires)]
        ids = [fire_id(job, slot) for slot in slots]
        now = datetime.now(UTC)
        with runtime.ledger.engine.begin() as connection:
            connection.execute(job_runs.insert(), published_rows(job, ids, slots, now))
        admit = succeed = 0.0
        for run_id in ids:
            fire = FireContext(
                run_id=run_id,
                task="reconciler.tasks.noop",
                idempotency_key=run_id,
                job=job,
                revision=None,
                scheduled_time=None,
                max_retries=0,
                retry_delay_seconds=0,
                retries=0,
                redelivered=False,
                hostname="bench@host",
                pid=os.getpid(),
            )
            started = time.perf_counter()
            admission = runtime.admit(fire)
            middle = time.perf_counter()
            runtime.succeeded(fire, admission, None)
            admit += middle - started
            succeed += time.perf_counter() - middle
    finally:
        runtime.close()
        client = redis.Redis.from_url(REDIS_URL)
        _delete_keys(client, prefix)
        client.close()
    return {"admit": admit / fires * 1000, "succeeded": succeed / fires * 1000}


def report(
    rates: dict[str, list[float]],
    cpu: dict[str, list[float]],
    *,
    fires: int,
    concurrency: int,
    protocol_ms: dict[str, float],
) -> None:
    print(f"\n{fires} no-op fires per run, one worker, prefork, concurrency {concurrency}")
    print(
        "| variant | tasks/s (runs) | median tasks/s | worker CPU ms/task (runs) | median "
        "| overhead vs plain, CPU ms/task |"
    )
    print("| --- | --- | ---: | --- | ---: | ---: |")
    plain_cpu = statistics.median(cpu["plain"]) if cpu.get("plain") else None
    for variant in rates:
        rate = statistics.median(rates[variant])
        cpu_ms = statistics.median(cpu[variant])
        overhead = (
            f"{cpu_ms - plain_cpu:+.3f}" if plain_cpu is not None and variant != "plain" else "-"
        )
        runs = ", ".join(f"{value:,.0f}" for value in rates[variant])
        cpu_runs = ", ".join(f"{value:.3f}" for value in cpu[variant])
        print(f"| {variant} | {runs} | {rate:,.0f} | {cpu_runs} | {cpu_ms:.3f} | {overhead} |")
    total = protocol_ms["admit"] + protocol_ms["succeeded"]
    print(
        f"\nguard + ledger protocol alone (in-process, mean of the fires): admit "
        f"{protocol_ms['admit']:.3f} ms + succeeded {protocol_ms['succeeded']:.3f} ms "
        f"= {total:.3f} ms per task (latency added to a task; writes batched behind)"
    )


def _date_done(raw: bytes | None) -> datetime:
    assert raw is not None
    value = json.loads(raw)["date_done"]
    return datetime.fromisoformat(value).replace(tzinfo=UTC)


def published_rows(
    job: str, ids: list[str], slots: list[datetime], now: datetime
) -> list[dict[str, object]]:
    """Ledger rows of fires the leader published (what a worker finds before it runs)."""
    return [
        {
            "id": run_id,
            "job_name": job,
            "scheduled_time": slot,
            "status": "published",
            "task": "reconciler.tasks.noop",
            "queue": "default",
            "idempotency_key": run_id,
            "updated_at": now,
        }
        for run_id, slot in zip(ids, slots, strict=True)
    ]


def _batches(items: list[bytes], size: int) -> list[list[bytes]]:
    return [items[start : start + size] for start in range(0, len(items), size)]


if __name__ == "__main__":
    main()
