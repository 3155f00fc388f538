"""The command line's own contract: usage errors are exit 1 (2 means "changes"), never a
traceback; `--dry-run` is `plan` with all of plan's flags."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reconciler.cli import main

EXAMPLES = Path(__file__).resolve().parents[1] / "jobs.d"


@pytest.mark.parametrize(
    "argv",
    [[], ["plan", "--bogus"], ["no-such-command"], ["plan", "--format", "yaml"], ["db"]],
)
def test_usage_errors_exit_1_without_traceback(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as raised:
        code = main(argv)
        raise SystemExit(code)
    assert raised.value.code == 1
    assert "Traceback" not in capsys.readouterr().err


def test_dry_run_is_plan_with_its_flags(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    database = f"sqlite:///{tmp_path / 'state.db'}"
    common = ["--jobs-dir", str(EXAMPLES), "--database-url", database]
    assert main([*common, "--dry-run", "--format", "json"]) == 2  # changes: all adds
    document = json.loads(capsys.readouterr().out)
    assert document["summary"]["add"] == 7
    assert main(["--dry-run", *common]) == 2
    assert "Reconcile will perform these actions" in capsys.readouterr().out
