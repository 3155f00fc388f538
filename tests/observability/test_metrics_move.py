"""Metrics that are true: during a real run (daemon, worker and API, scraped every second by
a real Prometheus), every metric that a dashboard or an alert rule names is observed to
CHANGE — not only to exist. What does not happen by itself in a quiet run is provoked
through the real system: failing, retried and slow (overlapping) jobs, a quarantined
file, a foreign scheduler row, a lost scheduler row (drift repair), a refused pass, a
slot nobody recorded, a duplicate fire, a duplicate delivery, a fire waiting for the
broker, publishes failing on a broker that died (a PRIVATE RabbitMQ node, tests/faults.py:
the shared one is never stopped), and a daemon that stands by while another process holds
the leader lock.

"Changed" is strict: a series whose value differs between two of its samples in the
run (a counter that counted, a gauge that moved). A series that merely appeared at 0
does not count.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import sqlite3
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from faults import PrivateRabbit

from observability import promql
from observability import targets as t
from observability.prom import Prometheus

pytestmark = [pytest.mark.slow, pytest.mark.services, pytest.mark.e2e]

PROBE = "observability-probe"
JOBS = {
    "obs-fail.yaml": """\
name: obs-fail
task: reconciler.tasks.fail_task
kwargs: {permanent: true}
schedule: {cron: "*/2 * * * * *"}
""",
    "obs-retry.yaml": """\
name: obs-retry
task: reconciler.tasks.fail_task
schedule: {cron: "*/3 * * * * *"}
retries: 1
retry_delay_seconds: 1
""",
    "obs-slow.yaml": """\
name: obs-slow
task: reconciler.tasks.sleep_task
kwargs: {seconds: 5}
schedule: {cron: "*/2 * * * * *"}
max_concurrent_runs: 1
""",
    "obs-yearly.yaml": """\
name: obs-yearly
task: reconciler.tasks.noop
schedule: {cron: "0 0 1 1 *"}
""",
}

UNPUBLISHED_JOB = """\
name: obs-unpublished
task: reconciler.tasks.noop
schedule: {cron: "* * * * * *"}
"""


class Run:
    """The fleet under test and the means to poke it."""

    def __init__(self, fleet: t.Fleet, prometheus: Prometheus) -> None:
        self.fleet = fleet
        self.prometheus = prometheus
        self.jobs_dir = Path(fleet.context["jobs_dir"])
        self.database = fleet.context["db_url"].removeprefix("sqlite:///")

    def sql(self, statement: str, *params: object) -> list[tuple]:
        with sqlite3.connect(self.database, timeout=30) as connection:
            return connection.execute(statement, params).fetchall()

    def wait(self, expr: str, what: str, timeout: float = 40) -> None:
        self.prometheus.wait_for(expr, timeout=timeout, what=what)


def _increase(metric: str, labels: str = "") -> str:
    return f"sum(increase({metric}{{{labels}}}[2m])) > 0"


def _provoke(run: Run, broker: Future[PrivateRabbit]) -> None:
    jobs = run.jobs_dir
    # New jobs: failures, retries, overlaps; the probe's schedule changes (its interval).
    for name, text in JOBS.items():
        (jobs / name).write_text(text)
    probe = jobs / "probe.yaml"
    probe.write_text(probe.read_text().replace('"*/2 * * * * *"', '"*/3 * * * * *"'))
    run.wait('max(reconciler_managed_jobs{status="active"}) >= 5', "the new jobs applied")
    run.wait(f'max(reconciler_job_interval_seconds{{job_name="{PROBE}"}}) == 3', "interval 3 s")

    # A broken file is quarantined, then mended.
    (jobs / "broken.yaml").write_text("name: [unclosed\n")
    run.wait("max(reconciler_quarantined_files) > 0", "the broken file quarantined")
    (jobs / "broken.yaml").unlink()
    run.wait("max(reconciler_quarantined_files) == 0", "the quarantine lifted")

    # A scheduler row nobody owns is reported; one of ours that vanished is repaired.
    run.sql(
        "INSERT INTO apscheduler_jobs (id, next_run_time, job_state) "
        "VALUES ('x-foreign', NULL, x'00')"
    )
    run.wait("max(reconciler_foreign_scheduler_rows) > 0", "the foreign row reported")
    run.sql("DELETE FROM apscheduler_jobs WHERE id = 'x-foreign'")
    run.sql("DELETE FROM apscheduler_jobs WHERE id = 'obs-yearly'")
    run.wait(_increase("reconciler_drift_repairs_total"), "the lost row repaired")
    run.wait("max(reconciler_foreign_scheduler_rows) == 0", "the foreign row gone")

    # Every file gone at once: the safety guard refuses to remove every job.
    parked = jobs.parent / "parked"
    shutil.move(jobs, parked)
    jobs.mkdir()
    run.wait(_increase("reconciler_reconcile_runs_total", 'outcome="refused"'), "a refused pass")
    jobs.rmdir()
    shutil.move(parked, jobs)

    # A past slot with no ledger row at all: the yearly job "existed" since 2020.
    run.sql(
        "UPDATE scheduled_jobs SET updated_at = '2020-01-02 00:00:00' WHERE name = 'obs-yearly'"
    )
    run.wait('max(reconciler_job_slot_absent{job_name="obs-yearly"}) == 1', "an absent slot")
    run.sql("UPDATE scheduled_jobs SET updated_at = ? WHERE name = 'obs-yearly'", _now_text())
    run.wait('max(reconciler_job_slot_absent{job_name="obs-yearly"}) == 0', "absent no more")

    # Another scheduler already recorded a slot of the probe: the fire is a duplicate.
    slot = _next_probe_slot(after=datetime.now(UTC) + timedelta(seconds=4))
    run.sql(
        "INSERT INTO job_runs (id, job_name, scheduled_time, status, task, queue, "
        "idempotency_key, updated_at) VALUES (?, ?, ?, 'succeeded', 'x', 'default', ?, ?)",
        str(uuid.uuid4()),
        PROBE,
        slot.strftime("%Y-%m-%d %H:%M:%S.000000"),
        f"other-scheduler-{uuid.uuid4()}",
        _now_text(),
    )
    run.wait(_increase("reconciler_duplicate_fires_suppressed_total"), "a duplicate fire")

    # A fire that already ran is published again (as after a crash before the confirm):
    # the worker does not run it twice.
    done = run.sql(
        "SELECT id FROM job_runs WHERE job_name = ? AND status = 'succeeded' AND task != 'x' "
        "ORDER BY scheduled_time DESC LIMIT 1",
        PROBE,
    )
    run.sql(
        "UPDATE job_runs SET status = 'scheduled', next_attempt_at = NULL WHERE id = ?", done[0][0]
    )
    run.wait(_increase("reconciler_idempotent_skips_total"), "a duplicate delivery skipped")

    # A fire recorded but not yet published (as when the broker did not confirm it):
    # the backlog gauge counts it until the retrier publishes it.
    backlog = str(uuid.uuid4())
    run.sql(
        "INSERT INTO job_runs (id, job_name, scheduled_time, status, task, queue, "
        "idempotency_key, next_attempt_at, updated_at) VALUES "
        "(?, ?, '2026-01-01 00:00:00.000000', 'scheduled', 'reconciler.tasks.noop', "
        "'default', ?, '2999-01-01 00:00:00.000000', ?)",
        backlog,
        PROBE,
        backlog,
        _now_text(),
    )
    run.wait("max(reconciler_unpublished_fires) > 0", "a fire waiting for the broker")
    run.sql("UPDATE job_runs SET next_attempt_at = NULL WHERE id = ?", backlog)
    run.wait("max(reconciler_unpublished_fires) == 0", "the backlog published", timeout=60)

    # The broker dies under the daemon: publishes fail (and the fires wait in the ledger).
    # The daemon refuses to START on an unreachable broker, so it is restarted on a private
    # node (booted since the test began) and the node is killed under it. A job added then
    # fires into the dead broker (the others' runs published to the node never finish, so
    # their next slots are overlaps and publish nothing).
    node = broker.result(timeout=180)
    _restart_daemon(run, broker_url=node.url(), hold_lock=False)
    run.wait('reconciler_leader{job="reconciler-daemon"} == 1', "the daemon leading")
    node.kill()
    (jobs / "obs-unpublished.yaml").write_text(UNPUBLISHED_JOB)
    run.wait(_increase("reconciler_publish_failures_total"), "publishes failing")
    (jobs / "obs-unpublished.yaml").unlink()

    # The daemon stops. Restarted while this test holds the leader lock, it stands by
    # (leader 0) and leads (1) once the lock is free. Slots pass meanwhile.
    _restart_daemon(run, broker_url=None, hold_lock=True)
    run.wait('reconciler_leader{job="reconciler-daemon"} == 1', "the daemon leading again")
    run.wait(_increase("reconciler_missed_slots_total"), "slots missed while it was down")


def _restart_daemon(run: Run, *, broker_url: str | None, hold_lock: bool) -> None:
    daemon = run.fleet.get("reconciler-daemon")
    assert daemon is not None
    t.stop(daemon)
    target = daemon.target
    if broker_url is not None:
        target = replace(target, env={**target.env, "RECONCILER_BROKER_URL": broker_url})
    else:
        target = replace(target, env=t.PROCESS_ENV)
    context = {k: v for k, v in run.fleet.context.items() if k != "log_dir"}
    log_dir = Path(run.fleet.context["log_dir"])
    descriptor = os.open(run.database + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        if hold_lock:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
        again = t.start(target, context=context, log_dir=log_dir, port=daemon.port)
        run.fleet.running[run.fleet.running.index(daemon)] = again
        if hold_lock:
            run.wait('reconciler_leader{job="reconciler-daemon"} == 0', "the daemon standing by")
    finally:
        if hold_lock:
            fcntl.flock(descriptor, fcntl.LOCK_UN)
        os.close(descriptor)


def _next_probe_slot(after: datetime) -> datetime:
    second = (after.second // 3 + 1) * 3
    return after.replace(microsecond=0, second=0) + timedelta(seconds=second)


def _now_text() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def _named_metrics() -> dict[str, set[str]]:
    """Every series name in the dashboards and alert rules, with where it is used."""
    named: dict[str, set[str]] = {}
    for query in [*promql.all_panel_queries(), *promql.rule_queries()]:
        for name in promql.metric_names(promql.with_grafana_variables(query.expr, job="x")):
            if name not in promql.PROMETHEUS_SERIES:
                named.setdefault(name, set()).add(query.origin)
    return named


def _changed(prometheus: Prometheus, name: str, start: float, end: float) -> bool:
    for series in prometheus.query_range(name, start, end):
        if len({value for _, value in series["values"]}) > 1:
            return True
    return False


def test_every_metric_of_the_dashboards_and_alerts_moves(
    fleet: t.Fleet, prometheus: Prometheus
) -> None:
    run = Run(fleet, prometheus)
    started = time.time()
    for running in fleet.running:
        if running.target.activity is not None:
            running.target.activity(running.base_url)
    with ExitStack() as cleanup, ThreadPoolExecutor(1) as booter:
        # The private node boots (5-20 s) while the other provocations run.
        broker = booter.submit(lambda: cleanup.enter_context(PrivateRabbit()))
        try:
            _provoke(run, broker)
        finally:
            broker.exception()  # wait for the boot: its node is closed on the way out
    time.sleep(2)  # one more scrape of everything
    named = _named_metrics()
    still = sorted(name for name in named if not _changed(prometheus, name, started, time.time()))
    assert not still, "never changed during the run:\n" + "\n".join(
        f"  {name}  (used in {', '.join(sorted(named[name]))})" for name in still
    )


def test_each_process_exports_only_its_own_families(fleet: t.Fleet) -> None:
    from reconciler import metrics

    owners = {
        "reconciler-daemon": metrics.DAEMON_METRICS,
        "reconciler-worker": metrics.WORKER_METRICS,
        "reconciler-api": metrics.API_METRICS,
    }
    for job, exposition in fleet.expositions().items():
        if job not in owners:
            continue
        ours = {
            name.removesuffix("_total")
            for name in t.exported_names(exposition)
            if name.startswith("reconciler_")
        }
        allowed = metrics.family_names(owners[job])
        foreign = {name for name in ours if not any(name.startswith(f) for f in allowed)}
        assert not foreign, f"{job} exports families of other processes: {sorted(foreign)}"


def test_every_panel_of_the_job_dashboard_has_data(fleet: t.Fleet, prometheus: Prometheus) -> None:
    # After the run above (same session): the probe job has fired, run and been counted.
    path = promql.DASHBOARDS / "job.json"
    empty = []
    for query in promql.dashboard_queries(path):
        if query.expr.startswith("label_values("):  # the $job variable: lists the probe
            metric, label = promql.label_values_metric(query.expr)
            values = prometheus.api(f"label/{label}/values", **{"match[]": metric})
            assert PROBE in values, query
            continue
        expr = promql.with_grafana_variables(query.expr, job=PROBE)
        if not _eventually(lambda expr=expr: bool(prometheus.query(expr)), timeout=30):
            empty.append(f"{query.origin}: {expr}")
    assert not empty, "panels without data:\n" + "\n".join(empty)


def _eventually(check: Callable[[], bool], *, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(1)
    return False
