"""The reads at scale (issue 15, item 6): step 4 of bench_scale.py, or alone on a database
already built (`bench_scale.py --api-only URL`).

A realistic ledger first (`seed_runs`: RUNS_PER_JOB runs for every job, newest slot
first, some failed, missed or still running), since the list shows each job's newest
run. Then, as users run them, whole processes over loopback:

- `reconcile api` with its micro-cache off (RECONCILER_API_CACHE_SECONDS=0), sequential
  requests per scenario: the job list walking pages by cursor (a new walk from a random
  position every WALK pages, so that deep pages are measured too), filtered by label
  (common and matching nothing), status, queue and name prefix, with `include_total`;
  one job by name; the status endpoint `/api/v1/reconciler`. Latency p50 / p99 / max
  and the server's CPU per request (user + system from /proc, over the scenario).
- the CLI's read commands: `get jobs`, `get jobs -o json`, `status`, `status -o json`;
  median wall and CPU (user + system of the child) over REPEAT runs.

`--compare-with DIR` runs a second build (another checkout's `reconciler` package, put
first on PYTHONPATH) beside this one: both API servers run at once and every scenario is
measured on each in turn, so the two columns share the machine's load.
"""

from __future__ import annotations

import os
import random
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from bench_api import free_port, start_server, stop_server
from bench_daemon import memory_mb, percentile

RECONCILE = str(Path(sys.executable).parent / "reconcile")
WALK = 20  # pages per cursor walk before a new walk starts at a random position
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

# RUNS_PER_JOB runs per job, ten minutes apart; the newest of one job in 17 still
# running (`started`), about 4 % failed and 2.5 % missed.
SEED_RUNS = """
INSERT INTO job_runs (id, job_name, scheduled_time, status, task, queue, idempotency_key,
                      fired_at, published_at, started_at, finished_at, lateness_seconds,
                      updated_at)
SELECT md5(j.name || ':' || k)::uuid::text, j.name,
       now() - make_interval(mins => 10 * k + (hashtext(j.name) & 7)),
       CASE WHEN k = 0 AND hashtext(j.name) % 17 = 0 THEN 'started'
            WHEN (hashtext(j.name) + k) % 23 = 0 THEN 'failed'
            WHEN (hashtext(j.name) + k) % 41 = 0 THEN 'missed'
            ELSE 'succeeded' END,
       j.task, j.queue, j.name || ':' || k,
       now() - make_interval(mins => 10 * k), now() - make_interval(mins => 10 * k),
       now() - make_interval(mins => 10 * k),
       CASE WHEN k = 0 AND hashtext(j.name) % 17 = 0 THEN NULL
            ELSE now() - make_interval(mins => 10 * k) + interval '2 seconds' END,
       0.01, now()
FROM scheduled_jobs AS j CROSS JOIN generate_series(0, :last) AS k
ON CONFLICT DO NOTHING
"""


def load() -> str:
    return f"load {os.getloadavg()[0]:.1f}"


def seed_runs(engine: sa.Engine, per_job: int) -> None:
    started = time.monotonic()
    with engine.begin() as connection:
        connection.execute(sa.text(SEED_RUNS), {"last": per_job - 1})
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(sa.text("ANALYZE"))
        runs = connection.execute(sa.text("SELECT count(*) FROM job_runs")).scalar()
    print(f"ledger: {runs:,} job_runs rows ({time.monotonic() - started:.1f} s)   [{load()}]")


@dataclass(frozen=True)
class Build:
    """A build to measure: `source` is a checkout put first on PYTHONPATH (None: this one)."""

    label: str
    source: str | None

    def env(self, url: str) -> dict[str, str]:
        env = {
            **os.environ,
            "RECONCILER_DATABASE_URL": url,
            "RECONCILER_LOG_LEVEL": "WARNING",
            "RECONCILER_API_CACHE_SECONDS": "0",
        }
        if self.source:
            env["PYTHONPATH"] = self.source
        return env


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime


def job_names(engine: sa.Engine) -> list[str]:
    with engine.connect() as connection:
        return list(connection.execute(sa.text("SELECT name FROM scheduled_jobs")).scalars())


Request = Callable[[httpx.Client, str], httpx.Response]


def list_walk(params: list[tuple[str, str]], names: list[str], rng: random.Random) -> Request:
    """GET /api/v1/jobs with `params`, following next_cursor; every WALK pages (and at the
    end of the list) a new walk starts after a random job name."""
    from reconciler.api.cursor import encode_cursor

    state: dict[str, Any] = {"cursor": None, "pages": 0}

    def request(client: httpx.Client, base: str) -> httpx.Response:
        query = params + ([("cursor", state["cursor"])] if state["cursor"] else [])
        response = client.get(f"{base}/api/v1/jobs", params=query)
        state["pages"] += 1
        cursor = response.json().get("next_cursor") if response.status_code == 200 else None
        if cursor is None or state["pages"] % WALK == 0:
            cursor = encode_cursor("jobs:name", rng.choice(names))
        state["cursor"] = cursor
        return response

    return request


def one_job(names: list[str], rng: random.Random) -> Request:
    return lambda client, base: client.get(f"{base}/api/v1/jobs/{rng.choice(names)}")


def plain(path: str) -> Request:
    return lambda client, base: client.get(f"{base}{path}")


def scenarios(names: list[str], requests: int) -> list[tuple[str, int, Callable[[], Request]]]:
    """(label, requests, a factory of the request function: each build gets its own
    walk, from the same seed, so both see the same positions)."""

    def walk(*params: tuple[str, str]) -> Callable[[], Request]:
        return lambda: list_walk([("limit", "100"), *params], names, random.Random(15))

    few = max(10, requests // 10)
    return [
        ("list limit=100, pages by cursor", requests, walk()),
        ("list label team=t3", requests, walk(("label", "team=t3"))),
        (
            "list label team=t3 + tier=standard",
            requests,
            walk(("label", "team=t3"), ("label", "tier=standard")),
        ),
        ("list label matching no job", few, walk(("label", "team=nobody"))),
        ("list status=active", requests, walk(("status", "active"))),
        ("list status=paused (none)", few, walk(("status", "paused"))),
        ("list queue=scheduled", requests, walk(("queue", "scheduled"))),
        ("list prefix=job-9", requests, walk(("prefix", "job-9"))),
        (
            "list label team=t3, include_total",
            few,
            walk(("label", "team=t3"), ("include_total", "true")),
        ),
        ("GET /api/v1/jobs/{name} (random)", requests, lambda: one_job(names, random.Random(6))),
        # Reads every job: seconds a request at 100,000 jobs before the lean read.
        ("GET /api/v1/reconciler (status)", 10, lambda: plain("/api/v1/reconciler")),
    ]


def measure(
    request: Request, client: httpx.Client, base: str, pid: int, count: int
) -> dict[str, float]:
    request(client, base).raise_for_status()  # warm-up
    latencies = []
    cpu = cpu_seconds(pid)
    for _ in range(count):
        started = time.perf_counter()
        response = request(client, base)
        latencies.append((time.perf_counter() - started) * 1000)
        response.raise_for_status()
    cpu = cpu_seconds(pid) - cpu
    latencies.sort()
    return {
        "p50": statistics.median(latencies),
        "p99": percentile(latencies, 0.99),
        "max": latencies[-1],
        "cpu": cpu * 1000 / count,
    }


def api_figures(url: str, engine: sa.Engine, requests: int, builds: list[Build]) -> None:
    names = job_names(engine)
    servers = []
    try:
        for build in builds:
            port = free_port()
            command = [RECONCILE, "api", "--port", str(port), "--no-access-log"]
            servers.append((build, port, start_server(command, port, build.env(url))))
        print(
            f"API, uncached, sequential requests over loopback; per build: p50 / p99 / max "
            f"latency (ms), server CPU per request (ms)   [{load()}]"
        )
        header = " | ".join(build.label for build in builds)
        print(f"| scenario | n | {header} |")
        with httpx.Client(timeout=60) as client:
            for label, count, factory in scenarios(names, requests):
                cells = []
                for _build, port, server in servers:
                    got = measure(factory(), client, f"http://127.0.0.1:{port}", server.pid, count)
                    cells.append(
                        f"{got['p50']:.1f} / {got['p99']:.1f} / {got['max']:.1f}, "
                        f"CPU {got['cpu']:.2f}"
                    )
                print(f"| {label} | {count} | {' | '.join(cells)} |   [{load()}]")
        for build, _port, server in servers:
            print(f"API server peak RSS ({build.label}): {memory_mb(server.pid)[1]:.0f} MB")
    finally:
        for _build, _port, server in servers:
            stop_server(server)


CLI_COMMANDS = (
    ("get", "jobs"),
    ("get", "jobs", "-o", "json"),
    ("get", "jobs", "-l", "team=t3"),
    ("status",),
    ("status", "-o", "json"),
)


def cli_figures(
    url: str, repeat: int, builds: list[Build], commands: tuple[tuple[str, ...], ...] = CLI_COMMANDS
) -> None:
    """Each read command as a process, output to a pipe: median wall and CPU (user +
    system) over `repeat` runs, the builds taking turns."""
    print(f"CLI read commands, median of {repeat}: wall s / CPU s (lines)   [{load()}]")
    print(f"| command | {' | '.join(build.label for build in builds)} |")
    for command in commands:
        samples: dict[str, list[tuple[float, float, int]]] = {b.label: [] for b in builds}
        for _ in range(repeat):
            for build in builds:
                before = resource.getrusage(resource.RUSAGE_CHILDREN)
                started = time.monotonic()
                done = subprocess.run(
                    [RECONCILE, *command], env=build.env(url), capture_output=True, check=True
                )
                wall = time.monotonic() - started
                after = resource.getrusage(resource.RUSAGE_CHILDREN)
                cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
                samples[build.label].append((wall, cpu, done.stdout.count(b"\n")))
        cells = []
        for build in builds:
            runs = samples[build.label]
            wall = statistics.median(run[0] for run in runs)
            cpu = statistics.median(run[1] for run in runs)
            cells.append(f"{wall:.3f} / {cpu:.3f} ({runs[0][2]:,})")
        print(f"| `reconcile {' '.join(command)}` | {' | '.join(cells)} |   [{load()}]")
