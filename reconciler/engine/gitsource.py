"""RECONCILER_SOURCE=git:REF: the job files as committed, read with git plumbing.

With `git:HEAD` (or `git:origin/main`) the jobs folder is read from that commit's tree,
never from the working tree: an uncommitted edit is never applied, a checkout in
progress is never seen half done (a commit is one atomic value), and the revision
recorded is exactly the tree that was applied.

Files are listed with `git ls-tree -r -l` (sizes known before reading: an oversized
blob is refused unread, as on disk) and read with one `git cat-file --batch`. A blob id
names its content for ever, so a file whose blob is unchanged is not parsed again, and
a commit already loaded gives the very same LoadResult (the engine tells "nothing
changed" by identity). The same rules as on disk: hidden entries are skipped, symlinks
(mode 120000) refused, labels are paths relative to the jobs folder.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from reconciler.core.state import Revision
from reconciler.errors import ConfigError, TransientError
from reconciler.settings import Settings
from reconciler.spec.diagnostics import Diagnostic
from reconciler.spec.files import JOB_SUFFIXES
from reconciler.spec.loader import FileOutcome, LoadResult, assemble_result, load_bytes

_TIMEOUT = 60
_SYMLINK_MODE = "120000"


def git_ref(source: str) -> str | None:
    """The REF of `git:REF`; None for `worktree`."""
    if source == "worktree":
        return None
    if source.startswith("git:") and len(source) > 4:
        return source[4:]
    raise ConfigError(f"RECONCILER_SOURCE must be worktree or git:REF, not {source!r}")


def resolve_commit(jobs_dir: Path, ref: str) -> str:
    """The commit `ref` names now. Raises TransientError (no such ref yet, not a git
    checkout: a later pass may succeed, e.g. after the first fetch)."""
    if ref.startswith("-"):
        raise ConfigError(f"invalid git ref {ref!r}")
    found = _git(jobs_dir, "rev-parse", "--verify", "-q", f"{ref}^{{commit}}")
    commit = found.decode().strip()
    if not commit:
        raise TransientError(f"git ref {ref!r} names no commit in {jobs_dir}")
    return commit


@dataclass
class GitTreeCache:
    """Outcomes by (label, blob id), and the last commit's result."""

    outcomes: dict[tuple[str, str], FileOutcome] = field(default_factory=dict)
    last: tuple[str, LoadResult] | None = None


def load_from_git(
    jobs_dir: Path, ref: str, *, settings: Settings, now: datetime, cache: GitTreeCache
) -> tuple[LoadResult, Revision]:
    """The jobs folder as committed at `ref`, and that commit (never dirty)."""
    commit = resolve_commit(jobs_dir, ref)
    revision = Revision(commit=commit, dirty=False)
    if cache.last is not None and cache.last[0] == commit:
        return cache.last[1], revision
    entries, refused = _list_tree(jobs_dir, commit, max_bytes=settings.max_file_bytes)
    wanted = [(label, oid) for label, oid in entries if (label, oid) not in cache.outcomes]
    blobs = _read_blobs(jobs_dir, [oid for _, oid in wanted])
    for label, oid in wanted:
        cache.outcomes[(label, oid)] = load_bytes(label, blobs[oid], settings=settings, now=now)
    current = {(label, oid) for label, oid in entries}
    for key in [key for key in cache.outcomes if key not in current]:
        del cache.outcomes[key]
    outcomes = [cache.outcomes[(label, oid)] for label, oid in entries]
    result = assemble_result(outcomes, refused)
    cache.last = (commit, result)
    return result, revision


def _list_tree(
    jobs_dir: Path, commit: str, *, max_bytes: int
) -> tuple[list[tuple[str, str]], list[Diagnostic]]:
    """(label, blob id) of every job file under the jobs folder at `commit`, sorted, and
    the entries refused unread (symlinks, oversized blobs)."""
    listing = _git(jobs_dir, "ls-tree", "-r", "-l", "-z", commit, "--", ".")
    entries: list[tuple[str, str]] = []
    refused: list[Diagnostic] = []
    for record in listing.split(b"\0"):
        if not record:
            continue
        meta, _, raw_path = record.partition(b"\t")
        mode, kind, oid, size = meta.decode().split()
        label = raw_path.decode("utf-8", "surrogateescape")
        if any(part.startswith(".") for part in label.split("/")):
            continue
        if not label.endswith(JOB_SUFFIXES) or kind != "blob":
            continue
        if mode == _SYMLINK_MODE:
            message = "symlinks are not followed; commit the file itself"
            refused.append(Diagnostic(label, 0, 0, "SYMLINK_REFUSED", message))
        elif int(size) > max_bytes:
            message = f"{size} bytes or more; the limit is {max_bytes} (RECONCILER_MAX_FILE_BYTES)"
            refused.append(Diagnostic(label, 0, 0, "FILE_TOO_LARGE", message))
        else:
            entries.append((label, oid))
    entries.sort()
    return entries, refused


def _read_blobs(jobs_dir: Path, oids: list[str]) -> dict[str, bytes]:
    if not oids:
        return {}
    output = _git(jobs_dir, "cat-file", "--batch", stdin="\n".join(oids) + "\n")
    blobs: dict[str, bytes] = {}
    position = 0
    for oid in oids:
        end = output.index(b"\n", position)
        header = output[position:end].decode().split()
        if len(header) != 3 or header[1] != "blob":
            raise TransientError(f"git cat-file could not read blob {oid}")
        size = int(header[2])
        blobs[oid] = output[end + 1 : end + 1 + size]
        position = end + 1 + size + 1  # the content, then a newline
    return blobs


def _git(jobs_dir: Path, *args: str, stdin: str | None = None) -> bytes:
    try:
        done = subprocess.run(
            ["git", "-C", str(jobs_dir), *args],
            input=stdin.encode() if stdin is not None else None,
            capture_output=True,
            timeout=_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise TransientError(f"git {args[0]} failed: {error}") from None
    if done.returncode != 0 and not (args[0] == "rev-parse" and done.returncode == 1):
        message = done.stderr.decode(errors="replace").strip().splitlines()
        raise TransientError(f"git {args[0]} failed: {message[-1] if message else done.returncode}")
    return done.stdout


class SourceWatch:
    """For the daemon loop: has the source's commit moved since the last look? Always
    False for `worktree` (file events and resyncs cover it)."""

    def __init__(self, settings: Settings) -> None:
        self._jobs_dir = settings.jobs_dir
        self._ref = git_ref(settings.source)
        self._last: str | None = None

    def moved(self) -> bool:
        if self._ref is None:
            return False
        try:
            commit = resolve_commit(self._jobs_dir, self._ref)
        except (TransientError, ConfigError):
            return False  # the pass itself reports it
        if commit == self._last:
            return False
        self._last = commit
        return True
