"""Loading many files on two cores: part of them in a forked child.

A cold load (a CLI `apply` or `validate` of 1,000 files) is CPU-bound Python: libyaml's
events turned into data, then validation and checks. On the 2-core machines we target,
the database server is idle meanwhile, so a forked child loads the last ~44% of the
files while this process loads the rest (bench/RESULTS.md "Figures behind code
choices" has the gain). A child started ahead (`Ahead`, loader.load_ahead) is read as
its chunks come (`Ahead.poll`), so that its parent can stop where they meet.

What comes back from the child is plain data: each valid job as the document it was
validated from, not as a pydantic model (pickling the models costs the child about what
unpickling them saves here), rebuilt here without validating it again (spec.rebuild).
Diagnostics are small dataclasses; name sites go as tuples. Every problem falls back
to loading the child's part here: a child that cannot fork, fails, dies or sends
garbage changes nothing but the time taken.

Forking is only done from a process with a single thread (a forked child of a threaded
process may inherit a lock held by another thread, for ever).
"""

from __future__ import annotations

import os
import pickle
import queue
import select
import signal
import threading
from collections.abc import Callable, Sequence
from typing import Any, BinaryIO, TypeVar

Entry = TypeVar("Entry")
Outcome = TypeVar("Outcome")
# Below this many files, a fork costs more than it saves.
MIN_FILES = 200
# The parent's share of the files. The child's half costs more than the parent's (its
# first writes to inherited memory copy pages; it pickles what it sends): with an even
# split the parent waits for the child; this share is where it waited for nothing
# (bench/RESULTS.md "Figures behind code choices").
PARENT_SHARE = 0.56
# A child sends its results this many entries at a time: the parent rebuilds each chunk
# while the child computes the next.
CHUNK = 25


def can_fork() -> bool:
    return hasattr(os, "fork") and _usable_cpus() > 1 and threading.active_count() == 1


def _usable_cpus() -> int:
    # The CPUs this process may run on (a container's cpuset), not the machine's.
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def map_on_two_cores(
    entries: Sequence[Entry],
    load: Callable[[Entry], Outcome],
    to_plain: Callable[[Outcome], Any],
    from_plain: Callable[[Any], Outcome],
) -> list[Outcome]:
    """`[load(e) for e in entries]`, the last part computed in a forked child and sent
    back as `to_plain(outcome)`, rebuilt here with `from_plain`. Same result, in order."""
    split = int(len(entries) * PARENT_SHARE)
    mine, theirs = entries[:split], entries[split:]
    child = Ahead.start(theirs, load, to_plain)
    if child is None:
        return [load(entry) for entry in entries]
    try:
        outcomes = [load(entry) for entry in mine]
    except BaseException:
        child.cancel()  # this part failed: the other is not wanted
        raise
    rebuilt = child.collect(from_plain)
    if rebuilt is None:
        rebuilt = [load(entry) for entry in theirs]
    return outcomes + rebuilt


class Ahead:
    """A forked child computing `[to_plain(load(e)) for e in entries]` while this
    process does something else; `collect` takes what it sent (or None: compute it
    here), `cancel` ends it unheard. Either is called once; then both do nothing."""

    def __init__(self, entries: Sequence[Any], pid: int, read_end: int) -> None:
        self.entries = entries
        self._pid: int | None = pid
        self._read_end = read_end
        self._unread = bytearray()  # what `poll` read of a chunk not complete yet

    @classmethod
    def start(
        cls, entries: Sequence[Entry], load: Callable[[Entry], Any], to_plain: Callable[[Any], Any]
    ) -> Ahead | None:
        """The child, started; None when none could be (no fork, several threads)."""
        if not can_fork():
            return None
        pid, read_end = _fork_child(entries, load, to_plain)
        return None if pid is None else cls(entries, pid, read_end)

    def collect(self, from_plain: Callable[[Any], Outcome]) -> list[Outcome] | None:
        """What the child computed, rebuilt with `from_plain`, in the order of
        `entries`; None if it failed, died, sent garbage or was collected already.
        Each chunk is rebuilt as it arrives, while the child computes the next ones."""
        pid, self._pid = self._pid, None
        if pid is None:
            return None
        incoming = os.fdopen(self._read_end, "rb")
        rebuilt: list[Outcome] | None = []
        try:
            rebuilt = _read_chunks(incoming, from_plain)
        finally:
            incoming.close()  # a child still writing gets EPIPE and exits: no deadlock
            if rebuilt is None:
                os.kill(pid, signal.SIGKILL)  # garbage, or this process failed
            _, status = os.waitpid(pid, 0)
        if rebuilt is None or not os.WIFEXITED(status) or os.WEXITSTATUS(status) != 0:
            return None
        return rebuilt if len(rebuilt) == len(self.entries) else None

    def poll(self, from_plain: Callable[[Any], Outcome]) -> list[Outcome] | None:
        """What the child sent since the last poll, rebuilt with `from_plain`, without
        waiting for more (`collect` waits for all): [] when no whole chunk came (also
        once it has ended or died); None when it sent garbage (distrust all it sent) or
        it was collected or cancelled. Each chunk is a whole pickle behind its length:
        a child that dies mid-chunk sends nothing of that chunk. End the child with
        `cancel`; not to be mixed with `collect`."""
        if self._pid is None:
            return None
        while select.select([self._read_end], [], [], 0)[0]:
            data = os.read(self._read_end, 1 << 20)
            if not data:
                break  # it ended: nothing more will come
            self._unread += data
        rebuilt: list[Outcome] = []
        unread = self._unread
        while len(unread) >= 8:
            size = int.from_bytes(unread[:8], "little")
            if len(unread) < 8 + size:
                break
            try:
                plain = pickle.loads(unread[8 : 8 + size])
                if not isinstance(plain, list):
                    return None
                rebuilt += (from_plain(item) for item in plain)
            except Exception:  # noqa: BLE001 - any surprise: the caller loads it instead
                return None
            del unread[: 8 + size]
        return rebuilt

    def cancel(self) -> None:
        """End the child without reading it (its work is not wanted)."""
        pid, self._pid = self._pid, None
        if pid is None:
            return
        os.close(self._read_end)
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)


def _fork_child(
    entries: Sequence[Entry], load: Callable[[Entry], Outcome], to_plain: Callable[[Outcome], Any]
) -> tuple[int | None, int]:
    """Fork the child computing `entries`; (its pid, the read end of its pipe), or
    (None, -1) when no child could be started."""
    try:
        read_end, write_end = os.pipe()
    except OSError:
        return None, -1
    try:
        pid = os.fork()
    except OSError:
        os.close(read_end)
        os.close(write_end)
        return None, -1
    if pid == 0:  # the child: never returns
        _child(read_end, write_end, entries, load, to_plain)
    os.close(write_end)
    return pid, read_end


def _child(
    read_end: int,
    write_end: int,
    entries: Sequence[Entry],
    load: Callable[[Entry], Outcome],
    to_plain: Callable[[Outcome], Any],
) -> None:
    code = 1
    try:
        os.close(read_end)
        with os.fdopen(write_end, "wb") as outgoing:
            # A thread writes, so that a parent not reading yet (a pipe holds 64 KB)
            # never holds up the computing: chunks wait in memory instead.
            chunks: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
            writer = threading.Thread(target=_write_chunks, args=(chunks, outgoing))
            writer.start()
            for start in range(0, len(entries), CHUNK):
                chunk = [to_plain(load(entry)) for entry in entries[start : start + CHUNK]]
                data = pickle.dumps(chunk, pickle.HIGHEST_PROTOCOL)
                # The length and the pickle sent one after the other, not joined: a
                # cold apply's rows child sends one chunk of ~100 MB at 100,000 jobs.
                chunks.put(len(data).to_bytes(8, "little"))
                chunks.put(data)
            chunks.put(None)
            writer.join()
        code = 0
    finally:
        # No cleanup of the parent's state (atexit, buffered output, connections).
        os._exit(code)


def _write_chunks(chunks: queue.SimpleQueue[bytes | None], outgoing: BinaryIO) -> None:
    """Write each chunk until None; a parent that stopped reading (EPIPE) ends it."""
    try:
        while (chunk := chunks.get()) is not None:
            outgoing.write(chunk)
            outgoing.flush()
    except OSError:
        os._exit(1)


def _read_chunks(incoming: BinaryIO, from_plain: Callable[[Any], Outcome]) -> list[Outcome] | None:
    """Every chunk the child sent (a length, then a pickled list), rebuilt; None when
    what came is not that."""
    rebuilt: list[Outcome] = []
    try:
        while header := incoming.read(8):
            size = int.from_bytes(header, "little")
            data = incoming.read(size)
            if len(header) != 8 or len(data) != size:
                return None  # cut short: the child died while writing
            plain = pickle.loads(data)
            if not isinstance(plain, list):
                return None
            rebuilt += (from_plain(item) for item in plain)
    except Exception:  # noqa: BLE001 - any surprise: load that part here instead
        return None
    return rebuilt
