"""Golden tests of rendered plans: one plan holding every action, in every format.

Regenerate after an intended change with `UPDATE_GOLDEN=1 pytest tests/unit/core`, then
read the diff of the golden files like any other code change.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from reconciler.core.plan import Plan
from reconciler.core.plan_json import render_json
from reconciler.core.render import render_markdown, render_text
from reconciler.spec.diagnostics import Diagnostic
from tests.unit.core.planning import applied, desired, foreign_row, plan, spec, with_rows

GOLDEN = Path(__file__).parent / "golden"


def every_action_plan() -> Plan:
    before = [
        spec("changed", schedule={"cron": "0 * * * *"}, kwargs={"api_key": "canary-old"}),
        spec("to-pause"),
        spec("to-resume", paused=True),
        spec("gone"),
        spec("drifted"),
        spec("frozen"),
        spec("kept-1"),
        spec("kept-2"),
        spec("kept-3"),
        spec("kept-4"),
    ]
    after = [
        spec("added", schedule={"interval": {"minutes": 10}}, queue="high_priority"),
        spec(
            "changed",
            schedule={"cron": "30 6 * * 1-5"},
            timezone="Europe/Berlin",
            kwargs={"api_key": "canary-new"},
        ),
        spec("to-pause", paused=True),
        spec("to-resume"),
        spec("drifted"),
        spec("kept-1"),
        spec("kept-2"),
        spec("kept-3"),
        spec("kept-4"),
    ]
    quarantined = {"frozen.yaml": (Diagnostic("frozen.yaml", 4, 7, "YAML_COERCION", "quote it"),)}
    actual = with_rows(applied(*before), drifted=None, other=foreign_row("other"))
    return plan(desired(*after, quarantined=quarantined), actual)


def test_every_action_is_in_the_plan() -> None:
    result = every_action_plan()
    assert sorted(c.action for c in result.changes) == sorted(
        ["add", "update", "pause", "resume", "remove", "repair"]
    )


@pytest.mark.parametrize(
    ("name", "render"),
    [
        ("plan.txt", lambda p: render_text(p)),
        ("plan.colour.txt", lambda p: render_text(p, colour=True)),
        ("plan.json", render_json),
        ("plan.md", render_markdown),
        ("no-changes.txt", None),
    ],
)
def test_rendering_matches_golden(name: str, render) -> None:
    if render is None:
        jobs = [spec("a")]
        text = render_text(plan(desired(*jobs), applied(*jobs)))
    else:
        text = render(every_action_plan())
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.write_text(text)
    assert text == path.read_text()
    assert "canary" not in text


def test_json_plan_contract() -> None:
    document = json.loads(render_json(every_action_plan()))
    assert document["format_version"] == 1
    assert len(document["plan_hash"]) == 64
    assert set(document["summary"]) == {
        "add",
        "update",
        "pause",
        "resume",
        "rename",
        "remove",
        "repair",
    }
    for change in document["changes"]:
        assert set(change) >= {
            "action",
            "job",
            "source",
            "diffs",
            "reason",
            "next_fires_before",
            "next_fires_after",
        }
        for diff in change["diffs"]:
            assert set(diff) == {"path", "before", "after"}
    assert document["quarantined"][0]["errors"][0]["code"] == "YAML_COERCION"
    assert document["foreign"] == ["other"]


def test_no_changes_is_a_first_class_answer() -> None:
    jobs = [spec("a")]
    text = render_text(plan(desired(*jobs), applied(*jobs)))
    assert "No changes." in text
    assert "No changes." in render_markdown(plan(desired(*jobs), applied(*jobs)))
