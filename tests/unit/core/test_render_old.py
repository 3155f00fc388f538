"""The renderers print, byte for byte, what they printed before their per-field fast
paths (helper renderfast2: a str, int or bool field's table tested with `in`, a str
masked without FieldDiffer's memo, a str value written without `_value`): the old
modules are kept verbatim (old_diff.py, old_render.py, old_plan_json.py), and random
plans (test_render_reference.py's), the varied plan and the field views' random
essences are rendered by both, every format, colour on and off.

Since the Markdown oracle (test_markdown_oracle.py), text from outside is shown as
`reconciler.printable` shows it: what the old renderers printed raw that a terminal
obeys (DEL, C1 controls, bidi characters: in values only, here) is now escaped as
JSON escapes it (`printable_json` of the old text), and the random plans compared are
restricted to those whose field keys, sources and reasons hold no C0 control, no
backslash, nothing Markdown reads in text but `|` and `_` between letters, and whose
keys and values hold no run of three backticks (those render differently on purpose:
test_markdown_oracle.py and test_printable_text.py check them)."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from reconciler.core.diff import FieldDiffer, FieldViews
from reconciler.core.plan import Plan
from reconciler.core.plan_json import render_json
from reconciler.core.render import _shown_unless_default, render_markdown, render_text
from reconciler.printable import printable_json
from tests.unit.core import old_diff, old_plan_json, old_render
from tests.unit.core.test_render_reference import plans
from tests.unit.core.test_render_varied import NESTED, keys, values, varied_plan


def assert_renders_as_before(result: Plan) -> None:
    assert render_text(result) == printable_json(old_render.render_text(result))
    assert render_text(result, colour=True) == printable_json(
        old_render.render_text(result, colour=True)
    )
    assert render_markdown(result) == printable_json(old_render.render_markdown(result))
    assert render_json(result) == old_plan_json.render_json(result)


# Printed differently since the oracle: a C0 control or a backslash in a key, a source
# or a reason (escaped by `printable`); in a source or a reason, what Markdown reads
# and what `printable` escapes (in Markdown text, its backslash is escaped in turn).
_ESCAPED_NOW = re.compile(
    r"[\x00-\x1f\\`*\[\]<&~$\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]"
    r"|(?<![^\W_])_|_(?![^\W_])"
)


def _renders_as_before(result: Plan) -> bool:
    """Whether the old renderers printed `result` as now, but for `printable_json`."""
    texts = [text for change in result.changes for text in (change.source or "", change.reason)]
    keys, values = [], []
    for change in result.changes:
        for content in (change.before, change.after):
            if content is not None:
                _strings(content.essence, keys, values)
    return (
        not any(map(_ESCAPED_NOW.search, texts))
        and not any(re.search(r"[\x00-\x1f\\]", key) or "```" in key for key in keys)
        and not any("```" in value for value in values)
    )


def _strings(value: Any, keys: list[str], values: list[str]) -> None:
    """Append each key and str value under `value` to `keys` and `values`."""
    if isinstance(value, dict):
        keys += map(str, value)
        for item in value.values():
            _strings(item, keys, values)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _strings(item, keys, values)
    elif isinstance(value, str):
        values.append(value)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(result=plans(), repeat=st.integers(1, 25))
def test_random_plans_render_as_before(result: Plan, repeat: int) -> None:
    """Adds, updates, pauses, resumes, renames, removes and quarantined files, field
    values alike across types (1 / True / "1" / 1.0, -0.0), secrets, non-ASCII text;
    the changes repeated, so that what a rendering remembers is used."""
    assume(_renders_as_before(result))
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
    keys: list[str] = []
    _strings(batch, keys, [])
    assume(not any(re.search(r"[\x00-\x1f\\]", key) for key in keys))
    batch = batch + NESTED + batch
    for prefix in ("      ", "+   "):
        new = FieldViews(FieldDiffer(), _shown_unless_default(prefix))
        old = old_diff.FieldViews(old_diff.FieldDiffer(), old_render._shown_unless_default(prefix))
        for essence in batch:
            assert new(essence) == [printable_json(line) for line in old(essence)]
