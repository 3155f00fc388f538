"""The status summary at scale (issue 15): GET /api/v1/reconciler and `reconcile status`
(text and `-o json`) on a database already built, this build beside another checkout's.

    .venv/bin/python bench/bench_status.py URL [--compare-with DIR] [--requests 10] [--repeat 3]

URL: a database `bench/bench_scale.py --steps apply --workdir DIR` built (its name in
DIR/bench.env), with a ledger (`bench/scale_reads.py`'s seed_runs: bench_scale's reads
step seeds it on a fresh workdir). Both API servers run at once with the micro-cache
off; the builds take turns, request by request, so that both columns share the
machine's load: latency p50 / p99 / max and the server's CPU per request. Then each
CLI command as a process, the builds taking turns: median wall and CPU (user + system
of the child) and the lines printed. Each line carries the 1-minute load average.
"""

from __future__ import annotations

import argparse
import statistics
import time

import httpx
from bench_api import free_port, start_server, stop_server
from bench_daemon import percentile
from scale_reads import RECONCILE, Build, cli_figures, cpu_seconds, load

COMMANDS = (("status",), ("status", "-o", "json"))


def api(url: str, builds: list[Build], requests: int) -> None:
    servers = []
    try:
        for build in builds:
            port = free_port()
            command = [RECONCILE, "api", "--port", str(port), "--no-access-log"]
            servers.append((build, port, start_server(command, port, build.env(url))))
        latencies: dict[str, list[float]] = {build.label: [] for build in builds}
        cpu: dict[str, float] = dict.fromkeys(latencies, 0.0)
        with httpx.Client(timeout=120) as client:
            for _build, port, _server in servers:  # warm-up
                client.get(f"http://127.0.0.1:{port}/api/v1/reconciler").raise_for_status()
            for _ in range(requests):
                for build, port, server in servers:
                    before = cpu_seconds(server.pid)
                    started = time.perf_counter()
                    response = client.get(f"http://127.0.0.1:{port}/api/v1/reconciler")
                    latencies[build.label].append((time.perf_counter() - started) * 1000)
                    cpu[build.label] += cpu_seconds(server.pid) - before
                    response.raise_for_status()
        print(f"GET /api/v1/reconciler, {requests} requests per build, uncached   [{load()}]")
        print("| build | p50 / p99 / max (ms) | server CPU per request (ms) |")
        for build in builds:
            got = sorted(latencies[build.label])
            print(
                f"| {build.label} | {statistics.median(got):.1f} / {percentile(got, 0.99):.1f} / "
                f"{got[-1]:.1f} | {cpu[build.label] * 1000 / requests:.1f} |   [{load()}]"
            )
    finally:
        for _build, _port, server in servers:
            stop_server(server)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url")
    parser.add_argument("--compare-with", metavar="DIR")
    parser.add_argument("--requests", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    builds = [Build("this build", None)]
    if args.compare_with:
        builds.insert(0, Build(f"before ({args.compare_with})", args.compare_with))
    api(args.url, builds, args.requests)
    cli_figures(args.url, args.repeat, builds, COMMANDS)


if __name__ == "__main__":
    main()
