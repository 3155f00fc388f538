"""The no-op check of a fresh `reconcile plan` and `reconcile apply`: when nothing
changed, say so without importing SQLAlchemy, pydantic or APScheduler, in exactly the
bytes the full path prints (and, for apply, recording the pass as the full path
records it); when anything differs or is uncertain, decline (None) and let the full
path plan.

Why it is safe (docs/architecture.md "The no-op plan"): the full path finds no change
exactly when every declared job has an inventory row of the same spec hash, source
file and status, no inventory row is undeclared, no file is quarantined, and every
non-completed job's scheduler row holds what we wrote for it (paused or not as its
status says). Each of these is checked here from the same inputs the full path reads
(the files' bytes against their records under the same validation context, the
inventory's essences checked against their hashes, the scheduler rows' digests as
PostgreSQL computes them), and anything this cannot decide as the full path would (a
record missing, a one-off near its date, a cron with an end, settings it cannot vouch
for, SQLite, a pending migration, `--out`) declines. Then the plan has no changes, and
its text depends only on the revision and the foreign rows.

What a no-op apply writes on its full path, beside the plan's reads: the migrations
(none at the head), the file records (none when every record stands for a file of
the folder and no other record exists), the quarantine (none when no file is
quarantined and the table is empty), the records of scheduler rows it decoded (none
when every row holds what its record says), and one reconcile_runs row (outcome
no_changes). The quick apply declines unless the first four hold, and writes that row
in the transaction, under the apply lock, in which it read the state.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from reconciler.lean_settings import LeanSettings, lean_settings
from reconciler.spec.context import context_digest, file_digest
from reconciler.spec.files import find_job_files, read_job_file
from reconciler.store.noop_check import EMPTY_PLAN_HASH as _EMPTY_HASH

_ACTIONS = ("add", "update", "pause", "resume", "rename", "remove", "repair")
# A one-off is decided only this far from its date (any time zone's offset, jitter aside).
_MARGIN = timedelta(days=1, minutes=5)


def quick_plan(args: argparse.Namespace, *, now: datetime | None = None) -> str | None:
    """The full path's stdout for a plan with no change, or None (decline). `now`: the
    clock (tests)."""
    if getattr(args, "out", None):
        return None
    settings = _settings(args)
    if settings is None:
        return None
    from reconciler.store.noop_check import stored_state

    with stored_state(settings.database_url) as snapshot:
        if snapshot is None:
            return None
        state = snapshot.state
    if not _unchanged(settings, state, now=now or datetime.now(UTC)):
        return None
    from reconciler.engine.gitrev import head_and_dirty

    commit, dirty = head_and_dirty(settings.jobs_dir)
    foreign = sorted(state.foreign)
    return render(getattr(args, "format", "text"), commit, dirty, foreign)


def quick_apply(args: argparse.Namespace, *, now: datetime | None = None) -> str | None:
    """The full path's stdout for an apply whose plan has no change, once the pass is
    recorded as the full path records it; None (decline, nothing written) otherwise.
    Only the plain form: no saved plan, no --plan-hash. `now`: the clock (tests)."""
    if getattr(args, "plan_file", None) or getattr(args, "plan_hash", None):
        return None
    started = time.monotonic()
    settings = _settings(args)
    if settings is None:
        return None
    from reconciler.engine.gitrev import head_and_dirty
    from reconciler.store.noop_check import stored_state

    with stored_state(settings.database_url, write=True) as snapshot:
        if snapshot is None:
            return None
        read_at = datetime.now(UTC)  # the full path's `now`: the state read under the lock
        if not _unchanged(settings, snapshot.state, now=now or read_at, writes_nothing=True):
            return None
        commit, dirty = head_and_dirty(settings.jobs_dir)
        recorded = snapshot.record_no_change(
            started_at=read_at,
            finished_at=datetime.now(UTC),
            duration=time.monotonic() - started,
            revision=commit,
            dirty=dirty,
        )
        if not recorded:
            return None
    duration = time.monotonic() - started
    return f"No changes (0 quarantined files, {duration:.2f} s).\n"  # commands.apply._report


def _settings(args: argparse.Namespace) -> LeanSettings | None:
    """The settings, or None when the check is off (RECONCILER_FAST_PLAN=false) or
    cannot vouch for them, or there is no jobs folder."""
    settings = lean_settings(
        os.environ,
        jobs_dir=getattr(args, "jobs_dir", None),
        database_url=getattr(args, "database_url", None),
    )
    if settings is None or not settings.fast_plan or not settings.jobs_dir.is_dir():
        return None
    return settings


def _unchanged(
    settings: LeanSettings, state: Any, *, now: datetime, writes_nothing: bool = False
) -> bool:
    """Whether the full path plans no change for these files against `state`.
    `writes_nothing`: also that an apply of it writes no file record and no quarantine
    (every record stands for a file of the folder; the quarantine table is empty)."""
    entries, refused = find_job_files(settings.jobs_dir)
    if refused:
        return False
    jobs = _declared(settings, entries, state)
    if jobs is None:
        return False
    if writes_nothing and (
        state.quarantined or len(state.records) != len({entry.label for entry in entries})
    ):
        return False  # every file has its record (_declared): no other record then
    return _in_sync(jobs, state.jobs, now=now)


Declared = dict[str, tuple[str, str, bool]]  # name -> spec hash, source, open-ended


def _declared(settings: LeanSettings, entries: list[Any], state: Any) -> Declared | None:
    """The declared jobs (name -> spec hash, source, open-ended), from the files'
    records; None unless every file is read, has its record under this validation
    context, holds no diagnostic, and no name is declared twice."""
    context = context_digest(settings, task_catalog=[])
    jobs: Declared = {}
    sites = 0
    names: set[str] = set()
    for entry in entries:
        data = read_job_file(entry, max_bytes=settings.max_file_bytes)
        record = state.records.get(entry.label)
        if not isinstance(data, bytes) or record is None:
            return None
        digest, recorded_context, outcome = record
        if recorded_context != context or digest != file_digest(data) or outcome["diagnostics"]:
            return None
        for site in outcome["names"]:
            sites += 1
            names.add(site[0])
        for name, _line, _column, spec_hash, _previous, *rest in outcome["jobs"]:
            jobs[name] = (spec_hash, entry.label, bool(rest and rest[0]))
    if len(names) != sites:
        return None  # a name declared twice: DUPLICATE_JOB quarantines its files
    return jobs


def _in_sync(jobs: Declared, stored: dict[str, Any], *, now: datetime) -> bool:
    """Whether the plan of these declared jobs against the stored ones has no change
    (core.plan._verdict finds none for every name); False also when undecided."""
    if len(jobs) != len(stored):
        return False
    for name, (spec_hash, source, open_ended) in jobs.items():
        have = stored.get(name)
        if have is None or have.spec_hash != spec_hash or have.source_file != source:
            return False
        if not _hashes_to(have.essence, spec_hash):
            return False  # the full path parses the file then; so would we
        status = _status(have.essence, open_ended, now)
        if status is None or status != have.status:
            return False
        if status == "completed":
            continue  # no scheduler row is checked for a completed job
        if not (have.has_row and have.row_as_written and have.row_paused == (status == "paused")):
            return False
    return True


def _hashes_to(essence: dict[str, Any], spec_hash: str) -> bool:
    """spec.essence.hashes_to's first test: orjson's sorted text hashes to the hash (it
    then IS the canonical text); any other answer declines."""
    try:
        text = orjson.dumps(essence, option=orjson.OPT_SORT_KEYS)
    except TypeError:
        return False
    return hashlib.sha256(text).hexdigest() == spec_hash


def _status(essence: dict[str, Any], open_ended: bool, now: datetime) -> str | None:
    """DesiredJob.status: paused, active (it fires for ever), or, for a one-off whose
    date is more than a day away (whatever its time zone), active before it and
    completed after it; None for anything else (an end, a start, a cron with years)."""
    if essence.get("paused") is True:
        return "paused"
    if open_ended:
        return "active"
    schedule = essence.get("schedule")
    if not isinstance(schedule, dict) or set(schedule) != {"at"} or "end" in essence:
        return None
    if "start" in essence or not isinstance(schedule["at"], str):
        return None
    jitter = essence.get("jitter_seconds", 0)
    if type(jitter) is not int or jitter < 0:
        return None
    try:
        at = datetime.fromisoformat(schedule["at"])
    except ValueError:
        return None
    at = at.astimezone(UTC) if at.tzinfo is not None else at.replace(tzinfo=UTC)
    margin = _MARGIN + timedelta(seconds=jitter)
    if at - margin > now:
        return "active"
    if at + margin < now:
        return "completed"
    return None


def render(fmt: str, commit: str | None, dirty: bool, foreign: list[str]) -> str | None:
    """What `reconcile plan --format FMT` prints for a plan with no change (core.render,
    core.plan_json); None for text the full path would escape (non-ASCII in JSON)."""
    label = "(not a git checkout)"
    if commit is not None:
        label = commit[:12] + (" (dirty)" if dirty else "")
    if fmt == "json":
        document = {
            "format_version": 1,
            "plan_hash": _EMPTY_HASH,
            "revision": {"commit": commit, "dirty": dirty},
            "summary": dict.fromkeys(_ACTIONS, 0),
            "has_changes": False,
            "refused": None,
            "changes": [],
            "quarantined": [],
            "foreign": foreign,
            "hints": [],
        }
        text = orjson.dumps(document, option=orjson.OPT_INDENT_2)
        if not text.isascii() or b"\x7f" in text:
            return None
        return text.decode() + "\n"
    if fmt == "markdown":
        lines = [f"### Reconcile plan for `{label}`", ""]
        lines.append("**No changes.** The scheduler matches the job files.")
        if foreign:
            lines += ["", "Foreign scheduler rows (left alone): " + ", ".join(foreign)]
        counts = " · ".join(f"0 {action}" for action in _ACTIONS)
        lines += ["", f"**Plan:** {counts}", "", f"Plan hash: `{_EMPTY_HASH}`"]
        return "\n".join(lines) + "\n"
    if fmt != "text":
        return None
    lines = [f"Revision: {label}", "", "No changes. The scheduler matches the job files."]
    if foreign:
        lines += ["", "Foreign apscheduler_jobs rows (not ours, left alone):"]
        lines += [f"  {row_id}" for row_id in foreign]
    counts = ", ".join(f"0 to {action}" for action in _ACTIONS)
    lines += ["", f"Plan: {counts}.", f"Plan hash: {_EMPTY_HASH}"]
    return "\n".join(lines) + "\n"
