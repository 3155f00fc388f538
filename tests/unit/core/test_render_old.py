"""The renderers print, byte for byte, what they printed before their per-field fast
paths (helper renderfast2: a str, int or bool field's table tested with `in`, a str
masked without FieldDiffer's memo, a str value written without `_value`): the old
modules are kept verbatim (old_diff.py, old_render.py, old_plan_json.py), and random
plans (test_render_reference.py's), the varied plan and the field views' random
essences are rendered by both, every format, colour on and off."""

from __future__ import annotations

import dataclasses
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.core.diff import FieldDiffer, FieldViews
from reconciler.core.plan import Plan
from reconciler.core.plan_json import render_json
from reconciler.core.render import _shown_unless_default, render_markdown, render_text
from tests.unit.core import old_diff, old_plan_json, old_render
from tests.unit.core.test_render_reference import plans
from tests.unit.core.test_render_varied import NESTED, keys, values, varied_plan


def assert_renders_as_before(result: Plan) -> None:
    assert render_text(result) == old_render.render_text(result)
    assert render_text(result, colour=True) == old_render.render_text(result, colour=True)
    assert render_markdown(result) == old_render.render_markdown(result)
    assert render_json(result) == old_plan_json.render_json(result)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(result=plans(), repeat=st.integers(1, 25))
def test_random_plans_render_as_before(result: Plan, repeat: int) -> None:
    """Adds, updates, pauses, resumes, renames, removes and quarantined files, field
    values alike across types (1 / True / "1" / 1.0, -0.0), secrets, non-ASCII text;
    the changes repeated, so that what a rendering remembers is used."""
    if repeat > 1 and result.changes:
        result = dataclasses.replace(result, changes=result.changes * repeat)
    assert_renders_as_before(result)


def test_the_varied_plan_renders_as_before() -> None:
    assert_renders_as_before(varied_plan())
    assert_renders_as_before(varied_plan(adds=17))


@settings(max_examples=300, deadline=None)
@given(batch=st.lists(st.dictionaries(keys, values, max_size=5), min_size=1, max_size=6))
def test_field_views_make_the_lines_they_made(batch: list[dict[str, Any]]) -> None:
    """Essences of any shape (keys that do not sort as their paths, values alike across
    types and depths, secrets, empty containers), each walked twice by one view."""
    batch = batch + NESTED + batch
    for prefix in ("      ", "+   "):
        new = FieldViews(FieldDiffer(), _shown_unless_default(prefix))
        old = old_diff.FieldViews(old_diff.FieldDiffer(), old_render._shown_unless_default(prefix))
        for essence in batch:
            assert new(essence) == old(essence)
