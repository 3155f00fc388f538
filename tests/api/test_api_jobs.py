"""/api/v1/jobs, /api/v1/jobs/{name}, /api/v1/jobs/{name}/runs on PostgreSQL and SQLite."""

from __future__ import annotations

from datetime import datetime

import pytest
from api_seed import ALPHA_RUNS, NEXT_FIRE, problem_of
from fastapi.testclient import TestClient

from reconciler.api.models import JobDetail, JobList, RunList

pytestmark = pytest.mark.services

ALL = ["alpha-billing", "beta-report", "delta-drift", "epsilon-quarantined", "gamma-once"]


def names(client: TestClient, query: str) -> list[str]:
    response = client.get(f"/api/v1/jobs?{query}")
    assert response.status_code == 200, response.text
    return [item.name for item in JobList.model_validate_json(response.text).items]


def test_list_items_and_filters(client: TestClient) -> None:
    body = client.get("/api/v1/jobs").json()
    assert [item["name"] for item in body["items"]] == ALL
    assert body["next_cursor"] is None and "total" not in body
    alpha = body["items"][0]
    assert alpha["schedule"] == {"kind": "cron", "value": "*/5 * * * *", "timezone": "UTC"}
    assert datetime.fromisoformat(alpha["next_fire_time"]).timestamp() == NEXT_FIRE
    assert alpha["labels"] == {"team": "billing", "env": "prod"}
    assert (alpha["source_file"], alpha["revision"]) == ("billing/alpha.yaml", "abc123")
    beta = body["items"][1]
    assert beta["schedule"]["value"] == "1h30m" and beta["next_fire_time"] is None
    assert body["items"][2]["schedule"]["value"] == "second=*/30"
    assert body["items"][4]["schedule"]["kind"] == "date"

    assert names(client, "status=active") == ["alpha-billing", "delta-drift", "epsilon-quarantined"]
    assert names(client, "queue=low_priority") == ["beta-report"]
    assert names(client, "label=team=billing") == ["alpha-billing", "epsilon-quarantined"]
    assert names(client, "label=team=billing&label=env=prod") == ["alpha-billing"]
    assert names(client, "label=team=nobody") == []
    assert names(client, "prefix=e") == ["epsilon-quarantined"]
    assert names(client, "prefix=%25") == []  # LIKE wildcards are escaped
    assert names(client, "prefix=_") == []
    assert names(client, "sort=-name") == ALL[::-1]
    assert names(client, "status=active&queue=default&prefix=d") == ["delta-drift"]
    total = client.get("/api/v1/jobs?status=active&limit=1&include_total=true").json()
    assert total["total"] == 3 and len(total["items"]) == 1


@pytest.mark.parametrize("sort", ["name", "-name"])
def test_cursor_pagination_round_trip(client: TestClient, sort: str) -> None:
    expected = ALL if sort == "name" else ALL[::-1]
    seen: list[str] = []
    pages = 0
    url = f"/api/v1/jobs?limit=2&sort={sort}"
    cursor = None
    while True:
        query = url + (f"&cursor={cursor}" if cursor else "")
        body = client.get(query).json()
        seen += [item["name"] for item in body["items"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == expected and pages == 3  # 2 + 2 + the last page of 1


def test_page_edges(client: TestClient) -> None:
    exactly = client.get("/api/v1/jobs?limit=5").json()
    assert len(exactly["items"]) == 5 and exactly["next_cursor"] is None  # exactly one page
    empty = client.get("/api/v1/jobs?status=nothing").json()
    assert empty == {"items": [], "next_cursor": None}
    assert names(client, "offset=3") == ALL[3:]
    assert names(client, "offset=99") == []
    assert names(client, "limit=2&offset=1") == ALL[1:3]
    first = client.get("/api/v1/jobs?limit=4").json()
    last = client.get(f"/api/v1/jobs?limit=4&cursor={first['next_cursor']}").json()
    assert [item["name"] for item in last["items"]] == ALL[4:] and last["next_cursor"] is None
    # A cursor is bound to its sort order.
    wrong = client.get(f"/api/v1/jobs?sort=-name&cursor={first['next_cursor']}")
    assert wrong.status_code == 400
    assert problem_of(wrong)["type"] == "urn:reconciler:problem:invalid-cursor"


def test_job_detail(client: TestClient) -> None:
    response = client.get("/api/v1/jobs/alpha-billing")
    assert response.status_code == 200
    job = JobDetail.model_validate_json(response.text)
    assert job.spec["kwargs"]["region"] == "eu" and job.spec["kwargs"]["api_key"] == "***"
    assert job.spec["idempotency_key"] == "{job}-{date}"  # not a secret despite its name
    assert (job.source_file, job.source_line, job.revision) == ("billing/alpha.yaml", 1, "abc123")
    assert job.next_fire_time is not None and job.next_fire_time.timestamp() == NEXT_FIRE
    # next_fires: the engine's slots of `*/5 * * * *` from the scheduler's next run time on.
    steps = [fire.at.timestamp() - NEXT_FIRE for fire in job.next_fires]
    first_slot = (-NEXT_FIRE) % 300  # NEXT_FIRE itself is not on the 5-minute grid
    assert steps == [first_slot + 300 * n for n in range(5)]
    assert {fire.dst for fire in job.next_fires} == {None}
    assert job.scheduled and job.drift is None and job.quarantine is None
    assert job.run_counts == {"succeeded": 1, "failed": 1, "published": 1}
    assert job.last_run is not None and job.last_run.id == ALPHA_RUNS[2]

    quarantined = client.get("/api/v1/jobs/epsilon-quarantined").json()
    assert quarantined["quarantine"]["path"] == "misc/broken.yaml"
    assert quarantined["quarantine"]["diagnostics"][0]["code"] == "YAML_SYNTAX"
    assert quarantined["last_run"] is None and quarantined["run_counts"] == {}

    drifts = {
        name: (client.get(f"/api/v1/jobs/{name}").json()["drift"] or {}).get("code")
        for name in ("alpha-billing", "beta-report", "delta-drift", "gamma-once")
    }
    assert drifts == {
        "alpha-billing": None,
        "beta-report": None,  # paused job, paused row: in sync
        "delta-drift": "missing_scheduler_row",
        "gamma-once": None,  # completed one-off: no row expected
    }


def test_etag_and_not_modified(client: TestClient) -> None:
    first = client.get("/api/v1/jobs/alpha-billing")
    etag = first.headers["etag"]
    assert etag.startswith('"') and not etag.startswith("W/")
    again = client.get("/api/v1/jobs/alpha-billing", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag
    listed = client.get("/api/v1/jobs/alpha-billing", headers={"If-None-Match": f'"x", W/{etag}'})
    assert listed.status_code == 304
    stale = client.get("/api/v1/jobs/alpha-billing", headers={"If-None-Match": '"other"'})
    assert stale.status_code == 200 and stale.headers["etag"] == etag
    other = client.get("/api/v1/jobs/beta-report")
    assert other.headers["etag"] != etag
    runs = client.get("/api/v1/jobs/alpha-billing/runs")
    assert (
        client.get(
            "/api/v1/jobs/alpha-billing/runs", headers={"If-None-Match": runs.headers["etag"]}
        ).status_code
        == 304
    )


def test_unknown_job_is_404(client: TestClient) -> None:
    for path in ("/api/v1/jobs/nope", "/api/v1/jobs/nope/runs", "/api/v1/jobs/caf%C3%A9"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert problem_of(response)["title"] == "Not Found"


def test_runs_history(client: TestClient) -> None:
    body = RunList.model_validate_json(client.get("/api/v1/jobs/alpha-billing/runs").text)
    assert [run.id for run in body.items] == list(reversed(ALPHA_RUNS))  # newest first
    failed = body.items[1]
    assert failed.status == "failed" and failed.duration_seconds == 60.0
    assert failed.worker == "w1@host" and failed.lateness_seconds == pytest.approx(0.009)
    assert failed.error is not None and "password=***" in failed.error
    assert body.next_cursor is None

    seen, cursor = [], None
    while True:
        suffix = f"&cursor={cursor}" if cursor else ""
        page = client.get(f"/api/v1/jobs/alpha-billing/runs?limit=1{suffix}").json()
        seen += [run["id"] for run in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(ALPHA_RUNS))

    only = client.get("/api/v1/jobs/alpha-billing/runs?status=succeeded").json()
    assert [run["id"] for run in only["items"]] == [ALPHA_RUNS[0]]
    none = client.get("/api/v1/jobs/beta-report/runs").json()
    assert none == {"items": [], "next_cursor": None}  # a known job without runs
    jobs_cursor = client.get("/api/v1/jobs?limit=1").json()["next_cursor"]
    assert client.get(f"/api/v1/jobs/alpha-billing/runs?cursor={jobs_cursor}").status_code == 400
