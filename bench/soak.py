"""Soak under faults: N jobs firing every second for a while, a random fault every
interval, then the books are checked (issue 17, "Must show").

    .venv/bin/python bench/soak.py [--minutes 30] [--jobs 100] [--fault-every 120]

Everything runs as real processes on PRIVATE instances this script starts (tests/faults.py):
a PostgreSQL cluster (initdb), a Redis server and a RabbitMQ node on free ports; two
`reconcile run` daemons (one leads) and two `reconcile worker`s. The jobs run
`fault_tasks.tally`, which appends its fire id to a file: executions are counted outside
the ledger. Faults, one at random every `--fault-every` seconds (the first after one
interval):

    redis-flush     FLUSHALL (Redis forgets every idempotency key)
    redis-kill      kill -9 of Redis, restarted empty 30 s later
    pg-restart      pg_ctl restart -m fast
    pg-stop         pg_ctl stop -m fast, started again 15 s later
    leader-freeze   SIGSTOP of the leading daemon for 20 s (it exits 3; restarted)
    worker-kill     kill -9 of a worker (its whole process group), restarted; only with
                    --worker-kills: a worker killed between a task's side effect and its
                    ledger write cannot be exactly once (the redelivery runs it again,
                    acks late), and its last ~50 ms of batched writes are lost (the
                    reaper closes those runs as lost): not a fault of the issue's list
    broker-stop     rabbitmqctl stop_app for 20 s
    redeliver       every run in flight is published a second time

Then firing stops (both daemons SIGTERM), every run is waited to its final status, and:
- slots == ledger rows: per job, every second between its first and last slot has
  exactly one row (fired, or `missed` with a reason when nobody could fire it);
- executions == succeeded rows: the set of fire ids in the tally == ids `succeeded`;
- duplicates: no fire id in the tally twice.
The summary is printed as one JSON document; record it in bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import sys
import tempfile
import time
from collections import Counter, defaultdict
from datetime import timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from faultinject.rig import FaultRig, Proc, wait_until  # noqa: E402
from faults import PrivatePostgres, PrivateRabbit, PrivateRedis  # noqa: E402

FAULTS = (
    "redis-flush",
    "redis-kill",
    "pg-restart",
    "pg-stop",
    "leader-freeze",
    "broker-stop",
    "redeliver",
)


class Soak:
    def __init__(self, rig: FaultRig, pg: PrivatePostgres, redis: PrivateRedis, mq: PrivateRabbit):
        self.rig, self.pg, self.redis, self.mq = rig, pg, redis, mq
        self.daemons: dict[str, Proc] = {}
        self.workers: dict[str, Proc] = {}
        self.log: list[dict[str, object]] = []
        self.redelivered = 0

    def start(self) -> None:
        for name in ("daemon-a", "daemon-b"):
            self.daemons[name] = self.rig.daemon(name)
        wait_until(lambda: self.rig.safe_rows("SELECT 1 FROM job_runs"), timeout=120, what="fires")
        for name in ("w1", "w2"):
            self.workers[name] = self.rig.worker(name, concurrency=4)

    def leader(self) -> str | None:
        rows = self.rig.safe_rows(
            "SELECT instance FROM reconciler_instances WHERE role = 'leader' "
            "ORDER BY epoch DESC LIMIT 1"
        )
        return rows[0][0] if rows else None

    def revive(self) -> None:
        """Restart whatever exited (a superseded leader exits 3; a killed worker)."""
        for name, proc in list(self.daemons.items()):
            if not proc.alive():
                self.daemons[name] = self.rig.daemon(name)
        for name, proc in list(self.workers.items()):
            if not proc.alive():
                self.workers[name] = self.rig.worker(name, concurrency=4)

    def fault(self, kind: str) -> None:
        started = time.monotonic()
        note: dict[str, object] = {"fault": kind, "at": round(started, 1)}
        if kind == "redis-flush":
            self.redis.client().flushall()
        elif kind == "redis-kill":
            self.redis.kill()
            time.sleep(30)
            self.redis.start()
        elif kind == "pg-restart":
            self.pg.restart(mode="fast")
        elif kind == "pg-stop":
            self.pg.stop(mode="fast")
            time.sleep(15)
            self.pg.start()
        elif kind == "leader-freeze":
            name = self.leader()
            note["leader"] = name
            if name in self.daemons:
                proc = self.daemons[name]
                proc.signal(signal.SIGSTOP)
                time.sleep(20)
                proc.signal(signal.SIGCONT)
                time.sleep(5)
                note["exit"] = proc.process.poll()
        elif kind == "worker-kill":
            name = random.choice(sorted(self.workers))
            proc = self.workers[name]
            import os

            os.killpg(proc.pid, signal.SIGKILL)
            proc.process.wait(10)
            note["worker"] = name
        elif kind == "broker-stop":
            self.mq.ctl("stop_app")
            time.sleep(20)
            self.mq.ctl("start_app")
        elif kind == "redeliver":
            rows = self.rig.in_flight()
            for row in rows:
                self.rig.deliver_again(row)
            self.redelivered += len(rows)
            note["redelivered"] = len(rows)
        note["seconds"] = round(time.monotonic() - started, 1)
        self.log.append(note)
        print(json.dumps(note), flush=True)
        self.revive()

    def stop(self) -> None:
        for proc in self.daemons.values():
            proc.stop(timeout=60)


def books(rig: FaultRig) -> dict[str, object]:
    rows = rig.rows(
        "SELECT id, job_name, scheduled_time, status, reason, duplicates, takeovers "
        "FROM job_runs ORDER BY job_name, scheduled_time"
    )
    by_job: dict[str, list] = defaultdict(list)
    for row in rows:
        by_job[row.job_name].append(row.scheduled_time)
    gaps = extra = 0
    for slots in by_job.values():
        span = int((slots[-1] - slots[0]) / timedelta(seconds=1)) + 1
        gaps += span - len(set(slots))
        extra += len(slots) - len(set(slots))
    executions = rig.executions()
    succeeded = {row.id for row in rows if row.status == "succeeded"}
    return {
        "ledger_rows": len(rows),
        "slot_gaps": gaps,
        "slot_rows_twice": extra,
        "executions": len(executions),
        "executed_twice": sum(1 for n in executions.values() if n > 1),
        "succeeded_rows": len(succeeded),
        "executed_not_succeeded": len(set(executions) - succeeded),
        "succeeded_not_executed": len(succeeded - set(executions)),
        "duplicate_deliveries_refused": sum(row.duplicates for row in rows),
        "takeovers": sum(row.takeovers for row in rows),
        "statuses": dict(Counter(f"{row.status}/{row.reason or ''}" for row in rows)),
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--jobs", type=int, default=100)
    parser.add_argument("--fault-every", type=float, default=120)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument("--worker-kills", action="store_true", help="add worker-kill faults")
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    random.seed(seed)
    root = Path(tempfile.mkdtemp(prefix="soak-"))
    print(f"soak: {args.jobs} jobs every second, {args.minutes} min, seed {seed}, in {root}")
    with PrivatePostgres() as pg, PrivateRedis() as redis, PrivateRabbit() as mq:
        rig = FaultRig(
            root,
            db_url=pg.create_database("soak"),
            broker_url=mq.url(),
            redis_url=redis.url(),
            lease_seconds=10,
            max_catch_up_runs="100",
        )
        soak = Soak(rig, pg, redis, mq)
        try:
            rig.write_jobs([f"soak-{n:03d}" for n in range(args.jobs)], seconds=0.0)
            soak.start()
            began = time.monotonic()
            end = began + args.minutes * 60
            next_fault = began + args.fault_every
            while time.monotonic() < end:
                time.sleep(1)
                if time.monotonic() >= next_fault:
                    kinds = (*FAULTS, "worker-kill") if args.worker_kills else FAULTS
                    soak.fault(random.choice(kinds))
                    next_fault = time.monotonic() + args.fault_every
            soak.stop()
            wait_until(
                lambda: (
                    not rig.safe_rows(
                        "SELECT 1 FROM job_runs "
                        "WHERE status IN ('scheduled', 'published', 'started')"
                    )
                ),
                timeout=600,
                what="every run final",
                every=2,
            )
            summary = {
                "minutes": round((time.monotonic() - began) / 60, 1),
                "jobs": args.jobs,
                "seed": seed,
                "faults": [note["fault"] for note in soak.log],
                "forced_second_deliveries": soak.redelivered,
                **books(rig),
            }
            print(json.dumps(summary, indent=2))
            ok = (
                summary["slot_gaps"] == 0
                and summary["slot_rows_twice"] == 0
                and summary["executed_twice"] == 0
                and summary["executed_not_succeeded"] == 0
                and summary["succeeded_not_executed"] == 0
            )
            return 0 if ok else 1
        finally:
            rig.close()
            if not args.keep:
                import shutil

                shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
