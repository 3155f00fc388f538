"""The real processes whose /metrics the observability tests scrape.

Each process is one `Target` in TARGETS: adding a process to the checks is one line.
A target whose command is still the skeleton's placeholder ("... is not available yet")
is left out with a warning; any other failure to start fails the tests. When no real
process serves `reconciler.metrics` at all, a stand-in serves the default registry
through `reconciler.observability.start_metrics_server` (what the daemon uses).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

BIN = Path(sys.executable).parent
NOT_BUILT = "not available yet"
START_TIMEOUT = 20.0


@dataclass(frozen=True)
class Target:
    """A process to start and scrape. `{port}` and the keys of the `context` given to
    `start` (`{db_url}`, `{jobs_dir}`, `{broker_url}`, `{redis_url}`, `{redis_prefix}`)
    are replaced in argv and env. `activity` makes the process observe something."""

    job: str
    argv: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)
    path: str = "/metrics"
    activity: Callable[[str], None] | None = None


def _api_activity(base_url: str) -> None:
    # A few requests, so that the request metrics have series (by route and status).
    for path in ("/health/live", "/api/v1/jobs", "/api/v1/jobs/no-such-job", "/health/live"):
        with contextlib.suppress(urllib.error.HTTPError):
            urllib.request.urlopen(base_url + path, timeout=5).read()


PROCESS_ENV = {
    "RECONCILER_DATABASE_URL": "{db_url}",
    "RECONCILER_JOBS_DIR": "{jobs_dir}",
    "RECONCILER_BROKER_URL": "{broker_url}",
    "RECONCILER_RESULT_BACKEND": "{redis_url}",
    "RECONCILER_REDIS_URL": "{redis_url}",
    "RECONCILER_REDIS_PREFIX": "{redis_prefix}",
    "RECONCILER_METRICS_PORT": "{port}",
    # Frequent full passes: drift provoked by test_metrics_move is repaired within seconds.
    "RECONCILER_RESYNC_INTERVAL": "2",
}

TARGETS: tuple[Target, ...] = (
    Target(
        "reconciler-api",
        ("reconcile", "api", "--host", "127.0.0.1", "--port", "{port}", "--no-access-log"),
        env=PROCESS_ENV,
        activity=_api_activity,
    ),
    Target("reconciler-daemon", ("reconcile", "run"), env=PROCESS_ENV),
    Target(
        "reconciler-worker",
        ("reconcile", "worker", "--concurrency", "2", "--loglevel", "WARNING"),
        env=PROCESS_ENV,
    ),
)


def selected_targets() -> tuple[Target, ...]:
    """TARGETS, or those named in $OBS_TARGETS (comma list of jobs: to debug one)."""
    chosen = os.environ.get("OBS_TARGETS")
    if not chosen:
        return TARGETS
    names = {name.strip() for name in chosen.split(",")}
    return tuple(target for target in TARGETS if target.job in names)


# The stand-in: the daemon's exposition helper serving the default registry.
STAND_IN = Target(
    "reconciler-stand-in",
    (
        str(BIN / "python"),
        "-c",
        "import time, reconciler.metrics; from reconciler.observability import "
        "start_metrics_server; start_metrics_server({port}, '127.0.0.1'); time.sleep(3600)",
    ),
)


@dataclass
class Running:
    target: Target
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def metrics_url(self) -> str:
        return self.base_url + self.target.path

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


@dataclass(frozen=True)
class Fleet:
    """The processes that run, and the targets left out (placeholder commands)."""

    running: list[Running]
    not_built: list[str]
    context: Mapping[str, str] = field(default_factory=dict)

    def get(self, job: str) -> Running | None:
        return next((r for r in self.running if r.target.job == job), None)

    def expositions(self) -> dict[str, str]:
        return {running.target.job: scrape(running.metrics_url) for running in self.running}


class NotBuilt(Exception):
    """The target's command is the skeleton's placeholder."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start(
    target: Target, *, context: Mapping[str, str], log_dir: Path, port: int | None = None
) -> Running:
    """Start the target (on `port`, default a free one) and wait until its metrics answer.

    Raises NotBuilt for a placeholder command, RuntimeError (with the log's tail) when
    the process exits or does not answer within START_TIMEOUT."""
    port = port or free_port()
    values = {**context, "port": str(port)}
    argv = [_executable(part.format(**values)) for part in target.argv]
    env = {**os.environ, **{key: value.format(**values) for key, value in target.env.items()}}
    log = log_dir / f"{target.job}.log"
    with log.open("ab") as sink:
        process = subprocess.Popen(
            argv, env=env, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True
        )
    running = Running(target, process, port, log)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = log.read_text(errors="replace")
            if NOT_BUILT in output:
                raise NotBuilt(output.strip())
            raise RuntimeError(f"{target.job} exited {process.returncode}:\n{output[-3000:]}")
        try:
            urllib.request.urlopen(running.metrics_url, timeout=2).read()
        except OSError:
            time.sleep(0.2)
            continue
        if target.activity is not None:
            target.activity(running.base_url)
        return running
    stop(running)
    raise RuntimeError(
        f"{target.job}: no {target.path} on port {port} after {START_TIMEOUT:.0f} s:\n"
        + log.read_text(errors="replace")[-3000:]
    )


def stop(running: Running) -> None:
    """SIGTERM to the process group of the target (a worker's pool children too)."""
    if running.process.poll() is None:
        os.killpg(running.process.pid, signal.SIGTERM)
        try:
            running.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(running.process.pid, signal.SIGKILL)
            running.process.wait(timeout=5)


def scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return str(response.read().decode())


def exported_names(exposition: str) -> set[str]:
    """Every series name a query may use, from one exposition: the samples present, and
    for families without samples yet (labelled, never observed) the names their type
    implies."""
    names: set[str] = set()
    for family in text_string_to_metric_families(exposition):
        names.update(sample.name for sample in family.samples)
        names.update(_implied_names(family.name, family.type))
    return names


def sampled_names(exposition: str) -> set[str]:
    """The series names that have at least one sample in the exposition."""
    return {
        sample.name
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
    }


def _implied_names(name: str, kind: str) -> Iterable[str]:
    suffixes = {
        "counter": ("_total",),
        "gauge": ("",),
        "histogram": ("_bucket", "_sum", "_count"),
        "summary": ("", "_sum", "_count"),
        "info": ("_info",),
    }.get(kind, ("",))
    return (name + suffix for suffix in suffixes)


def _executable(part: str) -> str:
    # `reconcile` of this virtual environment, whatever PATH says.
    return str(BIN / part) if part == "reconcile" else part
