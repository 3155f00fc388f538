"""The Celery application: one configuration for the worker, the dispatcher and the tests.

`create_celery_app(settings)` builds an app from Settings; the module-level `app` of
`reconciler.worker` is built lazily from the environment for `celery -A reconciler.worker`.

Choices that matter (README.md "Processes and operations" says what they guarantee):
- JSON only, both ways: a message can never make a worker unpickle anything.
- acks_late + reject_on_worker_lost + prefetch 1: a message is acknowledged only once its
  task finished, so a worker killed mid-task gets it redelivered; prefetch 1 keeps a busy
  worker from sitting on messages another worker could run.
- Default time limits (hard 25 min, soft 24 min) stay below RabbitMQ's consumer timeout
  (30 min): past that timeout the broker closes the channel and redelivers the message,
  a redelivery loop for a task that never finishes in time. A message may ask for less,
  never for more (see `reconciler.worker.request`).
- Serverless embedded mode: a `filesystem://` broker (folders derived from the settings,
  see `filesystem_folder`) and a `db+sqlite:///` result backend, no servers at all.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from celery import Celery
from kombu import Exchange, Queue
from sqlalchemy.engine import make_url

from reconciler.settings import Settings
from reconciler.worker.results import backend_config
from reconciler.worker.runtime import register_app

APP_NAME = "reconciler"
HARD_TIME_LIMIT_SECONDS = 25 * 60
SOFT_TIME_LIMIT_SECONDS = 24 * 60
DEFAULT_QUEUE = "default"
# Modules always imported by a worker; RECONCILER_TASK_MODULES adds the user's own.
BUILTIN_TASK_MODULES = (
    "reconciler.tasks.demo",
    "reconciler.tasks.probe",
    "reconciler.tasks.sql",
    "reconciler.tasks.report",
)
FILESYSTEM_SCHEME = "filesystem://"


def create_celery_app(settings: Settings, *, main: str = APP_NAME) -> Celery:
    """A configured Celery app. Creating it connects to nothing; the worker imports the
    task modules (builtin ones, then `settings.task_modules`) when it starts.

    Raises ValueError when the broker URL is a filesystem URL whose folder cannot be
    created."""
    modules = [*BUILTIN_TASK_MODULES, *settings.task_modules]
    app = Celery(main, include=modules, set_as_current=False)
    app.conf.update(celery_config(settings))
    # Tasks and signal handlers find the settings of *their* app (tests and the benchmark
    # build several apps in one process).
    register_app(app, settings)
    return app


def celery_config(settings: Settings) -> dict[str, Any]:
    """The Celery configuration for `settings`, as a plain dict (no connection made)."""
    exchange = Exchange(DEFAULT_QUEUE, type="direct")
    config: dict[str, Any] = {
        "broker_url": settings.broker_url,
        "result_backend": settings.result_backend,
        "result_expires": settings.result_ttl_seconds,
        "task_queues": tuple(
            Queue(name, exchange=Exchange(name, type="direct"), routing_key=name)
            for name in settings.queues
        ),
        "task_default_queue": DEFAULT_QUEUE,
        "task_default_exchange": exchange.name,
        "task_default_routing_key": DEFAULT_QUEUE,
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "result_accept_content": ["json"],
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_time_limit": HARD_TIME_LIMIT_SECONDS,
        "task_soft_time_limit": SOFT_TIME_LIMIT_SECONDS,
        "task_track_started": True,
        # Task events on, so Flower and `celery events` show runs (by job: the publisher
        # sets each message's shadow name to "<job> (<task>)") without a restart.
        "worker_send_task_events": True,
        "broker_connection_retry_on_startup": True,
        "broker_transport_options": {"confirm_publish": True},
        "enable_utc": True,
        "timezone": "UTC",
    }
    if settings.result_backend.startswith(("redis://", "rediss://")):
        # Redis down must not fail tasks (nor loop their messages): worker/results.py.
        config.update(backend_config(settings.result_backend))
        options: dict[str, Any] = {"retry_policy": {"max_retries": 1}}
        if settings.redis_prefix:
            # Results live under our prefix too, so one Redis serves several installations.
            options["global_keyprefix"] = settings.redis_prefix
        config["result_backend_transport_options"] = options
    if settings.broker_url.startswith(FILESYSTEM_SCHEME):
        config.update(filesystem_broker_config(settings))
    return config


def filesystem_broker_config(settings: Settings) -> dict[str, Any]:
    """kombu's filesystem transport: producer and consumer exchange messages as files in
    one folder, so both sides must derive the same folder from the same settings."""
    folder = filesystem_folder(settings)
    queue_dir = folder / "queue"
    processed_dir = folder / "processed"
    try:
        queue_dir.mkdir(parents=True, exist_ok=True)
        processed_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ValueError(f"cannot create the broker folder {folder}: {error}") from None
    return {
        "broker_url": FILESYSTEM_SCHEME,
        "broker_transport_options": {
            "data_folder_in": str(queue_dir),
            "data_folder_out": str(queue_dir),
            "data_folder_processed": str(processed_dir),
            # kombu keeps its exchange tables in `./control` unless told: beside the
            # queue, so nothing lands in the working folder (a checkout).
            "control_folder": str(folder / "control"),
            "store_processed": False,
            # The transport polls its folder: the poll interval bounds a message's wait.
            "polling_interval": 0.1,
        },
        # Publisher confirms mean nothing for files; the write itself is the confirm.
        "broker_connection_retry_on_startup": True,
    }


def filesystem_folder(settings: Settings) -> Path:
    """Where a `filesystem://` broker keeps its messages.

    `filesystem:///abs/dir` (or `filesystem://rel/dir`, from the working folder) names
    the folder itself. A bare `filesystem://` uses a `broker` folder beside the SQLite
    database file (so a daemon and a worker on one machine agree without more
    configuration), or `<state_dir>/broker` when the database is not SQLite. Messages are
    files in `<folder>/queue`.
    """
    rest = settings.broker_url[len(FILESYSTEM_SCHEME) :]
    if rest.strip("/"):
        return Path(rest).resolve()  # `/abs/dir` as is; `rel/dir` from the working folder
    database = make_url(settings.database_url).database
    if settings.database_url.startswith("sqlite") and database and database != ":memory:":
        return Path(database).resolve().parent / "broker"
    return (settings.state_dir / "broker").resolve()
