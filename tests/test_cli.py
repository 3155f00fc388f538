"""The command line's own contract: usage errors are exit 1 (2 means "changes"), never a
traceback; `--dry-run` is `plan` with all of plan's flags."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from reconciler.cli import _invoked_command, main
from reconciler.database_url import database_url_from_env
from reconciler.settings import load_settings

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


@pytest.mark.parametrize(
    ("argv", "command"),
    [
        (["get", "jobs"], "get"),
        (["--database-url", "sqlite:///get", "get", "jobs"], "get"),
        (["--database", "plan", "status"], "status"),  # an abbreviated flag's value
        (["--jobs-dir=x", "--dry-run", "apply"], "apply"),
        (["--help", "get"], None),
        (["--version"], None),
        (["no-such-command"], None),
        ([], None),
    ],
)
def test_the_invoked_command_is_told_before_any_command_module_is_imported(
    argv: list[str], command: str | None
) -> None:
    assert _invoked_command(argv) == command


def test_a_read_command_imports_neither_the_other_commands_nor_the_settings_model(
    tmp_path: Path,
) -> None:
    # A one-shot command pays only for its own imports (issue 14: `get jobs` <= 0.5 s).
    probe = (
        "import sys\n"
        "from reconciler.cli import main\n"
        f"main(['--database-url', 'sqlite:///{tmp_path / 'none.db'}', 'get', 'jobs'])\n"
        "loaded = sorted(m for m in sys.modules if m.startswith(('reconciler.commands.', "
        "'pydantic')) or m == 'reconciler.settings')\n"
        "print(' '.join(loaded))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.stdout.split() == [
        "reconciler.commands._common",
        "reconciler.commands._output",
        "reconciler.commands.get",
    ], done.stderr


@pytest.mark.parametrize(
    "environ",
    [
        {},
        {"RECONCILER_DATABASE_URL": "postgresql://u@h/db"},
        {"RECONCILER_DATABASE_URL": "", "RECONCILER_STATE_DIR": "/var/lib/reconciler"},
        {"reconciler_state_dir": "state"},
        {"RECONCILER_STATE_DIR": "s", "RECONCILER_DATABASE_URL": "sqlite:///elsewhere.db"},
    ],
)
def test_the_read_commands_find_the_database_where_the_settings_do(
    environ: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in list(os.environ):
        if name.upper().startswith("RECONCILER_"):
            monkeypatch.delenv(name)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    assert database_url_from_env(environ) == load_settings().database_url
    flag = "sqlite:///flag.db"
    assert (
        database_url_from_env(environ, override=flag)
        == load_settings(database_url=flag).database_url
    )


def test_a_hostile_file_name_reaches_no_terminal_raw(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A job file (and a folder) named with an OSC title sequence, an SGR colour, BEL,
    a bidi override and C1's CSI: `plan` (text and Markdown) and `validate` print them
    escaped (`\\u001b`), as they print a YAML value's escapes."""
    import re

    jobs = tmp_path / "jobs"
    folder = jobs / "t\x1b]0;pwn\x07"
    folder.mkdir(parents=True)
    (folder / "ok\x1b[31m\u202e.yaml").write_text(
        "name: ok\ntask: reconciler.tasks.example_task\n"
        "schedule: {cron: '*/5 * * * *'}\ndescription: \"\\e[2J\\u202e\"\n"
    )
    (jobs / "bad\x1b[2J\x9b.yaml").write_text("name: bad\ntask: x\n")
    common = ["--jobs-dir", str(jobs), "--database-url", f"sqlite:///{tmp_path / 's.db'}"]
    control = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
    for argv in (["plan", "--allow-invalid"], ["plan", "--allow-invalid", "--format", "markdown"]):
        assert main([*common, *argv]) == 2
        out = capsys.readouterr().out
        assert not control.search(out)
        assert "t\\u001b]0;pwn\\u0007/ok\\u001b[31m\\u202e.yaml" in out
        assert "bad\\u001b[2J\\u009b.yaml:1:1: MISSING_FIELD" in out
    assert main([*common, "validate"]) == 1
    out = capsys.readouterr().out
    assert not control.search(out) and "bad\\u001b[2J\\u009b.yaml:1:1" in out
