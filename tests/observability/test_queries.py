"""Every PromQL expression of docker/ parses, and names only series the code exports.

"Exported" is what the real processes serve on /metrics (see targets.py), not a list
kept by hand: a renamed metric breaks these tests until the dashboards follow.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from observability import promql

ALL_QUERIES = [*promql.all_panel_queries(), *promql.rule_queries()]


def test_the_queries_are_found() -> None:
    origins = {query.origin.split(":")[0] for query in ALL_QUERIES}
    assert origins == {"fleet-overview.json", "job.json", "reconciler-health.json", "alerts.yml"}
    assert len(ALL_QUERIES) > 40


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("sum(reconciler_leader)", ["reconciler_leader"]),
        (
            'sum by (le, route) (rate(x_bucket{a="1,2", b=~"c|d"}[5m] offset 1h))',
            ['x_bucket{a="1,2",b=~"c|d"}'],
        ),
        ("a / on (job_name) group_left (task) b", ["a", "b"]),
        ("a > on (x) group_left b unless c > bool 3", ["a", "b", "c"]),
        ("time() - max without (pid) (g)", ["g"]),
        ('label_replace(m, "dst", "$1", "src", "(.*)")', ["m"]),
        ("topk(5, max_over_time(m[1h:5m])) and sum(rate(n[1m])) by (job)", ["m", "n"]),
        ("histogram_quantile(0.9, sum by (le) (rate(h_bucket[1m]))) * 1e3", ["h_bucket"]),
    ],
)
def test_selectors_are_extracted(expr: str, expected: list[str]) -> None:
    assert [selector.promql() for selector in promql.selectors(expr)] == expected


def test_a_selector_without_a_name_is_refused() -> None:
    with pytest.raises(ValueError, match="without a metric name"):
        promql.selectors('sum({__name__=~"reconciler_.*"})')


def test_grafana_variables_are_replaced() -> None:
    expr = 'rate(m{job_name="$job"}[$__rate_interval])'
    assert promql.with_grafana_variables(expr, job="x") == 'rate(m{job_name="x"}[1m])'
    with pytest.raises(ValueError, match="Grafana variable"):
        promql.with_grafana_variables(expr)


def test_every_expression_parses(promtool: str, tmp_path: Path) -> None:
    # Each expression becomes a recording rule in a group of its own, so promtool's
    # message names the group (the panel) of a bad one.
    groups = [
        {
            "name": query.origin,
            "rules": [
                {
                    "record": f"check:query_{index}",
                    "expr": promql.with_grafana_variables(query.expr, job="x"),
                }
            ],
        }
        for index, query in enumerate(ALL_QUERIES)
    ]
    rules = tmp_path / "queries.yml"
    rules.write_text(yaml.safe_dump({"groups": groups}))
    result = subprocess.run(
        [promtool, "check", "rules", str(rules)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(ALL_QUERIES)} rules found" in result.stdout + result.stderr


def test_promtool_rejects_a_bad_expression(promtool: str, tmp_path: Path) -> None:
    # The check above can fail: a broken expression is reported.
    rules = tmp_path / "bad.yml"
    rules.write_text(
        yaml.safe_dump(
            {"groups": [{"name": "g", "rules": [{"record": "a:b", "expr": "sum(rate(x[5m])"}]}]}
        )
    )
    result = subprocess.run(
        [promtool, "check", "rules", str(rules)], capture_output=True, text=True
    )
    assert result.returncode != 0


@pytest.mark.slow
@pytest.mark.e2e
def test_every_name_is_exported_by_a_real_process(exported: set[str]) -> None:
    unknown = {
        f"{query.origin}: {name}"
        for index, query in enumerate(ALL_QUERIES)
        for name in promql.metric_names(query.expr)
        if name not in exported and name not in promql.PROMETHEUS_SERIES
    }
    assert not unknown, "not exported by any process:\n" + "\n".join(sorted(unknown))


@pytest.mark.slow
@pytest.mark.e2e
def test_the_job_variable_reads_an_exported_label(exported: set[str]) -> None:
    from prometheus_client import REGISTRY

    import reconciler.metrics  # noqa: F401 - registers every metric
    from reconciler.job_series import JobSeries

    for path in promql.dashboard_files():
        for query in promql.dashboard_queries(path):
            if ": variable " in query.origin:
                metric, label = promql.label_values_metric(query.expr)
                assert metric in exported, query.origin
                owner = REGISTRY._names_to_collectors[metric]
                if isinstance(owner, JobSeries):  # the daemon's per-job families
                    owner = owner.family(metric)
                assert label in owner._labelnames, query.origin
