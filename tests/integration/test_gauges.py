"""The daemon's per-job gauges follow the inventory: counts by status, next fire and
nominal interval per job, and a removed job's series disappear."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import REGISTRY

from reconciler.engine.gauges import JobGauges
from reconciler.engine.reconcile import ReconcileCaches, reconcile_once
from reconciler.settings import Settings
from reconciler.store.db import create_sync_engine
from tests.integration.workspace import job_yaml


def value(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


def test_gauges_follow_the_inventory(tmp_path: Path, sqlite_url: str) -> None:
    jobs = tmp_path / "jobs.d"
    jobs.mkdir()
    (jobs / "a.yaml").write_text(job_yaml("gauge-a", cron="*/5 * * * *"))
    (jobs / "b.yaml").write_text(job_yaml("gauge-b", paused="true"))
    (jobs / "c.yaml").write_text(
        "name: gauge-c\ntask: reconciler.tasks.noop\nschedule: {interval: {minutes: 7}}\n"
    )
    settings = Settings(database_url=sqlite_url, jobs_dir=jobs, max_delete_fraction=1.0)
    from reconciler.store.migrate import upgrade_database

    upgrade_database(sqlite_url)
    engine = create_sync_engine(sqlite_url)
    caches, gauges = ReconcileCaches(), JobGauges()
    try:
        reconcile_once(engine, settings, trigger="cli", caches=caches)
        gauges.refresh(engine, caches.essences, caches.memory.triggers)
        assert value("reconciler_managed_jobs", status="active") == 2
        assert value("reconciler_managed_jobs", status="paused") == 1
        assert value("reconciler_job_interval_seconds", job_name="gauge-a") == 300
        assert value("reconciler_job_interval_seconds", job_name="gauge-c") == 420
        assert value("reconciler_job_next_fire_timestamp_seconds", job_name="gauge-a")
        assert value("reconciler_job_next_fire_timestamp_seconds", job_name="gauge-b") is None
        (jobs / "c.yaml").unlink()
        reconcile_once(engine, settings, trigger="cli", caches=caches)
        gauges.refresh(engine, caches.essences, caches.memory.triggers)
        assert value("reconciler_job_interval_seconds", job_name="gauge-c") is None
        assert value("reconciler_fires_total", job_name="gauge-c", outcome="published") is None
        assert value("reconciler_managed_jobs", status="active") == 1
        # Leadership lost: the per-job series go (a standby's would be frozen).
        gauges.forget_all()
        for name in ("reconciler_job_interval_seconds", "reconciler_job_slot_absent"):
            assert value(name, job_name="gauge-a") is None
        gauges.refresh(engine, caches.essences, caches.memory.triggers)  # leading again: back
        assert value("reconciler_job_interval_seconds", job_name="gauge-a") == 300
    finally:
        engine.dispose()
