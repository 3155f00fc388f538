"""load_jobs over a folder: discovery, quarantine, cross-file checks, refusals, cache."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from reconciler.settings import Settings
from reconciler.spec.loader import LoadCache, load_jobs, load_paths
from reconciler.spec.model import CronSchedule, DateSchedule, IntervalSchedule

from .conftest import JOB, NOW, write


def job(name: str, extra: str = "") -> str:
    return JOB.replace("job-a", name) + extra


def test_jobs_come_in_file_then_document_order(tmp_path: Path, settings: Settings) -> None:
    write(tmp_path, "b.yaml", job("b1") + "---\n" + job("b2"))
    write(tmp_path, "a/z.yml", "# comment\n" + job("a1"))
    write(tmp_path, "notes.txt", "not a job")
    result = load_jobs(tmp_path, settings=settings, now=NOW)
    assert [(j.spec.name, j.source, j.line, j.column) for j in result.jobs] == [
        ("a1", "a/z.yml", 2, 1),
        ("b1", "b.yaml", 1, 1),
        ("b2", "b.yaml", 5, 1),
    ]
    assert result.files == 2 and result.valid and dict(result.quarantined) == {}


def test_every_schedule_kind_loads(tmp_path: Path, settings: Settings) -> None:
    write(
        tmp_path,
        "kinds.yaml",
        job("five")
        + "---\n"
        + job("six").replace("*/5 * * * *", "*/30 * * * * *")
        + "---\n"
        + job("map").replace("'*/5 * * * *'", "{second: '*/30'}")
        + "---\n"
        + job("every").replace("{cron: '*/5 * * * *'}", "{interval: {minutes: 5}}")
        + "---\n"
        + job("once").replace("{cron: '*/5 * * * *'}", "{at: 2030-01-01T09:00:00}")
        + "---\n"
        + job("past").replace("{cron: '*/5 * * * *'}", "{at: 2020-01-01T09:00:00}"),
    )
    result = load_jobs(tmp_path, settings=settings, now=NOW)
    kinds = [type(j.spec.schedule) for j in result.jobs]
    assert kinds == [CronSchedule] * 3 + [IntervalSchedule] + [DateSchedule] * 2
    assert result.valid, result.diagnostics


def test_a_bad_file_is_quarantined_whole_and_others_still_load(
    tmp_path: Path, settings: Settings
) -> None:
    write(tmp_path, "good.yaml", job("good"))
    write(tmp_path, "mixed.yaml", job("fine") + "---\n" + job("broken", "queue: nope\n"))
    result = load_jobs(tmp_path, settings=settings, now=NOW)
    assert [j.spec.name for j in result.jobs] == ["good"]
    assert list(result.quarantined) == ["mixed.yaml"]
    ((diagnostic),) = result.quarantined["mixed.yaml"]
    assert (diagnostic.line, diagnostic.column, diagnostic.code) == (8, 8, "UNKNOWN_QUEUE")


def test_duplicate_names_across_files_are_reported_at_both(
    tmp_path: Path, settings: Settings
) -> None:
    write(tmp_path, "ops/a.yaml", job("other") + "---\n" + job("same"))
    write(tmp_path, "billing/b.yaml", "# first line\n" + job("same"))
    write(tmp_path, "c.yaml", job("unrelated"))
    result = load_jobs(tmp_path, settings=settings, now=NOW)
    assert [j.spec.name for j in result.jobs] == ["unrelated"]
    rendered = [d.render() for d in result.diagnostics]
    assert rendered == [
        "billing/b.yaml:2:1: DUPLICATE_JOB job 'same' is also declared at ops/a.yaml:5",
        "ops/a.yaml:5:1: DUPLICATE_JOB job 'same' is also declared at billing/b.yaml:2",
    ]


def test_duplicate_position_is_the_name_key(tmp_path: Path, settings: Settings) -> None:
    body = "task: reconciler.tasks.x\nschedule: {interval: {seconds: 5}}\n  "
    write(
        tmp_path,
        "a.yaml",
        "task: reconciler.tasks.x\n\nname: dup\nschedule: {interval: {seconds: 5}}\n",
    )
    write(tmp_path, "b.yaml", "name: dup\n" + body.strip() + "\n")
    result = load_jobs(tmp_path, settings=settings, now=NOW)
    assert [(d.path, d.line, d.column) for d in result.diagnostics] == [
        ("a.yaml", 3, 1),
        ("b.yaml", 1, 1),
    ]


def test_symlinked_file_and_folder_are_refused(tmp_path: Path, settings: Settings) -> None:
    jobs = tmp_path / "jobs.d"
    write(jobs, "real.yaml", job("real"))
    outside = write(tmp_path, "outside/evil.yaml", job("evil"))
    (jobs / "escape.yaml").symlink_to(outside)
    (jobs / "inner-link.yaml").symlink_to(jobs / "real.yaml")
    (jobs / "linked-dir").symlink_to(outside.parent, target_is_directory=True)
    (jobs / "readme-link").symlink_to(outside)  # not a job file name: ignored
    result = load_jobs(jobs, settings=settings, now=NOW)
    assert [j.spec.name for j in result.jobs] == ["real"]
    refused = {path: [d.code for d in ds] for path, ds in result.quarantined.items()}
    assert refused == {
        "escape.yaml": ["SYMLINK_REFUSED"],
        "inner-link.yaml": ["SYMLINK_REFUSED"],
        "linked-dir": ["SYMLINK_REFUSED"],
    }


def test_jobs_dir_itself_may_be_a_symlink(tmp_path: Path, settings: Settings) -> None:
    write(tmp_path, "rev-1/a.yaml", job("a"))
    (tmp_path / "current").symlink_to(tmp_path / "rev-1", target_is_directory=True)
    result = load_jobs(tmp_path / "current", settings=settings, now=NOW)
    assert [j.source for j in result.jobs] == ["a.yaml"]


def test_a_given_symlink_file_is_refused(tmp_path: Path, settings: Settings) -> None:
    target = write(tmp_path, "a.yaml", job("a"))
    (tmp_path / "link.yaml").symlink_to(target)
    result = load_paths([tmp_path / "link.yaml"], settings=settings, now=NOW)
    assert [d.code for d in result.diagnostics] == ["SYMLINK_REFUSED"]


def test_too_large_is_refused_before_reading(tmp_path: Path) -> None:
    small = Settings(max_file_bytes=1024, max_nesting_depth=32)
    write(tmp_path, "big.yaml", job("big", "description: '" + "x" * 2000 + "'\n"))
    result = load_jobs(tmp_path, settings=small, now=NOW)
    ((diagnostic),) = result.quarantined["big.yaml"]
    assert (diagnostic.line, diagnostic.column, diagnostic.code) == (0, 0, "FILE_TOO_LARGE")


def test_fifo_is_refused_without_blocking(tmp_path: Path, settings: Settings) -> None:
    os.mkfifo(tmp_path / "pipe.yaml")
    result = load_jobs(tmp_path, settings=settings, now=NOW)
    assert [d.code for d in result.quarantined["pipe.yaml"]] == ["FILE_UNREADABLE"]


def test_missing_folder_is_a_diagnostic(tmp_path: Path, settings: Settings) -> None:
    result = load_jobs(tmp_path / "nope", settings=settings, now=NOW)
    assert [d.code for d in result.diagnostics] == ["FILE_UNREADABLE"]


def test_hidden_entries_are_skipped(tmp_path: Path, settings: Settings) -> None:
    write(tmp_path, ".git/x.yaml", "broken: [")
    write(tmp_path, ".a.yaml.swp", "broken: [")
    write(tmp_path, "a.yaml", job("a"))
    assert load_jobs(tmp_path, settings=settings, now=NOW).files == 1


def test_load_paths_labels_are_as_given(
    tmp_path: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "jobs.d/ops/a.yaml", job("a", "queue: nope\n"))
    write(tmp_path, "single.yaml", job("b"))
    result = load_paths([Path("jobs.d"), Path("single.yaml")], settings=settings, now=NOW)
    assert [d.path for d in result.diagnostics] == ["jobs.d/ops/a.yaml"]
    assert [j.source for j in result.jobs] == ["single.yaml"]


def _age(path: Path, seconds: float = 10) -> None:
    """Move the mtime into the past: the cache does not trust files modified just now."""
    info = path.stat()
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns - int(seconds * 1e9)))


def test_cache_skips_unchanged_files(tmp_path: Path, settings: Settings) -> None:
    path = write(tmp_path, "a.yaml", JOB)
    _age(path)
    cache = LoadCache()
    first = load_jobs(tmp_path, settings=settings, now=NOW, cache=cache)
    # Same size, same mtime, same inode, different text: the cache must not read it.
    info = path.stat()
    with path.open("r+b") as handle:
        handle.write(b"name: job-b")
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns))
    second = load_jobs(tmp_path, settings=settings, now=NOW, cache=cache)
    assert second.jobs == first.jobs
    # A real change (new mtime) is read.
    _age(path, 5)
    third = load_jobs(tmp_path, settings=settings, now=NOW, cache=cache)
    assert [j.spec.name for j in third.jobs] == ["job-b"]


def test_cache_does_not_trust_a_file_modified_just_now(tmp_path: Path, settings: Settings) -> None:
    path = write(tmp_path, "a.yaml", job("a"))
    cache = LoadCache()
    load_jobs(tmp_path, settings=settings, now=NOW, cache=cache)
    assert len(cache) == 0
    _age(path)
    load_jobs(tmp_path, settings=settings, now=NOW, cache=cache)
    assert len(cache) == 1


def test_cache_reruns_cross_file_checks_and_forgets_removed_files(
    tmp_path: Path, settings: Settings
) -> None:
    a = write(tmp_path, "a.yaml", job("same"))
    _age(a)
    cache = LoadCache()
    assert load_jobs(tmp_path, settings=settings, now=NOW, cache=cache).valid
    b = write(tmp_path, "b.yaml", job("same"))
    _age(b)
    result = load_jobs(tmp_path, settings=settings, now=NOW, cache=cache)
    assert sorted(result.quarantined) == ["a.yaml", "b.yaml"]
    b.unlink()
    result = load_jobs(tmp_path, settings=settings, now=NOW, cache=cache)
    assert result.valid and len(cache) == 1


def test_cache_returns_the_same_result_object_while_nothing_changes(
    tmp_path: Path, settings: Settings
) -> None:
    """The engine tells "no file changed" by identity, and skips rebuilding its jobs."""
    a, b = write(tmp_path, "a.yaml", job("a")), write(tmp_path, "b.yaml", job("b"))
    _age(a), _age(b)
    cache = LoadCache()
    first = load_jobs(tmp_path, settings=settings, now=NOW, cache=cache)
    assert load_jobs(tmp_path, settings=settings, now=NOW, cache=cache) is first
    write(tmp_path, "b.yaml", job("b", "queue: nope\n"))
    _age(b, 5)
    second = load_jobs(tmp_path, settings=settings, now=NOW, cache=cache)
    assert second is not first and list(second.quarantined) == ["b.yaml"]
    assert load_jobs(tmp_path, settings=settings, now=NOW, cache=cache) is second
    b.unlink()
    third = load_jobs(tmp_path, settings=settings, now=NOW, cache=cache)
    assert third is not second and third.valid and [j.spec.name for j in third.jobs] == ["a"]


def test_cache_starts_afresh_when_settings_change(tmp_path: Path, settings: Settings) -> None:
    _age(write(tmp_path, "a.yaml", job("a", "queue: extra\n")))
    cache = LoadCache()
    assert not load_jobs(tmp_path, settings=settings, now=NOW, cache=cache).valid
    wider = Settings(queues=(*settings.queues, "extra"), max_nesting_depth=32)
    assert load_jobs(tmp_path, settings=wider, now=NOW, cache=cache).valid


@pytest.mark.slow
def test_no_change_pass_over_10k_jobs_is_fast(tmp_path: Path, settings: Settings) -> None:
    for number in range(1000):
        docs = "---\n".join(job(f"job-{number}-{k}") for k in range(10))
        _age(write(tmp_path, f"team{number % 10}/f{number}.yaml", docs))
    cache = LoadCache()
    assert len(load_jobs(tmp_path, settings=settings, now=NOW, cache=cache).jobs) == 10_000
    # CPU time, best of five: the bound is about work done, not about a busy CI machine.
    best = min(
        _cpu_time(lambda: load_jobs(tmp_path, settings=settings, cache=cache)) for _ in range(5)
    )
    assert best < 0.1


def _cpu_time(action: Callable[[], object]) -> float:
    start = time.process_time()
    action()
    return time.process_time() - start


def test_cache_starts_afresh_when_any_validation_setting_changes(
    tmp_path: Path, settings: Settings
) -> None:
    """Every setting validation reads keys the cache (the file records' context), not
    only the queues and the allowlist: here the statements sql_maintenance may run."""
    text = (
        "name: cluster\ntask: reconciler.tasks.sql_maintenance\n"
        'schedule: {cron: "0 3 * * *"}\nkwargs: {statement: CLUSTER jobs}\n'
    )
    _age(write(tmp_path, "a.yaml", text))
    cache = LoadCache()
    powerful = ("reconciler.tasks.*",)
    narrow = Settings(task_allowlist=powerful, max_nesting_depth=32)
    assert not load_jobs(tmp_path, settings=narrow, now=NOW, cache=cache).valid
    wider = Settings(
        task_allowlist=powerful,
        max_nesting_depth=32,
        sql_statement_allowlist=(*narrow.sql_statement_allowlist, "CLUSTER"),
    )
    assert load_jobs(tmp_path, settings=wider, now=NOW, cache=cache).valid
