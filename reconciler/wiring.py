"""The composition root: builds long-running processes from Settings.

The only place that knows which concrete adapters go together; everything else takes
its collaborators as keyword arguments.
"""

from __future__ import annotations

from reconciler.dispatch.service import FiringService
from reconciler.engine.daemon import Daemon
from reconciler.engine.leader import default_instance_id, leader_elector_for
from reconciler.settings import Settings
from reconciler.store.db import create_sync_engine


def build_daemon(settings: Settings) -> Daemon:
    engine = create_sync_engine(settings.database_url, pool_size=10, max_overflow=10)
    elector = leader_elector_for(
        settings.database_url, settings.instance_id or default_instance_id()
    )

    def make_service() -> FiringService:
        return FiringService(
            engine=engine,
            settings=settings,
            fence=elector,
            transport_options=broker_transport_options(settings),
        )

    return Daemon(settings=settings, engine=engine, elector=elector, make_service=make_service)


def broker_transport_options(settings: Settings) -> dict[str, object]:
    """Transport options of the broker URL: folders for the serverless `filesystem://`."""
    if not settings.broker_url.startswith("filesystem://"):
        return {}
    from reconciler.worker.app import filesystem_broker_config

    options = filesystem_broker_config(settings)["broker_transport_options"]
    return {key: value for key, value in options.items() if key != "confirm_publish"}
