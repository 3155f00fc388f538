"""read_job_file reads a file to its end whatever fstat said of its size: a file that
grew after fstat is read whole (or refused as too large), and short reads read on."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from reconciler.spec.diagnostics import Diagnostic
from reconciler.spec.files import FileEntry, read_job_file


def entry(path: Path) -> FileEntry:
    return FileEntry(path.name, path)


def fstat_saying(size: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """fstat reports `size` bytes: the file grew after it was taken."""
    real = os.fstat

    def smaller(descriptor: int) -> os.stat_result:
        info = real(descriptor)
        fields = list(info)
        fields[6] = size  # st_size
        return os.stat_result(fields)

    monkeypatch.setattr(os, "fstat", smaller)


@pytest.mark.parametrize("size", [0, 1, 99, 100_000])
def test_a_file_is_read_whole(tmp_path: Path, size: int) -> None:
    path = tmp_path / "job.yaml"
    path.write_bytes(bytes(range(256)) * (size // 256) + b"x" * (size % 256))
    assert read_job_file(entry(path), max_bytes=1 << 20) == path.read_bytes()


def test_a_file_that_grew_after_fstat_is_read_to_its_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "job.yaml"
    path.write_bytes(b"a" * 200_000)
    fstat_saying(10, monkeypatch)
    assert read_job_file(entry(path), max_bytes=1 << 20) == b"a" * 200_000


def test_a_file_that_grew_past_the_limit_after_fstat_is_too_large(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "job.yaml"
    path.write_bytes(b"a" * 5000)
    fstat_saying(10, monkeypatch)
    refused = read_job_file(entry(path), max_bytes=4096)
    assert isinstance(refused, Diagnostic) and refused.code == "FILE_TOO_LARGE"
    assert refused.message.startswith("4097 bytes or more")


def test_a_file_of_exactly_the_limit_is_read(tmp_path: Path) -> None:
    path = tmp_path / "job.yaml"
    path.write_bytes(b"b" * 4096)
    assert read_job_file(entry(path), max_bytes=4096) == b"b" * 4096


def test_short_reads_read_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "job.yaml"
    path.write_bytes(b"0123456789" * 1000)
    real = os.read
    monkeypatch.setattr(os, "read", lambda descriptor, size: real(descriptor, min(size, 7)))
    assert read_job_file(entry(path), max_bytes=1 << 20) == b"0123456789" * 1000


def test_the_descriptor_is_closed(tmp_path: Path) -> None:
    path = tmp_path / "job.yaml"
    path.write_bytes(b"name: x\n")
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(50):
        read_job_file(entry(path), max_bytes=1 << 20)
    assert len(os.listdir("/proc/self/fd")) == before
