"""The README states contracts; keep it true."""

from __future__ import annotations

import re
from pathlib import Path

from reconciler.cli import COMMANDS
from reconciler.spec.diagnostics import CODES

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_every_diagnostic_code_is_documented() -> None:
    documented = dict(re.findall(r"^\| `([A-Z0-9_]+)` \| (.+?) \|$", README, re.MULTILINE))
    assert documented == CODES


def test_every_command_is_documented() -> None:
    for name in COMMANDS:
        assert f"`reconcile {name}" in README, name


def test_the_two_setup_commands_exist_in_the_makefile() -> None:
    makefile = (Path(__file__).resolve().parents[1] / "Makefile").read_text()
    assert "make demo" in README and "make test" in README
    assert re.search(r"^demo:", makefile, re.MULTILINE)
    assert re.search(r"^test:", makefile, re.MULTILINE)
