"""Large plans: rendered fast, opened by a summary by folder, and JSON written exactly as
`json.dumps` writes it whichever encoder does the writing."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.core import plan_json
from reconciler.core.plan import Plan
from reconciler.core.plan_json import plan_document, render_json
from reconciler.core.render import SUMMARY_FROM, render_markdown, render_text
from reconciler.core.state import DesiredJob, DesiredState
from tests.unit.core.planning import REVISION, applied, desired, plan, spec


def many_changes(count: int) -> Plan:
    """`count` adds, updates and removes of jobs in 20 folders."""
    template = spec("template", kwargs={"n": 0}, labels={"team": "t"})
    jobs: dict[str, DesiredJob] = {}
    for index in range(count // 2):
        job = template.model_copy(update={"name": f"new-{index:05d}", "kwargs": {"n": index}})
        jobs[job.name] = DesiredJob.of(job, source=f"team{index % 20}/f{index // 10}.yaml")
    olds = [
        template.model_copy(update={"name": f"old-{index:05d}", "kwargs": {"n": index}})
        for index in range(count - count // 2)
    ]
    for old in olds[: len(olds) // 2]:
        changed = old.model_copy(
            update={"schedule": spec("x", schedule={"cron": "1 * * * *"}).schedule}
        )
        jobs[old.name] = DesiredJob.of(changed, source=f"{old.name}.yaml")
    state = DesiredState(jobs=jobs, revision=REVISION)
    return plan(state, applied(*olds, rows=False), allow_mass_delete=True)


RENDERERS: dict[str, Callable[[Plan], str]] = {
    "text": render_text,
    "json": render_json,
    "markdown": render_markdown,
}


@pytest.fixture(scope="module")
def ten_thousand() -> Plan:
    result = many_changes(10_000)
    assert len(result.changes) == 10_000
    return result


@pytest.mark.parametrize("fmt", sorted(RENDERERS))
def test_ten_thousand_changes_render_in_well_under_a_second(ten_thousand: Plan, fmt: str) -> None:
    """The target is 0.1 s (bench/bench_render.py); this bound only catches a return to
    seconds (a per-field cost such as reading pydantic defaults again). CPU time, the
    fastest of two: the machine running the tests is shared."""
    seconds = []
    for _ in range(2):
        started = time.process_time()
        RENDERERS[fmt](ten_thousand)
        seconds.append(time.process_time() - started)
    assert min(seconds) < 1.0, seconds


def test_a_large_plan_opens_with_its_changes_by_folder() -> None:
    result = many_changes(40)
    text = render_text(result)
    head, _, changes = text.partition("Reconcile will perform these actions:")
    assert head.splitlines()[2:] == [
        "Changes by folder:",
        "",
        "  folder  add  update  remove  total",
        "  .         0      10      10     20",
        *(f"  {f'team{n}':<6}    1       0       0      1" for n in sorted(range(20), key=str)),
        "  total    20      10      10     40",
        "",
    ]
    assert changes.count("\n  + add ") == 20 and changes.count("\n  - remove ") == 10
    markdown = render_markdown(result)
    assert "| folder | add | update | remove | total |\n| --- | ---: | ---: | ---: | ---: |\n" in (
        markdown
    )
    assert "| `.` | 0 | 10 | 10 | 20 |" in markdown
    assert "| **total** | **20** | **10** | **10** | **40** |" in markdown
    assert markdown.index("| folder |") < markdown.index("| action | job |")


def test_a_small_plan_has_no_summary_table() -> None:
    result = many_changes(SUMMARY_FROM - 1)
    assert "Changes by folder" not in render_text(result)
    assert "| folder |" not in render_markdown(result)


# Values that encoders spell differently: floats (exponents, -0.0), integers beyond
# 64 bits, non-ASCII and DEL characters (NaN, infinities and lone surrogates are not
# valid job arguments).
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(alphabet=st.characters(codec="utf-8"), max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=6,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(before=json_values, after=json_values)
def test_json_plan_is_exactly_what_json_dumps_writes(before: Any, after: Any) -> None:
    old = [spec("changed", kwargs={"v": before}), spec("gone", kwargs={"v": before})]
    new = [spec("changed", kwargs={"v": after}), spec("added", kwargs={"v": after})]
    result = plan(desired(*new), applied(*old), allow_mass_delete=True)
    expected = json.dumps(plan_document(result), indent=2, sort_keys=False, default=str)
    assert render_json(result) == expected


def test_a_plan_without_floats_is_written_by_orjson(monkeypatch: pytest.MonkeyPatch) -> None:
    """json is only the fallback: a plan of strings, integers and booleans (every enum
    among them) never reaches it."""
    result = many_changes(SUMMARY_FROM)
    expected = render_json(result)

    def refuse(*args: object, **kwargs: object) -> str:
        raise AssertionError("json.dumps used for a plan without floats")

    monkeypatch.setattr(plan_json.json, "dumps", refuse)
    assert render_json(result) == expected
