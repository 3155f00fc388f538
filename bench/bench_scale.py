"""100,000 jobs in 10,000 files: what one reconciler holds (issue 15, item 6).

    .venv/bin/python bench/bench_scale.py [--files 10000] [--per-file 10] [--api-requests 300]
    .venv/bin/python bench/bench_scale.py --only-cold-apply [--rounds 3] [--compare-with DIR]

The corpus of every bench (bench/corpus.py: varied valid jobs, ten folders), on a fresh
PostgreSQL database and RabbitMQ vhost (created and removed here). In order:

1. cold apply: `reconcile apply --auto-approve` as a process on the empty database
   (migrations included), its output to a pipe; wall time and peak RSS (getrusage).
2. the daemon: `reconcile run` on the applied database (RESYNC_INTERVAL one hour: the
   passes measured are the ones users wait for, woken by the watch); its startup pass;
   then no-op passes, each woken by touching one file (new mtime, same content: the
   file is re-read, nothing changes); their durations from `reconcile_runs` (the daemon
   records each pass, `duration_seconds`), p50 / max; its RSS and peak (VmRSS / VmHWM).
3. one file changed live: one file's ten jobs get a new description; the time from the
   write to the change being in `scheduled_jobs` (polled every 10 ms), and the pass's
   own duration from `reconcile_runs`. Five rounds, median and max. The daemon waits
   SETTLE_SECONDS (0.3 s by default) after the last file event before it reconciles, so
   that a checkout in progress is not applied half-way: that wait is part of the figure.
   Then /metrics (served, as in production) is scraped every 10 s, three times at least and
   until its size grows by less than 1 % (at most 30): its size, time and the daemon's RSS
   after each (the daemon keeps each job's lines once scraped).
4. the reads (bench/scale_reads.py): a ledger of RUNS_PER_JOB runs per job, then
   `reconcile api` with its micro-cache off (RECONCILER_API_CACHE_SECONDS=0): the list
   walking pages by cursor and filtered (label, status, queue, prefix), one job, the
   status endpoint: p50 / p99 / max latency and server CPU per request; then the CLI's
   read commands (`get jobs`, `status`, `-o json`) as processes.

`--steps apply,daemon,reads` runs only some of the steps (the daemon and the reads need an
applied database: without `apply`, give the `--workdir` of an earlier run). `--workdir
DIR` keeps the corpus, the database and the vhost in DIR (their names in DIR/bench.env)
instead of removing them, and reuses them when DIR holds them already: the daemon
measured again without regenerating and re-applying 100,000 jobs. Drop the database
(`DROP DATABASE name`) and the vhost yourself afterwards.

With `--compare-with DIR`, step 2 and 3 run for each build in turn, `--rounds` times
(alternated, on the same database): the other checkout's own `DIR/.venv/bin/reconcile`
(an editable install there: PYTHONPATH would not override this one's) with `--no-migrate`,
so that it runs on the schema this build migrated to. `--no-scrapes` skips the scrapes.

`--api-only URL` runs step 4 alone on a database already built (by an earlier run, or
`reconcile apply` of `bench/corpus.py`'s files); `--compare-with DIR` measures the build
in checkout DIR beside this one in the same run (bench/scale_reads.py).

`--only-cold-apply` runs step 1 alone, `--rounds` times, each on a fresh database; with
`--compare-with DIR` the two builds alternate round by round over the same corpus, so
their figures are side by side at the same load. Each figure: wall time, CPU (user + system of
the process and its forked parse child), peak RSS.

Each line carries the 1-minute load average when it was measured. Targets (issue 15):
daemon RSS <= 1 GB, no-op pass <= 0.2 s, one file changed live <= 0.5 s, cold apply
<= 15 s, API list uncached p99 <= 100 ms.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

import sqlalchemy as sa
from bench_daemon import memory_mb, wait_for
from benchdb import create_database, create_vhost, drop_database, fresh_database, fresh_vhost
from corpus import file_path, generate
from scale_reads import Build, api_figures, cli_figures, seed_runs

AMQP = "amqp://guest:guest@127.0.0.1:5672"
RECONCILE = str(Path(sys.executable).parent / "reconcile")


def load() -> str:
    return f"load {os.getloadavg()[0]:.1f}"


def environment(url: str, jobs: Path, vhost: str, **extra: str) -> dict[str, str]:
    return dict(
        os.environ,
        RECONCILER_DATABASE_URL=url,
        RECONCILER_JOBS_DIR=str(jobs),
        RECONCILER_BROKER_URL=f"{AMQP}/{vhost}",
        RECONCILER_METRICS_PORT="0",
        RECONCILER_LOG_LEVEL="WARNING",
        **extra,
    )


def cold_apply(env: dict[str, str]) -> tuple[float, float]:
    """Runs `reconcile apply` on an empty database; prints and returns (wall, CPU).
    The peak RSS is the largest of any child so far (getrusage keeps the maximum), so
    it is this process's only while no larger child ran before it."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    level = load()
    started = time.monotonic()
    done = subprocess.run(
        [RECONCILE, "apply", "--auto-approve"], env=env, capture_output=True, check=False
    )
    took = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - usage.ru_utime - usage.ru_stime
    if done.returncode != 0:
        raise SystemExit(f"apply failed ({done.returncode}): {done.stderr.decode()[-2000:]}")
    print(
        f"cold apply (process): {took:.2f} s, CPU {cpu:.2f} s, peak RSS "
        f"{after.ru_maxrss / 1024:.0f} MB, {len(done.stdout) / 1e6:.1f} MB of output   "
        f"[{level}]   (target <= 15 s)",
        flush=True,
    )
    return took, cpu


def cold_applies(jobs: Path, builds: list[Build], rounds: int) -> None:
    """Step 1 alone, each build `rounds` times on a fresh database, alternated."""
    figures: dict[str, list[tuple[float, float]]] = {build.label: [] for build in builds}
    for round_number in range(1, rounds + 1):
        for build in builds:
            name = create_database()
            try:
                print(f"round {round_number}, {build.label}: ", end="")
                env = environment(f"postgresql://postgres@127.0.0.1:5432/{name}", jobs, "unused")
                if build.source:
                    env["PYTHONPATH"] = build.source
                figures[build.label].append(cold_apply(env))
            finally:
                drop_database(name)
    for label, runs in figures.items():
        print(
            f"{label}: median wall {statistics.median(w for w, _ in runs):.2f} s, "
            f"CPU {statistics.median(c for _, c in runs):.2f} s over {len(runs)}"
        )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def passes(engine: sa.Engine, since: int) -> list[tuple[int, str, str, float]]:
    query = sa.text(
        "select id, trigger, outcome, duration_seconds from reconcile_runs "
        "where id > :since and finished_at is not null order by id"
    )
    with engine.connect() as connection:
        return [tuple(row) for row in connection.execute(query, {"since": since})]  # type: ignore[misc]


def last_pass_id(engine: sa.Engine) -> int:
    with engine.connect() as connection:
        query = sa.text("select coalesce(max(id), 0) from reconcile_runs")
        return connection.execute(query).scalar()


def daemon_command(build: Build) -> list[str]:
    """This build's `reconcile run`, or the other checkout's own (module doc)."""
    if build.source is None:
        return [RECONCILE, "run"]
    return [str(Path(build.source) / ".venv" / "bin" / "reconcile"), "run", "--no-migrate"]


def daemon_figures(
    env: dict[str, str],
    engine: sa.Engine,
    folder: Path,
    jobs: Path,
    files: int,
    *,
    command: list[str] | None = None,
    scrapes: bool = True,
) -> None:
    log = folder / "daemon.log"
    port = free_port()
    daemon = subprocess.Popen(
        command or [RECONCILE, "run"],
        # /metrics served, as in production: its per-job series and kept lines count
        # towards the resident size once it is scraped (scraped below).
        env={**env, "RECONCILER_RESYNC_INTERVAL": "3600", "RECONCILER_METRICS_PORT": str(port)},
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        start = last_pass_id(engine)
        started = time.monotonic()
        wait_for(lambda: len(passes(engine, start)) >= 1, timeout=600)
        print(f"daemon: first pass done {time.monotonic() - started:.1f} s after exec   [{load()}]")
        startup = passes(engine, start)[0]
        print(f"daemon startup pass: {startup[2]} in {startup[3]:.2f} s   [{load()}]")
        noop: list[float] = []
        touched = file_path(jobs, 17)
        for _ in range(5):
            before = last_pass_id(engine)
            time.sleep(1.5)
            touched.touch()
            wait_for(lambda b=before: passes(engine, b), timeout=120)
            noop += [row[3] for row in passes(engine, before) if row[2] == "no_changes"]
        rss, peak = memory_mb(daemon.pid)
        print(
            f"daemon no-op passes (a file touched): n={len(noop)} "
            f"p50 {statistics.median(noop):.3f} s "
            f"max {max(noop):.3f} s   [{load()}]   (target <= 0.2 s)"
        )
        print(f"daemon RSS {rss:.0f} MB, peak {peak:.0f} MB   [{load()}]   (target <= 1 GB)")
        one_file_changed(engine, jobs, files)
        rss, peak = memory_mb(daemon.pid)
        print(f"daemon RSS after the edits {rss:.0f} MB, peak {peak:.0f} MB   [{load()}]")
        # At least three, until the text stops growing: at high load the gauge refresh
        # that makes the jobs' series has not gone over every job by the first scrapes.
        previous = 0
        for scrape in range(1, 31 if scrapes else 1):
            started = time.monotonic()
            url = f"http://127.0.0.1:{port}/metrics"
            with urllib.request.urlopen(url, timeout=300) as response:
                size = len(response.read())
            took = time.monotonic() - started
            rss, peak = memory_mb(daemon.pid)
            print(
                f"scrape {scrape} of /metrics: {took:.2f} s, {size / 1e6:.1f} MB; daemon RSS "
                f"{rss:.0f} MB, peak {peak:.0f} MB   [{load()}]   (target <= 1 GB)"
            )
            if scrape >= 3 and size - previous <= size / 100:
                break
            previous = size
            time.sleep(10)
    finally:
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(daemon.pid, signal.SIGKILL)
    if daemon.returncode not in (0, None):
        print(log.read_text()[-3000:])


def one_file_changed(engine: sa.Engine, jobs: Path, files: int, rounds: int = 5) -> None:
    target = file_path(jobs, files * 3 // 7)
    original = target.read_text()
    first_job = original.split("name: ", 1)[1].split("\n", 1)[0]
    if 'description: "generated job' not in original:
        raise SystemExit(f"{target} holds no generated description to edit (an earlier edit?)")
    waits, durations = [], []
    try:
        _edit_rounds(engine, target, original, first_job, rounds, waits, durations)
    finally:  # the workdir's file as generated, for the next run on the same --workdir
        target.write_text(original)
    print(
        f"one file (10 jobs) changed live, write -> in the database: median "
        f"{statistics.median(waits):.3f} s, max {max(waits):.3f} s over {rounds}; the pass "
        f"itself median {statistics.median(durations):.3f} s   [{load()}]   (target <= 0.5 s)"
    )


def _edit_rounds(
    engine: sa.Engine,
    target: Path,
    original: str,
    first_job: str,
    rounds: int,
    waits: list[float],
    durations: list[float],
) -> None:
    spec_query = sa.text("select spec->>'description' from scheduled_jobs where name = :name")
    for _ in range(rounds):
        marker = f"edited {uuid.uuid4().hex[:8]}"
        before = last_pass_id(engine)
        time.sleep(3.5)  # clear of the resync pass (3 s) so that this pass is the watch's
        text = original.replace('description: "generated job', f'description: "{marker} job')
        written = time.monotonic()
        target.write_text(text)

        def applied(marker: str = marker) -> bool:
            with engine.connect() as connection:
                found = connection.execute(spec_query, {"name": first_job}).scalar()
            return found is not None and found.startswith(marker)

        while not applied():
            if time.monotonic() - written > 60:
                raise SystemExit("the edit was not applied within 60 s")
            time.sleep(0.01)
        waits.append(time.monotonic() - written)
        wait_for(lambda b=before: any(row[2] == "applied" for row in passes(engine, b)), 30)
        durations += [row[3] for row in passes(engine, before) if row[2] == "applied"]


STEPS = ("apply", "daemon", "reads")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--per-file", type=int, default=10)
    parser.add_argument("--runs-per-job", type=int, default=10)
    parser.add_argument("--api-requests", type=int, default=300)
    parser.add_argument("--cli-repeat", type=int, default=3)
    parser.add_argument("--api-only", metavar="URL", help="step 4 alone on this database")
    parser.add_argument("--compare-with", metavar="DIR", help="a checkout measured beside")
    parser.add_argument("--only-cold-apply", action="store_true", help="step 1 alone")
    parser.add_argument("--rounds", type=int, default=1, help="cold applies / daemon runs")
    parser.add_argument("--no-scrapes", action="store_true", help="do not scrape /metrics")
    parser.add_argument("--steps", default=",".join(STEPS), help="some of " + ",".join(STEPS))
    parser.add_argument("--workdir", type=Path, help="keep (or reuse) corpus, database, vhost")
    args = parser.parse_args()
    # Measured as installed: with the modules' bytecode cached (a wheel's install compiles
    # it). A shell with PYTHONDONTWRITEBYTECODE set would have every measured process
    # compile our modules again (~0.1 s of a no-op plan), the seed's as well.
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    builds = [Build("this build", None)]
    if args.compare_with:
        builds.append(Build(Path(args.compare_with).name, args.compare_with))
    if args.only_cold_apply:
        with tempfile.TemporaryDirectory() as tmp:
            jobs = Path(tmp) / "jobs.d"
            generate(jobs, files=args.files, per_file=args.per_file)
            print(f"{args.files * args.per_file} jobs in {args.files} files   [{load()}]")
            cold_applies(jobs, builds, args.rounds)
        return
    if args.api_only:
        reads(args.api_only, args, builds, seed=False)
        return
    steps = set(args.steps.split(","))
    if steps - set(STEPS):
        parser.error(f"unknown steps: {sorted(steps - set(STEPS))}")
    reused = kept(args.workdir)
    with contextlib.ExitStack() as cleanup:
        if args.workdir is None:  # removed at the end (benchdb reports a failed removal)
            name = cleanup.enter_context(fresh_database())
            vhost = cleanup.enter_context(fresh_vhost())
            folder = Path(cleanup.enter_context(tempfile.TemporaryDirectory()))
        else:
            folder = args.workdir
            name, vhost = reused or keep_in(folder)
        url = f"postgresql://postgres@127.0.0.1:5432/{name}"
        engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
        cleanup.callback(engine.dispose)
        jobs = folder / "jobs.d"
        if reused is None:
            generate(jobs, files=args.files, per_file=args.per_file)
        print(f"{args.files * args.per_file} jobs in {args.files} files   [{load()}]")
        env = environment(url, jobs, vhost)
        if "apply" in steps:
            cold_apply(env)
        if "daemon" in steps:
            for round_number in range(1, args.rounds + 1):
                for build in builds:
                    if len(builds) > 1:
                        print(f"daemon round {round_number}, {build.label}   [{load()}]")
                    command = daemon_command(build)
                    scrapes = not args.no_scrapes
                    daemon_figures(
                        env, engine, folder, jobs, args.files, command=command, scrapes=scrapes
                    )
        if "reads" in steps:
            reads(url, args, builds, seed=reused is None)


def keep_in(folder: Path) -> tuple[str, str]:
    """A database and a vhost kept for later runs, their names in folder/bench.env (the
    database dropped again if the vhost cannot be made: nothing unrecorded is left)."""
    folder.mkdir(parents=True, exist_ok=True)
    name = create_database()
    try:
        vhost = create_vhost()
    except BaseException:
        drop_database(name)
        raise
    (folder / "bench.env").write_text(f"{name} {vhost}\n")
    print(f"kept in {folder}/bench.env: database {name}, vhost {vhost} (remove them yourself)")
    return name, vhost


def kept(workdir: Path | None) -> tuple[str, str] | None:
    """The database and vhost an earlier run kept in `workdir` (None: none yet)."""
    state = workdir / "bench.env" if workdir is not None else None
    if state is None or not state.exists():
        return None
    name, vhost = state.read_text().split()
    return name, vhost


def reads(url: str, args: argparse.Namespace, builds: list[Build], *, seed: bool) -> None:
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        if seed:
            seed_runs(engine, args.runs_per_job)
        api_figures(url, engine, args.api_requests, builds)
        cli_figures(url, args.cli_repeat, builds)
    finally:
        engine.dispose()


if __name__ == "__main__":
    main()
