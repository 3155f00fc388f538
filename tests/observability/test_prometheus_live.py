"""A real Prometheus scrapes the real processes (targets.py); every dashboard query is
evaluated through its HTTP API, and the alert rules evaluate without errors."""

from __future__ import annotations

import time

import pytest

from observability import promql
from observability.prom import Prometheus
from observability.targets import Fleet

pytestmark = [pytest.mark.slow, pytest.mark.services, pytest.mark.e2e]


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
