"""Loading on two cores (reconciler.spec.parallel) gives exactly the sequential result,
and any failure of the child only costs time.

Forking is done only by a single-threaded process, and a pytest-xdist worker has
threads: each case runs in a fresh interpreter."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from reconciler.settings import Settings
from reconciler.spec import parallel
from reconciler.spec.loader import load_jobs
from reconciler.spec.parallel import MIN_FILES

REPO_ROOT = Path(__file__).resolve().parents[2]

SUMMARY = """
from reconciler.spec.essence import essence, hash_essence

def summary(result):
    # An essence sent by the child must be the one computed here from the same spec.
    for job in result.jobs:
        if job.essence is not None:
            assert job.essence == (essence(job.spec), hash_essence(essence(job.spec)))
    return {
        "with essence": sum(job.essence is not None for job in result.jobs),
        "jobs": [[j.spec.model_dump(mode="json"), j.source, j.line, j.column] for j in result.jobs],
        "quarantined": {p: [d.as_dict() for d in ds] for p, ds in result.quarantined.items()},
        "files": result.files,
    }
"""


def run_python(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO_ROOT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def write_corpus(root: Path, files: int) -> None:
    for number in range(files):
        documents = [
            f"name: job-{number}-{slot}\ntask: reconciler.tasks.corpus_task\n"
            f'schedule: {{cron: "{slot} * * * *"}}\n'
            f"kwargs: {{n: {slot}, ratio: 0.5, tags: [a, {slot}]}}\n"
            for slot in range(3)
        ]
        text = "---\n".join(documents)
        if number in (7, files - 7):  # broken files in both halves
            text += "---\nname: bad\ntask: [unclosed\n"
        if number in (3, files - 3):  # the same name in both halves
            text += "---\n" + "name: twice\ntask: reconciler.tasks.example_task\n"
            text += "schedule: {cron: '0 1 * * *'}\n"
        (root / f"f{number:04d}.yaml").write_text(text)


def test_two_cores_give_the_sequential_result(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_corpus(tmp_path, MIN_FILES + 50)
    settings = Settings(max_nesting_depth=32)
    now = "2026-11-22T12:00:00+00:00"
    from datetime import datetime

    monkeypatch.setattr(parallel, "can_fork", lambda: False)  # the reference: one core
    expected = load_jobs(
        tmp_path, settings=settings, now=datetime.fromisoformat(now), essences=True
    )
    output = run_python(
        SUMMARY
        + textwrap.dedent(f"""
        import json
        from datetime import datetime
        from reconciler.settings import Settings
        from reconciler.spec import parallel
        from reconciler.spec.loader import load_jobs
        calls = []
        real = parallel.map_on_two_cores
        parallel.map_on_two_cores = lambda *a: calls.append(1) or real(*a)
        # The child's half must really come from the child (not from the fallback).
        used = []
        real_rebuild = parallel._read_chunks
        def counted_rebuild(*a):
            rebuilt = real_rebuild(*a)
            used.append(rebuilt is not None)
            return rebuilt
        parallel._read_chunks = counted_rebuild
        from pathlib import Path
        result = load_jobs(Path({str(tmp_path)!r}), settings=Settings(max_nesting_depth=32),
                           now=datetime.fromisoformat({now!r}), essences=True)
        print(json.dumps({{"forked": len(calls), "child used": used, **summary(result)}}))
        """)
    )
    got = json.loads(output)
    namespace: dict[str, Any] = {}
    exec(SUMMARY, namespace)
    assert got.pop("forked") == 1, "the corpus is large enough: it must load on two cores"
    assert got.pop("child used") == [True], "the child's half must come from the child"
    sequential = json.loads(json.dumps(namespace["summary"](expected)))
    assert got == sequential
    assert got["with essence"] == len(got["jobs"]) > 0, "each half computes the essences"
    assert sorted(got["quarantined"]) == sorted(
        f"f{n:04d}.yaml" for n in (3, 7, MIN_FILES + 50 - 7, MIN_FILES + 50 - 3)
    )


def test_a_child_that_fails_or_cannot_be_forked_only_costs_time() -> None:
    output = run_python(
        textwrap.dedent("""
        import os
        from reconciler.spec.parallel import map_on_two_cores
        items = list(range(10))
        square = lambda n: n * n
        same = lambda value: value
        print(map_on_two_cores(items, square, same, same))
        # The child fails while converting: its half is computed here instead.
        def fail_in_child(value, parent=os.getpid()):
            if os.getpid() != parent:
                raise RuntimeError("boom")
            return value
        print(map_on_two_cores(items, square, fail_in_child, same))
        # The child dies of a signal.
        def die_in_child(value, parent=os.getpid()):
            if os.getpid() != parent:
                os.kill(os.getpid(), 9)
            return value
        print(map_on_two_cores(items, square, die_in_child, same))
        # Rebuilding what the child sent fails.
        def refuse(value):
            raise ValueError("garbage")
        print(map_on_two_cores(items, square, same, refuse))
        # This process's own half fails while the child has more to send than a pipe
        # holds: the error comes out at once (no wait on a child blocked writing).
        def fail_here(n, parent=os.getpid()):
            if os.getpid() == parent:
                raise ValueError("this half failed")
            return n
        try:
            map_on_two_cores(items, fail_here, lambda value: "x" * 200_000, same)
        except ValueError as error:
            print(error)
        # No fork at all.
        def no_fork():
            raise OSError("no more processes")
        os.fork = no_fork
        print(map_on_two_cores(items, square, same, same))
        """)
    )
    expected = str([n * n for n in range(10)])
    assert output.splitlines() == [expected] * 4 + ["this half failed", expected]


def test_loading_ahead_gives_the_sequential_result(tmp_path: Path) -> None:
    """A child started before the pass knows what it parses (loader.load_ahead) loads
    from the last file backwards while the pass loads from the first on, until they
    meet: its outcomes are taken only for the bytes the pass read and only where the
    clock cannot change them; the result is the sequential load's, outcome for outcome,
    wherever they meet (the pass slow, at the child's pace, fast), also when the child
    dies, sends garbage or is not used."""
    files = MIN_FILES + 50
    write_corpus(tmp_path, files)
    # Near the end (the child's first files): a file whose validity follows the clock
    # (a cron map's year), and a file the pass reads with other bytes than the child did.
    dated = f"f{files - 20:04d}.yaml"
    (tmp_path / dated).write_text(
        "name: dated\ntask: reconciler.tasks.example_task\n"
        "schedule: {cron: {minute: '0', hour: '1', year: '2030-2040'}}\n"
    )
    edited = f"f{files - 10:04d}.yaml"
    output = run_python(
        textwrap.dedent(f"""
        import json, os, signal, time
        from datetime import datetime
        from pathlib import Path
        from reconciler.settings import Settings
        from reconciler.spec import loader, parallel
        from reconciler.spec.files import find_job_files, read_job_file
        root = Path({str(tmp_path)!r})
        settings = Settings(max_nesting_depth=32)
        entries, _ = find_job_files(root)
        contents = {{e.label: read_job_file(e, max_bytes=10**6) for e in entries}}
        contents[{edited!r}] = contents[{edited!r}].replace(b"ratio: 0.5", b"ratio: 0.25")
        now = datetime.fromisoformat("2026-11-22T12:00:00+00:00")
        real = loader._still_true
        taken = {{}}
        def counted(outcome, data):
            kept = real(outcome, data)
            if outcome is not None:
                taken[outcome.source] = kept is not None
            return kept
        loader._still_true = counted
        def summary(outcomes):
            return [[o.source, o.digest, o.timeless, [d.as_dict() for d in o.diagnostics],
                     [[j.spec.model_dump(mode="json"), j.line, j.column, j.essence]
                      for j in o.jobs], [[s.name, s.line, s.column] for s in o.names]]
                    for o in outcomes]
        def load(ahead):
            return summary(loader.load_files(entries, settings=settings, now=now,
                           essences=True, contents=contents, ahead=ahead))
        load_file = loader._load_file
        def paced(seconds):
            # The pass's own loads made slower (after the child was forked: not its).
            def slow(*args, **kwargs):
                time.sleep(seconds)
                return load_file(*args, **kwargs)
            return slow
        runs = {{}}
        for pace in (0.02, 0.001, 0.0):
            ahead = loader.load_ahead(root, settings=settings)
            loader._load_file = paced(pace)
            taken.clear()
            runs[pace] = [load(ahead), dict(taken)]
            loader._load_file = load_file
        dying = loader.load_ahead(root, settings=settings)
        os.kill(dying._child._pid, signal.SIGKILL)
        after_death = load(dying)
        lying = loader.load_ahead(root, settings=settings)
        os.kill(lying._child._pid, signal.SIGKILL)
        os.waitpid(lying._child._pid, 0)
        lying._child._pid = os.getpid()  # never killed: it is this process
        lying._child.cancel = lambda: None
        # A whole chunk with a doctored outcome of the last file, then (at the next
        # poll) garbage: what came before the garbage is not trusted either.
        import pickle
        source, jobs, *rest = loader._plain_outcome(loader._load_file(
            entries[-1], settings=settings, now=now, data=contents[entries[-1].label],
            essences=True))
        doctored = [(dict(jobs[0][0], queue="high_priority"), *jobs[0][1:]), *jobs[1:]]
        chunk = pickle.dumps([(source, tuple(doctored), *rest)])
        lying._child._unread += len(chunk).to_bytes(8, "little") + chunk
        first_poll = lying._child.poll
        def poll(from_plain):
            got = first_poll(from_plain)  # the doctored outcome, rebuilt
            lying._child._unread += (9).to_bytes(8, "little") + b"not a pickle"
            lying._child.poll = first_poll
            return got
        lying._child.poll = poll
        after_garbage = load(lying)
        unused = loader.load_ahead(root, settings=settings)
        unused.cancel()
        parallel.can_fork = lambda: False
        expected = load(None)
        print(json.dumps({{"same": {{pace: got == expected for pace, (got, _) in runs.items()}},
                          "taken": {{pace: t for pace, (_, t) in runs.items()}},
                          "same after death": after_death == expected,
                          "same after garbage": after_garbage == expected}}))
        """)
    )
    got = json.loads(output)
    assert all(got["same"].values()), f"loading ahead changed an outcome: {got['same']}"
    assert got["same after death"], "a dead child must only cost time"
    assert got["same after garbage"], "garbage from the child must only cost time"
    # The pass slowed down (20 ms a file): the child met it early, and its outcomes for
    # the clock-dependent file and the edited one were offered and refused.
    slow = got["taken"]["0.02"]
    assert len(slow) > files // 2, "the child loaded most files"
    assert sorted(label for label, kept in slow.items() if not kept) == [dated, edited]
