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
  `install_worker_hooks(port=..., host=...)` connects 2 and 3 to Celery's signals, and
  creates the zero series of the worker's tasks (`reconciler.metrics.track_task`).
- The API serves `/metrics` itself, from the default registry.

The `celery -A reconciler.worker worker` form: set $PROMETHEUS_MULTIPROC_DIR to an empty
folder in the environment (prometheus_client then writes files from its first import)
and call `install_worker_hooks` where the Celery app is created; `worker_init` only
fires in a worker, so the other processes that import the app are not affected.

Errors: `enable_multiprocess_mode` raises `RuntimeError` when it is called too late
(metrics already created in single-process mode); the servers raise `OSError` when the
port is taken.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from reconciler.errors import ConfigError

log = logging.getLogger(__name__)

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


def start_metrics_server(
    port: int, host: str = "127.0.0.1", *, registry: Any = None
) -> MetricsServer | None:
    """Serve `registry` (default: every metric of this process; the daemon passes
    `metrics.only(metrics.DAEMON_METRICS)`) on `host:port`.

    Served by reconciler.exposition (prometheus_client's answers, the per-job families
    written from kept text). Port 0 means "off" (settings.metrics_port) and returns
    None. Raises ConfigError, naming the setting, when the port is taken or the address
    cannot be bound."""
    if port == 0:
        return None
    from prometheus_client import REGISTRY

    from reconciler.exposition import make_metrics_app

    try:
        server = _make_server(host, port, make_metrics_app(registry or REGISTRY))
    except OSError as error:
        raise metrics_bind_error(port, host, error) from None
    thread = threading.Thread(target=server.serve_forever, name="metrics", daemon=True)
    thread.start()
    return MetricsServer(server=server, thread=thread)


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """No line per request (as prometheus_client's server)."""


def _make_server(host: str, port: int, app: Any) -> WSGIServer:
    """A thread-per-request WSGI server on `host:port`, IPv4 or IPv6 as `host` is (as
    prometheus_client's `start_http_server`)."""
    import socket
    from socketserver import ThreadingMixIn

    family, _, _, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]

    class Server(ThreadingMixIn, WSGIServer):
        daemon_threads = True
        address_family = family

    return make_server(str(address[0]), port, app, Server, handler_class=_QuietHandler)


def metrics_bind_error(port: int, host: str, error: OSError) -> ConfigError:
    """The one-line error for a metrics port that cannot be bound."""
    return ConfigError(
        f"cannot serve metrics on {host}:{port}: {error.strerror or error} "
        "(set another port with --metrics-port or RECONCILER_METRICS_PORT, 0 turns "
        "metrics off; the address: --metrics-host or RECONCILER_METRICS_HOST)"
    )


def check_port_free(port: int, host: str) -> None:
    """Raise ConfigError (see metrics_bind_error) unless `host:port` can be bound now; for
    servers started later in code that cannot report it (a Celery worker's signal)."""
    import socket

    if port == 0:
        return
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            raise metrics_bind_error(port, host, error) from None


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


def setup_worker_metrics(
    port: int, host: str = "127.0.0.1", *, families: tuple[Any, ...] | None = None
) -> MetricsServer | None:
    """Serve the sum over the worker's main process and all its pool children; only the
    metrics in `families` when given (`reconcile worker`: metrics.WORKER_METRICS).

    Call in the worker's main process after `enable_multiprocess_mode()` (Celery's
    `worker_init` signal). Without multiprocess mode (a solo or threads pool) it serves
    this process's registry, and warns: a prefork pool's children would be missing.
    Port 0 means off. Raises OSError when the port is taken."""
    if port == 0:
        return None
    from prometheus_client import REGISTRY, start_http_server

    if os.environ.get(MULTIPROC_ENV):
        # Before the fork, every file not this process's is a previous run's.
        _remove_sample_files(Path(_multiprocess_dir()), keep_pid=os.getpid())
        registry = multiprocess_registry()
    else:
        log.warning(
            "worker metrics without multiprocess mode: the prefork pool's children are "
            "not counted (call enable_multiprocess_mode() first)"
        )
        registry = REGISTRY
    if families is not None:
        from reconciler.metrics import only

        registry = only(families, source=registry)
    server, thread = start_http_server(port, addr=host, registry=registry)
    return MetricsServer(server=server, thread=thread)


def on_worker_child_exit(pid: int) -> None:
    """Forget the `live*` gauges of a pool child that exits (its counters, histograms
    and `max` gauges stay: they are history). Safe to call for any pid, any number of
    times, and a no-op outside multiprocess mode."""
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid, _multiprocess_dir())


def install_worker_hooks(
    *, port: int, host: str = "127.0.0.1", families: tuple[Any, ...] | None = None
) -> None:
    """Connect to Celery's signals: at `worker_init` (main process, before the fork),
    create the zero series of every task of the worker's app (`track_task`) and start
    `setup_worker_metrics`; at `worker_process_shutdown`, `on_worker_child_exit`.
    Call where the worker's app is created, after `enable_multiprocess_mode()`."""
    from celery import signals

    def _serve(sender: Any = None, **_: object) -> None:
        from reconciler.metrics import track_task

        for name in getattr(getattr(sender, "app", None), "tasks", {}):
            if not name.startswith("celery."):
                track_task(name)
        setup_worker_metrics(port, host, families=families)

    def _forget(pid: int | None = None, **_: object) -> None:
        on_worker_child_exit(pid if pid is not None else os.getpid())

    # weak=False: the closures above have no other reference and would be collected.
    signals.worker_init.connect(_serve, weak=False)
    signals.worker_process_shutdown.connect(_forget, weak=False)


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
