"""What a daemon's watch pass reads to learn whether the tables changed, timed on one
connection, alternated round by round (medians), with the server's CPU for each (the
backend's utime + stime from /proc: PostgreSQL runs on this machine): the fingerprint's
two scans (every watch pass before the change counts), the scheduler's scan alone (a
pass whose inventory count moved not: the scheduler fired; what every such pass read
before the daemon's own write-backs explained the counts), the change counts in two
statements (before) and in one with the snapshot (store.own_writes: what a pass reads
now when only our own scheduler wrote). Parallel query is turned off for the session
(`max_parallel_workers_per_gather = 0`), so that a statement's CPU is all its backend's.

    .venv/bin/python bench/fingerprint_scans.py DATABASE_NAME [ROUNDS]

DATABASE_NAME: a database of bench_scale.py's (its --workdir's bench.env), migrated."""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

import sqlalchemy as sa

from reconciler.store import fingerprint as fp
from reconciler.store.change_counts import read_change_counts


def backend_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{sys.argv[1]}"
engine = sa.create_engine(url)
rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 15
labels = (
    "both scans",
    "scheduler scan only",
    "change counts, 2 statements",
    "change counts, 1 statement",
)
times: dict[str, list[float]] = {label: [] for label in labels}
cpu: dict[str, float] = dict.fromkeys(labels, 0.0)
with engine.connect() as c:
    pid = c.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
    c.execute(sa.text("SET max_parallel_workers_per_gather = 0"))
    c.commit()
    inv = fp.read_fingerprint(c).inventory
    for _ in range(rounds):
        for label in times:
            t, used = time.perf_counter(), backend_cpu(pid)
            if label.startswith("both"):
                fp.read_fingerprint_since(c, None)
            elif label.startswith("scheduler"):
                fp.read_fingerprint_since(c, None, inventory=inv)
            else:
                read_change_counts(c, known=label.endswith("1 statement"))
            times[label].append(time.perf_counter() - t)
            cpu[label] += backend_cpu(pid) - used
        c.rollback()
for label, ts in times.items():
    median, least = statistics.median(ts) * 1000, min(ts) * 1000
    server = cpu[label] / len(ts) * 1000
    print(
        f"{label:28s} median {median:7.1f} ms  min {least:7.1f} ms  "
        f"server CPU {server:6.1f} ms  (n={len(ts)})"
    )
print(f"load {os.getloadavg()[0]:.1f}")
