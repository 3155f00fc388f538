"""What a job file's outcome depends on besides its bytes, as digests: the code that
judges it, the libraries it runs, the time zone database (spec.records' validation
context). Light on purpose (no pydantic, no YAML): the no-op check of a fresh
`reconcile plan` (commands/_noop.py) computes the same context without importing the
loader.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import sys
import zoneinfo
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Protocol

# Bumped when a record's layout or meaning changes: older records then never match.
RECORD_FORMAT = 2
# The code a file's outcome depends on: the spec package (parsing, models, checks), the
# task catalog (argument checks), the core (time zones, DST rules, triggers a cron with
# a `start` is searched with) and the top-level modules these import.
_CODE_FOLDERS = ("spec", "tasks", "core")
_CODE_FILES = (
    "__init__.py",
    "settings.py",
    "errors.py",
    "redact.py",
    "printable.py",
    "database_url.py",
)
_LIBRARIES = ("pydantic", "pydantic-core", "PyYAML", "APScheduler", "tzlocal")
_PACKAGE = Path(__file__).resolve().parent.parent


def file_digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class ValidationSettings(Protocol):
    """The settings a file's outcome depends on (Settings, and the no-op check's
    LeanSettings, read the same names)."""

    @property
    def max_file_bytes(self) -> int: ...
    @property
    def max_nesting_depth(self) -> int: ...
    @property
    def queues(self) -> Sequence[str]: ...
    @property
    def task_allowlist(self) -> Sequence[str]: ...
    @property
    def sql_statement_allowlist(self) -> Sequence[str]: ...
    @property
    def report_dir(self) -> Path: ...


def context_digest(settings: ValidationSettings, *, task_catalog: list[object]) -> str:
    """The validation context of these settings' values (spec.records.validation_context);
    `task_catalog`: the digest of the task modules' catalog ([] when there are none)."""
    parts = [
        RECORD_FORMAT,
        code_digest(),
        library_versions(),
        settings.max_file_bytes,
        settings.max_nesting_depth,
        list(settings.queues),
        list(settings.task_allowlist),
        list(settings.sql_statement_allowlist),
        # Absolute: a relative folder is judged from the working directory.
        str(settings.report_dir.absolute()),
        task_catalog,
        zone_database(),
    ]
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()


def installed_code() -> str:
    """A digest of the installed reconciler code (code_files) and the libraries it runs."""
    return hashlib.sha256(json.dumps([code_digest(), library_versions()]).encode()).hexdigest()


def code_files() -> list[Path]:
    """The reconciler modules a validation may run, in a fixed order."""
    files = [_PACKAGE / name for name in _CODE_FILES]
    for folder in _CODE_FOLDERS:
        files += sorted((_PACKAGE / folder).glob("*.py"))
    return files


# Process-wide memo (docs/architecture.md): a constant of the installed code, not a cache.
@lru_cache(maxsize=1)
def code_digest() -> str:
    """The loader's own code: another version of it may judge a file differently."""
    digest = hashlib.sha256()
    for path in code_files():
        digest.update(str(path.relative_to(_PACKAGE)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


# Process-wide memo: a constant of the installed libraries, as `code_digest`.
@lru_cache(maxsize=1)
def library_versions() -> list[str]:
    """Python's and the libraries' a validation runs (parsing, models, the schedule
    engine a cron with a `start` is searched with)."""
    return [sys.version, *map(_version, _LIBRARIES)]


def _version(name: str) -> str:
    """importlib.metadata.version(name), read from the first `*.dist-info` of that name
    on sys.path without importing importlib.metadata (~30 ms, most of the no-op check's
    own imports); anything unusual asks importlib.metadata itself."""
    wanted = re.sub(r"[-_.]+", "_", name).lower()
    for folder in sys.path:
        try:
            entries = os.listdir(folder or ".")
        except OSError:
            continue
        found = [
            entry
            for entry in entries
            if entry.endswith((".dist-info", ".egg-info"))
            # NAME-VERSION.dist-info: the name is before the version's hyphen, not the
            # suffix's (before, every name missed and importlib.metadata was imported).
            and re.sub(r"[-_.]+", "_", entry.rsplit(".", 1)[0].rpartition("-")[0]).lower() == wanted
        ]
        if not found:
            continue
        if len(found) != 1 or not found[0].endswith(".dist-info"):
            break
        try:
            with open(os.path.join(folder or ".", found[0], "METADATA"), encoding="utf-8") as f:
                for line in f:
                    if line.startswith("Version: "):
                        return line[len("Version: ") :].strip()
                    if line in ("\n", ""):
                        break
        except OSError:
            pass
        break
    from importlib.metadata import version

    return version(name)


def module_digest(module: str) -> str:
    """The source of a module, found without importing it; "missing" if it cannot be
    found (validation says so)."""
    try:
        found = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return "missing"
    if found is None or found.origin is None or not os.path.isfile(found.origin):
        return "missing"
    return file_digest(Path(found.origin).read_bytes())


def zone_database() -> list[object]:
    """Which time zone names exist: the system database's version file and the tzdata
    package (zoneinfo's fallback), where present."""
    found: list[object] = []
    for folder in zoneinfo.TZPATH:
        try:
            info = os.stat(os.path.join(folder, "tzdata.zi"))
        except OSError:
            continue
        found.append([folder, info.st_size, info.st_mtime_ns])
    found.append(module_digest("tzdata"))
    return found
