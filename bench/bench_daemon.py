"""The daemon under steady load, its memory with 10,000 jobs (issue 4), and the
thundering herd at `:00` (issue 15).

    .venv/bin/python bench/bench_daemon.py          # --steady-jobs 1000 --seconds 90 --big 10000
    .venv/bin/python bench/bench_daemon.py --only herd [--herd 10000] [--herd-minute 0]

Both parts start a real `reconcile run` on a fresh PostgreSQL database and RabbitMQ vhost
(created and removed here), with a consumer-less broker (messages just queue up).

- steady: 1,000 jobs spread over a minute (job i fires every minute at second i % 60,
  ~17 slots a second), for SECONDS. From the ledger: fire lateness (fired_at - slot) and
  publish lateness (published_at - slot, i.e. confirmed by the broker), p50 / p99 / max,
  and whether every slot was published exactly once.
- sustained: RATE jobs firing every second, for SECONDS: publish lateness in the first
  and the last third of the window (flat: it keeps up), the daemon's CPU per fire.
- big: 10,000 jobs (hourly, so nothing fires), the daemon's resident memory (VmRSS and
  its peak VmHWM from /proc) after it has applied them and run a few passes.

- herd: HERD jobs with one fixed-minute hourly cron, `M * * * *`, all due at the same
  instant, fired by the real clock. `--herd-minute 0` is `0 * * * *` (waits for the next
  hour); the default takes the first minute at least two minutes away: the same herd
  (every job hourly at one wall-clock minute), without waiting up to an hour. Lateness
  = published_at (the broker's confirm, recorded by the daemon) - the slot, per job:
  p50 / p99 / max, and the daemon's CPU seconds from the instant to the last confirm.

Targets (issue 4): steady p99 lateness <= 100 ms; daemon RSS with 10,000 jobs <= 300 MB.
Target (issue 15): herd of 10,000 `0 * * * *` jobs, p99 lateness <= 2 s.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from benchdb import AMQP_BASE, fresh_database, fresh_vhost


def write_jobs(root: Path, count: int, *, cron_for) -> None:
    for start in range(0, count, 100):
        documents = [
            f"name: job-{n:05d}\ntask: reconciler.tasks.noop\n"
            f'schedule: {{cron: "{cron_for(n)}"}}\nmax_concurrent_runs: 1000\n'
            for n in range(start, min(start + 100, count))
        ]
        (root / f"jobs-{start:05d}.yaml").write_text("---\n".join(documents))


def start_daemon(url: str, jobs: Path, vhost: str, log: Path) -> subprocess.Popen[bytes]:
    env = dict(
        os.environ,
        RECONCILER_DATABASE_URL=url,
        RECONCILER_JOBS_DIR=str(jobs),
        RECONCILER_BROKER_URL=f"{AMQP_BASE}/{vhost}",
        RECONCILER_METRICS_PORT="0",
        RECONCILER_TASK_ALLOWLIST="reconciler.tasks.*",
    )
    return subprocess.Popen(
        [sys.executable, "-m", "reconciler.cli", "run"],
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def stop_daemon(daemon: subprocess.Popen[bytes]) -> None:
    """SIGTERM (the graceful hand-over), then the whole process group if it hangs."""
    os.kill(daemon.pid, signal.SIGTERM)
    try:
        daemon.wait(60)
    except subprocess.TimeoutExpired:
        os.killpg(daemon.pid, signal.SIGKILL)


def memory_mb(pid: int) -> tuple[float, float]:
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    return (int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024)


def wait_for(predicate, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit("timed out")
        time.sleep(0.5)


def with_environment(run):
    """`run(url, folder, vhost, *args)` on a fresh database, vhost and folder, all
    removed afterwards (benchdb: a failed removal is reported on stderr)."""

    def wrapped(*args):
        with (
            fresh_database() as name,
            fresh_vhost() as broker,
            tempfile.TemporaryDirectory() as folder,
        ):
            return run(f"postgresql://postgres@127.0.0.1:5432/{name}", Path(folder), broker, *args)

    return wrapped


@with_environment
def steady(url: str, folder: Path, vhost: str, count: int, seconds: int) -> None:
    jobs = folder / "jobs.d"
    jobs.mkdir()
    write_jobs(jobs, count, cron_for=lambda n: f"{n % 60} * * * * *")
    daemon = start_daemon(url, jobs, vhost, folder / "daemon.log")
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        time.sleep(seconds)  # the measurement window itself
        os.kill(daemon.pid, signal.SIGTERM)
        daemon.wait(60)
        with engine.connect() as connection:
            rows = connection.execute(
                sa.text(
                    "select extract(epoch from fired_at - scheduled_time), "
                    "extract(epoch from published_at - scheduled_time), status "
                    "from job_runs where scheduled_time > "
                    "(select min(scheduled_time) + interval '5 seconds' from job_runs)"
                )
            ).all()
            slots = connection.execute(
                sa.text("select count(*), count(distinct (job_name, scheduled_time)) from job_runs")
            ).one()
    finally:
        if daemon.poll() is None:
            os.killpg(daemon.pid, signal.SIGKILL)
        engine.dispose()
    fired = sorted(float(r[0]) * 1000 for r in rows if r[0] is not None)
    published = sorted(float(r[1]) * 1000 for r in rows if r[1] is not None)
    unpublished = sum(1 for r in rows if r[2] != "published")
    print(
        f"steady: {count} jobs over a minute, {seconds} s, {len(rows)} slots measured "
        f"(after the first 5 s); ledger rows {slots[0]}, distinct slots {slots[1]}; "
        f"not published: {unpublished}"
    )
    for label, values in (("fire lateness", fired), ("publish lateness", published)):
        if values:
            p99 = values[min(len(values) - 1, int(len(values) * 0.99))]
            print(
                f"  {label:<17} p50 {statistics.median(values):7.1f} ms   "
                f"p99 {p99:7.1f} ms   max {values[-1]:7.1f} ms   (target p99 <= 100 ms)"
            )


@with_environment
def big(url: str, folder: Path, vhost: str, count: int) -> None:
    jobs = folder / "jobs.d"
    jobs.mkdir()
    write_jobs(jobs, count, cron_for=lambda n: f"{n % 60} {n % 60} * * * *")
    daemon = start_daemon(url, jobs, vhost, folder / "daemon.log")
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    try:

        def applied() -> bool:
            try:
                with engine.connect() as connection:
                    return (
                        connection.execute(sa.text("select count(*) from scheduled_jobs")).scalar()
                        == count
                    )
            except sa.exc.ProgrammingError:
                return False

        started = time.monotonic()
        wait_for(applied, timeout=300)
        took = time.monotonic() - started
        time.sleep(10)  # a few idle loop turns after the apply
        rss, peak = memory_mb(daemon.pid)
    finally:
        stop_daemon(daemon)
        engine.dispose()
    print(
        f"big: {count} jobs applied by the daemon in {took:.1f} s; daemon RSS {rss:.0f} MB, "
        f"peak {peak:.0f} MB (target <= 300 MB)"
    )


def herd_instant(minute: int | None, *, lead: timedelta) -> datetime:
    """The next wall-clock minute `minute` (UTC) at least `lead` away; with None, the
    first whole minute at least `lead` away."""
    moment = (datetime.now(UTC) + lead).replace(second=0, microsecond=0) + timedelta(minutes=1)
    if minute is None:
        return moment
    while moment.minute != minute:
        moment += timedelta(minutes=1)
    return moment


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], share: float) -> float:
    return values[min(len(values) - 1, int(len(values) * share))]


@with_environment
def herd(
    url: str, folder: Path, vhost: str, count: int, minute: int | None, profile: str | None
) -> None:
    jobs = folder / "jobs.d"
    jobs.mkdir()
    at = herd_instant(minute, lead=timedelta(seconds=100))
    write_jobs(jobs, count, cron_for=lambda n: f"{at.minute} * * * *")
    daemon = start_daemon(url, jobs, vhost, folder / "daemon.log")
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    published = sa.text("select count(*) from job_runs where status = 'published'")
    try:
        wait_for(lambda: _applied(engine, count), timeout=600)
        print(f"herd: {count} jobs '{at.minute} * * * *' applied; the instant is {at:%H:%M} UTC")
        if datetime.now(UTC) > at - timedelta(seconds=5):
            raise SystemExit("applied too late for the instant: rerun when the machine is quieter")
        time.sleep((at - datetime.now(UTC)).total_seconds() - 1)
        load = os.getloadavg()[0]
        cpu = cpu_seconds(daemon.pid)
        spy = _profile(daemon.pid, profile) if profile else None

        def all_published() -> bool:
            with engine.connect() as connection:
                return connection.execute(published).scalar() >= count

        wait_for(all_published, timeout=300)
        cpu = cpu_seconds(daemon.pid) - cpu
        # RabbitMQ's own view: every confirmed message is in the queue, none twice.
        queues = subprocess.run(
            ["rabbitmqctl", "-q", "list_queues", "-p", vhost, "name", "messages"],
            capture_output=True,
            text=True,
        ).stdout.split()
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait(60)
        with engine.connect() as connection:
            rows = connection.execute(
                sa.text(
                    "select extract(epoch from fired_at - scheduled_time), "
                    "extract(epoch from published_at - scheduled_time) "
                    "from job_runs where scheduled_time = :at"
                ),
                {"at": at},
            ).all()
            slots = connection.execute(
                sa.text("select count(*), count(distinct (job_name, scheduled_time)) from job_runs")
            ).one()
    finally:
        stop_daemon(daemon)
        engine.dispose()
    print(
        f"  ledger rows {slots[0]}, distinct slots {slots[1]}, published {len(rows)}; "
        f"daemon CPU from the instant to the last confirm {cpu:.2f} s; "
        f"load average {load:.1f} at the instant; RabbitMQ's queues (name, messages): {queues}"
    )
    for label, column in (("fire lateness", 0), ("publish lateness", 1)):
        values = sorted(float(row[column]) for row in rows)
        print(
            f"  {label:<17} p50 {statistics.median(values):6.2f} s   "
            f"p99 {percentile(values, 0.99):6.2f} s   max {values[-1]:6.2f} s"
            "   (target: publish p99 <= 2 s)"
        )


def _profile(pid: int, output: str) -> subprocess.Popen[bytes]:
    """py-spy sampling every thread of the daemon (idle ones too, to see who waits) into
    `output` (raw collapsed stacks: one line per stack, its sample count last)."""
    return subprocess.Popen(
        [
            "py-spy",
            "record",
            "--pid",
            str(pid),
            "--threads",
            "--idle",
            "--rate",
            "200",
            "--format",
            "raw",
            "--output",
            output,
            "--nonblocking",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@with_environment
def sustained(url: str, folder: Path, vhost: str, rate: int, seconds: int) -> None:
    """RATE jobs firing every second (`* * * * * *`): RATE fires a second, for SECONDS,
    after the daemon applied them and a 10 s warm-up. Keeping up means the lateness
    stays flat (the last third no later than the first); the daemon's CPU per fire
    says how far one core would carry it."""
    jobs = folder / "jobs.d"
    jobs.mkdir()
    write_jobs(jobs, rate, cron_for=lambda n: "* * * * * *")
    daemon = start_daemon(url, jobs, vhost, folder / "daemon.log")
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        wait_for(lambda: _applied(engine, rate), timeout=600)
        # The workers: every published run finishes within a second (without them the
        # runs pile up as active, and every batch's overlap check reads all of them).
        finished = threading.Event()
        workers = threading.Thread(target=_finish_runs, args=(engine, finished), daemon=True)
        workers.start()
        time.sleep(10)  # warm-up: the first fires, the gauges' first refresh
        start, cpu, load = datetime.now(UTC), cpu_seconds(daemon.pid), os.getloadavg()[0]
        time.sleep(seconds)
        end, cpu = datetime.now(UTC), cpu_seconds(daemon.pid) - cpu
        time.sleep(5)  # the window's last slots are confirmed
        finished.set()
        workers.join()
        with engine.connect() as connection:
            rows = connection.execute(
                sa.text(
                    "select extract(epoch from scheduled_time - :start), "
                    "extract(epoch from published_at - scheduled_time) "
                    "from job_runs "
                    "where scheduled_time > :start and scheduled_time <= :end"
                ),
                {"start": start, "end": end},
            ).all()
            slots = connection.execute(
                sa.text("select count(*), count(distinct (job_name, scheduled_time)) from job_runs")
            ).one()
    finally:
        stop_daemon(daemon)
        engine.dispose()
    published = [row for row in rows if row[1] is not None]
    print(
        f"sustained: {rate} jobs every second, {seconds} s window at load {load:.1f}: "
        f"{len(rows)} slots recorded, {len(published)} published "
        f"({len(published) / seconds:.0f}/s); daemon CPU {cpu:.2f} s "
        f"({cpu / max(len(published), 1) * 1e6:.0f} us per fire, {cpu / seconds:.0%} of a core); "
        f"ledger rows {slots[0]}, distinct slots {slots[1]}"
    )
    for label, low, high in (
        ("first third", 0, seconds / 3),
        ("last third", 2 * seconds / 3, seconds),
    ):
        values = sorted(float(row[1]) for row in published if low < float(row[0]) <= high)
        if values:
            print(
                f"  publish lateness, {label:<11} p50 {statistics.median(values):6.2f} s   "
                f"p99 {percentile(values, 0.99):6.2f} s   max {values[-1]:6.2f} s"
            )


def _finish_runs(engine: sa.Engine, stop: threading.Event) -> None:
    """Every second, what workers would do: published runs start and succeed (the
    published_at the daemon recorded stays)."""
    finish = sa.text(
        "update job_runs set status = 'succeeded', started_at = published_at, "
        "finished_at = now() where status = 'published'"
    )
    while not stop.wait(1.0):
        with engine.begin() as connection:
            connection.execute(finish)


def _applied(engine: sa.Engine, count: int) -> bool:
    """All jobs in the inventory and in the scheduler's table with a next fire time."""
    query = sa.text(
        "select (select count(*) from scheduled_jobs), "
        "(select count(*) from apscheduler_jobs where next_run_time is not null)"
    )
    try:
        with engine.connect() as connection:
            return tuple(connection.execute(query).one()) == (count, count)
    except sa.exc.ProgrammingError:  # the daemon has not created the tables yet
        return False


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", default="steady,big", help="any of steady,big,herd,sustained")
    parser.add_argument("--rate", type=int, default=1000, help="sustained: fires a second")
    parser.add_argument("--steady-jobs", type=int, default=1000)
    parser.add_argument("--seconds", type=int, default=90)
    parser.add_argument("--big", type=int, default=10_000)
    parser.add_argument("--herd", type=int, default=10_000)
    parser.add_argument("--herd-minute", type=int, default=None, help="0: `0 * * * *`")
    parser.add_argument("--profile", help="herd: py-spy's raw stacks of the daemon into this file")
    options = parser.parse_args()
    parts = options.only.split(",")
    print(f"load average before: {os.getloadavg()[0]:.1f}")
    if "steady" in parts:
        steady(options.steady_jobs, options.seconds)
    if "big" in parts:
        big(options.big)
    if "sustained" in parts:
        sustained(options.rate, options.seconds)
    if "herd" in parts:
        herd(options.herd, options.herd_minute, options.profile)
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
