"""`reconcile validate` and `reconcile schema`: output, formats, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from reconciler.cli import main

from .conftest import JOB, write

BIN = Path(sys.executable).parent


def test_valid_folder_prints_one_summary_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write(tmp_path, "a.yaml", JOB)
    write(tmp_path, "b/c.yml", JOB.replace("job-a", "job-b") + "---\n" + JOB.replace("job-a", "c"))
    assert main(["validate", str(tmp_path)]) == 0
    assert capsys.readouterr().out == "2 files, 3 jobs: valid\n"


def test_invalid_prints_every_error_of_every_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "jobs.d/a.yaml", JOB + "queue: nope\nowner: no\n")
    write(tmp_path, "jobs.d/b.yaml", "name: [\n")
    assert main(["--jobs-dir", "jobs.d", "validate"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out == [
        "jobs.d/a.yaml:4:8: UNKNOWN_QUEUE unknown queue 'nope'; configured queues: "
        "default, high_priority, low_priority, scheduled",
        "jobs.d/a.yaml:5:8: YAML_COERCION owner: read as boolean false; "
        "write 'no' in quotes if you mean the text",
        "jobs.d/b.yaml:2:1: YAML_SYNTAX did not find expected node content "
        "while parsing a flow node (line 2)",
        "2 files, 0 jobs: invalid, 3 errors in 2 files",
    ]


def test_json_format(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = write(tmp_path, "good.yaml", JOB)
    bad = write(tmp_path, "bad.yaml", JOB.replace("job-a", "job-b") + "timezone: Moon/Base\n")
    assert main(["validate", "--format", "json", str(good), str(bad)]) == 1
    document = json.loads(capsys.readouterr().out)
    assert document == {
        "valid": False,
        "files": 2,
        "jobs": 1,
        "errors": [
            {
                "path": str(bad),
                "line": 4,
                "column": 11,
                "code": "UNKNOWN_TIMEZONE",
                "message": "unknown time zone Moon/Base",
            }
        ],
    }
    assert main(["validate", "--format", "json", str(good)]) == 0
    assert json.loads(capsys.readouterr().out)["valid"] is True


def test_schema_check_and_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "schema.json"
    assert main(["schema", "--check", "--output", str(target)]) == 1
    assert f"{target} is missing" in capsys.readouterr().err
    assert main(["schema", "--output", str(target)]) == 0
    assert main(["schema", "--check", "--output", str(target)]) == 0
    capsys.readouterr()
    assert main(["schema"]) == 0
    assert capsys.readouterr().out == target.read_text(encoding="utf-8")


def test_validate_subprocess_exit_codes_without_traceback(tmp_path: Path) -> None:
    write(tmp_path, "ok/a.yaml", JOB)
    write(tmp_path, "bad/a.yaml", "\x00")
    for folder, code in (("ok", 0), ("bad", 1), ("missing", 1)):
        run = subprocess.run(
            [str(BIN / "reconcile"), "validate", str(tmp_path / folder)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert run.returncode == code, run.stdout + run.stderr
        assert "Traceback" not in run.stdout + run.stderr


def test_a_file_named_twice_is_read_once(tmp_path: Path) -> None:
    """CI validates the jobs folder and the files a pull request changes, overlapping
    (`reconcile validate jobs.d jobs.d/team/a.yaml`, or one folder spelt two ways): each
    file is one file, not its own DUPLICATE_JOB."""
    write(tmp_path, "jobs.d/team/a.yaml", JOB)
    write(tmp_path, "jobs.d/b.yaml", JOB.replace("job-a", "job-b"))
    for paths in (
        ["jobs.d", "jobs.d/team/a.yaml"],
        ["jobs.d/team", "./jobs.d/team"],
        ["jobs.d/b.yaml", "jobs.d/team/../b.yaml"],
    ):
        run = subprocess.run(
            [str(BIN / "reconcile"), "validate", *paths],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,
        )
        assert run.returncode == 0, (paths, run.stdout + run.stderr)
        assert "DUPLICATE_JOB" not in run.stdout and ": valid" in run.stdout, run.stdout


def test_markdown_format(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = write(tmp_path, "bad.yaml", JOB + "description: a | b\nowner: no\n")
    assert main(["validate", "--format", "markdown", str(bad)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "### Job files: invalid"
    assert lines[-1] == (
        f"| `{bad}:5:8` | `YAML_COERCION` | owner: read as boolean false; "
        "write 'no' in quotes if you mean the text |"
    )
    write(tmp_path, "ok/a.yaml", JOB)
    assert main(["validate", "--format", "markdown", str(tmp_path / "ok")]) == 0
    assert capsys.readouterr().out == "### Job files: valid\n\n1 file, 1 job.\n"
