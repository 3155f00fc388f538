"""reconciler.metrics: names, labels, closed vocabularies, per-job series; and the
daemon's exposition (reconciler.observability.start_metrics_server)."""

from __future__ import annotations

import re
import urllib.request
from pathlib import Path

import pytest
from prometheus_client import REGISTRY, Counter, Gauge, Histogram, Summary
from prometheus_client.parser import text_string_to_metric_families

from observability.targets import free_port
from reconciler import metrics
from reconciler.errors import ConfigError
from reconciler.job_series import JobFamily
from reconciler.observability import start_metrics_server

# The per-job families are JobFamily (reconciler.job_series), the others prometheus_client's.
ALL = [
    value
    for value in vars(metrics).values()
    if isinstance(value, Counter | Gauge | Histogram | Summary | JobFamily)
]


def _value(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


def test_every_metric_is_prefixed_and_never_labels_job_or_instance() -> None:
    assert len(ALL) >= 36
    for metric in ALL:
        assert metric._name.startswith("reconciler_"), metric._name
        # Prometheus owns `job` and `instance`: ours would be renamed exported_job.
        assert not {"job", "instance", "pid"} & set(metric._labelnames), metric._name


@pytest.mark.parametrize(
    ("name", "label", "values"),
    [
        ("reconciler_reconcile_changes_total", "action", metrics.CHANGE_ACTIONS),
        ("reconciler_reconcile_errors_total", "kind", metrics.ERROR_KINDS),
        ("reconciler_managed_jobs", "status", metrics.JOB_STATUSES),
    ],
)
def test_closed_vocabularies_are_exported_from_the_start(
    name: str, label: str, values: tuple[str, ...]
) -> None:
    for value in values:
        assert _value(name, **{label: value}) is not None, (name, value)


def test_every_trigger_and_outcome_of_a_pass_is_exported() -> None:
    for trigger in metrics.RECONCILE_TRIGGERS:
        for outcome in metrics.RECONCILE_OUTCOMES:
            assert (
                _value("reconciler_reconcile_runs_total", trigger=trigger, outcome=outcome)
                is not None
            )


def test_track_job_creates_and_forget_job_drops_its_series() -> None:
    job = "test-track-job"
    metrics.track_job(job, interval_seconds=300, next_fire=1_700_000_000)
    for outcome in metrics.FIRE_OUTCOMES:
        assert _value("reconciler_fires_total", job_name=job, outcome=outcome) == 0
    for reason in metrics.MISS_REASONS:
        assert _value("reconciler_missed_slots_total", job_name=job, reason=reason) == 0
    assert _value("reconciler_job_interval_seconds", job_name=job) == 300
    assert _value("reconciler_job_next_fire_timestamp_seconds", job_name=job) == 1_700_000_000
    # Paused: no next fire, and the interval stays (the stale-success alert needs both).
    metrics.track_job(job, interval_seconds=300, next_fire=None)
    assert _value("reconciler_job_next_fire_timestamp_seconds", job_name=job) is None
    metrics.forget_job(job)
    for name in ("reconciler_job_interval_seconds", "reconciler_duplicate_fires_suppressed_total"):
        assert _value(name, job_name=job) is None
    assert _value("reconciler_fires_total", job_name=job, outcome="published") is None
    metrics.forget_job(job)  # a second time: nothing left, no error


def test_track_task_creates_the_worker_series() -> None:
    task = "reconciler.tasks.test_track_task"
    metrics.track_task(task)
    for status in metrics.TASK_STATUSES:
        assert _value("reconciler_task_executions_total", task=task, status=status) == 0
    assert _value("reconciler_task_duration_seconds_count", task=task) == 0
    assert _value("reconciler_idempotent_skips_total", task=task) == 0


def test_start_metrics_server_serves_the_default_registry() -> None:
    assert start_metrics_server(0) is None  # settings.metrics_port 0: off
    server = start_metrics_server(free_port(), "127.0.0.1")
    assert server is not None
    try:
        metrics.RECONCILE_CHANGES.labels(action="repair").inc()
        body = urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=5).read()
        families = {f.name: f for f in text_string_to_metric_families(body.decode())}
        assert "reconciler_leader" in families
        samples = families["reconciler_reconcile_changes"].samples
        assert any(s.labels == {"action": "repair"} and s.value >= 1 for s in samples)
        with pytest.raises(ConfigError, match="Address already in use"):
            start_metrics_server(server.port, "127.0.0.1")  # the port is taken
    finally:
        server.close()


def test_every_metric_is_documented_for_operators() -> None:
    docs = (Path(__file__).resolve().parents[2] / "docs" / "observability.md").read_text()
    for metric in ALL:
        counter = isinstance(metric, Counter) or getattr(metric, "kind", "") == "counter"
        suffix = "_total" if counter else ""
        assert f"`{metric._name}{suffix}`" in docs, metric._name


def test_every_metric_is_exported_by_exactly_one_process_kind() -> None:
    # A family missing from all three is defined, documented and drawn, but served by no
    # /metrics at all (it happened to six families at once when two changes crossed).
    from prometheus_client.metrics import MetricWrapperBase

    defined = {
        name: value
        for name, value in vars(metrics).items()
        if isinstance(value, MetricWrapperBase | JobFamily)
    }
    kinds = (metrics.DAEMON_METRICS, metrics.WORKER_METRICS, metrics.API_METRICS)
    for name, metric in defined.items():
        owners = [kind for kind in kinds if any(m is metric for m in kind)]
        assert len(owners) == 1, f"{name} is exported by {len(owners)} process kinds"


def test_every_metric_is_moved_by_some_code() -> None:
    # "Every metric either moves or is deleted": each one is incremented, set or observed
    # somewhere in the package (by its name outside metrics.py, or by a setter inside it).
    # test_metrics_move watches the ones dashboards and alerts name move in a real run.
    package = Path(metrics.__file__).parent
    elsewhere = "\n".join(
        path.read_text() for path in package.rglob("*.py") if path != Path(metrics.__file__)
    )
    inside = Path(metrics.__file__).read_text()
    unmoved = []
    for name, value in vars(metrics).items():
        if not isinstance(value, Counter | Gauge | Histogram | Summary | JobFamily):
            continue
        moved_inside = re.search(
            rf"\b{name}(\.labels\([^)]*\))?\.(inc|dec|set|observe|set_to_current_time)\(", inside
        )
        if not re.search(rf"\b{name}\b", elsewhere) and not moved_inside:
            unmoved.append(name)
    assert not unmoved, f"defined but never moved: {unmoved}"
