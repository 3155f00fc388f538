"""Whole processes, as users run them: `reconcile apply`, `plan`, `validate`, with their
output going to a pipe, side by side with the seed's path and the floors.

    .venv/bin/python bench/bench_process.py [--files 1000] [--per-file 10]
        [--seed-jobs 10000] [--rounds 5] [--skip-seed] [--only ROW,...] [--before DIR]

`--only` runs just the named rows (floors, apply, plan, plan-json, apply-noop,
plan-fired, plan-changed, validate, seed; the cold apply that fills the database always
runs).
`--before DIR` (a source tree of another build, e.g. `git worktree add DIR main`) runs
each of our rows with that build too, on a database of its own: side by side in one run,
on equal footing: both builds started the same way (`python -c`, the tree first on
sys.path, main()'s return as the exit code), both trees byte-compiled beforehand (a
fresh worktree would otherwise compile its modules during its cold apply), the job files
read once before either cold apply (the page cache), and the repeated rows' rounds
alternated (this, before, this, ...) so that a change of load falls on both.

10,000 jobs in 1,000 files (bench/corpus.py) in a git checkout, on PostgreSQL
(127.0.0.1; the bench creates and drops its databases). Every figure is the wall time
of a fresh process, from exec to exit, its stdout and stderr read through pipes; the
repeated ones are medians of ROUNDS. Each line carries the 1-minute load average taken
when it was measured: the machine is shared, compare only figures of one run.

- seed path:  the seed's one-job-at-a-time path (bench_apply.SEED: APScheduler `add_job`
              + an ORM insert + a commit per job) as one process; with --seed-jobs below
              the job count, its time is scaled up linearly (it is linear);
- floors:     the bare interpreter; the interpreter importing what `reconcile plan`
              cannot do without (SQLAlchemy, psycopg, pydantic, PyYAML, APScheduler);
              CSafeLoader over every document; one binary COPY of 20,000 rows of the
              sizes we write (10,000 inventory + 10,000 scheduler rows) and a commit;
- ours:       `reconcile apply` cold (empty database: migrations included), then
              `reconcile plan` with nothing changed (what CI runs on every pull request),
              `reconcile plan --format json` likewise, `reconcile plan` with one file
              changed, `reconcile apply` with nothing changed, `reconcile validate`;
              `plan-fired`: every row fired twice and written back by the build's own
              daemon job store (OwnedJobStore.update_job + flush, as its scheduler
              does; the two flushes timed), then `reconcile plan` with nothing changed:
              what CI meets beside a running daemon.

Targets (issue 15): apply cold >= 15x faster than the seed path; plan no-op <= 0.5 s.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from bench_apply import SEED
from benchdb import fresh_database
from corpus import file_path, file_text, generate, git_checkout

PG = "postgresql://postgres@127.0.0.1:5432/"

FLOOR_IMPORTS = "import sqlalchemy, psycopg, pydantic, yaml, apscheduler.triggers.cron"
FLOOR_YAML = """
import sys, yaml
from pathlib import Path
documents = 0
for path in sorted(Path(sys.argv[1]).rglob("*.yaml")):
    with open(path, "rb") as handle:
        documents += sum(1 for _ in yaml.load_all(handle, Loader=yaml.CSafeLoader))
print(documents)
"""
# 20,000 rows shaped like ours: an inventory row (name, JSON spec, hash, source) and a
# scheduler row (id, next run time, a pickled state of ~1.3 KB).
FLOOR_COPY = """
import json, os, sys, psycopg
url, count = sys.argv[1], int(sys.argv[2])
spec = json.dumps({"name": "job-00000", "task": "reconciler.tasks.example_task",
    "schedule": {"cron": "5 1 * * *"}, "queue": "default", "timezone": "Europe/Berlin",
    "kwargs": {"data": {"key": "value", "n": 1}}, "labels": {"team": "t1"}})
state = os.urandom(1300)
with psycopg.connect(url) as connection:
    connection.execute("DROP TABLE IF EXISTS floor_inventory, floor_rows")
    connection.execute("CREATE TABLE floor_inventory (name text PRIMARY KEY, "
                       "spec jsonb, spec_hash text, source text)")
    connection.execute("CREATE TABLE floor_rows (id text PRIMARY KEY, "
                       "next_run_time float8, job_state bytea)")
    with connection.cursor() as cursor:
        with cursor.copy("COPY floor_inventory FROM STDIN") as copy:
            for n in range(count // 2):
                copy.write_row((f"job-{n:05d}", spec, "0" * 64, "team1/jobs-00001.yaml"))
        with cursor.copy("COPY floor_rows FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(["text", "float8", "bytea"])
            for n in range(count // 2):
                copy.write_row((f"job-{n:05d}", 1.0e9 + n, state))
print(count)
"""


def load() -> float:
    return os.getloadavg()[0]


Figure = tuple[float, float, float]  # wall seconds, CPU seconds, load average


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run(
    command: Sequence[str], *, env: dict[str, str] | None = None, ok: Sequence[int] = (0,)
) -> Figure:
    """Wall seconds of the whole process, its CPU seconds (its own and its forked
    children's, user + system: less sensitive to a loaded machine than wall time), and
    the load average before it. Output is read through pipes and thrown away, as a CI
    job capturing it would."""
    before, cpu = load(), children_cpu()
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, check=False)
    seconds = time.perf_counter() - start
    if done.returncode not in ok:
        raise SystemExit(f"{' '.join(command)}: exit {done.returncode}\n{done.stderr.decode()}")
    return seconds, children_cpu() - cpu, before


def median_of(rounds: int, command: Sequence[str], **options: Any) -> Figure:
    return summary([run(command, **options) for _ in range(rounds)])


def summary(runs: Sequence[Figure]) -> Figure:
    """Median wall and CPU seconds, mean load of `runs`."""
    return (
        statistics.median(wall for wall, _, _ in runs),
        statistics.median(cpu for _, cpu, _ in runs),
        statistics.mean(level for _, _, level in runs),
    )


ROWS = (
    "floors",
    "apply",
    "plan",
    "plan-json",
    "apply-noop",
    "plan-fired",
    "plan-changed",
    "validate",
    "seed",
)
# Every row with a next fire fires it, written back as the daemon's job store writes what
# its scheduler fired; prints the flush's seconds.
FIRE = """
import sys, time
from datetime import UTC, datetime, timedelta
from reconciler.store.db import create_sync_engine
from reconciler.store.jobstore import OwnedJobStore
store = OwnedJobStore(engine=create_sync_engine(sys.argv[1]))
for job in store.get_due_jobs(datetime.now(UTC) + timedelta(days=36500)):
    following = job.trigger.get_next_fire_time(job.next_run_time, job.next_run_time)
    if following is not None:
        job.next_run_time = following
        store.update_job(job)
start, cpu = time.perf_counter(), time.process_time()
store.flush()
print(f"{time.perf_counter() - start:.3f} s  cpu {time.process_time() - cpu:.3f} s")
"""


def fire_of(python: str, source: Path | None) -> list[str]:
    """FIRE with this build, or with the build of the source tree `source`."""
    path = "" if source is None else f"import sys; sys.path.insert(0, {str(source)!r}); "
    return [python, "-c", path + FIRE]


def cli_of(python: str, source: Path | None) -> list[str]:
    """The `reconcile` command of this build, or the build of the source tree `source`
    (main() RETURNS the exit code: the console script passes it to sys.exit, and so must
    this; without it every plan of `--before` exited 0, changes or not)."""
    if source is None:
        return [str(Path(python).parent / "reconcile")]
    start = (
        f"import sys; sys.path.insert(0, {str(source)!r}); "
        "from reconciler.cli import main; raise SystemExit(main())"
    )
    return [python, "-c", start]


def prepare(python: str, sources: Sequence[Path], root: Path) -> None:
    """Equal footing for side-by-side builds: each tree byte-compiled (as an installed
    package is) and every job file read once, before the first cold apply."""
    for source in sources:
        subprocess.run(
            [python, "-m", "compileall", "-q", str(source / "reconciler")],
            check=True,
            capture_output=True,
        )
    for path in root.rglob("*.yaml"):
        path.read_bytes()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--per-file", type=int, default=10)
    parser.add_argument("--seed-jobs", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--skip-seed", action="store_true")
    parser.add_argument("--only", default=",".join(ROWS), help="rows to run: " + ", ".join(ROWS))
    parser.add_argument("--before", metavar="DIR", help="another build's source tree, side by side")
    options = parser.parse_args()
    # Measured as installed: with the modules' bytecode cached (a wheel's install compiles
    # it). A shell with PYTHONDONTWRITEBYTECODE set would have every measured process
    # compile our modules again (~0.1 s of a no-op plan), the seed's as well.
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    only = set(options.only.split(","))
    if unknown := only - set(ROWS):
        parser.error(f"unknown rows: {', '.join(sorted(unknown))}")
    if options.skip_seed:
        only.discard("seed")
    jobs = options.files * options.per_file
    python = sys.executable
    builds = {"": cli_of(python, None)}
    sources: list[Path] = []
    if options.before:
        sources = [Path(__file__).resolve().parents[1], Path(options.before).resolve()]
        builds = {"": cli_of(python, sources[0]), "before: ": cli_of(python, sources[1])}
    trees: list[Path | None] = [*sources] or [None]
    fires = {label: fire_of(python, tree) for label, tree in zip(builds, trees, strict=True)}

    def note(label: str, figure: Figure) -> None:
        wall, cpu, level = figure
        print(f"  {label:52} {wall:8.3f} s  cpu {cpu:7.3f} s  (load {level:4.1f})", flush=True)

    cleanup = ExitStack()  # every database made is dropped (benchdb reports a failure)
    try:
        databases = {label: cleanup.enter_context(fresh_database()) for label in builds}
        floor_db, seed_db = (cleanup.enter_context(fresh_database()) for _ in range(2))
        with tempfile.TemporaryDirectory() as folder:
            root = Path(folder) / "jobs.d"
            generate(root, files=options.files, per_file=options.per_file)
            git_checkout(root)
            envs = {
                label: {
                    **os.environ,
                    "RECONCILER_DATABASE_URL": PG + databases[label],
                    "RECONCILER_JOBS_DIR": str(root),
                    "RECONCILER_STATE_DIR": str(Path(folder) / f"state{index}"),
                }
                for index, label in enumerate(builds)
            }
            prepare(python, sources, root)
            print(f"{jobs} jobs in {options.files} files, PostgreSQL, {os.cpu_count()} CPUs")
            if "floors" in only:
                print("floors:")
                note("interpreter alone", median_of(options.rounds, [python, "-c", "pass"]))
                note(
                    "interpreter + imports",
                    median_of(options.rounds, [python, "-c", FLOOR_IMPORTS]),
                )
                note(
                    "CSafeLoader, every document",
                    median_of(3, [python, "-c", FLOOR_YAML, str(root)]),
                )
                note(
                    "one COPY of 20,000 rows + commit",
                    median_of(3, [python, "-c", FLOOR_COPY, PG + floor_db, "20000"]),
                )
            print("ours (whole processes, output to a pipe):")
            apply_cold: Figure | None = None
            for label, reconcile in builds.items():
                cold = run([*reconcile, "apply", "--auto-approve"], env=envs[label])
                apply_cold = apply_cold or cold
                note(f"{label}reconcile apply, cold", cold)

            def side_by_side(
                row: str, title: str, args: list[str], rounds: int = options.rounds, **extra: Any
            ) -> None:
                if row not in only:
                    return
                runs: dict[str, list[Figure]] = {label: [] for label in builds}
                for _ in range(rounds):  # alternated: a change of load falls on every build
                    for label, reconcile in builds.items():
                        runs[label].append(run([*reconcile, *args], env=envs[label], **extra))
                for label in builds:
                    note(f"{label}{title}", summary(runs[label]))

            side_by_side("plan", "reconcile plan, no change", ["plan"])
            side_by_side(
                "plan-json", "reconcile plan --format json, no change", ["plan", "--format", "json"]
            )
            side_by_side("apply-noop", "reconcile apply, no change", ["apply", "--auto-approve"])
            if "plan-fired" in only:
                # Alternated: a change of load falls on every build. The first fire after
                # the apply, then fires known by their bytes alone.
                for turn in range(3):
                    for label in builds:
                        url = envs[label]["RECONCILER_DATABASE_URL"]
                        done = subprocess.run(
                            [*fires[label], url], capture_output=True, text=True, check=True
                        )
                        title = f"{label}write-back of every row fired, fire {turn + 1}"
                        print(f"  {title:52} {done.stdout.strip()}  (load {load():4.1f})")
            side_by_side("plan-fired", "reconcile plan, no change, rows fired", ["plan"])
            target = file_path(root, 0)
            target.write_text(file_text(0, options.per_file).replace("value", "changed"))
            side_by_side("plan-changed", "reconcile plan, one file changed", ["plan"], ok=(2,))
            side_by_side("validate", "reconcile validate", ["validate"], rounds=3)
        if "seed" in only and apply_cold is not None:
            seed_url = PG.replace("postgresql://", "postgresql+psycopg://") + seed_db
            seed = run([python, "-c", SEED, seed_url, str(options.seed_jobs)])
            scaled = seed[0] * jobs / options.seed_jobs
            note(f"seed path ({options.seed_jobs} jobs, one process)", seed)
            scaled_cpu = seed[1] * jobs / options.seed_jobs
            print(
                f"apply cold vs the seed path: {scaled / apply_cold[0]:.1f}x faster by wall "
                f"time, {scaled_cpu / apply_cold[1]:.1f}x by CPU "
                f"(seed {scaled:.2f} s, cpu {scaled_cpu:.2f} s for {jobs} jobs; target >= 15x)"
            )
    finally:
        cleanup.close()


if __name__ == "__main__":
    main()
