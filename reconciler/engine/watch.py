"""Watching the jobs folder: events only WAKE the reconcile loop, they are never
interpreted (a pass rescans the whole folder).

watchfiles watches the folder's PARENT, filtered to the folder: watching the folder
itself goes silent for ever once it is replaced (`rm -rf jobs.d && mkdir jobs.d`, a
git-sync symlink swap). `last_event` lets the loop wait for the tree to settle, so a
`git checkout` of 1,000 files is applied as one consistent tree.
"""

from __future__ import annotations

import logging
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

    def start(self) -> JobsWatcher:
        self._thread = threading.Thread(target=self._run, name="jobs-watcher", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def _run(self) -> None:
        from watchfiles import watch

        parent = self._jobs_dir.parent
        prefix = str(self._jobs_dir)
        while not self._stop.is_set():
            try:
                for _changes in watch(
                    parent,
                    watch_filter=lambda _change, path: path.startswith(prefix),
                    debounce=50,
                    step=10,
                    stop_event=self._stop,
                    rust_timeout=1000,
                    yield_on_timeout=False,
                    raise_interrupt=False,
                ):
                    self.last_event = time.monotonic()
                    self._on_change()
            except Exception:  # the resync still runs; retry the watch
                log.warning("watching %s failed; retrying", parent, exc_info=True)
                self._stop.wait(1.0)
