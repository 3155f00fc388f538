"""Shared fixtures. Every test that touches a service gets its OWN database, Redis key
prefix or RabbitMQ vhost, and removes it afterwards, so tests run in parallel (xdist)
and leave the shared services as they found them."""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

PG_ADMIN_URL = os.environ.get(
    "TEST_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
AMQP_BASE = os.environ.get("TEST_AMQP_BASE", "amqp://guest:guest@127.0.0.1:5672")
REPO_ROOT = Path(__file__).resolve().parents[1]

# The suite's jobs call the demo helpers (sleep_task, fail_task, noop) everywhere, and the
# production default allowlist refuses them (only `reconcile dev` allows them): allow every
# built-in for the tests, in this process and the processes they start. Tests of the
# defaults (tests/test_security.py) remove the variable or set their own.
TEST_TASK_ALLOWLIST = "reconciler.tasks.*"
os.environ.setdefault("RECONCILER_TASK_ALLOWLIST", TEST_TASK_ALLOWLIST)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The slow tests first (a stable sort: otherwise in collection order). The suite
    takes as long as its busiest xdist worker, and a 45 s test taken up last runs on
    alone at the end; started first, the short ones fill in around it."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture(scope="session", autouse=True)
def checkout_stays_clean() -> Iterator[None]:
    """kombu's filesystem transport writes its exchange tables to `./control` unless a
    `control_folder` is set: a test that forgets it litters the checkout (it was
    committed twice). Fails the session's last test of this worker if it appeared."""
    existed = (REPO_ROOT / "control").exists()
    yield
    assert existed or not (REPO_ROOT / "control").exists(), (
        "a test wrote ./control: give its filesystem:// broker a control_folder"
    )


def _unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


@contextlib.contextmanager
def fresh_database() -> Iterator[str]:
    """A fresh, empty PostgreSQL database, dropped afterwards; its plain URL
    (postgresql://...). For a test that needs several in turn (tests/daemon's retried
    SIGKILL); otherwise the fixture `pg_url`."""
    name = _unique("rt")
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database; its plain URL (postgresql://...)."""
    with fresh_database() as url:
        yield url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'state.db'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest) -> str:
    """Runs the test on both supported databases."""
    if request.param == "sqlite":
        return str(request.getfixturevalue("sqlite_url"))
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def migrated_db_url(db_url: str) -> str:
    from reconciler.store.migrate import upgrade_database

    upgrade_database(db_url)
    return db_url


class RedisPrefixes:
    """The key prefixes this session's tests used on the shared Redis."""

    def __init__(self) -> None:
        self.used: set[str] = set()

    def new(self, kind: str = "t") -> str:
        prefix = _unique(kind) + ":"
        self.used.add(prefix)
        return prefix

    def clean(self, prefix: str) -> int:
        """Delete every key under `prefix`; how many there were."""
        import redis

        client = redis.Redis.from_url(REDIS_URL)
        try:
            keys = list(client.scan_iter(f"{prefix}*", count=1000))
            if keys:
                client.delete(*keys)
            return len(keys)
        finally:
            client.close()


@pytest.fixture(scope="session")
def redis_prefixes() -> Iterator[RedisPrefixes]:
    """At the end of the session no test prefix may hold a key: a process that wrote
    after its test's clean-up (a worker stopped too late), or a prefix nobody deleted,
    fails the run here (an error at the last test's teardown) instead of piling up in
    the shared Redis."""
    import redis

    prefixes = RedisPrefixes()
    yield prefixes
    try:
        left = {p: n for p in sorted(prefixes.used) if (n := prefixes.clean(p))}
    except redis.RedisError:
        return  # no Redis: the tests that needed it have failed already
    assert not left, f"Redis keys left behind by the tests (now deleted): {left}"


@pytest.fixture
def redis_prefix(redis_prefixes: RedisPrefixes) -> Iterator[str]:
    """A key prefix no other test uses; every key under it is deleted afterwards."""
    prefix = redis_prefixes.new()
    yield prefix
    redis_prefixes.clean(prefix)


def rabbitmqctl(*args: str) -> None:
    """rabbitmqctl flakes on a loaded machine (exit 64 when concurrent CLI invocations
    collide); a retry succeeds."""
    for attempt in range(5):
        result = subprocess.run(["rabbitmqctl", "-q", *args], capture_output=True, text=True)
        if result.returncode == 0:
            return
        time.sleep(0.5 + attempt)
    raise RuntimeError(f"rabbitmqctl {' '.join(args)}: {result.stderr.strip()}")


@contextlib.contextmanager
def fresh_vhost() -> Iterator[str]:
    """A fresh RabbitMQ vhost (so queues and messages are this test's alone), deleted
    afterwards; its URL. For a test that needs several in turn; otherwise `amqp_url`."""
    vhost = _unique("rt")
    rabbitmqctl("add_vhost", vhost)
    try:
        rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        yield f"{AMQP_BASE}/{vhost}"
    finally:
        rabbitmqctl("delete_vhost", vhost)  # retried; a failure is this test's error


@pytest.fixture
def amqp_url() -> Iterator[str]:
    """A fresh RabbitMQ vhost (so queues and messages are this test's alone)."""
    with fresh_vhost() as url:
        yield url
