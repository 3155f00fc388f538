"""Serving the app with uvicorn: one worker, clean stop on SIGTERM / SIGINT.

uvicorn installs its own SIGTERM/SIGINT handlers: on the signal it stops accepting,
finishes in-flight requests (up to GRACEFUL_SECONDS), runs the lifespan shutdown (which
closes the database pool and Redis client) and returns; `serve` then returns 0.
"""

from __future__ import annotations

import logging
import socket
from types import FrameType

import uvicorn

from reconciler.api.app import create_app
from reconciler.errors import ConfigError
from reconciler.redact import mask_logs
from reconciler.settings import Settings
from reconciler.store.db import async_url

GRACEFUL_SECONDS = 10


class _Server(uvicorn.Server):
    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        # uvicorn re-raises a captured signal once it has shut down, so the process would
        # end "killed by SIGTERM" (status -15). A stop on SIGTERM is the normal, clean end
        # of this server: forget the signal and exit 0. (A test pins this behaviour.)
        self._captured_signals.clear()


def serve(settings: Settings, *, host: str, port: int, access_log: bool = True) -> int:
    """Serve until a stop signal. Returns the exit code (0 after a clean stop). Raises
    ConfigError, naming the setting, when the address cannot be bound or the database
    URL names no database we serve."""
    _check_bindable(host, port)
    # The app opens its engine in its lifespan, where a ConfigError is a uvicorn
    # traceback and "Application startup failed": say it in one line, as `run` does.
    async_url(settings.database_url)
    config = uvicorn.Config(
        create_app(settings),
        host=host,
        port=port,
        workers=1,
        lifespan="on",
        # No logging config of uvicorn's own: its records (access lines included) then
        # reach the root handler `reconcile` set up, so every line has the same shape
        # (RFC 3339 UTC time, RECONCILER_LOG_FORMAT text or json) and passes its
        # MaskingFilter. uvicorn's AccessFormatter unpacks `record.args`, which the filter
        # empties on a line it masks: that line was lost, with a "Logging error" dump.
        log_config=None,
        access_log=access_log,
        log_level=settings.log_level.lower(),
        timeout_graceful_shutdown=GRACEFUL_SECONDS,
        server_header=False,
    )
    # Secrets by value (a token in a query string, a URL in an error) are masked in
    # uvicorn's lines by the root handler's filter (idempotent: `reconcile` set it up).
    mask_logs(logging.getLogger().handlers)
    server = _Server(config)
    try:
        server.run()
    except SystemExit as stop:
        # uvicorn exits 3 when it cannot start (port taken, lifespan failure); our exit
        # code 3 means "refused by a safety guard", so report a failed start as 1.
        return 1 if stop.code else 0
    return 0 if server.started else 1


def _check_bindable(host: str, port: int) -> None:
    # uvicorn would log a traceback-like error and exit 1; say which setting to change.
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            raise ConfigError(
                f"cannot serve the API on {host}:{port}: {error.strerror or error} "
                "(set another port with --port or RECONCILER_API_PORT, the address with "
                "--host or RECONCILER_API_HOST)"
            ) from None
