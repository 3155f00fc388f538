"""Four DST nights fired by a real APScheduler with an injected clock, into the real ledger.

Jobs are written as YAML and applied by `reconcile apply` (their rows pickled into
`apscheduler_jobs` by the reconciler, as in production); `reconcile next JOB` lists what
they will fire. Then the daemon's own firing pipeline (OwnedJobStore, FireExecutor,
FiringService: dispatcher, ledger, RabbitMQ) runs under APScheduler's real scheduling
pass, `BaseScheduler._process_jobs`, whose clock is injected: each pass happens at the
instant the job store says is next, so a night takes no real time. The ledger must hold
exactly the slots `reconcile next` listed, each once.

Nights: Europe/Berlin 2027-03-28 (02:00 -> 03:00) and 2027-10-31 (03:00 -> 02:00);
Australia/Lord_Howe 2027-04-04 (02:00 -> 01:30) and 2027-10-03 (02:00 -> 02:30).

Then `reconcile explain` over each night, on that real ledger: every slot fired is `ran`
with its ledger row, none is absent, and the wall times the DST policy drops are listed
`skipped` with the policy as reason.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import ClassVar
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from apscheduler.schedulers import base as scheduler_base
from apscheduler.schedulers.base import BaseScheduler

from reconciler.dispatch.service import FiringService
from reconciler.settings import load_settings
from reconciler.store.jobstore import OwnedJobStore
from reconciler.store.tables import job_runs

from .conftest import Broker
from .helpers import Fence, wait_until

pytestmark = [pytest.mark.services, pytest.mark.slow]

RECONCILE = str(Path(sys.executable).with_name("reconcile"))
NIGHTS = {
    "berlin-spring": ("Europe/Berlin", "2027-03-28"),
    "berlin-autumn": ("Europe/Berlin", "2027-10-31"),
    "lordhowe-autumn": ("Australia/Lord_Howe", "2027-04-04"),
    "lordhowe-spring": ("Australia/Lord_Howe", "2027-10-03"),
}
SCHEDULES = {
    "real": ('"*/20 * * * *"', None),  # follows real time: {gap: skip, repeat: both}
    "fixed": ('"0,30 1-3 * * *"', None),  # Vixie: {gap: next, repeat: first}
    "policy": ('"15,45 1-2 * * *"', "{gap: shift, repeat: both}"),
}


class FakeClock(datetime):
    """APScheduler's scheduling pass reads `datetime.now(tz)`: this answers `instant`."""

    instant: ClassVar[datetime] = datetime(2027, 1, 1, tzinfo=UTC)

    @classmethod
    def now(cls, tz=None):  # type: ignore[override]  # untyped: datetime.now is overloaded
        return cls.instant.astimezone(tz) if tz else cls.instant.replace(tzinfo=None)


class ManualScheduler(BaseScheduler):
    """APScheduler's BaseScheduler with no thread of its own: the test runs its real
    `_process_jobs` pass whenever the injected clock reaches the next run time."""

    def shutdown(self, wait: bool = True) -> None:
        super().shutdown(wait)

    def wakeup(self) -> None:
        pass


def write_jobs(jobs_dir: Path) -> list[str]:
    names = []
    for night, (zone, day) in NIGHTS.items():
        for kind, (cron, dst) in SCHEDULES.items():
            name = f"{night}-{kind}"
            lines = [
                f"name: {name}",
                "task: reconciler.tasks.example_task",
                f"schedule: {{cron: {cron}}}",
                f"timezone: {zone}",
                f"start: {day}T00:00:00",
                f"end: {day}T05:00:00",
                "max_concurrent_runs: 1000",  # no worker runs here: no overlap skips
            ]
            if dst:
                lines.append(f"dst: {dst}")
            (jobs_dir / f"{name}.yaml").write_text("\n".join(lines) + "\n")
            names.append(name)
    return names


def previews(names: list[str], env: dict[str, str]) -> dict[str, list[dict]]:
    """`reconcile next JOB` for every job, as users run it (in parallel: CLI start-up)."""
    commands = {}
    for name in names:
        _, day = NIGHTS[name.rsplit("-", 1)[0]]
        # `--from` is exclusive and `start` inclusive: count from the second before.
        since = (datetime.fromisoformat(day) - timedelta(seconds=1)).isoformat()
        commands[name] = ["next", name, "--from", since, "--count", "60", "--format", "json"]
    return {name: found["fires"] for name, found in run_json(commands, env).items()}


def explains(names: list[str], env: dict[str, str]) -> dict[str, list[dict]]:
    """`reconcile explain JOB` over each job's night (00:00 to 05:00 local), in parallel."""
    commands = {}
    for name in names:
        zone, day = NIGHTS[name.rsplit("-", 1)[0]]
        start, end = (
            datetime.fromisoformat(f"{day}T{hour}").replace(tzinfo=ZoneInfo(zone)).astimezone(UTC)
            for hour in ("00:00:00", "05:00:00")
        )
        window = [f"{moment:%Y-%m-%dT%H:%M:%SZ}" for moment in (start - timedelta(seconds=1), end)]
        commands[name] = ["explain", name, "--from", window[0], "--to", window[1], "-o", "json"]
    return {name: found["slots"] for name, found in run_json(commands, env).items()}


def run_json(commands: dict[str, list[str]], env: dict[str, str]) -> dict[str, dict]:
    """Each `reconcile ARGV` at once; its JSON output by key. Asserts each exits 0."""
    processes = {
        key: subprocess.Popen([RECONCILE, *argv], env=env, stdout=subprocess.PIPE, text=True)
        for key, argv in commands.items()
    }
    out = {}
    for key, process in processes.items():
        stdout, _ = process.communicate(timeout=120)
        assert process.returncode == 0, key
        out[key] = json.loads(stdout)
    return out


def test_the_ledger_holds_exactly_the_previewed_slots(
    tmp_path: Path, ledger_url: str, engine: sa.Engine, broker: Broker, monkeypatch
) -> None:
    jobs_dir = tmp_path / "jobs.d"
    jobs_dir.mkdir()
    names = write_jobs(jobs_dir)
    env = {
        "PATH": str(Path(sys.executable).parent),
        "RECONCILER_JOBS_DIR": str(jobs_dir),
        "RECONCILER_DATABASE_URL": ledger_url,
    }
    applied = subprocess.run([RECONCILE, "apply"], env=env, capture_output=True, text=True)
    assert applied.returncode == 0, applied.stderr
    listed = previews(names, env)
    # The night's window is [00:00, 05:00] local: `start` is the first instant, a slot
    # at 00:00 itself fires, `end` bounds the last one. `--from` is exclusive.
    expected = {}
    for name, fires in listed.items():
        zone, day = NIGHTS[name.rsplit("-", 1)[0]]
        end = datetime.fromisoformat(f"{day}T05:00:00").replace(tzinfo=ZoneInfo(zone))
        times = [datetime.fromisoformat(f["at"]).astimezone(UTC) for f in fires]
        assert times and all(t <= end for t in times), name  # the end bounds the preview
        expected[name] = sorted(times)
    # The nights are DST nights: the previews carry the markers that say so.
    markers = {f["dst"] for fires in listed.values() for f in fires}
    assert {"gap-next", "gap-shift", "repeat-first", "repeat-second"} <= markers

    monkeypatch.setattr(scheduler_base, "datetime", FakeClock)
    settings = load_settings(database_url=ledger_url, broker_url=broker.url, publish_timeout=5)
    service = FiringService(engine=engine, settings=settings, fence=Fence(True))
    service.start()
    store = OwnedJobStore(engine=engine)
    scheduler = ManualScheduler(
        jobstores={"default": store}, executors={"default": service.executor()}, timezone=UTC
    )
    service.attach(scheduler)
    scheduler.start()
    try:
        passes = 0
        while (upcoming := store.get_next_run_time()) is not None:
            FakeClock.instant = upcoming.astimezone(UTC)
            scheduler._process_jobs()
            passes += 1
            assert passes < 2000, "the scheduler does not advance"
    finally:
        scheduler.shutdown()
        service.stop()

    total = sum(len(v) for v in expected.values())

    def ledger() -> list[tuple[str, datetime, str]]:
        with engine.connect() as connection:
            rows = connection.execute(
                sa.select(job_runs.c.job_name, job_runs.c.scheduled_time, job_runs.c.status)
            ).all()
        return [(r.job_name, r.scheduled_time.astimezone(UTC), r.status) for r in rows]

    rows = wait_until(lambda: (found := ledger()) and len(found) >= total and found, timeout=60)
    assert {status for _, _, status in rows} <= {"scheduled", "published"}
    fired = {name: sorted(t for job, t, _ in rows if job == name) for name in names}
    assert fired == expected
    assert len(rows) == total  # each slot once

    # `reconcile explain` on this ledger: each fired slot `ran`, with its row.
    reasons = set()
    for name, slots in explains(names, env).items():
        ran = [s for s in slots if s["fate"] == "ran"]
        assert sorted(_utc(s["slot"]) for s in ran) == expected[name], name
        assert all(s["run_id"] and s["outcome"] in ("scheduled", "published") for s in ran)
        others = [s for s in slots if s["fate"] != "ran"]
        assert all(s["fate"] == "skipped" and s["reason"].startswith("dst ") for s in others)
        reasons |= {s["reason"].split(":")[0] + ":" + s["reason"].split(":")[1] for s in others}
    # real: a gap wall skipped; fixed: gap walls folded into the jump, second occurrences.
    assert {"dst gap: skip", "dst gap: next", "dst repeat: first"} <= reasons


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
