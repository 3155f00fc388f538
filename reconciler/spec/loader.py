"""Load the jobs folder: every file parsed, validated, checked; bad files quarantined.

Contracts:
- Files are `**/*.yaml|*.yml` under the folder, in sorted order; jobs come out in file
  order, then document order. A file may hold several documents, one job each; empty
  documents (a trailing `---`) are skipped, but a file without any job is EMPTY_FILE.
- A file with ANY diagnostic is quarantined as a whole: none of its jobs is returned
  (the engine keeps running their last applied spec). Other files are unaffected, except
  that a job name declared twice quarantines every file that declares it.
- Nothing raises for bad input: every problem is a Diagnostic.
- With a `LoadCache`, a file whose (size, mtime_ns, inode) has not changed is not read
  again; the cross-file duplicate check runs on every call. Cached results were checked
  at an earlier `now`: a cron that stops firing between two calls is noticed when its
  file changes (or by a fresh cache).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import chain
from pathlib import Path
from types import MappingProxyType
from typing import Any

from pydantic import ValidationError

from reconciler.core.frozen import quick_init, quick_new
from reconciler.core.state import SpecFound, built
from reconciler.settings import Settings
from reconciler.spec import parallel
from reconciler.spec.checks import (
    Finding,
    NameSite,
    check_job,
    check_routing,
    find_duplicate_names,
    past_one_off,
)
from reconciler.spec.diagnostics import Diagnostic
from reconciler.spec.essence import essence_and_hash
from reconciler.spec.explain import explain_errors, explain_findings
from reconciler.spec.files import (
    FileEntry,
    FileListing,
    FileSignature,
    find_job_files,
    read_job_file,
    signature_of,
)
from reconciler.spec.model import JobSpec
from reconciler.spec.rebuild import rebuild_spec
from reconciler.spec.records import file_digest, validation_context
from reconciler.spec.yamlsafe import (
    MAX_DIAGNOSTICS_PER_FILE,
    ScalarMemo,
    describe_kind,
    locate_nodes,
    parse_yaml,
)

# A file modified less than this long before it was read may change again within the
# same timestamp tick (coarse on many file systems): do not trust its cache entry yet.
_RACY_NS = 1_000_000_000


@quick_init
@dataclass(frozen=True, slots=True, eq=False)
class LoadedJob:
    """A valid job and where it was declared (1-based position of its document).

    `found`: its spec, parsed, or recorded and built when read (core.state.RecordedSpec:
    a file record stood for the file); it compares and hashes by the built spec.
    `essence` is the job's essence and its hash when the loader computed them already
    (the forked child of a parallel load does, so that the parent need not)."""

    found: SpecFound
    source: str
    line: int
    column: int
    essence: tuple[Mapping[str, Any], str] | None = field(default=None, repr=False)

    @property
    def spec(self) -> JobSpec:
        return built(self.found)

    @property
    def name(self) -> str:
        return self.found.name

    def _key(self) -> tuple[Any, ...]:
        return (self.spec, self.source, self.line, self.column)  # never the essence

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        assert isinstance(other, LoadedJob)
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())


# Made per job by the loader and by the parent of a parallel load: without a class call
# (core.frozen.quick_new).
_new_loaded_job = quick_new(LoadedJob)
# The validation `JobSpec.model_validate` runs, called without that method's Python frame
# and keyword arguments (~4,000 instructions a job): the loader validates every document.
_validate_job = JobSpec.__pydantic_validator__.validate_python


@dataclass(frozen=True, slots=True)
class LoadResult:
    """Valid jobs of healthy files, and the diagnostics of quarantined ones by path.

    `files` counts every file looked at, quarantined ones included; `healthy` holds the
    outcomes of the files whose jobs are in `jobs`, in the same order."""

    jobs: tuple[LoadedJob, ...]
    quarantined: Mapping[str, tuple[Diagnostic, ...]]
    files: int
    healthy: tuple[FileOutcome, ...] = ()
    outcomes: tuple[FileOutcome, ...] = ()  # every file's, healthy or not, in order

    @property
    def valid(self) -> bool:
        return not self.quarantined

    @property
    def diagnostics(self) -> tuple[Diagnostic, ...]:
        """Every diagnostic of every quarantined file, sorted by path and position."""
        return tuple(sorted(d for group in self.quarantined.values() for d in group))


def warnings_of(result: LoadResult, *, now: datetime) -> tuple[Diagnostic, ...]:
    """Warnings about valid jobs (they never quarantine a file): AT_IN_PAST."""
    found = []
    for job in result.jobs:
        why = past_one_off(job.spec, now=now)
        if why is not None:
            found.append(Diagnostic(job.source, job.line, job.column, "AT_IN_PAST", why))
    return tuple(sorted(found))


@dataclass(frozen=True, slots=True)
class FileOutcome:
    """What one file contributes, before the cross-file checks. Cacheable.

    `digest`: the SHA-256 of the bytes parsed (None: not read). `timeless`: the outcome
    cannot change with the clock alone (see spec.records), so it may be recorded."""

    source: str
    jobs: tuple[LoadedJob, ...]
    names: tuple[NameSite, ...]
    diagnostics: tuple[Diagnostic, ...]
    digest: str | None = None
    timeless: bool = False


class LoadCache:
    """Per-file outcomes of earlier loads, keyed by path and file signature.

    Owned by one caller (the daemon loop); not thread-safe. Outcomes depend on the
    settings, so a call with different settings starts afresh.

    `lean`: applied to each outcome parsed anew before it is kept, to hold it in fewer
    bytes (the daemon's: each job's spec as a RecordedSpec over its shared essence). It
    must return an outcome equal to the one it is given."""

    def __init__(self, *, lean: Callable[[FileOutcome], FileOutcome] | None = None) -> None:
        self._lean = lean
        self._outcomes: dict[str, tuple[FileSignature, FileOutcome]] = {}
        self._settings_key: str | None = None
        # The last result and what it was assembled from: the same outcomes (the same
        # objects) and refusals give the same result, returned as the same object so
        # that callers can tell "nothing changed" by identity.
        self._assembled: tuple[list[FileOutcome], list[Diagnostic], LoadResult] | None = None
        # How many of the last assembled files declare each job name, and the names
        # declared more than once: kept up to date by the files that changed, so that a
        # pass need not list 10,000 names to find no duplicate.
        self._name_counts: Counter[str] = Counter()
        self._duplicated: set[str] = set()
        self._counted: list[FileOutcome] = []  # the files those counts are of

    def __len__(self) -> int:
        return len(self._outcomes)

    def outcomes(
        self,
        entries: Sequence[FileEntry],
        *,
        settings: Settings,
        now: datetime,
        essences: bool = False,
    ) -> list[FileOutcome]:
        """Each file's cached outcome if it is unchanged, else a fresh one (then cached,
        unless the file was modified too recently to trust its signature)."""
        self._match_settings(settings)
        found: dict[str, FileOutcome] = {}
        missing: list[tuple[FileEntry, FileSignature | None]] = []
        for entry in entries:
            signature = entry.signature or signature_of(entry.path)
            cached = self._outcomes.get(entry.label)
            if cached is not None and signature is not None and cached[0] == signature:
                found[entry.label] = cached[1]
            else:
                missing.append((entry, signature))
        fresh = load_files(
            [entry for entry, _ in missing], settings=settings, now=now, essences=essences
        )
        if self._lean is not None:
            fresh = [self._lean(outcome) for outcome in fresh]
        for (entry, signature), outcome in zip(missing, fresh, strict=True):
            found[entry.label] = outcome
            if signature is not None and time.time_ns() - signature.mtime_ns > _RACY_NS:
                self._outcomes[entry.label] = (signature, outcome)
            else:
                self._outcomes.pop(entry.label, None)
        return [found[entry.label] for entry in entries]

    def assemble(self, outcomes: list[FileOutcome], refused: list[Diagnostic]) -> LoadResult:
        last = self._assembled
        if (
            last is not None
            and last[1] == refused
            and len(last[0]) == len(outcomes)
            and all(old is new for old, new in zip(last[0], outcomes, strict=True))
        ):
            return last[2]
        self._count_names(outcomes)
        result = assemble_result(outcomes, refused, duplicates_possible=bool(self._duplicated))
        self._assembled = (outcomes, refused, result)
        return result

    def _count_names(self, outcomes: list[FileOutcome]) -> None:
        previous = {id(outcome): outcome for outcome in self._counted}
        current = {id(outcome): outcome for outcome in outcomes}
        self._counted = outcomes  # held: the ids above stay unique
        counts, touched = self._name_counts, set()
        for key, outcome in previous.items():
            if key not in current:
                for site in outcome.names:
                    counts[site.name] -= 1
                    touched.add(site.name)
        for key, outcome in current.items():
            if key not in previous:
                for site in outcome.names:
                    counts[site.name] += 1
                    touched.add(site.name)
        for name in touched:
            if counts[name] > 1:
                self._duplicated.add(name)
            else:
                self._duplicated.discard(name)
                if counts[name] <= 0:
                    del counts[name]

    def keep_only(self, labels: Iterable[str]) -> None:
        """Forget files that are gone."""
        keep = set(labels)
        for label in [label for label in self._outcomes if label not in keep]:
            del self._outcomes[label]

    def _match_settings(self, settings: Settings) -> None:
        # Everything besides a file's bytes that its outcome depends on (the same digest
        # file records are made under): a task module edited while a daemon runs, too.
        key = validation_context(settings)
        if key != self._settings_key:
            self._outcomes.clear()
            self._settings_key = key


def load_jobs(
    jobs_dir: Path,
    *,
    settings: Settings,
    now: datetime | None = None,
    cache: LoadCache | None = None,
    essences: bool = False,
    listing: FileListing | None = None,
    changed: Iterable[str] | None = None,
) -> LoadResult:
    """Load every job file under `jobs_dir`; sources are posix paths relative to it.

    `essences`: also compute each job's essence and hash (LoadedJob.essence), on both
    cores when the load is parallel: a reconcile needs them, `validate` does not.
    `listing` (of `jobs_dir`): the files found by patching its last listing with the
    paths `changed` (file events; None: listed in full), see FileListing."""
    if listing is not None and listing.jobs_dir == jobs_dir:
        entries, refused = listing.files(changed)
    else:
        entries, refused = find_job_files(jobs_dir)
    return load_entries(
        entries, refused, settings=settings, now=now, cache=cache, essences=essences
    )


def load_paths(
    paths: Sequence[Path], *, settings: Settings, now: datetime | None = None
) -> LoadResult:
    """Load the given files and folders (for `reconcile validate PATH ...`).

    Sources are the paths as given, folders' files below them (`jobs.d/ops/x.yaml`).
    A given file is read whatever its suffix, but never through a symlink. A file
    reached twice (a folder and a file in it, one folder spelt two ways) is read once,
    under its first label: read twice, its jobs would be its own DUPLICATE_JOB."""
    entries: list[FileEntry] = []
    refused: list[Diagnostic] = []
    seen: set[Path] = set()
    for path in paths:
        label = path.as_posix()
        if path.is_dir():
            found, skipped = find_job_files(path, prefix=label.rstrip("/") + "/")
            refused += skipped
        else:
            found = [FileEntry(label, path)]
        for entry in found:
            where = _identity(Path(entry.path))
            if where not in seen:
                seen.add(where)
                entries.append(entry)
    return load_entries(entries, refused, settings=settings, now=now)


def _identity(path: Path) -> Path:
    """Where a path leads, its own last component not followed: a given symlink stays
    itself (refused when read), distinct from the file it points to."""
    return path.absolute().parent.resolve() / path.name


def load_entries(
    entries: Sequence[FileEntry],
    refused: Sequence[Diagnostic],
    *,
    settings: Settings,
    now: datetime | None = None,
    cache: LoadCache | None = None,
    essences: bool = False,
) -> LoadResult:
    """Load `entries` (refused entries only add their diagnostics) and run the
    cross-file checks. `essences`: see load_jobs."""
    moment = now if now is not None else datetime.now(UTC)
    if cache is not None:
        cache.keep_only(entry.label for entry in entries)
        outcomes = cache.outcomes(entries, settings=settings, now=moment, essences=essences)
        return cache.assemble(outcomes, list(refused))
    outcomes = load_files(entries, settings=settings, now=moment, essences=essences)
    return assemble_result(outcomes, refused)


def load_file(entry: FileEntry, *, settings: Settings, now: datetime) -> FileOutcome:
    """Read, parse, validate and check one file."""
    return _load_file(entry, settings=settings, now=now)[0]


def load_bytes(source: str, data: bytes, *, settings: Settings, now: datetime) -> FileOutcome:
    """Parse, validate and check the text of one file (pure). `data` must already be
    bounded in size: this function does not look at `settings.max_file_bytes`."""
    return _load_bytes(source, data, settings=settings, now=now)[0]


# A file's outcome, and the document each of its valid jobs was validated from.
_Loaded = tuple[FileOutcome, tuple[dict[str, Any], ...]]


def _load_file(
    entry: FileEntry,
    *,
    settings: Settings,
    now: datetime,
    data: bytes | Diagnostic | None = None,
    essences: bool = False,
    memo: ScalarMemo | None = None,
) -> _Loaded:
    """`data`: the file's content (or why it could not be read) when read already.
    `essences`: see load_jobs. `memo`: shared by the files of one load (parse_yaml)."""
    if data is None:
        data = read_job_file(entry, max_bytes=settings.max_file_bytes)
    if isinstance(data, Diagnostic):
        return FileOutcome(entry.label, (), (), (data,)), ()
    digest = file_digest(data)
    return _load_bytes(
        entry.label, data, settings=settings, now=now, digest=digest, essences=essences, memo=memo
    )


def _load_bytes(
    source: str,
    data: bytes,
    *,
    settings: Settings,
    now: datetime,
    digest: str | None = None,
    essences: bool = False,
    memo: ScalarMemo | None = None,
) -> _Loaded:
    """`digest`: the outcome's (file_digest of `data`); `essences`: each job's essence
    and hash computed (see load_jobs). Built as given, not copied after (dataclasses'
    replace cost 4 % of a cold load)."""
    parsed = parse_yaml(data, path=source, max_depth=settings.max_nesting_depth, memo=memo)
    diagnostics = list(parsed.diagnostics)
    jobs: list[LoadedJob] = []
    documents: list[dict[str, Any]] = []
    names: list[NameSite] = []
    failed: list[tuple[int, ValidationError | None, tuple[Finding, ...]]] = []
    for number, document in enumerate(parsed.documents):
        content = document.data
        if content is None:
            continue  # an empty document, e.g. after a trailing `---`
        if not isinstance(content, dict):
            message = f"a job document must be a mapping, not {describe_kind(content)}"
            diagnostics.append(
                Diagnostic(source, document.line, document.column, "NOT_A_MAPPING", message)
            )
            continue
        if isinstance(content.get("name"), str):
            site = NameSite(content["name"], source, document.name_line, document.name_column)
            names.append(site)
        if not document.clean:
            continue  # its tag, alias or duplicate key is reported; the rest would be noise
        try:
            spec: JobSpec = _validate_job(content)
        except ValidationError as error:
            failed.append((number, error, _routing_findings(content, error, settings)))
            continue
        findings = check_job(spec, settings=settings, now=now)
        if findings:
            failed.append((number, None, findings))
            continue
        if document.ambiguous:
            # The model took `paused: yes` as true; YAML 1.2 reads text: refuse the job.
            diagnostics += document.ambiguous
            continue
        known = essence_and_hash(spec) if essences else None
        jobs.append(_new_loaded_job(spec, source, document.line, document.column, known))
        documents.append(content)
    if failed:
        diagnostics += _explain_failures(source, data, parsed.documents, failed, settings)
    if not diagnostics and all(document.data is None for document in parsed.documents):
        message = "no job in this file (only comments or empty documents)"
        diagnostics.append(Diagnostic(source, 0, 0, "EMPTY_FILE", message))
    timeless = not any(_names_a_year(document.data) for document in parsed.documents)
    outcome = FileOutcome(
        source, tuple(jobs), tuple(names), bound_diagnostics(diagnostics), digest, timeless
    )
    return outcome, tuple(documents)


def _names_a_year(content: object) -> bool:
    """A cron map with a `year` field: its schedule stops firing one day, so whether it
    is valid (CRON_NEVER_FIRES) changes with the clock alone."""
    schedule = content.get("schedule") if isinstance(content, dict) else None
    cron = schedule.get("cron") if isinstance(schedule, dict) else None
    return isinstance(cron, dict) and "year" in cron


def load_files(
    entries: Sequence[FileEntry],
    *,
    settings: Settings,
    now: datetime,
    essences: bool = False,
    contents: Mapping[str, bytes | Diagnostic] | None = None,
    ahead: LoadAhead | None = None,
) -> list[FileOutcome]:
    """`[load_file(entry) ...]`; many files are loaded on two cores (spec.parallel).
    `essences`: see load_jobs. `contents`: files read already, by label (what was read
    is what is parsed: its digest must be the digest of what was parsed). `ahead`: a
    child loading some of the files already (see load_ahead), made with `settings`."""
    known = contents or {}
    memo = ScalarMemo()

    def load(entry: FileEntry) -> _Loaded:
        data = known.get(entry.label)
        return _load_file(
            entry, settings=settings, now=now, data=data, essences=essences, memo=memo
        )

    if ahead is not None:
        return ahead.finish(entries, load, known)
    if len(entries) < parallel.MIN_FILES or not parallel.can_fork():
        return [load(entry)[0] for entry in entries]
    loaded = parallel.map_on_two_cores(entries, load, _plain_outcome, _outcome_from_plain)
    return [outcome for outcome, _ in loaded]


class LoadAhead:
    """The folder's files loaded by a forked child from the last one backwards, started
    before the pass that needs them knows which files it will parse (a cold `reconcile
    apply`: the child parses while this process imports, migrates and reads the
    database); the pass loads from the first file on (`finish`) until it meets what the
    child sent, so neither waits for the other whatever the load of the machine (a split
    fixed in advance left one waiting up to ~0.4 s).

    A file's outcome from the child is taken only for the very bytes this process read
    (same digest) and only if the clock alone cannot change it (`timeless`: the child's
    `now` is earlier than the pass's); any other file is loaded here, and a failed
    child costs only time. The caller cancels an unused child."""

    def __init__(self, child: parallel.Ahead) -> None:
        self._child = child

    def cancel(self) -> None:
        self._child.cancel()

    def finish(
        self,
        entries: Sequence[FileEntry],
        load: Callable[[FileEntry], _Loaded],
        contents: Mapping[str, bytes | Diagnostic],
    ) -> list[FileOutcome]:
        """`[load(entry)[0] for entry in entries]`: loaded here in order until the next
        file is one the child sent (it sends them from the last on, so it has sent
        every later one it knew of), then the child's outcomes taken where they hold."""
        sent: dict[str, FileOutcome] = {}
        mine: dict[str, FileOutcome] = {}
        try:
            for entry in entries:
                arrived = self._child.poll(_outcome_from_plain)
                if arrived is None:
                    sent.clear()  # garbage: none of it is trusted
                    self._child.cancel()
                sent.update((outcome.source, outcome) for outcome, _ in arrived or ())
                if entry.label in sent:
                    break
                mine[entry.label] = load(entry)[0]
        finally:
            self._child.cancel()  # what it had not sent yet is loaded here
        outcomes = []
        for entry in entries:
            outcome = mine.get(entry.label)
            if outcome is None:
                outcome = _still_true(sent.get(entry.label), contents.get(entry.label))
            outcomes.append(outcome if outcome is not None else load(entry)[0])
        return outcomes


def _still_true(outcome: FileOutcome | None, data: bytes | Diagnostic | None) -> FileOutcome | None:
    """`outcome` (loaded earlier) if it is what loading `data` now would give."""
    if outcome is None or not outcome.timeless or not isinstance(data, bytes):
        return None
    return outcome if outcome.digest == file_digest(data) else None


def load_ahead(jobs_dir: Path, *, settings: Settings) -> LoadAhead | None:
    """Start a child loading the folder's files from the last one backwards (with
    essences), for a pass that will parse every file; None when there are too few
    files or no child could be started. See LoadAhead."""
    entries, _ = find_job_files(jobs_dir)
    if len(entries) < parallel.MIN_FILES:
        return None
    now = datetime.now(UTC)
    memo = ScalarMemo()

    def load(entry: FileEntry) -> _Loaded:
        return _load_file(entry, settings=settings, now=now, essences=True, memo=memo)

    child = parallel.Ahead.start(entries[::-1], load, _plain_outcome)
    return None if child is None else LoadAhead(child)


def _plain_outcome(loaded: _Loaded) -> tuple[Any, ...]:
    """In the child: each job as its document, position and essence (if computed), each
    name site as a tuple (a pickled dataclass costs a Python call each way)."""
    outcome, documents = loaded
    jobs = tuple(
        (document, job.line, job.column, job.essence)
        for job, document in zip(outcome.jobs, documents, strict=True)
    )
    names = tuple((site.name, site.line, site.column) for site in outcome.names)
    return (outcome.source, jobs, names, outcome.diagnostics, outcome.digest, outcome.timeless)


def _outcome_from_plain(plain: tuple[Any, ...]) -> _Loaded:
    source, jobs, names, diagnostics, digest, timeless = plain
    # The child validated each document and checked its spec (spec.rebuild).
    specs = tuple(
        _new_loaded_job(rebuild_spec(document), source, line, column, known)
        for document, line, column, known in jobs
    )
    sites = tuple(NameSite(name, source, line, column) for name, line, column in names)
    return FileOutcome(source, specs, sites, diagnostics, digest, timeless), ()


def bound_diagnostics(diagnostics: Sequence[Diagnostic]) -> tuple[Diagnostic, ...]:
    """The first MAX_DIAGNOSTICS_PER_FILE in order, then one line per code for the rest:
    a hostile file must not turn into a hostile report."""
    ordered = sorted(diagnostics)
    if len(ordered) <= MAX_DIAGNOSTICS_PER_FILE:
        return tuple(ordered)
    shown, hidden = ordered[:MAX_DIAGNOSTICS_PER_FILE], ordered[MAX_DIAGNOSTICS_PER_FILE:]
    counts = Counter(d.code for d in hidden)
    path = shown[0].path
    summary = [
        Diagnostic(path, 0, 0, code, f"{count} more problems of this kind not shown")
        for code, count in sorted(counts.items())
    ]
    return tuple(sorted([*shown, *summary]))


def _routing_findings(
    content: dict[str, Any], error: ValidationError, settings: Settings
) -> tuple[Finding, ...]:
    """Task and queue findings for a document that failed validation, so one run reports
    them too; skipped for a field that is itself invalid (one error per field is enough)."""
    invalid = {details["loc"][0] for details in error.errors() if details["loc"]}
    task = content.get("task") if "task" not in invalid else None
    queue = content.get("queue") if "queue" not in invalid else None
    return check_routing(task, queue, settings=settings)


def _explain_failures(
    source: str,
    data: bytes,
    documents: Sequence[Any],
    failed: Sequence[tuple[int, ValidationError | None, tuple[Finding, ...]]],
    settings: Settings,
) -> list[Diagnostic]:
    # Only now are positions needed: parse again, recording every node (rare, so cheap).
    indexes = locate_nodes(data, max_depth=settings.max_nesting_depth)
    diagnostics: list[Diagnostic] = []
    for number, error, findings in failed:
        index = indexes[number]
        explained: list[Diagnostic] = []
        if error is not None:
            content = documents[number].data
            explained += explain_errors(error, data=content, index=index, source=source)
        explained += explain_findings(findings, index=index, source=source)
        # A YAML 1.1 form is refused with "quote it" even where the model said something
        # else about it (`retries: 0755` is 493, over the maximum: that alone would not
        # say "quote it"), unless the model's own "quote it" is already there. What the
        # model said of the YAML 1.1 reading is dropped: "expected an integer, found
        # boolean true" beside `retries: yes` reads as a second, unrelated mistake.
        ambiguous = documents[number].ambiguous
        if ambiguous:
            at = {(item.line, item.column) for item in ambiguous}
            explained = [
                item
                for item in explained
                if item.code == "YAML_COERCION" or (item.line, item.column) not in at
            ]
            said = {(item.line, item.column) for item in explained}
            explained += [item for item in ambiguous if (item.line, item.column) not in said]
        diagnostics += explained
    return diagnostics


def assemble_result(
    outcomes: Sequence[FileOutcome],
    refused: Sequence[Diagnostic],
    *,
    duplicates_possible: bool = True,
) -> LoadResult:
    """Cross-file duplicate names, quarantine, and the jobs of healthy files.
    `duplicates_possible=False`: the caller knows no name is declared twice."""
    by_source: dict[str, list[Diagnostic]] = {}
    for outcome in outcomes:
        if outcome.diagnostics:
            by_source.setdefault(outcome.source, []).extend(outcome.diagnostics)
    for diagnostic in refused:
        by_source.setdefault(diagnostic.path, []).append(diagnostic)
    duplicates = []
    if duplicates_possible:
        duplicates = find_duplicate_names(site for o in outcomes for site in o.names)
    for diagnostic in duplicates:
        by_source.setdefault(diagnostic.path, []).append(diagnostic)
    quarantined = {source: tuple(sorted(by_source[source])) for source in sorted(by_source)}
    healthy = tuple(o for o in outcomes if o.source not in quarantined)
    jobs = tuple(chain.from_iterable(o.jobs for o in healthy))
    files = len(outcomes) + len(refused)
    return LoadResult(jobs, MappingProxyType(quarantined), files, healthy, tuple(outcomes))
