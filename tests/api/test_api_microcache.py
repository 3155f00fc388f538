"""The API micro-cache: same request within the TTL is answered without the database,
never across credentials, never for errors, and conditional requests still work."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from api_seed import make_settings
from fastapi.testclient import TestClient

from reconciler.api import create_app
from reconciler.store.db import create_sync_engine

pytestmark = pytest.mark.services


def rename_owner(url: str, owner: str) -> None:
    engine = create_sync_engine(url)
    with engine.begin() as connection:
        connection.execute(sa.text("update scheduled_jobs set queue = :q"), {"q": owner})
    engine.dispose()


def test_a_repeated_get_is_served_from_the_cache_until_it_expires(seeded_url: str) -> None:
    settings = make_settings(seeded_url, api_cache_seconds=30)
    with TestClient(create_app(settings)) as client:
        first = client.get("/api/v1/jobs?limit=5")
        assert first.status_code == 200
        rename_owner(seeded_url, "low_priority")
        cached = client.get("/api/v1/jobs?limit=5")
        assert cached.content == first.content  # within the TTL: the database is not read
        assert client.get("/api/v1/jobs?limit=6").json()["items"][0]["queue"] == "low_priority"
        etag = first.headers["etag"]
        assert (
            client.get("/api/v1/jobs?limit=5", headers={"If-None-Match": etag}).status_code == 304
        )


def test_no_cache_means_fresh_data(seeded_url: str) -> None:
    with TestClient(create_app(make_settings(seeded_url, api_cache_seconds=0))) as client:
        client.get("/api/v1/jobs?limit=5")
        rename_owner(seeded_url, "scheduled")
        assert client.get("/api/v1/jobs?limit=5").json()["items"][0]["queue"] == "scheduled"


def test_the_cache_never_crosses_credentials(seeded_url: str) -> None:
    settings = make_settings(seeded_url, api_cache_seconds=30, api_token="s3cret-token")
    with TestClient(create_app(settings)) as client:
        good = {"Authorization": "Bearer s3cret-token"}
        assert client.get("/api/v1/jobs", headers=good).status_code == 200
        assert client.get("/api/v1/jobs").status_code == 401
        assert (
            client.get("/api/v1/jobs", headers={"Authorization": "Bearer nope"}).status_code == 401
        )
        missing = client.get("/api/v1/jobs/does-not-exist", headers=good)
        assert missing.status_code == 404
        assert client.get("/api/v1/jobs/does-not-exist", headers=good).status_code == 404
