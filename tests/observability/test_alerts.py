"""docker/prometheus: the alert rules pass promtool, and every alert has unit tests."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from observability.promql import ALERTS

PROMETHEUS_DIR = ALERTS.parent
TESTS = PROMETHEUS_DIR / "alerts.test.yml"


def _alerts() -> list[dict]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def _cases() -> list[dict]:
    return [
        case
        for test in yaml.safe_load(TESTS.read_text())["tests"]
        for case in test["alert_rule_test"]
    ]


def test_rules_pass_promtool_check(promtool: str) -> None:
    result = subprocess.run(
        [promtool, "check", "rules", str(ALERTS)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_rules_pass_their_unit_tests(promtool: str) -> None:
    result = subprocess.run(
        [promtool, "test", "rules", TESTS.name],
        cwd=PROMETHEUS_DIR,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_test_rules_fails_on_a_wrong_expectation(promtool: str, tmp_path: Path) -> None:
    # The unit tests can fail: the same rules with one expectation turned around.
    tests = yaml.safe_load(TESTS.read_text())
    case = tests["tests"][0]["alert_rule_test"][0]
    assert case["exp_alerts"] == []
    case["exp_alerts"] = [{"exp_labels": {"severity": "warning"}}]
    (tmp_path / "alerts.yml").write_text(ALERTS.read_text())
    (tmp_path / "alerts.test.yml").write_text(yaml.safe_dump(tests))
    result = subprocess.run(
        [promtool, "test", "rules", "alerts.test.yml"], cwd=tmp_path, capture_output=True, text=True
    )
    assert result.returncode != 0


def test_every_alert_is_tested_firing_and_quiet() -> None:
    firing = {case["alertname"] for case in _cases() if case["exp_alerts"]}
    quiet = {case["alertname"] for case in _cases() if not case["exp_alerts"]}
    names = {rule["alert"] for rule in _alerts()}
    assert names - firing == set(), "alerts never tested firing"
    # ReconcilerNoLeader's quiet case is at 5m of "one leader, then none".
    assert names - quiet == set(), "alerts never tested staying quiet"
    assert (firing | quiet) - names == set(), "tests of alerts that do not exist"


def test_every_alert_has_a_severity_and_texts() -> None:
    for rule in _alerts():
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}, rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
        assert rule["annotations"]["description"], rule["alert"]
        assert rule["alert"].startswith("Reconciler"), rule["alert"]


def test_the_alerts_the_design_asks_for_exist() -> None:
    names = {rule["alert"] for rule in _alerts()}
    assert {
        "ReconcilerJobMissedSlot",
        "ReconcilerJobLastSuccessTooOld",
        "ReconcilerTaskFailureRatioHigh",
        "ReconcilerReconcileFailing",
        "ReconcilerQuarantinedFiles",
        "ReconcilerDriftRepairedRepeatedly",
        "ReconcilerNoLeader",
        "ReconcilerUnpublishedFiresGrowing",
    } <= names
