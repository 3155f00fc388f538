"""One-shot passes take unchanged files from their records (job_files) instead of parsing
them: the plan must be EXACTLY the plan of a full parse, whatever happened in between.

The property test drives random histories — files added, edited, deleted, renamed,
quarantined and mended, names moved between files, settings changed, applies — and
after every step compares the one-shot plan (records) with the plan of a pass that
parses every file (a fresh daemon cache, resync), at the same instant: same hash, same
JSON document, same targets.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from apscheduler.triggers.interval import IntervalTrigger
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from reconciler.core.plan import Plan
from reconciler.core.plan_json import render_json
from reconciler.core.state import DesiredJob, RecordedSpec
from reconciler.core.triggers import has_open_end
from reconciler.engine import reconcile
from reconciler.engine.reconcile import ReconcileCaches, load_desired, reconcile_once
from reconciler.settings import Settings
from reconciler.spec import loader
from reconciler.spec.essence import essence, hash_essence
from reconciler.spec.model import JobSpec
from reconciler.store import scheduler_rows
from reconciler.store.db import create_sync_engine
from reconciler.store.file_records import read_file_records
from reconciler.store.jobstore import OwnedJobStore
from reconciler.store.migrate import upgrade_database
from reconciler.store.tables import apscheduler_jobs, metadata

TASK = "task: reconciler.tasks.example_task"
NOW = datetime(2027, 3, 1, 12, 0, 30, tzinfo=UTC)
NAMES = [f"job-{n}" for n in range(6)]
FILES = ["a.yaml", "b.yaml", "c.yml", "team/d.yaml", "team/e.yaml"]
SCHEDULES = [
    'schedule: {cron: "*/5 * * * *"}',
    'schedule: {cron: "0 9 * * 1-5"}\ntimezone: Europe/Berlin',
    'schedule: {cron: "*/30 * * * * *"}',
    "schedule: {interval: {minutes: 7}}",
    "schedule: {at: 2026-01-01T09:00:00}",  # past: completed
    "schedule: {at: 2031-06-01T09:00:00}",
    'schedule: {cron: {minute: "5", hour: "8-18"}}',
    'schedule: {cron: {year: "2027", month: "3", day: "2"}}',  # stops firing one day
    'schedule: {cron: "0 0 31 2 *"}',  # never fires: quarantined
]
EXTRAS = [
    "",
    "paused: true",
    "queue: high_priority",
    "queue: nowhere",  # unknown queue: quarantined
    "kwargs: {data: {n: 1}}",
    "kwargs: {nope: 1}",  # unknown argument: quarantined
    "task: reconciler.tasks.noop",  # allowed only by the wide allowlist
    "labels: {team: a}\ndescription: hi",
    "end: 2027-03-01T12:00:00",  # an end that has just passed: completed
    "retries: 0755",  # YAML 1.1 octal: quarantined
]
BROKEN = ["name: [unclosed", "- a list\n- not a job", "name: x\nname: y\ntask: t", ""]

job = st.builds(
    lambda name, schedule, extra, previous: "\n".join(
        part
        for part in (
            f"name: {name}",
            "task: reconciler.tasks.example_task" if "task:" not in extra else "",
            schedule,
            extra,
            f"previous_names: [{previous}]" if previous else "",
        )
        if part
    ),
    st.sampled_from(NAMES),
    st.sampled_from(SCHEDULES),
    st.sampled_from(EXTRAS),
    st.sampled_from(["", "", "", *NAMES]),
)
content = st.one_of(
    st.lists(job, min_size=1, max_size=3).map("\n---\n".join),
    st.sampled_from(BROKEN),
)
# What may happen to a job's apscheduler_jobs row behind the reconciler's back (Space.drift).
DRIFTS = ["remove", "trigger", "pause", "resume", "foreign", "garbage", "fire", "same", "repickle"]
edit = st.one_of(
    st.tuples(st.just("write"), st.sampled_from(FILES), content),
    st.tuples(st.just("delete"), st.sampled_from(FILES), st.none()),
    st.tuples(st.just("move"), st.sampled_from(FILES), st.sampled_from(FILES)),
    st.tuples(st.just("touch"), st.sampled_from(FILES), st.none()),
    st.tuples(st.just("allowlist"), st.sampled_from(["wide", "narrow"]), st.none()),
    st.tuples(st.just("wait"), st.sampled_from(["1", "30", "400"]), st.none()),  # days
    st.tuples(st.just("drift"), st.sampled_from(DRIFTS), st.sampled_from(NAMES)),
)
# Each edit, then (or not) an apply, which records what it loaded.
step = st.tuples(edit, st.booleans())
initial = st.dictionaries(st.sampled_from(FILES), content, min_size=1, max_size=4)

ALLOWLISTS = {
    "wide": ("reconciler.tasks.*",),
    "narrow": ("reconciler.tasks.example_task", "reconciler.tasks.http_probe"),
}


class Space:
    def __init__(self, root: Path, url: str) -> None:
        self.root, self.url = root, url
        self.engine = create_sync_engine(url)
        self.allowlist = "wide"
        self.now = NOW
        self.kept = self.new_caches()

    @staticmethod
    def new_caches() -> tuple[ReconcileCaches, ReconcileCaches]:
        """Caches kept pass after pass, as a daemon keeps them (compact: specs held as
        essences) and plain."""
        return ReconcileCaches(compact=True), ReconcileCaches()

    @property
    def settings(self) -> Settings:
        return Settings(
            database_url=self.url,
            jobs_dir=self.root,
            max_delete_fraction=1.0,
            task_allowlist=ALLOWLISTS[self.allowlist],
        )

    def reset(self) -> None:
        for path in sorted(self.root.rglob("*"), reverse=True):
            path.unlink() if path.is_file() else path.rmdir()
        self.allowlist, self.now = "wide", NOW
        self.kept = self.new_caches()
        with self.engine.begin() as connection:
            for table in reversed(metadata.sorted_tables):
                connection.execute(sa.delete(table))

    def do(self, action: str, first: str | None, second: str | None) -> None:
        path = self.root / first if first else None
        if action == "write" and path is not None and second is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(second)
        elif action == "delete" and path is not None and path.exists():
            path.unlink()
        elif action == "move" and path is not None and second and path.exists():
            target = self.root / second
            target.parent.mkdir(parents=True, exist_ok=True)
            path.rename(target)
        elif action == "touch" and path is not None and path.exists():
            os.utime(path, ns=(path.stat().st_mtime_ns + 10**9,) * 2)
        elif action == "apply":
            reconcile_once(
                self.engine, self.settings, trigger="cli", allow_mass_delete=True, clock=self.clock
            )
        elif action == "allowlist" and first is not None:
            self.allowlist = first
        elif action == "wait" and first is not None:
            self.now += timedelta(days=int(first))
        elif action == "drift" and first is not None and second is not None:
            self.drift(first, second)

    def drift(self, kind: str, name: str) -> None:
        """Change the scheduler row of job `name` (if it has one) as `kind` says: by raw
        SQL, by pickle, or as the daemon's job store writes a fired job back."""
        table, row = apscheduler_jobs, apscheduler_jobs.c.id == name
        if kind == "fire":
            store = OwnedJobStore(engine=self.engine)
            store.start(None, "default")  # type: ignore[arg-type]  # no scheduler needed
            for fired in store.get_due_jobs(self.now + timedelta(days=10_000)):
                if fired.id == name:
                    fired.next_run_time += timedelta(minutes=1)  # as the scheduler does
                    store.update_job(fired)
            store.flush()
            return
        with self.engine.begin() as connection:
            found = connection.execute(sa.select(table.c.job_state).where(row)).scalar()
            if found is None:
                return
            if kind == "remove":
                connection.execute(table.delete().where(row))
            elif kind == "pause":
                connection.execute(table.update().where(row).values(next_run_time=None))
            elif kind == "resume":
                connection.execute(table.update().where(row).values(next_run_time=1.9e9))
            elif kind == "foreign":
                connection.execute(
                    table.insert().from_select(
                        ["id", "next_run_time", "job_state"],
                        sa.select(
                            sa.literal(f"foreign-{name}"), table.c.next_run_time, table.c.job_state
                        )
                        .where(row)
                        .where(~sa.exists().where(table.c.id == f"foreign-{name}")),
                    )
                )
            elif kind == "same":  # a new row version, the same bytes
                connection.execute(table.update().where(row).values(job_state=table.c.job_state))
            elif found != b"not a pickle":  # garbage stays garbage
                state = pickle.loads(found)
                if kind == "trigger":
                    state["trigger"] = IntervalTrigger(minutes=13, timezone=UTC)
                elif kind == "garbage":
                    state = None
                new = b"not a pickle" if state is None else pickle.dumps(state)
                connection.execute(table.update().where(row).values(job_state=new))

    def clock(self) -> datetime:
        return self.now

    def plans(self) -> tuple[Plan, Plan]:
        """(the one-shot plan, from records; the plan of a full parse)."""
        one_shot = reconcile_once(
            self.engine, self.settings, trigger="cli", apply=False, clock=self.clock
        )
        full = reconcile_once(
            self.engine,
            self.settings,
            trigger="resync",
            apply=False,
            caches=ReconcileCaches(),
            clock=self.clock,
        )
        return one_shot.plan, full.plan

    def kept_plans(self) -> tuple[Plan, Plan]:
        """(the plan of a pass with compact caches kept from pass to pass; the same with
        plain caches kept alike): holding specs as essences changes no plan."""
        compact, plain = (
            reconcile_once(
                self.engine,
                self.settings,
                trigger="watch",
                apply=False,
                caches=caches,
                clock=self.clock,
            ).plan
            for caches in self.kept
        )
        return compact, plain


@pytest.fixture
def space(tmp_path: Path, pg_url: str) -> Iterator[Space]:
    upgrade_database(pg_url)
    jobs = tmp_path / "jobs.d"
    jobs.mkdir()
    made = Space(jobs, pg_url)
    yield made
    made.engine.dispose()


@pytest.fixture
def either_space(tmp_path: Path, db_url: str) -> Iterator[Space]:
    """A Space on SQLite, then on PostgreSQL."""
    upgrade_database(db_url)
    jobs = tmp_path / "jobs.d"
    jobs.mkdir()
    made = Space(jobs, db_url)
    yield made
    made.engine.dispose()


def assert_same(one_shot: Plan, full: Plan) -> None:
    assert one_shot.plan_hash == full.plan_hash
    assert render_json(one_shot) == render_json(full)
    assert [c.target for c in one_shot.changes] == [c.target for c in full.changes]


# The transitions a record must not survive, each at least once whatever is drawn.
NOOP_JOB = 'name: job-1\ntask: reconciler.tasks.noop\nschedule: {cron: "*/5 * * * *"}'
CRON_JOB = f"name: job-3\n{TASK}\n{SCHEDULES[0]}"
YEAR_JOB = f"name: job-2\ntask: reconciler.tasks.example_task\n{SCHEDULES[7]}"


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@example(files={"a.yaml": NOOP_JOB}, steps=[(("allowlist", "narrow", None), False)])
@example(files={"a.yaml": YEAR_JOB}, steps=[(("wait", "30", None), False)])
@example(
    files={"a.yaml": NOOP_JOB, "b.yaml": YEAR_JOB.replace("job-2", "job-1")},
    steps=[(("delete", "b.yaml", None), True), (("move", "a.yaml", "team/d.yaml"), False)],
)
@example(
    files={"a.yaml": CRON_JOB},
    steps=[((("drift", kind, "job-3"), apply)) for kind in DRIFTS for apply in (False, True)],
)
@given(files=initial, steps=st.lists(step, min_size=1, max_size=6))
def test_records_give_exactly_the_plan_of_a_full_parse(
    space: Space,
    files: dict[str, str],
    steps: list[tuple[tuple[str, str | None, str | None], bool]],
) -> None:
    space.reset()
    for name, text in files.items():
        space.do("write", name, text)
    space.do("apply", None, None)
    for (action, first, second), apply in steps:
        space.do(action, first, second)
        assert_same(*space.plans())
        assert_same(*space.kept_plans())
        if apply:
            space.do("apply", None, None)
            assert_same(*space.plans())
            assert_same(*space.kept_plans())


@pytest.fixture
def parsed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The files parsed from now on (their labels, in order), by any pass."""
    seen: list[str] = []
    real = loader._load_bytes

    def counting(source: str, *args: object, **kwargs: object) -> object:
        seen.append(source)
        return real(source, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(loader, "_load_bytes", counting)
    return seen


def test_unchanged_files_are_not_parsed_and_plan_writes_nothing(
    space: Space, parsed: list[str]
) -> None:
    for number in range(4):
        space.do(
            "write",
            f"f{number}.yaml",
            f"name: job-{number}\n" + SCHEDULES[0] + "\ntask: reconciler.tasks.example_task",
        )
    space.do("apply", None, None)
    assert sorted(parsed) == [f"f{n}.yaml" for n in range(4)]
    with space.engine.connect() as connection:
        before = read_file_records(connection)
    assert sorted(before) == [f"f{n}.yaml" for n in range(4)]

    parsed.clear()
    one_shot, _ = space.plans()
    assert parsed == [f"f{n}.yaml" for n in range(4)]  # only by the full parse
    assert not one_shot.has_changes

    parsed.clear()
    space.do(
        "write", "f2.yaml", "name: job-2\n" + SCHEDULES[3] + "\ntask: reconciler.tasks.example_task"
    )
    one_shot, full = space.plans()
    assert parsed[0] == "f2.yaml" and parsed.count("f2.yaml") == 2
    assert [(c.action, c.job) for c in one_shot.changes] == [("update", "job-2")]
    assert_same(one_shot, full)
    with space.engine.connect() as connection:
        assert read_file_records(connection) == before  # plan wrote nothing

    space.allowlist = "narrow"  # another validation context: every file parsed again
    parsed.clear()
    space.plans()
    assert parsed.count("f0.yaml") == 2


def test_a_daemons_passes_record_files_too(space: Space, parsed: list[str]) -> None:
    """The daemon applies most changes: its passes keep the records current, so a CI
    plan after them parses nothing."""
    caches = ReconcileCaches()
    for number in range(3):
        space.do("write", f"f{number}.yaml", f"name: job-{number}\n{TASK}\n{SCHEDULES[0]}")
    for _ in range(2):  # the second pass finds nothing new: writes nothing
        reconcile_once(space.engine, space.settings, trigger="watch", caches=caches)
    space.do("write", "f1.yaml", f"name: job-1\n{TASK}\n{SCHEDULES[3]}")
    reconcile_once(space.engine, space.settings, trigger="watch", caches=caches)
    parsed.clear()
    plan = reconcile_once(space.engine, space.settings, trigger="cli", apply=False).plan
    assert not plan.has_changes
    assert parsed == []


@pytest.mark.parametrize("failing", ["before_commit", "record"])
def test_a_failed_daemon_pass_leaves_its_records_to_the_next(
    either_space: Space, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    """A daemon pass that fails after writing the file records rolls them back: its
    caches must not say they were written, or no later pass of the daemon's term writes
    them (its watch passes and resyncs skip what the caches say is recorded). Failing
    late in the transaction (a kill point before the commit) and in the pass's own
    reconcile_runs row."""
    space = either_space
    caches = ReconcileCaches(compact=True)
    space.do("write", "a.yaml", f"name: job-a\n{TASK}\n{SCHEDULES[0]}")
    reconcile_once(space.engine, space.settings, trigger="startup", caches=caches)
    space.do("write", "b.yaml", f"name: job-b\n{TASK}\n{SCHEDULES[0]}")

    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("database went away")

    with monkeypatch.context() as patched:
        if failing == "record":
            patched.setattr(reconcile, "_record", boom)
        with pytest.raises(RuntimeError, match="went away"):
            reconcile_once(
                space.engine,
                space.settings,
                trigger="watch",
                caches=caches,
                changed_files=[str(space.root / "b.yaml")],
                before_commit=boom if failing == "before_commit" else None,
            )
    with space.engine.connect() as connection:
        assert sorted(read_file_records(connection)) == ["a.yaml"]  # rolled back
    again = reconcile_once(space.engine, space.settings, trigger="watch", caches=caches)
    assert [(c.action, c.job) for c in again.plan.changes] == [("add", "job-b")]
    with space.engine.connect() as connection:
        assert sorted(read_file_records(connection)) == ["a.yaml", "b.yaml"]


def test_rows_as_written_are_not_decoded_and_drift_is(
    either_space: Space, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A one-shot plan decodes only the scheduler rows whose stored bytes are not those
    apply wrote for the job's inventory row (any other edit; on SQLite, the daemon's
    write-back too: on PostgreSQL it moves the row's record), or that an applying
    one-shot pass decoded and found in sync."""
    space = either_space
    decoded: list[str] = []
    real = scheduler_rows._unpickle

    def counting(row_id: str, *args: object) -> object:
        if row_id:  # not the job store's ContentCheck, which decodes under no id
            decoded.append(row_id)
        return real(row_id, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(scheduler_rows, "_unpickle", counting)
    for number in range(4):
        space.do("write", f"f{number}.yaml", f"name: job-{number}\n{TASK}\n{SCHEDULES[0]}")
    space.do("apply", None, None)
    one_shot = reconcile_once(space.engine, space.settings, trigger="cli", apply=False).plan
    assert not one_shot.has_changes and decoded == []
    space.drift("fire", "job-1")
    space.drift("trigger", "job-2")
    one_shot = reconcile_once(space.engine, space.settings, trigger="cli", apply=False).plan
    fired = [] if space.engine.dialect.name == "postgresql" else ["job-1"]
    assert sorted(decoded) == [*fired, "job-2"]
    assert [(c.action, c.job) for c in one_shot.changes] == [("repair", "job-2")]
    assert_same(*space.plans())
    # An apply repairs job-2 and (SQLite) records job-1's fired row, which it decoded and
    # found in sync: the next one-shot plan decodes nothing.
    space.do("apply", None, None)
    decoded.clear()
    one_shot = reconcile_once(space.engine, space.settings, trigger="cli", apply=False).plan
    assert not one_shot.has_changes and decoded == []
    space.drift("pause", "job-1")  # the row's bytes stay, its next_run_time does not
    one_shot = reconcile_once(space.engine, space.settings, trigger="cli", apply=False).plan
    assert [(c.action, c.job) for c in one_shot.changes] == [("repair", "job-1")]
    assert_same(one_shot, space.plans()[1])


def test_a_plan_builds_the_specs_of_the_jobs_it_reads_only(
    space: Space, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A job a record stands for keeps its spec as an essence until something reads it:
    a no-op one-shot plan or apply builds none (names, hashes, paused flags and open
    ends are known without), a drift check of a decoded row builds that job's alone."""
    built: list[str] = []
    real = RecordedSpec.spec

    def counting(self: RecordedSpec) -> JobSpec:
        built.append(self.name)
        return real(self)

    monkeypatch.setattr(RecordedSpec, "spec", counting)
    for number in range(4):
        extra = "\npaused: true" if number == 3 else ""
        space.do("write", f"f{number}.yaml", f"name: job-{number}\n{TASK}\n{SCHEDULES[0]}{extra}")
    space.do("apply", None, None)
    one_shot = reconcile_once(space.engine, space.settings, trigger="cli", apply=False).plan
    assert not one_shot.has_changes and built == []
    space.do("apply", None, None)  # records every file again, from what it found
    assert built == []
    space.drift("trigger", "job-2")
    one_shot, full = space.plans()
    assert [(c.action, c.job) for c in one_shot.changes] == [("repair", "job-2")]
    assert set(built) == {"job-2"}
    assert_same(one_shot, full)


def test_a_recorded_spec_is_the_parsed_one() -> None:
    """Jobs compare by their built spec, however it was found."""
    text = (
        f"name: job-1\n{TASK}\n{SCHEDULES[1]}\nprevious_names: [job-0]\nkwargs: {{data: {{n: 1}}}}"
    )
    (parsed,) = loader.load_bytes("a.yaml", text.encode(), settings=Settings(), now=NOW).jobs
    data = essence(parsed.spec)
    recorded = RecordedSpec(data, previous_names=("job-0",), open_ended=has_open_end(parsed.spec))
    assert recorded.spec() == parsed.spec and recorded.spec() is recorded.spec()
    assert (recorded.name, recorded.paused) == (parsed.spec.name, parsed.spec.paused)
    as_loaded = loader.LoadedJob(recorded, "a.yaml", parsed.line, parsed.column)
    assert as_loaded == parsed
    known = (data, hash_essence(data))
    one = DesiredJob.of(recorded, source="a.yaml", known_essence=known)
    other = DesiredJob.of(parsed.spec, source="a.yaml")
    assert one == other and one.open_ended == other.open_ended
    assert one != DesiredJob.of(parsed.spec, source="b.yaml")


def test_a_daemons_caches_keep_no_built_spec(space: Space) -> None:
    """Compact caches (the daemon's) hold each parsed job as a RecordedSpec over its
    essence, and keep no built spec after a pass: not of the jobs it finds in sync
    (drift checks with an empty memory, as after a warm-up; one-off and ended jobs'
    status), nor of those it applied."""
    texts = [f"name: job-{n}\n{TASK}\n{schedule}" for n, schedule in enumerate(SCHEDULES[:7])]
    space.do("write", "a.yaml", "\n---\n".join(texts[:4]))
    space.do("write", "team/d.yaml", "\n---\n".join(texts[4:]))
    space.do("apply", None, None)  # a CLI apply: the daemon then starts on applied rows
    compact, plain = space.kept

    def check(trigger: str, changes: list[tuple[str, str]]) -> None:
        result = reconcile_once(
            space.engine, space.settings, trigger=trigger, caches=compact, clock=space.clock
        )
        assert [(c.action, c.job) for c in result.plan.changes] == changes
        assert compact.loaded is not None
        jobs = compact.loaded[1]
        assert len(jobs) == 7 and all(isinstance(j.found, RecordedSpec) for j in jobs.values())
        assert all(j.found._built is None for j in jobs.values())  # type: ignore[union-attr]

    check("startup", [])
    check("watch", [])
    space.drift("trigger", "job-3")
    check("watch", [("repair", "job-3")])
    space.do("write", "a.yaml", "\n---\n".join([*texts[:3], texts[3] + "\npaused: true"]))
    check("watch", [("pause", "job-3")])
    compact.memory.scheduler_jobs.clear()
    check("resync", [])
    # The same jobs as plain caches hold, spec for spec.
    plain_jobs = load_desired(space.settings, plain, now=NOW).jobs
    assert compact.loaded is not None and dict(compact.loaded[1]) == dict(plain_jobs)
    assert all(isinstance(j.found, JobSpec) for j in plain_jobs.values())
