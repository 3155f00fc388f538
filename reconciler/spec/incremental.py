"""Loading the jobs folder against file records (spec.records): every file is read and
hashed, only those whose record does not match (new, edited, another validation
context, or a job whose essence is unknown) are parsed. The result is the LoadResult a
full `load_jobs` gives, job for job and diagnostic for diagnostic.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from reconciler.settings import Settings
from reconciler.spec.diagnostics import Diagnostic
from reconciler.spec.files import find_job_files, read_job_file
from reconciler.spec.loader import (
    FileOutcome,
    LoadAhead,
    LoadedJob,
    LoadResult,
    assemble_result,
    load_files,
)
from reconciler.spec.records import (
    FileRecord,
    RecordedJob,
    essence_lookup,
    file_digest,
    recorded_job,
)

Lookup = Callable[[RecordedJob], Any]


def record_of(outcome: FileOutcome, context: str) -> FileRecord | None:
    """The record of a parsed file, or None when it must not be recorded (not read, or
    its outcome may change with the clock). A file with diagnostics is quarantined
    whatever else holds: its jobs never count, and are not recorded."""
    if outcome.digest is None or not outcome.timeless:
        return None
    jobs: tuple[RecordedJob, ...] = ()
    if not outcome.diagnostics:
        jobs = tuple(
            recorded_job(job.found, job.line, job.column, job.essence) for job in outcome.jobs
        )
    return FileRecord(
        outcome.source, outcome.digest, context, jobs, outcome.names, outcome.diagnostics
    )


def outcome_of(record: FileRecord, lookup: Lookup) -> FileOutcome | None:
    """The outcome `record` stands for; None when a job's essence is unknown."""
    jobs = []
    for job in record.jobs:
        found = lookup(job)
        if found is None:
            return None
        spec, known = found
        jobs.append(LoadedJob(spec, record.path, job.line, job.column, known))
    return FileOutcome(
        record.path, tuple(jobs), record.names, record.diagnostics, record.digest, True
    )


def load_with_records(
    jobs_dir: Path,
    *,
    settings: Settings,
    now: datetime,
    records: Mapping[str, FileRecord],
    context: str,
    essences: Callable[[str], Mapping[str, Any] | None],
    ahead: LoadAhead | None = None,
) -> LoadResult:
    """`load_jobs(jobs_dir, essences=True)`, parsing only the files `records` (by
    label, made under `context`) do not stand for. `essences`: a spec's essence by its
    hash, None if unknown. `ahead`: files being loaded already (loader.load_ahead)."""
    entries, refused = find_job_files(jobs_dir)
    lookup = essence_lookup(essences)
    outcomes: dict[str, FileOutcome] = {}
    contents: dict[str, bytes | Diagnostic] = {}
    for entry in entries:
        data = read_job_file(entry, max_bytes=settings.max_file_bytes)
        record = records.get(entry.label)
        if record is not None and record.context == context and isinstance(data, bytes):
            outcome = outcome_of(record, lookup) if record.digest == file_digest(data) else None
            if outcome is not None:
                outcomes[entry.label] = outcome
                continue
        contents[entry.label] = data
    parse = [entry for entry in entries if entry.label in contents]
    fresh = load_files(
        parse, settings=settings, now=now, essences=True, contents=contents, ahead=ahead
    )
    outcomes.update(zip((entry.label for entry in parse), fresh, strict=True))
    return assemble_result([outcomes[entry.label] for entry in entries], refused)
