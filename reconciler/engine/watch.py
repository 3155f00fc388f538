"""Watching the jobs folder: events WAKE the reconcile loop, and say which paths changed
(`take_changes`): a watch pass looks at those paths only (spec.files.FileListing); a
resync lists every file whatever the events said, so a missed event delays a change by
at most the resync interval.

watchfiles watches the folder's PARENT, filtered to the folder: watching the folder
itself goes silent for ever once it is replaced (`rm -rf jobs.d && mkdir jobs.d`, a
git-sync symlink swap). `last_event` lets the loop wait for the tree to settle, so a
`git checkout` of 1,000 files is applied as one consistent tree.

Only events that can change the listing count (`names_listable`): a hidden entry, or
anything below one, is never listed (spec.files), so an editor's swap file, a `.git`
folder taking a fetch, or a sibling folder whose name merely starts like this one's
neither wakes a pass nor holds one back while it waits for the tree to settle.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)


class JobsWatcher:
    """A background thread calling `on_change()` after each batch of file events."""

    def __init__(self, jobs_dir: Path, *, on_change: Callable[[], None]) -> None:
        self._jobs_dir = jobs_dir.absolute()
        self._on_change = on_change
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_event = 0.0  # monotonic time of the newest event seen
        self._lock = threading.Lock()
        # The paths events named since the last take; None: unknown (not watching yet,
        # or the watch failed and was started again: events may have been lost).
        self._changed: set[str] | None = None

    def start(self) -> JobsWatcher:
        self._thread = threading.Thread(target=self._run, name="jobs-watcher", daemon=True)
        self._thread.start()
        return self

    def take_changes(self) -> set[str] | None:
        """The paths events named since the last call; None: not known (the caller
        lists everything)."""
        with self._lock:
            changed, self._changed = self._changed, set()
        return changed

    def _lost(self) -> None:
        with self._lock:
            self._changed = None

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def _run(self) -> None:
        from watchfiles import watch

        parent = self._jobs_dir.parent
        jobs_dir = str(self._jobs_dir)
        while not self._stop.is_set():
            try:
                for changes in watch(
                    parent,
                    watch_filter=lambda _change, path: names_listable(path, jobs_dir),
                    debounce=50,
                    step=10,
                    stop_event=self._stop,
                    rust_timeout=1000,
                    yield_on_timeout=False,
                    raise_interrupt=False,
                ):
                    with self._lock:
                        if self._changed is not None:
                            self._changed.update(path for _, path in changes)
                    self.last_event = time.monotonic()
                    self._on_change()
            except Exception:  # the resync still runs; retry the watch
                log.warning("watching %s failed; retrying", parent, exc_info=True)
                self._lost()
                self._stop.wait(1.0)
                self._lost()  # a pass may have taken changes meanwhile: still unknown


def names_listable(path: str, jobs_dir: str) -> bool:
    """Whether an event on `path` may change what spec.files lists in `jobs_dir` (both
    absolute): the folder itself, or an entry below it with no hidden part. A renamed
    entry is reported under both names, so a folder renamed to or from a hidden name
    still counts by its visible one."""
    if path == jobs_dir:
        return True
    if not path.startswith(jobs_dir + os.sep):
        return False  # elsewhere, or a sibling like `jobs.d.old` next to `jobs.d`
    relative = path[len(jobs_dir) + 1 :]
    return not any(part.startswith(".") for part in relative.split(os.sep))
