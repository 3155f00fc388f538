"""The real daemon's watch passes, in-process, with the CPU they cost (load-independent
enough to compare builds on a busy machine; bench_scale.py gives wall times only).

    .venv/bin/python bench/daemon_passes.py WORKDIR [--touches 30] [--edits 4]

WORKDIR: a `bench_scale.py --workdir` folder (its database applied, bench.env). Runs
`reconcile run --no-migrate` of THIS interpreter's reconciler in this process on it
(RESYNC_INTERVAL one hour), then touches one file every 1.5 s (no-op passes) and edits
another one every 3 s (applying passes; the file is put back at the end). Each watch
pass is timed around `reconcile_once`: wall, the main thread's CPU (the pass itself),
the process's CPU (the firing threads too), and the CPU the database's backends used
meanwhile (/proc; the scheduler's write-backs included). Passes are grouped by outcome
and by whether the scheduler's rows were read or patched in them (the scheduler fired
since the last pass, in this corpus every few seconds) or not; medians per group, and
how often each way of reading the scheduler's rows was taken. To compare two builds,
run it with each checkout's own venv, alternated (the other build's
`DIR/.venv/bin/python bench/daemon_passes.py WORKDIR`).
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from corpus import file_path

# How a pass may read the scheduler's rows (the names a build has are counted).
READERS = ("patch_own_writes", "patch_scheduler_rows", "read_scheduler_rows")
COUNTED = (*READERS, "read_fingerprint_since")


def backends_cpu(engine: sa.Engine, database: str) -> float:
    """User + system CPU seconds of every backend of `database` but the asking one."""
    query = sa.text(
        "SELECT pid FROM pg_stat_activity WHERE datname = :d AND pid <> pg_backend_pid()"
    )
    with engine.connect() as connection:
        pids = [pid for (pid,) in connection.execute(query, {"d": database})]
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # ended meanwhile
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def count_calls(module: Any, calls: Counter[str]) -> None:
    for name in COUNTED:
        real = getattr(module, name, None)
        if real is not None:
            setattr(module, name, _counting(real, name, calls))


def _counting(real: Callable[..., Any], name: str, calls: Counter[str]) -> Callable[..., Any]:
    def counted(*args: Any, **kwargs: Any) -> Any:
        calls[name] += 1
        return real(*args, **kwargs)

    return counted


def drive(jobs: Path, touches: int, edits: int, ready: threading.Event) -> None:
    """Touches, then edits, then SIGTERM to this process (the daemon stops cleanly)."""
    ready.wait(900)
    time.sleep(5)
    touched = file_path(jobs, 17)
    for _ in range(touches):
        time.sleep(1.5)
        touched.touch()
    target = file_path(jobs, 10_000 * 3 // 7)
    original = target.read_text()
    try:
        for number in range(edits):
            time.sleep(3)
            marked = f'description: "passes{number} job'
            target.write_text(original.replace('description: "generated job', marked))
        time.sleep(3)
    finally:
        target.write_text(original)
    time.sleep(3)
    os.kill(os.getpid(), signal.SIGTERM)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("workdir", type=Path)
    parser.add_argument("--touches", type=int, default=30)
    parser.add_argument("--edits", type=int, default=4)
    args = parser.parse_args()
    name, vhost = (args.workdir / "bench.env").read_text().split()
    url = f"postgresql://postgres@127.0.0.1:5432/{name}"
    jobs = args.workdir / "jobs.d"
    os.environ.update(
        RECONCILER_DATABASE_URL=url,
        RECONCILER_JOBS_DIR=str(jobs),
        RECONCILER_BROKER_URL=f"amqp://guest:guest@127.0.0.1:5672/{vhost}",
        RECONCILER_METRICS_PORT="0",
        RECONCILER_LOG_LEVEL="ERROR",
        RECONCILER_RESYNC_INTERVAL="3600",
    )
    from reconciler.cli import main as reconcile
    from reconciler.core.vocabulary import Trigger
    from reconciler.engine import daemon as daemon_module
    from reconciler.engine import reconcile as reconcile_module

    admin = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    calls: Counter[str] = Counter()
    count_calls(reconcile_module, calls)
    figures: dict[str, list[tuple[float, float, float, float]]] = {}
    ready = threading.Event()
    real = daemon_module.reconcile_once

    def measured(*positional: Any, **options: Any) -> Any:
        if options.get("trigger") != Trigger.WATCH:
            result = real(*positional, **options)
            ready.set()
            return result
        read_before = sum(calls[reader] for reader in READERS)
        server = backends_cpu(admin, name)
        wall, thread, process = time.perf_counter(), time.thread_time(), time.process_time()
        result = real(*positional, **options)
        row = (
            time.perf_counter() - wall,
            time.thread_time() - thread,
            time.process_time() - process,
            backends_cpu(admin, name) - server,
        )
        moved = sum(calls[reader] for reader in READERS) > read_before
        group = f"{result.outcome.value}, " + ("rows moved since" if moved else "nothing moved")
        figures.setdefault(group, []).append(row)
        return result

    daemon_module.reconcile_once = measured  # type: ignore[assignment]
    threading.Thread(
        target=drive, args=(jobs, args.touches, args.edits, ready), daemon=True
    ).start()
    code = reconcile(["run", "--no-migrate"])
    for group, rows in sorted(figures.items()):
        wall, thread, process, server = (
            statistics.median(column) for column in zip(*rows, strict=True)
        )
        print(
            f"{group:34s} n={len(rows):2d}  median wall {wall:.3f} s  pass CPU {thread:.3f} s  "
            f"process CPU {process:.3f} s  database CPU {server:.3f} s"
        )
    print(f"scheduler rows read by: {dict(calls)}   load {os.getloadavg()[0]:.1f}")
    admin.dispose()
    sys.exit(code)


if __name__ == "__main__":
    main()
