"""No control or bidi character from a path, a key, a value, a reason or a row id
reaches a terminal raw: the text plan (colour on and off), a change's log line and a
diagnostic show them as `reconciler.printable` does (JSON's escapes), and that form
reads back as the text. Before: a job file named `ok\\x1b[31m\\u202e.yaml` printed its
ESC sequence and its right-to-left override raw in `reconcile plan`, `validate` and
`describe`; a field key its line breaks; a value its DEL, C1 controls and bidi
characters (JSON's encoder leaves those raw)."""

from __future__ import annotations

import json
import re

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from reconciler.core import render
from reconciler.core.diff import FieldDiffer
from reconciler.core.plan import Plan
from reconciler.core.render import change_line, render_text
from reconciler.printable import printable, printable_json
from reconciler.spec.diagnostics import Diagnostic
from tests.unit.core.hostile_plans import PIECES, hostile_plans, hostile_text

CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
OUR_COLOURS = re.compile("\x1b\\[(?:3[1-5]|0)m")


@settings(max_examples=500)
@example(text="ok\x1b[31m\u202e.yaml")
@example(text="a\\u001b")
@given(text=st.text() | hostile_text)
def test_printable_text_holds_no_control_and_reads_back(text: str) -> None:
    shown = printable(text)
    assert not CONTROL.search(shown)
    if "\\" not in shown:
        assert shown == text  # nothing escaped: the text itself
    else:
        assert json.loads('"' + shown.replace('"', '\\"') + '"') == text


@settings(max_examples=300)
@given(value=st.text() | hostile_text)
def test_a_value_is_json_read_back_as_itself_without_control(value: str) -> None:
    shown = render._value(value)
    assert not CONTROL.search(shown)
    assert json.loads(shown) == value
    assert printable_json(shown) == shown


def test_text_without_control_is_the_same_object() -> None:
    """The common case costs one search and no copy."""
    text = "team-a/nightly_report.yaml"
    assert printable(text) is text


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(result=hostile_plans())
def test_the_text_plan_prints_no_control(result: Plan) -> None:
    for colour in (False, True):
        text = render_text(result, colour=colour)
        ours = OUR_COLOURS.findall(text)
        assert len(ours) == (2 * len(result.changes) if colour else 0)
        assert not CONTROL.search(OUR_COLOURS.sub("", text).replace("\n", ""))
        lines = text.split("\n")
        for change in result.changes:
            if change.source:
                assert any(
                    line.endswith(f"  ({printable(change.source)})") and f" {change.job}" in line
                    for line in lines
                )
            assert f"      # {printable(change.reason)}" in lines
    differ = FieldDiffer()
    for change in result.changes:
        assert not CONTROL.search(change_line(change, differ=differ))
    for diagnostics in result.quarantined.values():
        for diagnostic in diagnostics:
            assert not CONTROL.search(diagnostic.render())


def test_a_diagnostic_shows_its_path_and_message_printable() -> None:
    diagnostic = Diagnostic("t\x1b]0;pwn\x07/ok\u202e.yaml", 3, 1, "SCHEMA", "key '\x9b2J'")
    assert diagnostic.render() == (
        "t\\u001b]0;pwn\\u0007/ok\\u202e.yaml:3:1: SCHEMA key '\\u009b2J'"
    )
    assert diagnostic.as_dict()["path"] == "t\x1b]0;pwn\x07/ok\u202e.yaml"  # JSON: as it is


def test_every_hostile_piece_is_printable() -> None:
    for piece in PIECES:
        assert not CONTROL.search(printable(piece))
