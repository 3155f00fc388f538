"""One scrape of the daemon's /metrics at 10,000 and 100,000 jobs (issue 15, item 6).

    .venv/bin/python bench/bench_scrape.py [--jobs 10000,100000] [--scrapes 5] [--before-scrapes 1]
        [--compare-with DIR]

Per job count, in a fresh process: the daemon's per-job series made as the daemon makes
them (`metrics.track_job` with the corpus's job names: bench/corpus.py; a fire for half
of the jobs), served by the daemon's own server (`observability.start_metrics_server`,
reconciler.exposition) and, side by side on the same registry, by prometheus_client's
`start_http_server` (the path before). curl scrapes both over loopback as Prometheus
does (its Accept header, `Accept-Encoding: gzip`) and as a person does (no headers:
the text format). Before each warm scrape 1 % of the jobs fire (a counter incremented,
the next fire moved), as between two scrapes of a busy leader.

Figures: the serving process's CPU time per scrape (user + system, every thread:
`time.process_time`; curl runs in its own process), wall time, bytes sent, the load
average; the RSS after filling and after the scrapes, and the peak (VmHWM) then. gzip of
the whole text is measured in-process at level 1 (what the daemon uses off loopback) and
9 (prometheus_client's level).

`--compare-with DIR` measures the daemon's server of the checkout DIR too (its
`reconciler` package, this bench's code), in its own process just before this one's, per
job count: side by side at about the same load.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import resource
import socket
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0;escaping=underscores,"
    "application/openmetrics-text;version=0.0.1;q=0.75,"
    "text/plain;version=1.0.0;escaping=underscores;q=0.5,*/*;q=0.1"
)


def load() -> str:
    return Path("/proc/loadavg").read_text().split()[0]


def rss_mb() -> float:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def scrape(port: int, *, prometheus: bool) -> dict[str, object]:
    """One curl scrape; the server's CPU time across it."""
    headers = ["-H", f"Accept: {PROMETHEUS_ACCEPT}", "-H", "Accept-Encoding: gzip"]
    command = ["curl", "-sS", "-o", "/dev/null", "-w", "%{size_download}"]
    command += (headers if prometheus else []) + [f"http://127.0.0.1:{port}/metrics"]
    cpu, wall, at = time.process_time(), time.perf_counter(), load()
    size = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return {
        "cpu": time.process_time() - cpu,
        "wall": time.perf_counter() - wall,
        "bytes": int(size),
        "load": at,
    }


def fill(jobs: int, rng: random.Random) -> list[str]:
    from reconciler import metrics

    names = [f"job-{number:05d}" for number in range(jobs)]
    now = time.time()
    for number, name in enumerate(names):
        interval = None if number % 10 == 9 else float(60 * (number % 120 + 1))
        metrics.track_job(name, interval_seconds=interval, next_fire=now + rng.random() * 86400)
    for name in rng.sample(names, jobs // 2):
        metrics.FIRES.labels(name, "published").inc()
    return names


def fire_some(names: list[str], rng: random.Random, share: float = 0.01) -> None:
    from reconciler import metrics

    for name in rng.sample(names, int(len(names) * share)):
        metrics.FIRES.labels(name, "published").inc()
        metrics.NEXT_FIRE.labels(name).set(time.time() + rng.random() * 60)


def measure(jobs: int, scrapes: int, before_scrapes: int) -> dict[str, object]:
    from prometheus_client import start_http_server

    from reconciler import metrics
    from reconciler.exposition import expose, gzip_chunks
    from reconciler.observability import start_metrics_server

    rng = random.Random(jobs)
    cpu = time.process_time()
    names = fill(jobs, rng)
    result: dict[str, object] = {"jobs": jobs, "fill_cpu": time.process_time() - cpu}
    result["rss_filled_mb"] = rss_mb()
    registry = metrics.only(metrics.DAEMON_METRICS)
    after_port, before_port = free_port(), free_port()
    server = start_metrics_server(after_port, registry=registry)
    assert server is not None
    start_http_server(before_port, addr="127.0.0.1", registry=registry)

    after: dict[str, object] = {"cold": scrape(after_port, prometheus=True)}
    warm = []
    for _ in range(scrapes):
        fire_some(names, rng)
        warm.append(scrape(after_port, prometheus=True))
    after["warm"] = warm
    fire_some(names, rng)
    after["text_cold"] = scrape(after_port, prometheus=False)
    fire_some(names, rng)
    after["text_warm"] = scrape(after_port, prometheus=False)
    result["after"] = after
    result["rss_after_mb"] = rss_mb()
    result["peak_after_mb"] = peak_mb()

    from prometheus_client.openmetrics.exposition import generate_latest as openmetrics

    text = b"".join(expose(registry, openmetrics))
    for level in (1, 9):
        cpu = time.process_time()
        size = len(gzip_chunks([text], level) if level == 1 else gzip.compress(text, level))
        result[f"gzip{level}"] = {"cpu": time.process_time() - cpu, "bytes": size}
    del text

    result["before"] = [
        scrape(before_port, prometheus=prometheus)
        for _ in range(before_scrapes)
        for prometheus in (True, False)
    ]
    result["maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    server.close()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", default="10000,100000")
    parser.add_argument("--scrapes", type=int, default=5)
    parser.add_argument("--before-scrapes", type=int, default=1)
    parser.add_argument("--compare-with", metavar="DIR", help="a checkout measured beside")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--build", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        if args.build:  # that checkout's package, not this one's
            sys.path.insert(0, args.build)
        print(json.dumps(measure(args.one, args.scrapes, args.before_scrapes)))
        return
    builds = [*([args.compare_with] if args.compare_with else []), None]
    for jobs in map(int, args.jobs.split(",")):
        for build in builds:
            command = [sys.executable, __file__, "--one", str(jobs)]
            command += ["--scrapes", str(args.scrapes)]
            command += ["--before-scrapes", str(args.before_scrapes)]
            command += ["--build", build] if build else []
            out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
            print(f"\n### {build or 'this checkout'}")
            report(json.loads(out))


def report(result: dict[str, object]) -> None:
    def line(label: str, figure: dict[str, object]) -> None:
        print(
            f"| {label} | {figure['cpu']:.3f} s | {figure['wall']:.3f} s | "
            f"{int(figure['bytes']):,} | {figure['load']} |"  # type: ignore[call-overload]
        )

    print(
        f"\n{result['jobs']:,} jobs (fill {result['fill_cpu']:.1f} s CPU, "
        f"RSS {result['rss_filled_mb']:.0f} MB filled, {result['rss_after_mb']:.0f} MB after "
        f"the new path's scrapes (peak {result['peak_after_mb']:.0f} MB then), peak "
        f"{result['maxrss_mb']:.0f} MB at the end)\n"
    )
    print("| scrape | server CPU | wall | bytes sent | load |")
    print("| --- | ---: | ---: | ---: | ---: |")
    before = result["before"]
    after = result["after"]
    assert isinstance(before, list) and isinstance(after, dict)
    for number, figure in enumerate(before):
        line(
            "before, as Prometheus (OpenMetrics, gzip 9)"
            if number % 2 == 0
            else "before, text format (curl)",
            figure,
        )
    line("after, first scrape (every job rendered), as Prometheus", after["cold"])
    for figure in after["warm"]:
        line("after, 1 % of jobs changed, as Prometheus (loopback: no gzip)", figure)
    line("after, text format first (its own kept lines)", after["text_cold"])
    line("after, text format, 1 % changed", after["text_warm"])
    for level in (1, 9):
        figure = result[f"gzip{level}"]
        assert isinstance(figure, dict)
        print(
            f"| gzip level {level} of the whole text (in-process) | {figure['cpu']:.3f} s | | "
            f"{figure['bytes']:,} | |"
        )


if __name__ == "__main__":
    main()
