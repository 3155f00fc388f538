"""A real Prometheus scrapes the real processes (targets.py); every dashboard query is
evaluated through its HTTP API, and the alert rules evaluate without errors."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from observability import promql
from observability.targets import Fleet, free_port

pytestmark = [pytest.mark.slow, pytest.mark.services, pytest.mark.e2e]
SCRAPES = 3  # enough samples for rate() over $__rate_interval


class Prometheus:
    def __init__(self, url: str) -> None:
        self.url = url

    def api(self, path: str, **params: str) -> dict:
        query = urllib.parse.urlencode(params)
        with urllib.request.urlopen(f"{self.url}/api/v1/{path}?{query}", timeout=10) as answer:
            body = json.loads(answer.read())
        assert body["status"] == "success", body
        return body["data"]  # type: ignore[no-any-return]

    def query(self, expr: str) -> list[dict]:
        return self.api("query", query=expr)["result"]  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def prometheus(
    prometheus_binary: str, fleet: Fleet, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Prometheus]:
    folder = tmp_path_factory.mktemp("prometheus")
    shutil.copy(promql.ALERTS, folder / "alerts.yml")
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": ["alerts.yml"],
        "scrape_configs": [
            {
                "job_name": running.target.job,
                "metrics_path": running.target.path,
                "static_configs": [{"targets": [running.address]}],
            }
            for running in fleet.running
        ],
    }
    (folder / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    log = (folder / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [
            prometheus_binary,
            f"--config.file={folder / 'prometheus.yml'}",
            f"--storage.tsdb.path={folder / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    server = Prometheus(f"http://127.0.0.1:{port}")
    try:
        _wait_for_scrapes(server, process, folder / "prometheus.log", targets=len(fleet.running))
        yield server
    finally:
        process.terminate()
        process.wait(timeout=20)
        log.close()


def _wait_for_scrapes(
    server: Prometheus, process: subprocess.Popen[bytes], log: Path, *, targets: int
) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()
        try:
            counts = server.query("count_over_time(up[1m])")
            up = server.query("up == 1")
        except OSError:
            time.sleep(0.2)
            continue
        if (
            len(up) == targets
            and len(counts) == targets
            and all(float(c["value"][1]) >= SCRAPES for c in counts)
        ):
            return
        time.sleep(0.3)
    raise AssertionError(f"targets not up and scraped {SCRAPES} times: {server.api('targets')}")


def _job_value(server: Prometheus) -> str:
    names = server.api("label/job_name/values", **{"match[]": "reconciler_fires_total"})
    return str(names[0]) if names else "no-such-job"


def test_every_dashboard_query_evaluates(prometheus: Prometheus) -> None:
    job = _job_value(prometheus)
    empty_but_fed = []
    for query in promql.all_panel_queries():
        expr = promql.with_grafana_variables(query.expr, job=job)
        result = prometheus.query(expr)  # raises on an error (HTTP 400)
        # Data must come out when every series the query selects has data.
        fed = all(prometheus.query(selector.promql()) for selector in promql.selectors(expr))
        if fed and not result:
            empty_but_fed.append(f"{query.origin}: {expr}")
    assert not empty_but_fed, "no data although every selected series has some:\n" + "\n".join(
        empty_but_fed
    )


def test_a_query_with_a_wrong_label_match_is_caught(prometheus: Prometheus) -> None:
    # The check above can fail: selectors with data, joined on a label they do not share.
    expr = "reconciler_leader and on (route) reconciler_api_requests_total"
    assert prometheus.query("reconciler_leader")
    assert not prometheus.query(expr)


def test_the_scraped_processes_export_the_dashboards_basics(
    prometheus: Prometheus, fleet: Fleet
) -> None:
    assert prometheus.query("reconciler_leader"), "no process exports reconciler_leader"
    assert prometheus.query('reconciler_reconcile_runs_total{outcome="failed"}')
    if any(r.target.job == "reconciler-api" for r in fleet.running):
        assert prometheus.query("reconciler_api_requests_total"), "the API counted no request"


def test_the_alert_rules_evaluate_without_errors(prometheus: Prometheus) -> None:
    deadline = time.monotonic() + 10
    while True:
        rules = [rule for group in prometheus.api("rules")["groups"] for rule in group["rules"]]
        if rules and all(rule.get("lastEvaluation", "").startswith("20") for rule in rules):
            break
        assert time.monotonic() < deadline, rules
        time.sleep(0.5)
    assert {rule["name"] for rule in rules} == {
        q.origin.split("/")[-1] for q in promql.rule_queries()
    }
    broken = {rule["name"]: rule.get("lastError") for rule in rules if rule["health"] != "ok"}
    assert not broken
