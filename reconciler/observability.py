"""Serving the metrics of `reconciler.metrics` over HTTP, one way per kind of process.

- The daemon (one process): `start_metrics_server(port, host)` serves the default
  registry on `http://host:port/metrics` from a daemon thread.
- A Celery worker (a prefork pool: the main process forks children that do the work):
  every process writes its samples to files in a shared folder (prometheus_client's
  multiprocess mode) and the main process serves their sum. The order matters:
    1. `enable_multiprocess_mode()` in the main process BEFORE anything imports
       `reconciler.metrics` (the metrics choose their storage when they are created);
    2. `setup_worker_metrics(port, host)` in the main process (Celery's `worker_init`
       signal, i.e. before the pool forks);
    3. `on_worker_child_exit(pid)` when a pool child exits (Celery's
       `worker_process_shutdown` signal, which runs in the exiting child), so that the
       gauges of dead children (`live*` modes) stop being reported.
  `install_worker_hooks(port=..., host=...)` connects 2 and 3 to Celery's signals.
- The API serves `/metrics` itself (`render_latest()` gives the body and content type).

Errors: `enable_multiprocess_mode` raises `RuntimeError` when it is called too late
(metrics already created in single-process mode); the servers raise `OSError` when the
port is taken.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIServer

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# Files of prometheus_client's multiprocess mode: counter_123.db, gauge_livemax_123.db ...
_SAMPLE_FILE = re.compile(r"^[a-z]+(?:_[a-z]+)?_(\d+)\.db$")


@dataclass(frozen=True)
class MetricsServer:
    """A running exposition endpoint. `close()` stops it (tests; a clean shutdown)."""

    server: WSGIServer
    thread: threading.Thread

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def start_metrics_server(port: int, host: str = "0.0.0.0") -> MetricsServer | None:  # noqa: S104 - a metrics port is meant to be scraped from other hosts
    """Serve the default registry (every metric of this process) on `host:port`.

    Port 0 means "off" (settings.metrics_port) and returns None. Raises OSError when the
    port is taken."""
    if port == 0:
        return None
    from prometheus_client import REGISTRY, start_http_server

    server, thread = start_http_server(port, addr=host, registry=REGISTRY)
    return MetricsServer(server=server, thread=thread)


def enable_multiprocess_mode(directory: str | os.PathLike[str] | None = None) -> Path:
    """Make every metric created from now on in this process and its forked children
    write to files in `directory` (default: $PROMETHEUS_MULTIPROC_DIR, else a new
    temporary folder), and remove the files left there by earlier processes.

    One folder per worker main process: never share one between two workers.
    Returns the folder. Raises RuntimeError when `reconciler.metrics` was already
    imported in single-process mode (call this first thing in the worker)."""
    chosen = directory or os.environ.get(MULTIPROC_ENV)
    path = Path(chosen) if chosen else Path(tempfile.mkdtemp(prefix="reconciler-metrics-"))
    path.mkdir(parents=True, exist_ok=True)
    metrics = sys.modules.get("reconciler.metrics")
    already_files = metrics is not None and _is_multiprocess_value(metrics.LEADER)
    if metrics is not None and not already_files:
        raise RuntimeError(
            "reconciler.metrics was imported before enable_multiprocess_mode(): "
            "call it first thing in the worker's main process"
        )
    if already_files and Path(os.environ[MULTIPROC_ENV]) != path:
        raise RuntimeError(f"the metrics write to ${MULTIPROC_ENV} already, not to {path}")
    # Files of a previous run would be added to ours (a folder given to us outlives its
    # process). When $PROMETHEUS_MULTIPROC_DIR made the metrics write files at import
    # already, this process's own files are live and stay.
    _remove_sample_files(path, keep_pid=os.getpid() if already_files else None)
    os.environ[MULTIPROC_ENV] = str(path)
    from prometheus_client import values

    # prometheus_client chose its value class when it was first imported; choose again.
    values.ValueClass = values.get_value_class()
    return path


def multiprocess_registry(directory: str | os.PathLike[str] | None = None) -> Any:
    """A registry whose collection sums the sample files of every process in the folder."""
    from prometheus_client import CollectorRegistry
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(directory or _multiprocess_dir()))
    return registry


def setup_worker_metrics(port: int, host: str = "0.0.0.0") -> MetricsServer | None:  # noqa: S104 - see start_metrics_server
    """Serve the sum over the worker's main process and all its pool children.

    Call in the worker's main process after `enable_multiprocess_mode()` (Celery's
    `worker_init` signal). Port 0 means off. Raises RuntimeError when multiprocess
    mode is not enabled, OSError when the port is taken."""
    if port == 0:
        return None
    from prometheus_client import start_http_server

    server, thread = start_http_server(port, addr=host, registry=multiprocess_registry())
    return MetricsServer(server=server, thread=thread)


def on_worker_child_exit(pid: int) -> None:
    """Forget the `live*` gauges of a pool child that exits (its counters, histograms
    and `max` gauges stay: they are history). Safe to call for any pid, any number of
    times, and a no-op outside multiprocess mode."""
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid, _multiprocess_dir())


def install_worker_hooks(*, port: int, host: str = "0.0.0.0") -> None:  # noqa: S104 - see start_metrics_server
    """Connect `setup_worker_metrics` to Celery's `worker_init` and
    `on_worker_child_exit` to `worker_process_shutdown`. Call at import of the Celery
    app module, after `enable_multiprocess_mode()`."""
    from celery import signals

    def _serve(**_: object) -> None:
        setup_worker_metrics(port, host)

    def _forget(pid: int | None = None, **_: object) -> None:
        on_worker_child_exit(pid if pid is not None else os.getpid())

    # weak=False: the closures above have no other reference and would be collected.
    signals.worker_init.connect(_serve, weak=False)
    signals.worker_process_shutdown.connect(_forget, weak=False)


def render_latest() -> tuple[bytes, str]:
    """The exposition of this process (or of all worker processes, in multiprocess
    mode): (body, content type), for a web framework's /metrics route."""
    from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

    registry = multiprocess_registry() if os.environ.get(MULTIPROC_ENV) else REGISTRY
    return generate_latest(registry), CONTENT_TYPE_LATEST


def _multiprocess_dir() -> str:
    directory = os.environ.get(MULTIPROC_ENV)
    if not directory:
        raise RuntimeError("multiprocess metrics are off: call enable_multiprocess_mode()")
    return directory


def _remove_sample_files(path: Path, *, keep_pid: int | None) -> None:
    for file in path.glob("*.db"):
        match = _SAMPLE_FILE.match(file.name)
        if match and int(match.group(1)) != keep_pid:
            file.unlink(missing_ok=True)


def _is_multiprocess_value(gauge: Any) -> bool:
    return type(gauge._value).__name__ == "MmapedValue"
