"""Fixtures of the dispatch tests: a migrated PostgreSQL ledger and an engine on it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import sqlalchemy as sa

from reconciler.store.db import create_sync_engine
from tests.conftest import fresh_vhost


@pytest.fixture
def ledger_url(pg_url: str) -> str:
    from reconciler.store.migrate import upgrade_database

    upgrade_database(pg_url)
    return pg_url


@pytest.fixture
def engine(ledger_url: str) -> Iterator[sa.Engine]:
    engine = create_sync_engine(ledger_url)
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def module_vhost() -> Iterator[str]:
    """One RabbitMQ vhost for a whole test module (rabbitmqctl takes seconds per call);
    tests isolate themselves with their own queue (`broker` below)."""
    with fresh_vhost() as url:
        yield url


@dataclass(frozen=True)
class Broker:
    url: str
    queue: str


@pytest.fixture
def broker(module_vhost: str) -> Broker:
    """The module's vhost and a queue name no other test uses."""
    return Broker(module_vhost, f"q-{uuid.uuid4().hex[:10]}")
