"""A job's FIRST slot survives a leadership flap at that very instant (bench/RESULTS.md,
"FIRST slot"): the leader is frozen (SIGSTOP) just before the slot and woken after it,
long enough that its health check comes too late; it steps down and leads again with a
new epoch (or, with a standby, whichever takes the lock first leads). The slot must be
fired once (counted at the broker, outside the ledger) or recorded 'missed' per the
job's misfire grace; `reconcile explain` and GET /slots say the same.

Before the fix, the woken scheduler took the slot, the fence refused the fire ("refused
N stale fire(s)") and next_run_time moved on, and the next term's rewind skipped a job
with no ledger row: the slot was neither fired nor recorded. Now the job store is fenced
as well (a fenced scheduler moves nothing on) and the rewind anchors a never-fired job at
its last change (a crash between moving on and recording: the SIGKILL test below).

Only a process the test started is frozen; the shared services are untouched."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from reconciler.api import create_app
from reconciler.settings import Settings

from .helpers import (
    BrokerCounter,
    Cluster,
    DaemonProcess,
    as_utc,
    fresh_cluster,
    wait_for_next_term,
    wait_until,
    write_jobs,
)

pytestmark = [pytest.mark.services, pytest.mark.slow]

RECONCILE = str(Path(sys.executable).parent / "reconcile")
# Frozen from just before the slot until this long after it: more than the health
# thread's 2 intervals (2 s), less than the 3 s lease (no standby runs anyway).
FREEZE_AFTER_SLOT = 2.5
# How far ahead the first slot is placed: time for the daemon to apply the files.
LEAD_TIME = 8


def daily_cron_at(moment: datetime) -> str:
    """A six-field cron (seconds first) firing once a day at `moment` (UTC)."""
    return f"{moment.second} {moment.minute} {moment.hour} * * *"


def next_run_times(cluster: Cluster, jobs: list[str]) -> dict[str, datetime]:
    rows = cluster.rows(
        "SELECT id, next_run_time FROM apscheduler_jobs WHERE id = ANY(:ids)", ids=jobs
    )
    return {job: datetime.fromtimestamp(stamp, UTC) for job, stamp in rows if stamp}


def freeze_across(daemon: DaemonProcess, slot: datetime) -> None:
    """SIGSTOP 0.3 s before `slot`, SIGCONT FREEZE_AFTER_SLOT s after it."""
    time.sleep(max(0.0, (slot - datetime.now(UTC)).total_seconds() - 0.3))
    os.kill(daemon.pid, signal.SIGSTOP)
    try:
        time.sleep(max(0.0, (slot - datetime.now(UTC)).total_seconds() + FREEZE_AFTER_SLOT))
    finally:
        os.kill(daemon.pid, signal.SIGCONT)


def explain(cluster: Cluster, job: str, slot: datetime) -> list[dict[str, Any]]:
    window = [_z(slot - timedelta(seconds=1)), _z(slot + timedelta(seconds=1))]
    done = subprocess.run(
        [RECONCILE, "explain", job, "--from", window[0], "--to", window[1], "-o", "json"],
        env=cluster.env("explain"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    slots: list[dict[str, Any]] = json.loads(done.stdout)["slots"]
    return slots


def served_slots(client: TestClient, job: str, slot: datetime) -> list[dict[str, Any]]:
    window = {"from": _z(slot - timedelta(seconds=1)), "to": _z(slot + timedelta(seconds=1))}
    body = client.get(f"/api/v1/jobs/{job}/slots", params=window)
    assert body.status_code == 200, body.text
    items: list[dict[str, Any]] = body.json()["items"]
    return items


def _z(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.mark.parametrize("grace", [60, 3], ids=["grace-60s", "grace-3s"])
def test_a_first_slot_lost_to_a_flap_is_fired_or_recorded_missed(
    make_cluster, broker, grace: int
) -> None:
    """grace 60 s: the new term fires the slot late. grace 3 s: the new term fires it if
    it leads within 3 s of the slot, else records it missed (misfire): each row must
    agree with the grace, whichever the machine's load made it."""
    cluster = make_cluster()
    write_jobs(cluster.jobs_dir, ["warm"])  # every second: the daemon leads and fires
    daemon = cluster.start("daemon-a")
    wait_until(lambda: cluster.count_runs("published") >= 3, timeout=60, what="warm fires")
    _, epoch = cluster.leader()

    first = (datetime.now(UTC) + timedelta(seconds=LEAD_TIME)).replace(microsecond=0)
    jobs = [f"first-slot-{n}" for n in range(5)]
    write_jobs(cluster.jobs_dir, jobs, cron=daily_cron_at(first), misfire_grace_seconds=grace)
    wait_until(
        lambda: next_run_times(cluster, jobs) == dict.fromkeys(jobs, first),
        timeout=LEAD_TIME - 2,
        what="the jobs applied, their first slot due",
    )
    freeze_across(daemon, first)

    new = wait_for_next_term(cluster, epoch)
    woken_at = datetime.now(UTC)
    wait_until(
        lambda: (
            cluster.scalar(
                "SELECT count(*) FROM job_runs WHERE job_name = 'warm' AND fired_at > :t",
                t=woken_at,
            )
            >= 3
        ),
        timeout=30,
        what="3 s of fires in the new term",
    )
    # The fault happened as designed: the woken leader stepped down (fenced).
    assert "lost the leadership" in daemon.output(), daemon.output()[-3000:]
    assert new[0] == "daemon-a"
    wait_until(
        lambda: (
            not cluster.scalar(
                "SELECT count(*) FROM job_runs WHERE job_name LIKE 'first-slot-%' "
                "AND status = 'scheduled'"
            )
        ),
        timeout=20,
        what="the first slots published",
    )
    assert daemon.stop() == 0

    rows = cluster.rows(
        "SELECT id, job_name, scheduled_time, status, reason, lateness_seconds, duplicates "
        "FROM job_runs WHERE job_name LIKE 'first-slot-%'"
    )
    assert sorted((row.job_name, as_utc(row.scheduled_time)) for row in rows) == [
        (job, first) for job in jobs
    ], f"ledger {rows}: the first slot must be fired once or recorded missed"
    fates = {}
    for row in rows:
        if row.status == "published":
            assert row.lateness_seconds <= grace, row
            fates[row.job_name] = "ran"
        else:
            assert (row.status, row.reason) == ("missed", "misfire"), row
            fates[row.job_name] = "missed"
    if grace == 60:
        assert set(fates.values()) == {"ran"}
    assert sum(row.duplicates for row in rows) == 0
    # Executions counted outside the ledger: the broker's messages, each slot once.
    wait_until(lambda: broker.drain(idle=0.3) == 0 and broker.task_ids, timeout=30)
    sent = Counter(broker.task_ids)
    for row in rows:
        assert sent[row.id] == (1 if row.status == "published" else 0), row
    # What people read says the same: `reconcile explain` and GET /slots.
    with TestClient(create_app(Settings(database_url=cluster.db_url, api_cache_seconds=0))) as api:
        for job in jobs:
            cli = [(s["slot"], s["fate"]) for s in explain(cluster, job, first)]
            assert cli == [(_z(first), fates[job])], (job, cli)
            served = [(s["slot"], s["fate"]) for s in served_slots(api, job, first)]
            assert served == cli, (job, served)
    print(f"\nflap at the first slot {_z(first)} (grace {grace} s): {Counter(fates.values())}")


# The SIGKILL must land between the leader moving the first slots on and recording them:
# a window of milliseconds the test's poll can overshoot on a loaded machine (CI at load
# ~15 killed it after all 20 were recorded). Each attempt is a fresh database, vhost and
# pair of daemons; an attempt that missed the window proves nothing and is repeated.
KILL_ATTEMPTS = 6
KILLED_JOBS = 20
LOST_BY_THE_DEAD = (
    "SELECT id FROM apscheduler_jobs WHERE id = ANY(:ids) AND next_run_time > :t "
    "AND NOT EXISTS (SELECT 1 FROM job_runs WHERE job_name = apscheduler_jobs.id)"
)


def test_sigkill_between_moving_on_and_recording_loses_no_first_slot(tmp_path: Path) -> None:
    """The leader is killed the moment its scheduler has moved the first slot of 20
    never-fired jobs on, before their ledger rows are written (the Dispatcher records
    them a few ms later): the standby's rewind, anchored at the jobs' apply (no ledger
    row), makes them due again: each slot once in the ledger, published.

    Retried (fresh state each time, at most KILL_ATTEMPTS) while the kill comes outside
    the window (no slot moved on without its ledger row: nothing to rewind); fails if an
    attempt inside the window loses or doubles a slot, or if no attempt hit it."""
    missed = []
    for attempt in range(1, KILL_ATTEMPTS + 1):
        with fresh_cluster(tmp_path / f"attempt-{attempt}") as cluster:
            recorded = kill_between_moving_on_and_recording(
                cluster, BrokerCounter(cluster.broker_url)
            )
        if recorded is None:
            print(f"\nattempt {attempt}: inside the window after {len(missed)} misses {missed}")
            return
        missed.append(recorded)
    pytest.fail(
        f"the SIGKILL never landed inside the window in {KILL_ATTEMPTS} attempts (the dead "
        f"leader had recorded {missed} of {KILLED_JOBS} first slots): the machine was too "
        "slow to test the rewind; the guarantee itself was NOT checked"
    )


def kill_between_moving_on_and_recording(cluster: Cluster, broker: BrokerCounter) -> int | None:
    """One attempt: None if the kill landed inside the window (at least one first slot
    moved on and not recorded) and every slot was then accounted for once (an assertion
    fails otherwise); else how many first slots the dead leader had recorded (the attempt
    missed the window: nothing to rewind, nothing checked)."""
    write_jobs(cluster.jobs_dir, ["warm"])
    first_daemon, second_daemon = cluster.start("daemon-a"), cluster.start("daemon-b")
    wait_until(lambda: cluster.count_runs("published") >= 3, timeout=60, what="warm fires")
    name, epoch = cluster.leader()
    leading, standby = (
        (first_daemon, second_daemon) if name == "daemon-a" else (second_daemon, first_daemon)
    )
    first = (datetime.now(UTC) + timedelta(seconds=LEAD_TIME)).replace(microsecond=0)
    jobs = [f"killed-first-{n:02d}" for n in range(KILLED_JOBS)]
    write_jobs(cluster.jobs_dir, jobs, cron=daily_cron_at(first))
    wait_until(
        lambda: next_run_times(cluster, jobs) == dict.fromkeys(jobs, first),
        timeout=LEAD_TIME - 2,
        what="the jobs applied, their first slot due",
    )
    time.sleep(max(0.0, (first - datetime.now(UTC)).total_seconds() - 0.05))
    window = "SELECT count(*) FROM apscheduler_jobs WHERE id = ANY(:ids) AND next_run_time > :t"
    with cluster.engine.connect() as connection:
        moved_on = sa.text(window).bindparams(ids=jobs, t=first.timestamp())
        wait_until(lambda: connection.execute(moved_on).scalar(), timeout=10, interval=0.001)
        leading.kill()
    killed_at = datetime.now(UTC)
    # Read at once, in one snapshot: the slots the dead leader moved on without recording
    # them. The standby's takeover (rewind, fires) can only shrink this set, making a hit
    # look like a miss (one more attempt), never the reverse.
    lost = cluster.rows(LOST_BY_THE_DEAD, ids=jobs, t=first.timestamp())
    if not lost:
        return len(cluster.ledger("killed-first-"))
    wait_for_next_term(cluster, epoch, timeout=20)
    wait_for_fires_since(cluster, datetime.now(UTC), what="the standby")
    assert standby.stop() == 0
    rows = cluster.ledger("killed-first-")
    rewound = standby.output().count("made due again")
    assert sorted((row.job_name, as_utc(row.scheduled_time)) for row in rows) == [
        (job, first) for job in jobs
    ], f"ledger {rows}; rewind lines: {rewound}; lost by the dead: {len(lost)}"
    assert {row.status for row in rows} == {"published"}
    assert sum(row.duplicates for row in rows) == 0
    wait_until(lambda: broker.drain(idle=0.3) == 0 and broker.task_ids, timeout=30)
    sent = Counter(broker.task_ids)
    for row in rows:
        # Re-sent (same task id, run once by the worker) only if the dead leader fired it.
        assert sent[row.id] == 1 or (sent[row.id] == 2 and as_utc(row.fired_at) <= killed_at)
    print(
        f"\nkilled with {len(lost)} of {len(jobs)} first slots moved on, not recorded; "
        f"the standby rewound: {bool(rewound)}"
    )
    return None


# --- the property: random flap instants over bursts of never-fired jobs ----------------

ROUNDS = 3
# Per round: daily jobs whose one slot is T+0..T+3 (T a few seconds ahead), and jobs
# every 2 s (their first slot comes before the flap: the ledger anchors them).
DAILY_OFFSETS = (0, 1, 2, 3)
GRACES = (1, 3, 60)


def write_round(
    cluster: Cluster, round_no: int, at: datetime, rng: random.Random
) -> dict[str, datetime | None]:
    """A burst of never-fired jobs around `at`: {name: its one slot (daily jobs) or None}."""
    names: dict[str, datetime | None] = {}
    for offset in DAILY_OFFSETS:
        for grace in GRACES:
            name = f"r{round_no}-daily-{offset}-g{grace}"
            slot = names[name] = at + timedelta(seconds=offset)
            write_jobs(
                cluster.jobs_dir, [name], cron=daily_cron_at(slot), misfire_grace_seconds=grace
            )
    for grace in GRACES:
        name = f"r{round_no}-every2-g{grace}"
        coalesce = rng.choice(["true", "false"])
        write_jobs(
            cluster.jobs_dir, [name], cron="*/2 * * * * *", misfire_grace_seconds=grace,
            coalesce=coalesce,
        )  # fmt: skip
        names[name] = None
    return names


def expected_slots(daily: datetime | None, applied_at: datetime, until: datetime) -> list[datetime]:
    """A job's slots after it was applied (`applied_at`), up to `until`: its one daily
    slot, or every even second; by plain arithmetic, not by the engine under test."""
    if daily is not None:
        return [daily]
    moment = applied_at.replace(microsecond=0) + timedelta(seconds=1)
    moment += timedelta(seconds=moment.second % 2)
    slots = []
    while moment <= until:
        slots.append(moment)
        moment += timedelta(seconds=2)
    return slots


def test_random_flaps_over_never_fired_jobs_account_for_every_slot(make_cluster, broker) -> None:
    """Each round freezes the leader at a random instant around T for a random 2.2-3.5 s:
    it is fenced, steps down, and the same process or the standby leads next (whichever
    takes the lock first; a superseded process exits 3 and is replaced by a fresh
    standby). Afterwards every slot of every job since it was applied is in the ledger
    once: published (within its grace: counted once at the broker) or missed with a
    reason; none absent, none twice. A slot the frozen leader published just before it
    froze may reach the broker twice: the broker confirmed it, but the row was not yet
    marked 'published', so the next leader's retrier publishes it again with the same
    task id (the worker's CLAIM runs it once; README, "Exactly once"). Only such slots
    may be sent twice."""
    seed = int(os.environ.get("FIRSTSLOT_SEED", time.time_ns() % 100_000))
    rng = random.Random(seed)
    cluster = make_cluster()
    write_jobs(cluster.jobs_dir, ["warm"])
    daemons = {name: cluster.start(name) for name in ("daemon-a", "daemon-b")}
    wait_until(lambda: cluster.count_runs("published") >= 3, timeout=60, what="warm fires")
    applied: dict[str, datetime] = {}
    daily: dict[str, datetime | None] = {}
    flaps = []
    froze_at: list[datetime] = []
    for round_no in range(ROUNDS):
        name, epoch = cluster.leader()
        at = (datetime.now(UTC) + timedelta(seconds=LEAD_TIME)).replace(microsecond=0)
        written = write_round(cluster, round_no, at, rng)
        daily.update(written)
        jobs = list(written)
        wait_until(
            lambda jobs=jobs: len(next_run_times(cluster, jobs)) == len(jobs),
            timeout=LEAD_TIME - 2,
            what=f"round {round_no} applied",
        )
        applied.update(applied_at(cluster, jobs))
        start, length = rng.uniform(-1.0, 0.5), rng.uniform(2.2, 3.5)
        flaps.append((name, round(start, 2), round(length, 2)))
        froze_at.append(at + timedelta(seconds=start))
        freeze_for(daemons[name], at + timedelta(seconds=start), length)
        wait_for_next_term(cluster, epoch)
        wait_for_fires_since(cluster, datetime.now(UTC), what=f"round {round_no}")
        for instance, daemon in list(daemons.items()):
            if not daemon.alive():  # superseded: exits 3, a supervisor would restart it
                assert daemon.process.returncode == 3, daemon.output()[-3000:]
                fresh = f"{instance.split('-r')[0]}-r{round_no}"
                del daemons[instance]
                daemons[fresh] = cluster.start(fresh)
                wait_until(
                    lambda fresh=fresh: cluster.rows(
                        "SELECT 1 FROM reconciler_instances WHERE instance = :i", i=fresh
                    ),
                    timeout=30,
                    what=f"the fresh standby {fresh}",
                )
    until = datetime.now(UTC) - timedelta(seconds=1)
    wait_for_fires_since(cluster, until, what="the last slots")
    for daemon in daemons.values():
        code = daemon.stop()
        # 3: superseded in the last round, exiting by itself (a supervisor restarts it).
        assert code == 0 or (code == 3 and "superseded" in daemon.output()), code
    flapped = sum(d.output().count("lost the leadership") for d in cluster.daemons)

    rows = [row for row in cluster.ledger("r") if row.job_name in applied]
    by_slot = Counter((row.job_name, as_utc(row.scheduled_time)) for row in rows)
    problems = []
    for job, moment in applied.items():
        for slot in expected_slots(daily[job], moment, until):
            if by_slot[(job, slot)] != 1:
                problems.append((job, _z(slot), by_slot[(job, slot)]))
    grace_of = {job: int(job.rsplit("-g", 1)[1]) for job in applied}
    for row in rows:
        if row.status == "published":
            lateness = (as_utc(row.fired_at) - as_utc(row.scheduled_time)).total_seconds()
            if lateness > grace_of[row.job_name] + 1:  # fired_at is recorded after the check
                problems.append((row.job_name, _z(as_utc(row.scheduled_time)), "late", lateness))
        elif (row.status, row.reason) not in {
            ("missed", "misfire"),
            ("missed", "coalesced"),
            ("missed", "catch_up_limit"),
        }:
            problems.append((row.job_name, _z(as_utc(row.scheduled_time)), row.status, row.reason))
    assert sum(row.duplicates for row in rows) == 0, [r for r in rows if r.duplicates]
    wait_until(lambda: broker.drain(idle=0.3) == 0 and broker.task_ids, timeout=30)
    sent = Counter(broker.task_ids)
    for row in rows:
        twice_allowed = row.status == "published" and published_before_a_freeze(
            as_utc(row.scheduled_time), froze_at
        )
        if sent[row.id] != (1 if row.status == "published" else 0) and not (
            twice_allowed and sent[row.id] == 2
        ):
            problems.append((row.job_name, _z(as_utc(row.scheduled_time)), "sent", sent[row.id]))
    summary = (
        f"seed {seed} (FIRSTSLOT_SEED), flaps {flaps}, {flapped} step-downs, "
        f"{len(rows)} rows {dict(Counter(r.status for r in rows))}"
    )
    print(f"\n{summary}")
    assert flapped >= ROUNDS, f"the flaps did not happen as designed; {summary}"
    assert not problems, f"{len(problems)} slots not accounted for once: {problems[:20]}; {summary}"


# How long a leader may take from a slot to marking it published (confirms included):
# a slot further back than this before a freeze was marked before the freeze.
MARKED_WITHIN = timedelta(seconds=3)


def published_before_a_freeze(slot: datetime, froze_at: list[datetime]) -> bool:
    """The slot came shortly before a leader was frozen: it may have been confirmed by the
    broker and not yet marked, and so re-published by the next leader (same task id)."""
    return any(moment - MARKED_WITHIN <= slot <= moment for moment in froze_at)


def wait_for_fires_since(cluster: Cluster, moment: datetime, *, what: str) -> None:
    """The leader fired the warm job's slots of 2 s after `moment`: it is past them."""
    wait_until(
        lambda: (
            cluster.scalar(
                "SELECT count(*) FROM job_runs WHERE job_name = 'warm' AND scheduled_time > :t",
                t=moment,
            )
            >= 2
        ),
        timeout=30,
        what=f"{what}: fires of the new term",
    )


def applied_at(cluster: Cluster, jobs: list[str]) -> dict[str, datetime]:
    """When each job was applied (its inventory row's created_at)."""
    rows = cluster.rows(
        "SELECT name, created_at FROM scheduled_jobs WHERE name = ANY(:names)", names=jobs
    )
    return {name: as_utc(moment) for name, moment in rows}


def freeze_for(daemon: DaemonProcess, at: datetime, length: float) -> None:
    time.sleep(max(0.0, (at - datetime.now(UTC)).total_seconds()))
    os.kill(daemon.pid, signal.SIGSTOP)
    try:
        time.sleep(length)
    finally:
        os.kill(daemon.pid, signal.SIGCONT)
