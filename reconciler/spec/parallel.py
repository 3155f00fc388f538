"""Loading many files on two cores: part of them in a forked child.

A cold load (a CLI `apply` or `validate` of 1,000 files) is CPU-bound Python: libyaml's
events turned into data, then validation and checks. On the 2-core machines we target,
the database server is idle meanwhile, so a forked child loads the last ~44% of the
files while this process loads the rest (bench/RESULTS.md "Figures behind code
choices" has the gain). A child started ahead (`Ahead`, loader.load_ahead) is read as
its chunks come (`Ahead.poll`), so that its parent can stop where they meet. A child
whose work is one whole (`Stream`: a cold apply's new scheduler rows, engine.apply)
sends it in pieces of bytes as it makes them, read here as they come.

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

import contextlib
import fcntl
import os
import pickle
import queue
import select
import signal
import threading
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from typing import Any, BinaryIO, TypeVar

from reconciler.errors import TransientError

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


class ChildFailed(TransientError):
    """A streaming child ended before sending all it made: it failed, died, or sent
    what is not its protocol (Stream.pieces). Its work is then done by the parent."""


# A piece of a stream travels behind its header: its channel (one byte) and its length
# (eight). The end mark is a header on this channel, sent once `make` has returned: a
# stream without it was cut short.
_END = 255
_HEADER = 9
# The pipe of a stream holds this much (Linux's unprivileged maximum by default): the
# parent's thread reading it wakes once per megabyte instead of once per 64 KB, each
# time taking the GIL from the thread working beside it.
STREAM_PIPE = 1 << 20


class Stream:
    """A forked child sending the pieces `make()` yields, (channel, bytes) each, as it
    makes them; `pieces` yields them here as they come (the work is one whole, not a
    list of entries as for `Ahead`: a cold apply's new scheduler rows, COPY data whose
    first rows are sent to the server while the child makes the others). `cancel`
    ends the child unheard (or unread further). Either is called once."""

    def __init__(self, pid: int, read_end: int) -> None:
        self._pid: int | None = pid  # None: ended (and reaped)
        self._read_end = read_end
        self._reading: Generator[tuple[int, bytes]] | None = None

    @classmethod
    def start(cls, make: Callable[[], Iterable[tuple[int, bytes]]]) -> Stream | None:
        """The child, started; None when none could be (no fork, several threads).
        Channels are 0 to 254."""
        if not can_fork():
            return None

        def send(put: Callable[[bytes], None]) -> None:
            for channel, data in make():
                if not 0 <= channel < _END:
                    raise ValueError(f"no channel {channel}")
                put(channel.to_bytes(1, "little") + len(data).to_bytes(8, "little"))
                put(data)
            put(_END.to_bytes(1, "little") + bytes(8))

        pid, read_end = _fork(send, pipe_size=STREAM_PIPE)
        return None if pid is None else cls(pid, read_end)

    def pieces(self) -> Iterator[tuple[int, bytes]]:
        """The pieces, in the order made, each as soon as it has come whole. Raises
        ChildFailed, once the child is ended, when it did not send all (it failed, died,
        or sent garbage) or exited otherwise than 0 after its last piece: the caller
        discards what it took (a COPY aborted). Closing the iterator early ends the
        child. Raises ChildFailed at once when called after `cancel` or a first call."""
        if self._pid is None or self._reading is not None:
            raise ChildFailed("the stream was read or cancelled already")
        self._reading = self._read()
        return self._reading

    def cancel(self) -> None:
        """End the child, whether `pieces` was read whole, in part or not at all (its
        work is not wanted, or not any more)."""
        if self._reading is not None:
            self._reading.close()  # being read: its `finally` ends the child
        self._end(complete=False)  # not read (or not started): ended here

    def _read(self) -> Generator[tuple[int, bytes]]:
        incoming = os.fdopen(self._read_end, "rb", closefd=False)
        complete = False
        try:
            while True:
                header = incoming.read(_HEADER)
                if len(header) != _HEADER:
                    raise ChildFailed("the child ended before its last piece")
                channel, size = header[0], int.from_bytes(header[1:], "little")
                if channel == _END:
                    complete = size == 0 and not incoming.read(1)
                    break
                data = incoming.read(size)
                if len(data) != size:
                    raise ChildFailed("the child ended in the middle of a piece")
                yield channel, data
        finally:
            status = self._end(complete=complete)
        if not complete or not os.WIFEXITED(status) or os.WEXITSTATUS(status) != 0:
            raise ChildFailed("the child sent garbage or failed after its last piece")

    def _end(self, *, complete: bool) -> int:
        """Close the pipe (a child still writing gets EPIPE and exits: no deadlock),
        end the child unless it sent all, and reap it; its exit status (0 when it was
        ended already)."""
        pid, self._pid = self._pid, None
        if pid is None:
            return 0
        os.close(self._read_end)
        if not complete:
            os.kill(pid, signal.SIGKILL)
        return os.waitpid(pid, 0)[1]


def _fork_child(
    entries: Sequence[Entry], load: Callable[[Entry], Outcome], to_plain: Callable[[Outcome], Any]
) -> tuple[int | None, int]:
    """Fork the child computing `entries`; (its pid, the read end of its pipe), or
    (None, -1) when no child could be started."""

    def send(put: Callable[[bytes], None]) -> None:
        for start in range(0, len(entries), CHUNK):
            chunk = [to_plain(load(entry)) for entry in entries[start : start + CHUNK]]
            data = pickle.dumps(chunk, pickle.HIGHEST_PROTOCOL)
            put(len(data).to_bytes(8, "little"))
            put(data)

    return _fork(send)


def _fork(
    send: Callable[[Callable[[bytes], None]], None], *, pipe_size: int = 0
) -> tuple[int | None, int]:
    """Fork a child calling `send(put)`, each `put(data)` written to its pipe in order
    (by a thread: see `_child`); (its pid, the read end of the pipe), or (None, -1) when
    no child could be started. `pipe_size`: the pipe's capacity asked for (Linux; 0:
    the system's, 64 KB)."""
    try:
        read_end, write_end = os.pipe()
    except OSError:
        return None, -1
    if pipe_size and hasattr(fcntl, "F_SETPIPE_SZ"):
        with contextlib.suppress(OSError):  # a smaller pipe costs only more reads
            fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, pipe_size)
    try:
        pid = os.fork()
    except OSError:
        os.close(read_end)
        os.close(write_end)
        return None, -1
    if pid == 0:  # the child: never returns
        _child(read_end, write_end, send)
    os.close(write_end)
    return pid, read_end


def _child(read_end: int, write_end: int, send: Callable[[Callable[[bytes], None]], None]) -> None:
    code = 1
    try:
        os.close(read_end)
        with os.fdopen(write_end, "wb") as outgoing:
            # A thread writes, so that a parent not reading yet (a pipe holds 64 KB)
            # never holds up the computing: chunks wait in memory instead.
            chunks: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
            writer = threading.Thread(target=_write_chunks, args=(chunks, outgoing))
            writer.start()
            # Lengths and data are put one after the other, not joined: a piece may be
            # large (a cold apply's rows child sent one chunk of ~100 MB at 100,000 jobs).
            send(chunks.put)
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
