"""A streaming child (reconciler.spec.parallel.Stream): its pieces come in order, each
whole, as it makes them; a child that fails, dies half-way or sends garbage is reported
(ChildFailed) after the pieces it sent whole, never as a complete stream; a reader that
stops, or cancels, ends the child.

Forking is done only by a single-threaded process (tests.alone.fork_here)."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.spec import parallel
from reconciler.spec.parallel import ChildFailed, Stream
from tests.alone import fork_here

PIECES = [(0, b"a" * 10), (1, b""), (0, os.urandom(3 << 20)), (7, b"\x00" * 5), (0, b"end")]


def started(make: object) -> Stream:
    stream = Stream.start(make)  # type: ignore[arg-type]
    assert stream is not None
    return stream


def test_the_pieces_come_in_order_each_whole(request: pytest.FixtureRequest) -> None:
    if not fork_here(request):
        return
    assert list(started(lambda: iter(PIECES)).pieces()) == PIECES


@pytest.mark.parametrize("how", ["raises", "exits", "killed"])
def test_a_child_ending_half_way_fails(request: pytest.FixtureRequest, how: str) -> None:
    if not fork_here(request):
        return

    def make() -> Iterator[tuple[int, bytes]]:
        yield from PIECES[:3]
        if how == "raises":
            raise RuntimeError("the child fails")
        if how == "exits":
            os._exit(0)  # even a clean exit, without the end mark, is no complete stream
        os.kill(os.getpid(), signal.SIGKILL)
        yield from PIECES[3:]

    got = []
    with pytest.raises(ChildFailed):
        for piece in started(make).pieces():
            got.append(piece)
    # What its writer thread had written when it ended came, whole and in order.
    assert got == PIECES[: len(got)] and len(got) <= 3


def test_a_piece_cut_short_is_not_given(request: pytest.FixtureRequest) -> None:
    """The child dies while its writer thread is in the middle of a large piece: the
    part of it that came is not given."""
    if not fork_here(request):
        return

    def make() -> Iterator[tuple[int, bytes]]:
        yield 0, b"first"
        yield 0, b"x" * (8 << 20)  # more than the pipe holds: written in parts
        time.sleep(0.05)  # the writer is blocked on the full pipe, not reading here yet
        os._exit(1)

    stream = started(make)
    time.sleep(0.2)  # the child has died by now
    pieces = stream.pieces()
    assert next(pieces) == (0, b"first")
    with pytest.raises(ChildFailed):
        next(pieces)


def test_garbage_is_no_stream(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A header whose channel is the end mark's but with a length, or bytes after the
    end mark: not a complete stream."""
    if not fork_here(request):
        return
    real_fork = parallel._fork

    def garbled_fork(send: object, **kwargs: object) -> tuple[int | None, int]:
        def garbage(put: object) -> None:
            put(b"\xff" + (5).to_bytes(8, "little"))  # type: ignore[operator]

        return real_fork(garbage, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(parallel, "_fork", garbled_fork)
    with pytest.raises(ChildFailed):
        list(started(lambda: iter(PIECES)).pieces())


def test_channels_beyond_the_end_mark_are_refused(request: pytest.FixtureRequest) -> None:
    if not fork_here(request):
        return
    with pytest.raises(ChildFailed):
        list(started(lambda: iter([(0, b"a"), (255, b"b")])).pieces())


def test_a_stream_is_read_once(request: pytest.FixtureRequest) -> None:
    if not fork_here(request):
        return
    stream = started(lambda: iter(PIECES))
    assert list(stream.pieces()) == PIECES
    with pytest.raises(ChildFailed):
        stream.pieces()
    stream.cancel()  # after the end: nothing to do


@pytest.mark.parametrize(
    "when", ["before reading", "read not started", "half-way", "reader closed"]
)
def test_cancel_ends_the_child(request: pytest.FixtureRequest, tmp_path: Path, when: str) -> None:
    """The child (still making pieces, blocked on a full pipe) is ended and reaped."""
    if not fork_here(request):
        return
    pid_file = tmp_path / "pid"

    def make() -> Iterator[tuple[int, bytes]]:
        # Written whole, then renamed: the parent never reads the file half written (it
        # read '' once, between the child's open and its write).
        (tmp_path / "pid.part").write_text(str(os.getpid()))
        (tmp_path / "pid.part").rename(pid_file)
        while True:
            yield 0, b"y" * (1 << 20)

    stream = started(make)
    if when != "before reading":
        pieces = stream.pieces()
    if when in ("half-way", "reader closed"):
        assert next(pieces)[1] == b"y" * (1 << 20)
    while not pid_file.exists():
        time.sleep(0.01)
    if when == "reader closed":
        pieces.close()  # its `finally` ends the child
    else:
        stream.cancel()
    pid = int(pid_file.read_text())
    with pytest.raises(ChildProcessError):  # reaped already: no zombie left
        os.waitpid(pid, os.WNOHANG)
