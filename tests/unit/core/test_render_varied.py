"""A large, varied plan in every format, byte for byte as the renderer wrote it before
its fast paths (golden/varied.*): adds of many shapes, updates with diffs, renames,
pauses, resumes, removes, drift repairs, quarantined files, and enough changes in
several folders for the "Changes by folder" table. The faster renderers remember what
repeats across jobs (fields, values, whole sub-mappings); these plans repeat values
across jobs on purpose, in look-alike forms (1 and True, "1" and 1, "a-b" and "a.b"
keys), so that a cache keyed too loosely shows here.

Regenerate after an intended change with `UPDATE_GOLDEN=1 pytest tests/unit/core`, then
read the diff like any other code change.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from reconciler.core.diff import (
    SENSITIVE,
    FieldDiffer,
    FieldViews,
    _leaves,
    changed_paths,
    flatten,
)
from reconciler.core.plan import Plan
from reconciler.core.plan_json import render_json
from reconciler.core.render import render_markdown, render_text
from reconciler.spec.diagnostics import Diagnostic
from reconciler.spec.model import JobSpec
from tests.unit.core.planning import applied, desired, plan, spec, with_rows

GOLDEN = Path(__file__).parent / "golden"

# kwargs that look alike to a loose cache key: equal in Python (1 == True == 1.0), equal
# once flattened ("a.b" nested or not), or spelled alike in JSON.
LOOK_ALIKES: list[dict[str, Any]] = [
    {"n": 1},
    {"n": True},
    {"n": "1"},
    {"n": 0},
    {"n": False},
    {"n": None},
    {"n": []},
    {"n": {}},
    {"n": [1, True]},
    {"a": {"b": 1}},
    {"a-b": 1, "a": {"b": 2}},
    {"a": {"b-c": 1, "b": {"c": 2}}},
    {"data": {"key": "value", "url": "https://user:pw@example.com/hook"}},
    {"token": "sk-abcdefghijklmnopqrstuvwx"},
    {"note": "Bearer abcdefghijkl", "text": "ünïcode ✓ \x7f"},
    {"big": 2**70, "neg": -5},
    {"list": ["x", {"y": 1}]},
]


def _added(index: int) -> JobSpec:
    """An added job whose fields vary with `index` and repeat across jobs."""
    shape = index % 6
    fields: dict[str, Any] = {
        "kwargs": LOOK_ALIKES[index % len(LOOK_ALIKES)],
        "labels": {"team": f"t{index % 3}", **({"tier": "gold"} if index % 4 == 0 else {})},
    }
    if shape == 0:
        fields["schedule"] = {"cron": "*/5 * * * *"}
    elif shape == 1:
        fields["schedule"] = {"cron": {"minute": "*/10", "hour": "8-18"}}
        fields["timezone"] = "Europe/Berlin"
    elif shape == 2:
        fields["schedule"] = {"interval": {"minutes": 10 + index % 2}}
        fields["queue"] = "high_priority"
    elif shape == 3:
        fields["schedule"] = {"at": "2031-01-01T09:00:00"}
        fields["description"] = f"one-off {index % 2}"
    elif shape == 4:
        fields["paused"] = True
        fields["args"] = [index % 2, "x"]
    else:
        fields["retries"] = index % 3
        fields["owner"] = "ops@example.com"
    return spec(f"added-{index:03d}", **fields)


def varied_plan(adds: int = 48) -> Plan:
    before = [
        spec("changed", schedule={"cron": "0 * * * *"}, kwargs={"api_key": "canary-old"}),
        spec("changed-kwargs", kwargs={"n": 1, "a": {"b": 1}}),
        spec("changed-labels", labels={"team": "t1"}),
        spec("moved", kwargs={"n": 1}),
        spec("old-name", kwargs={"n": 2}),
        spec("to-pause"),
        spec("to-resume", paused=True),
        spec("gone", kwargs={"token": "sk-abcdefghijklmnopqrstuvwx"}),
        spec("gone-too", kwargs={"n": True}, labels={"team": "t1"}),
        spec("drifted"),
        spec("frozen"),
        *(spec(f"kept-{n}") for n in range(4)),
    ]
    after = [
        *(_added(index) for index in range(adds)),
        spec(
            "changed",
            schedule={"cron": "30 6 * * 1-5"},
            timezone="Europe/Berlin",
            kwargs={"api_key": "canary-new"},
        ),
        spec("changed-kwargs", kwargs={"n": True, "a": {"b": 1, "c": [1]}}),
        spec("changed-labels", labels={"team": "t2", "x-y": "1"}),
        spec("moved", kwargs={"n": 1}),
        spec("new-name", previous_names=["old-name"], kwargs={"n": 2}),
        spec("to-pause", paused=True),
        spec("to-resume"),
        spec("drifted"),
        *(spec(f"kept-{n}") for n in range(4)),
    ]
    sources = {s.name: f"folder{n % 3}/{s.name}.yaml" for n, s in enumerate(after[:adds])}
    sources["moved"] = "elsewhere/moved.yaml"
    sources["new-name"] = "old-name.yaml"
    quarantined = {
        "frozen.yaml": (Diagnostic("frozen.yaml", 4, 7, "YAML_COERCION", "quote it"),),
        "broken/b.yaml": (
            Diagnostic("broken/b.yaml", 1, 1, "YAML_SYNTAX", "bad | pipe"),
            Diagnostic("broken/b.yaml", 9, 2, "SCHEMA", "missing task"),
        ),
    }
    actual = with_rows(applied(*before), drifted=None)
    state = desired(*after, quarantined=quarantined, sources=sources)
    return plan(state, actual, allow_mass_delete=True)


RENDERERS: dict[str, Callable[[Plan], str]] = {
    "varied.txt": render_text,
    "varied.colour.txt": lambda p: render_text(p, colour=True),
    "varied.json": render_json,
    "varied.md": render_markdown,
}


def test_the_varied_plan_holds_every_kind_of_change() -> None:
    result = varied_plan()
    assert {str(c.action) for c in result.changes} == {
        "add",
        "update",
        "pause",
        "resume",
        "rename",
        "remove",
        "repair",
    }
    assert len(result.quarantined) == 2


@pytest.mark.parametrize("name", sorted(RENDERERS))
def test_varied_plan_matches_golden(name: str) -> None:
    text = RENDERERS[name](varied_plan())
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.write_text(text)
    assert text == path.read_text()
    assert "canary" not in text and "abcdefghijkl" not in text and ":pw@" not in text
    assert "Changes by folder" in text or "| folder |" in text or name.endswith(".json")


@pytest.mark.parametrize("name", sorted(RENDERERS))
def test_a_renderer_gives_the_same_text_twice_and_after_another_plan(name: str) -> None:
    """What one rendering remembers never leaks into the next."""
    render = RENDERERS[name]
    first = render(varied_plan())
    render(varied_plan(adds=17))
    assert render(varied_plan()) == first


# Keys that sort differently once flattened ("a-b" < "a.x" but "a" < "a-b"), an empty key
# (flatten drops an empty prefix), and values equal across types (1, True, 1.0).
keys = st.sampled_from(["a", "a-b", "a.b", "b", "", "n", "x_y", "A"]) | st.text(max_size=3)
values = st.recursive(
    st.none()
    | st.sampled_from([0, 1, True, False, 1.0, -0.0, "1", "x"])
    | st.integers()
    | st.text(max_size=3),
    lambda inner: st.lists(inner, max_size=2) | st.dictionaries(keys, inner, max_size=3),
    max_leaves=6,
)


# Mappings nested under mappings, walked level by level with a table per path: values
# alike across types and depths (1, True, 1.0, "1", -0.0), empty containers, a level
# whose keys do not sort as its paths ("a-b" beside "a"), a non-str key, a secret.
NESTED: list[dict[str, Any]] = [
    {"kwargs": {"data": {"key": "value", "n": 1, "url": "https://u:pw@h/x"}}, "args": []},
    {"kwargs": {"data": {"key": "value", "n": True, "url": "https://h/x"}}, "args": [1]},
    {"kwargs": {"data": {"key": "value", "n": 1.0, "f": -0.0}}, "args": ()},
    {"kwargs": {"data": {"key": "value", "n": "1", "f": 0.0, "e": {}, "l": []}}},
    {"kwargs": {"data": {"a-b": 1, "a": {"b": 2}}}, "labels": {"team": "t1"}},
    {"kwargs": {"data": {1: "x", "n": None}, "api_key": {"v": 1}}, "labels": {"team": 1}},
    {"kwargs": {"data": {"key": {"deeper": {"n": 1}}}}, "labels": {"team": True}},
    {"kwargs": {"data": {"key": {"deeper": {"n": True}}}}, "labels": {}},
]


@settings(max_examples=300, deadline=None)
@example(batch=NESTED + NESTED[::-1])
@given(batch=st.lists(st.dictionaries(keys, values, max_size=5), min_size=1, max_size=6))
def test_field_views_give_every_leaf_in_path_order(batch: list[dict[str, Any]]) -> None:
    """FieldViews (what it remembers across essences included) gives, for each essence,
    each non-None leaf in sorted path order as FieldDiffer would show it."""
    views = FieldViews(FieldDiffer(), lambda path: lambda value: (path, repr(value)))
    for essence in batch:
        expected = [(path, repr(FieldDiffer().show(path, v))) for path, v in _leaves(essence)]
        assert views(essence) == expected


@settings(max_examples=500, deadline=None)
# A secret-looking key on one side only (found by CI: it showed "(sensitive)" on both).
@example(before={}, after={"DSN": "x"})
@example(before={"token": {"a": 1}}, after={})
@example(before={"n": None}, after={})
@given(
    before=st.dictionaries(keys, values, max_size=5),
    after=st.dictionaries(keys, values, max_size=5),
)
def test_diff_is_the_comparison_of_every_flattened_path(
    before: dict[str, Any], after: dict[str, Any]
) -> None:
    """FieldDiffer.diff (which flattens only the top-level values that differ) lists what
    comparing every flattened path of the two essences lists, in the same order."""
    differ = FieldDiffer()
    flat_before, flat_after = flatten(before), flatten(after)
    expected = []
    # Every flattened path of both (changed_paths: an emptied mapping whose fields are the
    # difference is not itself one, see tests/test_plan_field_diffs.py).
    for path in changed_paths(before, after):
        old, new = flat_before.get(path), flat_after.get(path)
        if old != new:
            if differ.is_secret(path):
                old = SENSITIVE if path in flat_before else None
                new = SENSITIVE if path in flat_after else None
            else:
                old, new = differ.show(path, old), differ.show(path, new)
            expected.append((path, repr(old), repr(new)))
    got = [(d.path, repr(d.before), repr(d.after)) for d in differ.diff(before, after)]
    assert got == expected
