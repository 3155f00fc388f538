"""What a daemon's watch pass reads to learn whether the tables changed, timed on one
connection, alternated round by round (medians): the fingerprint's two scans (every
watch pass before the change counts), the scheduler's scan alone (a pass whose
inventory count did not move: the scheduler fired), the change counts alone (nobody
wrote either table).

    .venv/bin/python bench/fingerprint_scans.py DATABASE_NAME [ROUNDS]

DATABASE_NAME: a database of bench_scale.py's (its --workdir's bench.env), migrated."""

from __future__ import annotations

import os
import statistics
import sys
import time

import sqlalchemy as sa

from reconciler.store import fingerprint as fp
from reconciler.store.change_counts import read_change_counts

url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{sys.argv[1]}"
engine = sa.create_engine(url)
rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 15
labels = ("both scans (before)", "scheduler scan only", "change counts")
times: dict[str, list[float]] = {label: [] for label in labels}
with engine.connect() as c:
    inv = fp.read_fingerprint(c).inventory
    for _ in range(rounds):
        for label in times:
            t = time.perf_counter()
            if label.startswith("both"):
                fp.read_fingerprint_since(c, None)
            elif label.startswith("scheduler"):
                fp.read_fingerprint_since(c, None, inventory=inv)
            else:
                read_change_counts(c)
            times[label].append(time.perf_counter() - t)
        c.rollback()
for label, ts in times.items():
    median, least = statistics.median(ts) * 1000, min(ts) * 1000
    print(f"{label:24s} median {median:7.1f} ms  min {least:7.1f} ms  (n={len(ts)})")
print(f"load {os.getloadavg()[0]:.1f}")
