"""Finding and reading job files, refusing what could hurt before reading it.

The only module of `reconciler.spec` that touches the file system. Contracts:

- `find_job_files` lists `**/*.yaml|*.yml` under the jobs folder in sorted order,
  skipping hidden entries (editor swap files, `.git`), and reports every symlink (file
  or folder) as SYMLINK_REFUSED instead of following it: a symlink can point anywhere,
  and a job file must be what is committed in the folder.
- `read_job_file` never reads more than `max_bytes + 1` bytes, never blocks on a FIFO
  and never follows a symlink, even one swapped in after the listing (O_NOFOLLOW).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from reconciler.spec.diagnostics import Diagnostic

JOB_SUFFIXES = (".yaml", ".yml")


class FileSignature(NamedTuple):
    """What tells an unchanged file from a changed one without reading it. A tuple: a
    daemon compares 10,000 of them on every pass, at C speed (a dataclass's __eq__ is
    Python code: 10-15 % of a no-op pass at 100,000 jobs)."""

    size: int
    mtime_ns: int
    inode: int


@dataclass(frozen=True, slots=True)
class FileEntry:
    """A candidate job file: its label (posix path relative to the jobs folder, or as
    given), where it is, and its signature when the listing took it (lstat)."""

    label: str
    path: str | Path
    signature: FileSignature | None = None


def find_job_files(jobs_dir: Path, *, prefix: str = "") -> tuple[list[FileEntry], list[Diagnostic]]:
    """Every job file under `jobs_dir`, sorted by label, and the refused symlinks.

    Labels are `prefix` + the posix path relative to `jobs_dir`. `jobs_dir` itself may
    be a symlink (git-sync swaps one). A missing or unreadable `jobs_dir` is a
    FILE_UNREADABLE diagnostic labelled with the folder."""
    entries, refused, _ = _walk(jobs_dir, prefix)
    return entries, refused


def _walk(jobs_dir: Path, prefix: str) -> tuple[list[FileEntry], list[Diagnostic], set[str]]:
    """find_job_files, and the labels of the folders it listed (`prefix` + "" for the
    top one)."""
    entries: list[FileEntry] = []
    refused: list[Diagnostic] = []
    folders: set[str] = set()
    root = jobs_dir.resolve()
    if not root.is_dir():
        label = prefix.rstrip("/") or "."
        return [], [Diagnostic(label, 0, 0, "FILE_UNREADABLE", "not a folder, or missing")], folders
    pending: list[tuple[str | Path, str]] = [(root, prefix)]
    while pending:
        folder, prefix = pending.pop()
        try:
            listing = sorted(os.scandir(folder), key=lambda item: item.name)
        except OSError as error:
            label = prefix.rstrip("/") or "."
            refused.append(Diagnostic(label, 0, 0, "FILE_UNREADABLE", _reason(error)))
            continue
        folders.add(prefix)
        for item in listing:
            label = f"{prefix}{item.name}"
            if item.name.startswith("."):
                continue
            if item.is_symlink():
                if item.name.endswith(JOB_SUFFIXES) or _is_dir_target(item.path):
                    refused.append(_symlink_refused(label))
            elif item.is_dir(follow_symlinks=False):
                pending.append((item.path, f"{label}/"))
            elif item.name.endswith(JOB_SUFFIXES):
                # Plain str paths and the listing's own lstat: a daemon lists every file on
                # every pass, and a Path object and a second lstat per file add up.
                entries.append(FileEntry(label, item.path, _entry_signature(item)))
    entries.sort(key=lambda entry: entry.label)
    return entries, refused, folders


class FileListing:
    """`find_job_files(jobs_dir)` for a process that watches the folder: after a full
    listing, `files(changed)` looks only at the paths file events named (absolute, as
    the watcher reports them) and patches the last listing with them. Listing and
    lstat-ing 10,000 files took a quarter of a daemon's pass at 100,000 jobs.

    The same result as a full listing whenever `changed` holds every path changed since
    the last call (a missed event leaves a file as last listed until a call with
    `changed=None`: the daemon's resync). Anything the patch cannot decide from a path
    alone lists everything again: the folder itself, a folder created, removed or
    replaced, a symlink, a path below a folder the last listing did not enter, a path
    a refusal names, an lstat that fails other than by absence. A folder reached
    through a symlink (git-sync) is always listed in full."""

    def __init__(self, jobs_dir: Path) -> None:
        self.jobs_dir = jobs_dir
        self._entries: dict[str, FileEntry] = {}
        self._listed: tuple[list[FileEntry], list[Diagnostic]] | None = None
        self._folders: set[str] = set()
        self._refused: set[str] = set()

    def files(
        self, changed: Iterable[str] | None = None
    ) -> tuple[list[FileEntry], list[Diagnostic]]:
        """The listing now: in full when `changed` is None, else patched by `changed`."""
        if changed is None or self._listed is None or not self._patch(changed):
            entries, refused, folders = _walk(self.jobs_dir, "")
            self._listed = entries, refused
            self._entries = {entry.label: entry for entry in entries}
            self._folders, self._refused = folders, {item.path for item in refused}
        return self._listed

    def _patch(self, changed: Iterable[str]) -> bool:
        """Patch the last listing by `changed`; False: list everything instead."""
        assert self._listed is not None
        top = str(self.jobs_dir.absolute())
        if str(self.jobs_dir.resolve()) != top:
            return False  # reached through a symlink: events may name other paths
        entries, moved, renamed = dict(self._entries), False, False
        for path in changed:
            if not path.startswith(top + os.sep):
                if path == top or top.startswith(path + os.sep):
                    return False  # the folder itself (or one above it) changed
                continue  # beside the folder (the watcher's prefix filter lets it by)
            parts = path[len(top) + 1 :].split(os.sep)
            if any(part.startswith(".") for part in parts):
                continue  # hidden, or below a hidden folder: never listed
            label = "/".join(parts)
            folder = label[: -len(parts[-1])]
            if folder not in self._folders or label in self._refused:
                return False
            try:
                info = os.lstat(path)
            except FileNotFoundError:
                if f"{label}/" in self._folders:
                    return False  # a folder gone
                renamed |= entries.pop(label, None) is not None
                continue
            except OSError:
                return False
            if stat.S_ISDIR(info.st_mode) or stat.S_ISLNK(info.st_mode):
                return False
            if not label.endswith(JOB_SUFFIXES):
                continue
            signature = FileSignature(info.st_size, info.st_mtime_ns, info.st_ino)
            renamed |= label not in entries
            entries[label] = FileEntry(label, os.path.join(top, *parts), signature)
            moved = True
        if renamed:
            listed = [entries[label] for label in sorted(entries)]
        elif moved:
            listed = [entries[entry.label] for entry in self._listed[0]]
        else:
            return True
        self._entries, self._listed = entries, (listed, self._listed[1])
        return True


def _entry_signature(item: os.DirEntry[str]) -> FileSignature | None:
    try:
        info = item.stat(follow_symlinks=False)
    except OSError:
        return None  # gone already: reading it will say so
    return FileSignature(info.st_size, info.st_mtime_ns, info.st_ino)


def _is_dir_target(path: str) -> bool:
    try:
        return os.path.isdir(path)
    except OSError:
        return False


def _symlink_refused(label: str) -> Diagnostic:
    return Diagnostic(
        label, 0, 0, "SYMLINK_REFUSED", "symlinks are not followed; commit the file itself"
    )


def signature_of(path: str | Path) -> FileSignature | None:
    """The file's signature (lstat: a symlink is not followed), or None if it is gone."""
    try:
        info = os.lstat(path)
    except OSError:
        return None
    return FileSignature(info.st_size, info.st_mtime_ns, info.st_ino)


def read_job_file(entry: FileEntry, *, max_bytes: int) -> bytes | Diagnostic:
    """The file's bytes, or why it is refused: SYMLINK_REFUSED, FILE_TOO_LARGE (checked
    from the size before reading, and again while reading, in case it grew),
    FILE_UNREADABLE (missing, a folder, a FIFO or device, no permission)."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    try:
        descriptor = os.open(entry.path, flags)
    except OSError as error:
        if os.path.islink(entry.path):
            return _symlink_refused(entry.label)
        return Diagnostic(entry.label, 0, 0, "FILE_UNREADABLE", _reason(error))
    try:
        info = os.fstat(descriptor)
        if not stat.S_ISREG(info.st_mode):
            return Diagnostic(entry.label, 0, 0, "FILE_UNREADABLE", "not a regular file")
        if info.st_size > max_bytes:
            return _too_large(entry.label, info.st_size, max_bytes)
        try:
            data = _read_to_end(descriptor, limit=max_bytes + 1, size=info.st_size)
        except OSError as error:
            return Diagnostic(entry.label, 0, 0, "FILE_UNREADABLE", _reason(error))
    finally:
        os.close(descriptor)
    if len(data) > max_bytes:
        return _too_large(entry.label, len(data), max_bytes)
    return data


def _read_to_end(descriptor: int, *, limit: int, size: int) -> bytes:
    """The file's bytes to its end, at most `limit`. The first read asks for the size
    fstat gave and one byte more (a file that grew meanwhile reads on): a buffered read
    of `limit` bytes allocated the whole limit (1 MB) for every file, which made reading
    10,000 small files 4x slower than the reads themselves."""
    parts: list[bytes] = []
    total = 0
    wanted = size + 1
    while total < limit:
        part = os.read(descriptor, min(wanted, limit - total))
        if not part:
            break
        parts.append(part)
        total += len(part)
        wanted = 1 << 16
    return parts[0] if len(parts) == 1 else b"".join(parts)


def _too_large(label: str, size: int, max_bytes: int) -> Diagnostic:
    message = f"{size} bytes or more; the limit is {max_bytes} (RECONCILER_MAX_FILE_BYTES)"
    return Diagnostic(label, 0, 0, "FILE_TOO_LARGE", message)


def _reason(error: OSError) -> str:
    # strerror only: the exception's str() repeats the path, which the label already shows.
    return error.strerror or type(error).__name__
