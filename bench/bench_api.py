"""Benchmark of the read-only API: `reconcile api` (one uvicorn worker) on PostgreSQL with
10,000 jobs and 100,000 runs, beside a bare FastAPI endpoint served the same way (the
framework's ceiling on this machine).

    .venv/bin/python bench/bench_api.py [--duration 15] [--connections 16]

Needs PostgreSQL on 127.0.0.1:5432 (user postgres, trust). Creates a fresh database and
drops it afterwards. Load: wrk when installed (`apt-get install -y wrk`), else a bounded
httpx async load generator. Targets (issue 6): list >= 1,500 req/s with p99 <= 50 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from benchdb import create_database, drop_database

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from reconciler.store.db import create_sync_engine  # noqa: E402
from reconciler.store.migrate import upgrade_database  # noqa: E402
from reconciler.store.tables import apscheduler_jobs, job_runs, scheduled_jobs  # noqa: E402

PG_BASE = os.environ.get("BENCH_PG_BASE", "postgresql://postgres@127.0.0.1:5432")
JOBS, RUNS = 10_000, 100_000
QUEUES = ("default", "high_priority", "low_priority", "scheduled")

BARE_APP = """
from fastapi import FastAPI
app = FastAPI()

@app.get("/constant")
async def constant() -> dict[str, str]:
    return {"status": "ok"}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def job_name(index: int) -> str:
    return f"job-{index:05d}"


def seed(url: str) -> None:
    """10,000 jobs (with their scheduler rows) and 100,000 runs, by executemany."""
    now = datetime.now(UTC)
    rng = random.Random(6)
    jobs, aps = [], []
    for index in range(JOBS):
        name = job_name(index)
        queue = QUEUES[index % 4]
        labels = {"team": f"team-{index % 20}", "env": "prod" if index % 3 else "staging"}
        spec = {
            "name": name,
            "task": "reconciler.tasks.echo",
            "schedule": {"cron": f"{index % 60} * * * *"},
            "args": [index],
            "kwargs": {"api_key": "s3cret", "batch": index},
            "queue": queue,
            "timezone": "UTC",
            "labels": labels,
        }
        jobs.append(
            {
                "name": name,
                "spec": spec,
                "spec_hash": f"{index:064d}",
                "task": spec["task"],
                "queue": queue,
                "labels": labels,
                "status": "paused" if index % 10 == 0 else "active",
                "source_file": f"team-{index % 20}/jobs-{index // 100}.yaml",
                "source_line": 1 + (index % 100) * 12,
                "revision": "0" * 40,
                "created_at": now,
                "updated_at": now,
            }
        )
        aps.append(
            {
                "id": name,
                "next_run_time": None if index % 10 == 0 else now.timestamp() + index,
                "job_state": b"\x80\x04N.",
            }
        )
    runs = []
    for number in range(RUNS):
        index = number % JOBS
        slot = now - timedelta(minutes=number // JOBS + 1, seconds=index % 60)
        runs.append(
            {
                "id": str(uuid.uuid4()),
                "job_name": job_name(index),
                "scheduled_time": slot,
                "status": rng.choice(("succeeded", "succeeded", "succeeded", "failed")),
                "task": "reconciler.tasks.echo",
                "queue": QUEUES[index % 4],
                "idempotency_key": f"k{number}",
                "revision": "0" * 40,
                "fired_at": slot,
                "published_at": slot,
                "started_at": slot,
                "finished_at": slot + timedelta(seconds=1),
                "lateness_seconds": 0.01,
                "worker": "w1",
                "result_summary": '{"ok": true}',
                "updated_at": now,
            }
        )
    engine = create_sync_engine(url)
    with engine.begin() as connection:
        connection.execute(sa.insert(scheduled_jobs), jobs)
        connection.execute(sa.insert(apscheduler_jobs), aps)
        for start in range(0, RUNS, 20_000):
            connection.execute(sa.insert(job_runs), runs[start : start + 20_000])
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        postgres = connection.dialect.name == "postgresql"
        connection.execute(sa.text("VACUUM ANALYZE" if postgres else "ANALYZE"))
    engine.dispose()


def start_server(command: list[str], port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code in (200, 404):
                return process
        except httpx.HTTPError:
            time.sleep(0.2)
    process.terminate()
    raise SystemExit(
        f"server did not start: {process.stderr.read().decode() if process.stderr else ''}"
    )


def stop_server(process: subprocess.Popen[bytes]) -> int:
    process.terminate()  # SIGTERM: the server must stop cleanly
    return process.wait(timeout=20)


def run_wrk(
    url: str, *, duration: int, connections: int, script: str | None
) -> tuple[float, float]:
    command = ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", "--timeout", "5s"]
    if script:
        command += ["-s", script]
    output = subprocess.run([*command, url], capture_output=True, text=True, check=True).stdout
    found = re.search(r"Requests/sec:\s+([\d.]+)", output)
    assert found is not None, output
    rps = float(found.group(1))
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)\b", output)
    assert p99 is not None, output
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99.group(2)]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if errors:
        raise SystemExit(f"{errors.group(1)} non-2xx responses from {url}")
    return rps, float(p99.group(1)) * scale


async def run_httpx(urls: list[str], *, duration: int, connections: int) -> tuple[float, float]:
    """Fallback load generator: `connections` workers, each a closed loop, for `duration` s."""
    latencies: list[float] = []
    deadline = time.monotonic() + duration
    limits = httpx.Limits(max_connections=connections)
    async with httpx.AsyncClient(limits=limits, timeout=5) as client:

        async def worker() -> None:
            while time.monotonic() < deadline:
                started = time.perf_counter()
                response = await client.get(random.choice(urls))
                response.raise_for_status()
                latencies.append((time.perf_counter() - started) * 1000)

        started = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(connections)))
        elapsed = time.monotonic() - started
    return len(latencies) / elapsed, statistics.quantiles(latencies, n=100)[98]


def load(
    base: str, path: str, *, random_job: bool, args: argparse.Namespace, tmp: Path
) -> tuple[float, float]:
    if shutil.which("wrk") and not args.httpx:
        script = None
        if random_job:
            script = str(tmp / "random_job.lua")
            Path(script).write_text(
                "request = function()\n"
                '  local name = string.format("job-%05d", math.random(0, '
                f"{JOBS - 1}))\n"
                '  return wrk.format("GET", "/api/v1/jobs/" .. name)\n'
                "end\n"
            )
        return run_wrk(
            base + path, duration=args.duration, connections=args.connections, script=script
        )
    urls = (
        [f"{base}/api/v1/jobs/{job_name(i)}" for i in range(JOBS)] if random_job else [base + path]
    )
    return asyncio.run(run_httpx(urls, duration=args.duration, connections=args.connections))


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


Result = tuple[str, float, float, float]  # label, req/s, p99 ms, server CPU ms per request


def measure(
    label: str, server: subprocess.Popen[bytes], base: str, path: str, **options: Any
) -> Result:
    """Warm up, then load `path`; also the server's CPU per request, which is what one
    free core would turn into req/s on a machine that other work is not sharing."""
    load(base, path, **options)  # warm-up: pools, prepared statements, caches
    before = cpu_seconds(server.pid)
    rps, p99 = load(base, path, **options)
    used = cpu_seconds(server.pid) - before
    requests = rps * options["args"].duration
    return label, rps, p99, used * 1000 / max(requests, 1)


def bench_api(url: str, args: argparse.Namespace, tmp: Path) -> list[Result]:
    port = free_port()
    env = {**os.environ, "RECONCILER_DATABASE_URL": url, "RECONCILER_LOG_LEVEL": "WARNING"}
    reconcile = str(Path(sys.executable).parent / "reconcile")
    server = start_server([reconcile, "api", "--port", str(port), "--no-access-log"], port, env)
    base = f"http://127.0.0.1:{port}"
    try:
        return [
            measure(
                "GET /api/v1/jobs?limit=100",
                server,
                base,
                "/api/v1/jobs?limit=100",
                random_job=False,
                args=args,
                tmp=tmp,
            ),
            measure(
                "GET /api/v1/jobs/{name} (random of 10,000)",
                server,
                base,
                "/api/v1/jobs/job-00000",
                random_job=True,
                args=args,
                tmp=tmp,
            ),
        ]
    finally:
        print(f"reconcile api stopped on SIGTERM with exit code {stop_server(server)}")


def bench_bare(args: argparse.Namespace, tmp: Path) -> Result:
    port = free_port()
    (tmp / "bare.py").write_text(BARE_APP)
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "bare:app",
        "--app-dir",
        str(tmp),
        "--port",
        str(port),
        "--workers",
        "1",
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    server = start_server(command, port, dict(os.environ))
    try:
        return measure(
            "bare FastAPI constant (ceiling)",
            server,
            f"http://127.0.0.1:{port}",
            "/constant",
            random_job=False,
            args=args,
            tmp=tmp,
        )
    finally:
        stop_server(server)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=15, help="seconds per scenario")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--httpx", action="store_true", help="use the httpx load generator")
    args = parser.parse_args()
    tool = "wrk" if shutil.which("wrk") and not args.httpx else "httpx"
    name = create_database()
    url = f"{PG_BASE}/{name}"
    load_before = os.getloadavg()[0]
    try:
        started = time.monotonic()
        upgrade_database(url)
        seed(url)
        print(f"seeded {JOBS} jobs and {RUNS} runs in {time.monotonic() - started:.1f} s")
        with tempfile.TemporaryDirectory() as folder:
            results = [*bench_api(url, args, Path(folder)), bench_bare(args, Path(folder))]
    finally:
        drop_database(name)
    print(
        f"\nload: {tool}, {args.connections} connections, {args.duration} s per scenario; "
        f"machine: {os.cpu_count()} cores, load average {load_before:.1f} before, "
        f"{os.getloadavg()[0]:.1f} after\n"
    )
    print("| scenario | req/s | p99 (ms) | server CPU per request (ms) |")
    print("| --- | ---: | ---: | ---: |")
    for label, rps, p99, cpu in results:
        print(f"| {label} | {rps:,.0f} | {p99:.1f} | {cpu:.2f} |")
    summary = {
        label: {"rps": round(rps), "p99_ms": round(p99, 2), "cpu_ms_per_request": round(cpu, 3)}
        for label, rps, p99, cpu in results
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
