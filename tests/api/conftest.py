"""Fixtures of the API tests: a migrated database seeded by plain SQL inserts, and the
real app over it (Starlette's TestClient runs the ASGI lifespan, so the app opens and
closes its own engine exactly as under uvicorn)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from api_seed import make_settings, seed
from fastapi.testclient import TestClient

from reconciler.api import create_app


@pytest.fixture
def seeded_url(migrated_db_url: str) -> str:
    seed(migrated_db_url)
    return migrated_db_url


@pytest.fixture
def client(seeded_url: str) -> Iterator[TestClient]:
    """The real app over the seeded database (both PostgreSQL and SQLite)."""
    with TestClient(create_app(make_settings(seeded_url))) as test_client:
        yield test_client
