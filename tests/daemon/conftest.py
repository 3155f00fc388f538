"""Fixtures of the daemon tests: a cluster of real `reconcile run` processes on a fresh
PostgreSQL database and RabbitMQ vhost, every process ended by PID afterwards."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from .helpers import BrokerCounter, Cluster


@pytest.fixture
def make_cluster(tmp_path: Path, pg_url: str, amqp_url: str) -> Iterator[Callable[..., Cluster]]:
    """`make_cluster(**settings)`: a Cluster whose daemons get RECONCILER_<KEY>=value.
    Fast defaults: resync every 5 s, settle 0.1 s."""
    made: list[Cluster] = []

    def make(**settings: str) -> Cluster:
        options = {"resync_interval": "5", "settle_seconds": "0.1", **settings}
        cluster = Cluster(root=tmp_path, db_url=pg_url, broker_url=amqp_url, **options)
        made.append(cluster)
        return cluster

    try:
        yield make
    finally:
        for cluster in made:
            cluster.stop_all()


@pytest.fixture
def broker(amqp_url: str) -> BrokerCounter:
    return BrokerCounter(amqp_url)
