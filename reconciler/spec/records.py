"""File records: what loading one job file gave, named by the file's content digest, so
that a one-shot pass (`reconcile plan`, `reconcile apply`) parses only the files that
changed since the records were written, and takes the rest from the database.

Contracts:
- A record is a function of the file's path, its bytes (their SHA-256) and the
  validation context (`validation_context`): whatever else a file's outcome depends on —
  the settings the checks read, the task modules' sources, the loader's own code, the
  libraries' versions, the time zone database. The same three give the same outcome,
  so a record whose digest and context match stands for parsing the file.
- The clock: a file is recorded only if its outcome cannot change with time alone
  (FileOutcome.timeless: no cron map naming a `year`, whose schedule one day stops
  firing). Every other check is time-invariant (see spec.checks.cron_fires).
- A record keeps each job's name, position, previous names, spec hash and whether it
  fires for ever (`open_ended`), not its spec: `outcome_of` gives the jobs essences
  found by hash (the inventory's, content-addressed: a hash names one essence for
  ever), and None when one is unknown; the caller then parses the file. A job's spec
  is built from its essence only when read (core.state.RecordedSpec): a plan reads the
  specs of the jobs that change, never of those it finds unchanged by hash.
- `reconcile validate` never uses records: it is always a full parse.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from reconciler.core.state import RecordedSpec, SpecFound, built
from reconciler.core.triggers import has_open_end
from reconciler.settings import Settings
from reconciler.spec.catalog import CatalogError, task_catalog
from reconciler.spec.checks import NameSite
from reconciler.spec.context import (
    RECORD_FORMAT,
    code_files,
    context_digest,
    file_digest,
    installed_code,
    module_digest,
)
from reconciler.spec.diagnostics import Diagnostic
from reconciler.spec.essence import essence_and_hash, hashes_to

# Re-exported: the records' format, the digests a record is named by (spec.context).
__all__ = [
    "RECORD_FORMAT",
    "FileRecord",
    "RecordedJob",
    "code_files",
    "file_digest",
    "installed_code",
    "validation_context",
]


@dataclass(frozen=True, slots=True)
class RecordedJob:
    """A valid job of a recorded file, without its spec (found by `spec_hash`)."""

    name: str
    line: int
    column: int
    spec_hash: str
    previous_names: tuple[str, ...] = ()
    open_ended: bool = False  # core.triggers.has_open_end of its spec


@dataclass(frozen=True, slots=True)
class FileRecord:
    """What loading the file at `path` with content `digest` under `context` gave."""

    path: str
    digest: str
    context: str
    jobs: tuple[RecordedJob, ...]
    names: tuple[NameSite, ...]
    diagnostics: tuple[Diagnostic, ...]

    def outcome_json(self) -> dict[str, Any]:
        """The outcome as plain JSON data (the `outcome` column)."""
        return {
            "jobs": [
                [
                    job.name,
                    job.line,
                    job.column,
                    job.spec_hash,
                    list(job.previous_names),
                    job.open_ended,
                ]
                for job in self.jobs
            ],
            "names": [[site.name, site.line, site.column] for site in self.names],
            "diagnostics": [[d.line, d.column, d.code, d.message] for d in self.diagnostics],
        }

    @classmethod
    def from_json(cls, path: str, digest: str, context: str, data: Mapping[str, Any]) -> FileRecord:
        return cls(
            path=path,
            digest=digest,
            context=context,
            jobs=tuple(
                # Records of format 1 have no `open_ended`: read, they never match (the
                # format is part of the validation context).
                RecordedJob(name, line, column, spec_hash, tuple(previous), bool(rest and rest[0]))
                for name, line, column, spec_hash, previous, *rest in data["jobs"]
            ),
            names=tuple(NameSite(name, path, line, column) for name, line, column in data["names"]),
            diagnostics=tuple(
                Diagnostic(path, line, column, code, message)
                for line, column, code, message in data["diagnostics"]
            ),
        )


# A spec's essence and hash, as LoadedJob.essence holds them.
KnownEssence = tuple[Mapping[str, Any], str]


def recorded_job(
    found: SpecFound, line: int, column: int, known: KnownEssence | None
) -> RecordedJob:
    """The record of a job; a job found by its record (an applying pass records every
    file again) gives it back without building its spec."""
    open_ended = found.open_ended if isinstance(found, RecordedSpec) else has_open_end(found)
    spec_hash = known[1] if known is not None else essence_and_hash(built(found))[1]
    previous = tuple(found.previous_names)
    return RecordedJob(found.name, line, column, spec_hash, previous, open_ended)


def essence_lookup(
    essences: Callable[[str], Mapping[str, Any] | None],
) -> Callable[[RecordedJob], tuple[RecordedSpec, KnownEssence] | None]:
    """A job's spec (built when read: RecordedSpec) and (essence, hash) from the
    essences known by hash, or None. None too for an essence that no longer hashes to
    its hash: the database changed it on the way (PostgreSQL's JSONB stores the float
    1e16 as the integer 10000000000000000 and -0.0 as 0.0), or a row was edited by
    hand, so it is not the file's; the file is parsed instead."""

    def lookup(job: RecordedJob) -> tuple[RecordedSpec, KnownEssence] | None:
        known = essences(job.spec_hash)
        if known is None or not hashes_to(dict(known), job.spec_hash):
            return None
        found = RecordedSpec(known, previous_names=job.previous_names, open_ended=job.open_ended)
        return found, (known, job.spec_hash)

    return lookup


def validation_context(settings: Settings) -> str:
    """A digest of everything besides a file's bytes that its outcome depends on."""
    return context_digest(settings, task_catalog=_task_catalog_digest(settings.task_modules))


def _task_catalog_digest(task_modules: tuple[str, ...]) -> list[object]:
    """What the argument checks read from the task modules: every task's signature and
    type hints, and the sources of the modules that define them and the classes those
    hints name (a task re-exported from a submodule, a TypedDict beside it)."""
    if not task_modules:
        return []
    try:
        return _imported_catalog_digest(task_modules)
    except CatalogError as error:
        return [str(error)]


# Process-wide memo (docs/architecture.md): it must follow `task_catalog`'s, which is
# process-wide because imports are.
@lru_cache(maxsize=8)
def _imported_catalog_digest(task_modules: tuple[str, ...]) -> list[object]:
    """Read once per process, when the catalog is imported (task_catalog: once too): a
    process keeps judging by the code it imported, whatever the files say later, so its
    records must name that code (a daemon's, after the task modules were edited, would
    otherwise stand for the new source)."""
    catalog = task_catalog(task_modules)
    modules = set(task_modules)
    tasks = []
    for name in sorted(catalog):
        params = catalog[name]
        tasks.append([name, str(params.signature), sorted(map(repr, params.hints.items()))])
        modules.update(params.modules)
    return [tasks, [[module, module_digest(module)] for module in sorted(modules)]]
