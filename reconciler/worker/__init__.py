"""The execution side: the Celery app, BaseTask, the idempotency guard, ledger updates.

`celery -A reconciler.worker worker -Q default,high_priority,low_priority,scheduled`
finds `app` here. It is built on first access from the environment (RECONCILER_*), so
importing this package connects to nothing and reads no settings. With
$PROMETHEUS_MULTIPROC_DIR set (an empty folder), such a worker also serves /metrics on
RECONCILER_METRICS_PORT; `reconcile worker` does that by itself.

Public API:
    create_celery_app(settings) -> Celery      reconciler.worker.app
    app / celery                               the app built from the environment
    BaseTask, PermanentTaskError               reconciler.worker.base
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from reconciler.worker.app import create_celery_app
from reconciler.worker.base import BaseTask, PermanentTaskError

if TYPE_CHECKING:
    from celery import Celery

__all__ = ["BaseTask", "PermanentTaskError", "app", "celery", "create_celery_app"]

_app: Celery | None = None


def __getattr__(name: str) -> Any:
    # PEP 562: `app` is built on first access, not at import.
    if name in ("app", "celery"):
        return _environment_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _environment_app() -> Celery:
    global _app  # the one cached app of the `celery -A` entry point
    if _app is None:
        from reconciler.settings import load_settings

        settings = load_settings()
        port = settings.metrics_port
        if port is None:
            from reconciler.settings import WORKER_METRICS_PORT

            port = WORKER_METRICS_PORT
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR") and port:
            # `celery -A` metrics (see reconciler.observability): the hooks act at
            # worker_init only, so a process that merely uses the app is not affected.
            from reconciler.observability import install_worker_hooks

            install_worker_hooks(port=port, host=settings.metrics_host)
        _app = create_celery_app(settings)
    return _app
