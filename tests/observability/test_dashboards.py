"""docker/grafana: dashboards are valid and self-consistent; provisioning finds them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from observability import promql

GRAFANA = promql.DOCKER / "grafana"
COMPOSE = promql.DOCKER / "compose.yaml"
BOARDS = promql.dashboard_files()


def _panels(board: dict) -> list[dict]:
    return list(promql._panels(board["panels"]))


def test_the_three_dashboards_exist() -> None:
    uids = {json.loads(path.read_text())["uid"] for path in BOARDS}
    assert uids == {"reconciler-fleet", "reconciler-job", "reconciler-health"}


@pytest.mark.parametrize("path", BOARDS, ids=[path.stem for path in BOARDS])
def test_dashboard_is_consistent(path: Path) -> None:
    board = json.loads(path.read_text())
    assert board["title"] and board["uid"]
    assert len(board["uid"]) <= 40  # Grafana's limit
    panels = _panels(board)
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    for panel in panels:
        assert panel["title"], panel["id"]
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        refs = [target["refId"] for target in panel["targets"]]
        assert refs and len(refs) == len(set(refs)), panel["title"]
        assert all(target["expr"].strip() for target in panel["targets"]), panel["title"]
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    text = json.dumps(panels)
    used = {name for name in variables if f"${name}" in text or f"${{{name}}}" in text}
    assert used == set(variables), "template variables defined but not used"


def test_uids_and_titles_are_unique_across_dashboards() -> None:
    boards = [json.loads(path.read_text()) for path in BOARDS]
    assert len({b["uid"] for b in boards}) == len(boards)
    assert len({b["title"] for b in boards}) == len(boards)


def test_the_job_dashboard_selects_a_job_from_the_fires() -> None:
    board = json.loads((promql.DASHBOARDS / "job.json").read_text())
    job = next(v for v in board["templating"]["list"] if v["name"] == "job")
    assert promql.label_values_metric(job["query"]["query"]) == (
        "reconciler_fires_total",
        "job_name",
    )
    for panel in _panels(board):
        for target in panel["targets"]:
            assert 'job_name="$job"' in target["expr"], panel["title"]


def test_fleet_dashboard_shows_what_the_design_lists() -> None:
    exprs = " ".join(
        q.expr for q in promql.dashboard_queries(promql.DASHBOARDS / "fleet-overview.json")
    )
    for needed in (
        "reconciler_managed_jobs",
        "reconciler_fires_total",
        'status="failed"',
        "histogram_quantile(0.99, sum by (le) (rate(reconciler_fire_lateness_seconds_bucket",
        "reconciler_missed_slots_total",
        "reconciler_unpublished_fires",
        "reconciler_leader",
    ):
        assert needed in exprs


def test_provisioning_points_at_the_mounted_dashboards() -> None:
    compose = yaml.safe_load(COMPOSE.read_text())
    mounts = dict(
        volume.split(":")[:2]
        for volume in compose["services"]["grafana"]["volumes"]
        if volume.startswith("./")
    )
    provider = yaml.safe_load((GRAFANA / "provisioning/dashboards/reconciler.yml").read_text())
    path = provider["providers"][0]["options"]["path"]
    assert mounts["./grafana/dashboards"] == path
    assert mounts["./grafana/provisioning"] == "/etc/grafana/provisioning"
    home = compose["services"]["grafana"]["environment"][
        "GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"
    ]
    assert home.startswith(path + "/") and (promql.DASHBOARDS / Path(home).name).exists()


def test_the_datasource_is_the_compose_prometheus() -> None:
    datasources = yaml.safe_load((GRAFANA / "provisioning/datasources/prometheus.yml").read_text())
    (source,) = datasources["datasources"]
    assert source["type"] == "prometheus" and source["isDefault"]
    assert source["url"] == "http://prometheus:9090"
    assert "prometheus" in yaml.safe_load(COMPOSE.read_text())["services"]
