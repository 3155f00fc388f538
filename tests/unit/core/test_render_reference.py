"""The fast renderers print exactly what a straightforward rendering prints, over random
plans: every change's fields walked by `FieldDiffer.between`, one change at a time,
nothing remembered across changes, the JSON written by `json.dumps` from the document.

The renderers remember what repeats across the jobs of a plan (field entries, lines,
fire-time lists) and write the JSON text without building the document; a fast path
that printed one byte differently from this reference fails here.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.core import render
from reconciler.core.diff import FieldDiffer
from reconciler.core.markdown_text import code_span, fence_for, inline_text
from reconciler.core.plan import Change, Plan
from reconciler.core.plan_json import plan_document, render_json
from reconciler.core.render import render_markdown, render_text
from reconciler.core.vocabulary import Action
from reconciler.printable import printable
from reconciler.spec.diagnostics import Diagnostic
from reconciler.spec.model import JobSpec
from tests.unit.core.planning import applied, desired, plan, spec

# ---------------------------------------------------------------------------------------
# The reference: one change at a time, every field from FieldDiffer.between.


def reference_json(result: Plan) -> str:
    return json.dumps(plan_document(result), indent=2, sort_keys=False, default=str)


def reference_text(result: Plan, *, colour: bool = False) -> str:
    lines = [f"Revision: {result.revision.label()}", ""]
    if not result.has_changes:
        lines.append(render._no_changes(result))
    else:
        if len(result.changes) >= render.SUMMARY_FROM:
            lines += render._summary_text(result.changes)
        lines.append("Reconcile will perform these actions:")
        for change in result.changes:
            lines += _text_change(change, colour=colour)
    lines += render._trailer_text(result)
    return "\n".join(lines) + "\n"


def _text_change(change: Change, *, colour: bool) -> list[str]:
    action = change.action
    head = f"  {action.symbol} {action:<7} {change.job}"
    if colour:
        head = f"\x1b[{render._COLOUR[action.symbol]}m{head}\x1b[0m"
    if change.renamed_from:
        head += f" (was {change.renamed_from})"
    if change.source:
        head += f"  ({printable(change.source)})"
    lines = ["", head, f"      # {printable(change.reason)}"]
    if action is Action.ADD:  # every field but those at their defaults
        lines += [
            f"      {printable(d.path)}: {render._value(d.after)}"
            for d in FieldDiffer().between(None, change.after)
            if not render._is_default(d.path, d.after)
        ]
    elif action is not Action.REMOVE:
        lines += [
            f"      {printable(d.path)}: {render._value(d.before)} -> {render._value(d.after)}"
            for d in FieldDiffer().between(change.before, change.after)
        ]
    for label, moments in (("before: ", change.fires_before), ("after:  ", change.fires_after)):
        if moments:
            lines.append(f"      next fires {label}" + ", ".join(m.isoformat() for m in moments))
    return lines


def reference_markdown(result: Plan) -> str:
    lines = [f"### Reconcile plan for `{result.revision.label()}`", ""]
    if result.refused:
        lines += [f"> **Refused:** {result.refused}", ""]
    if not result.has_changes:
        lines.append(
            render._no_changes(result)
            .replace("No changes", "**No changes", 1)
            .replace(".", ".**", 1)
        )
    else:
        if len(result.changes) >= render.SUMMARY_FROM:
            lines += render._summary_markdown(result.changes)
        lines += ["| action | job | source | reason |", "| --- | --- | --- | --- |"]
        for c in result.changes:
            renamed = f" (was `{c.renamed_from}`)" if c.renamed_from else ""
            source = code_span(printable(c.source or ""), in_table=True)
            lines.append(
                f"| {c.action.symbol} {c.action} | `{c.job}`{renamed} "
                f"| {source} | {inline_text(c.reason)} |"
            )
        lines += ["", "<details><summary>Field changes and next fire times</summary>", ""]
        block = [line for c in result.changes for line in _markdown_change(c)]
        fence = fence_for("\n".join(block))
        lines += [fence + "diff", *block, fence, "", "</details>"]
    if result.quarantined:
        lines += ["", "**Quarantined files** (their jobs keep their last applied spec):", ""]
        for path in sorted(result.quarantined):
            lines += [f"- {code_span(d.render())}" for d in result.quarantined[path]]
    if result.foreign:
        foreign = ", ".join(inline_text(row_id) for row_id in result.foreign)
        lines += ["", "Foreign scheduler rows (left alone): " + foreign]
    if result.hints:
        lines += ["", "**Hints:**", ""] + ["- " + h.replace("|", "\\|") for h in result.hints]
    counts = " · ".join(f"{result.summary.get(a, 0)} {a}" for a in render.ACTIONS)
    lines += ["", f"**Plan:** {counts}", "", f"Plan hash: `{result.plan_hash}`"]
    return "\n".join(lines) + "\n"


def _markdown_change(change: Change) -> list[str]:
    sign = {Action.ADD: "+", Action.REMOVE: "-"}.get(change.action, "!")
    lines = [f"{sign} {change.action} {change.job}"]
    diffs = FieldDiffer().between(change.before, change.after)
    whole = change.before is None or change.after is None
    for d in diffs:
        path = printable(d.path)
        if d.before is not None and not (whole and render._is_default(d.path, d.before)):
            lines.append(f"-   {path}: {render._value(d.before)}")
        if d.after is not None and not (whole and render._is_default(d.path, d.after)):
            lines.append(f"+   {path}: {render._value(d.after)}")
    if change.fires_before:
        lines.append("-   next fires: " + ", ".join(m.isoformat() for m in change.fires_before))
    if change.fires_after:
        lines.append("+   next fires: " + ", ".join(m.isoformat() for m in change.fires_after))
    return lines


# ---------------------------------------------------------------------------------------
# Random plans: jobs drawn from a small pool of names, so that a plan holds adds,
# updates, pauses, resumes, renames and removes at once, and field values that repeat
# across jobs in look-alike forms (1 / True / "1" / 1.0, -0.0, non-ASCII, secrets, a `|`).

scalars = st.sampled_from(
    [
        0,
        1,
        True,
        False,
        1.0,
        -0.0,
        2**70,
        "1",
        "x",
        "a|b",
        "ünï ✓",
        "\x7f",
        "sk-abcdefghijklmnopqrstu",
    ]
) | st.text(max_size=4)
json_values = st.recursive(
    st.none() | scalars,
    lambda inner: (
        st.lists(inner, max_size=2) | st.dictionaries(st.text(max_size=3), inner, max_size=2)
    ),
    max_leaves=5,
)
names = st.sampled_from([f"job-{n}" for n in range(8)])
schedules = st.sampled_from(
    [
        {"cron": "*/5 * * * *"},
        {"cron": "0 3 * * *"},
        {"cron": {"minute": "*/10", "hour": "8-18"}},
        {"interval": {"minutes": 10}},
        {"at": "2031-01-01T09:00:00"},
    ]
)


@st.composite
def job_specs(draw: st.DrawFn, name: str) -> JobSpec:
    fields: dict[str, Any] = {"schedule": draw(schedules)}
    optional = {
        "kwargs": st.dictionaries(
            st.sampled_from(["n", "a", "a-b", "api_key", "url"]), json_values, max_size=3
        ),
        "args": st.lists(json_values, max_size=2),
        "labels": st.dictionaries(
            st.sampled_from(["team", "x-y"]), st.sampled_from(["t1", "t|2"]), max_size=2
        ),
        "paused": st.booleans(),
        "queue": st.sampled_from(["default", "high_priority"]),
        "timezone": st.sampled_from(["UTC", "Europe/Berlin"]),
        "retries": st.integers(0, 2),
        "description": st.sampled_from(["one", "two | three", "ünïcode"]),
    }
    for key, strategy in optional.items():
        if draw(st.booleans()):
            fields[key] = draw(strategy)
    return spec(name, **fields)


@st.composite
def plans(draw: st.DrawFn) -> Plan:
    before = [draw(job_specs(n)) for n in sorted(draw(st.sets(names, max_size=6)))]
    after = [draw(job_specs(n)) for n in sorted(draw(st.sets(names, max_size=6)))]
    gone = {s.name for s in before} - {s.name for s in after}
    if gone and draw(st.booleans()):  # a rename of one of the jobs gone
        old = sorted(gone)[0]
        after.append(spec("renamed", previous_names=[old], schedule={"cron": "0 3 * * *"}))
    folders = st.sampled_from(["", "team-a/", "team-b/deep/"])
    sources = {s.name: f"{draw(folders)}{s.name}.yaml" for s in after}
    before_sources = {
        s.name: draw(st.sampled_from([f"{s.name}.yaml", sources.get(s.name, "x.yaml")]))
        for s in before
    }
    quarantined = {}
    if draw(st.booleans()):
        quarantined["broken | q.yaml"] = (
            Diagnostic("broken | q.yaml", 1, 2, "YAML_SYNTAX", "bad | ü"),
        )
    actual = applied(*before, sources=before_sources)
    return plan(
        desired(*after, quarantined=quarantined, sources=sources), actual, allow_mass_delete=True
    )


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(result=plans(), repeat=st.integers(1, 25))
def test_the_renderers_print_what_the_reference_prints(result: Plan, repeat: int) -> None:
    """Each format of a random plan, its changes repeated (what a renderer remembers
    across the changes of one plan is used), is the reference's text."""
    if repeat > 1 and result.changes:
        changes = result.changes * repeat
        result = dataclasses.replace(result, changes=changes)
    assert render_json(result) == reference_json(result)
    assert render_text(result) == reference_text(result)
    assert render_text(result, colour=True) == reference_text(result, colour=True)
    assert render_markdown(result) == reference_markdown(result)


def test_equal_fire_times_in_two_zones_print_in_their_own_zones() -> None:
    """Two hourly jobs fire at the same instants, one in UTC, one in Berlin: equal
    datetimes, printed differently (the renderers once wrote the first zone's text for
    both, remembering fire-time lists by equality; found by the test above)."""
    utc = spec("in-utc", schedule={"cron": "0 * * * *"})
    berlin = spec("in-berlin", schedule={"cron": "0 * * * *"}, timezone="Europe/Berlin")
    result = plan(desired(utc, berlin), applied())
    assert result.changes[0].fires_after == result.changes[1].fires_after
    for render_plan, reference in (
        (render_json, reference_json),
        (render_text, reference_text),
        (render_markdown, reference_markdown),
    ):
        text = render_plan(result)
        assert text == reference(result)
        assert "T14:00:00+01:00" in text and "T13:00:00+00:00" in text


def test_jobs_shaped_like_the_bench_corpus_print_what_the_reference_prints() -> None:
    """Adds, updates and removes of jobs like bench/corpus.py's (a unique name and
    description, a nested `kwargs.data` with a unique number and a secret-bearing URL,
    labels, queues, a misfire grace): the nested mappings are walked level by level,
    each path's values remembered across the jobs of the plan."""

    def corpus_job(number: int, *, team: str | None = None) -> JobSpec:
        url = "https://user:pw@example.com/hook" if number % 7 == 0 else "https://e.com/h"
        return spec(
            f"job-{number:05d}",
            description=f"generated job {number}",
            schedule={"cron": f"{number % 60} {number // 60 % 24} * * *"},
            queue=("default", "high_priority", "low_priority")[number % 3],
            timezone="Europe/Berlin",
            misfire_grace_seconds=30,
            kwargs={"data": {"key": "value", "n": number % 5 == 0 or number, "url": url}},
            labels={"team": team or f"t{number % 10}", "tier": "standard"},
        )

    before = [corpus_job(n) for n in range(40)]
    after = [corpus_job(n, team="platform" if n % 4 == 0 else None) for n in range(20, 80)]
    result = plan(desired(*after), applied(*before), allow_mass_delete=True)
    assert {change.action for change in result.changes} >= {
        Action.ADD,
        Action.UPDATE,
        Action.REMOVE,
    }
    assert render_json(result) == reference_json(result)
    assert render_text(result) == reference_text(result)
    assert render_markdown(result) == reference_markdown(result)
    assert "kwargs.data.n: true" in render_text(result)


def test_mappings_of_alternating_shapes_print_what_the_reference_prints() -> None:
    """Consecutive jobs whose mappings change shape at every level (a cron, an
    interval, a date; labels of the same size with other keys; kwargs with 1 / True /
    "1" / 1.0 under one key; an interval field at zero, a default flag set and not),
    removed and added: a renderer walks each mapping in the order of the last one of
    its level only when the keys are the same, and decides each path's default once."""
    schedules = [
        {"cron": "0 3 * * *"},
        {"interval": {"minutes": 0, "hours": 2}},
        {"at": "2031-01-01T09:00:00"},
        {"interval": {"minutes": 5}},
    ]
    kwargs = [{"n": 1}, {"n": True}, {"n": "1"}, {"n": 1.0}, {}, {"m": {"n": 0}}]
    labels = [{"team": "a", "tier": "b"}, {"team": "a", "zone": "b"}, {}, {"x-y": "a|b"}]
    specs = [
        spec(
            f"job-{number:03d}",
            schedule=schedules[number % len(schedules)],
            kwargs=kwargs[number % len(kwargs)],
            labels=labels[number % len(labels)],
            paused=number % 5 == 0,
            retries=number % 3,
            args=[] if number % 2 else [number],
        )
        for number in range(60)
    ]
    result = plan(desired(*specs[20:]), applied(*specs[:20]), allow_mass_delete=True)
    assert {change.action for change in result.changes} >= {Action.ADD, Action.REMOVE}
    assert render_json(result) == reference_json(result)
    assert render_text(result) == reference_text(result)
    assert render_markdown(result) == reference_markdown(result)
    assert "schedule.interval.hours: 2" in render_text(result)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(result=plans())
def test_changes_without_next_fires_or_diffs_print_what_the_reference_prints(
    result: Plan,
) -> None:
    """A plan made without previews (`reconcile apply`'s: no next fires in any change),
    one change of it also with nothing to show field by field (its content the same on
    both sides, as a repair's): the JSON closes such changes from text written once."""
    changes = [
        dataclasses.replace(change, fires_before=(), fires_after=()) for change in result.changes
    ]
    if changes and changes[0].before is not None:
        changes[0] = dataclasses.replace(changes[0], after=changes[0].before)
    unpreviewed = dataclasses.replace(result, changes=changes)
    assert render_json(unpreviewed) == reference_json(unpreviewed)
    if changes and changes[0].before is not None:
        assert '"diffs": [],\n      "next_fires_before": [],' in render_json(unpreviewed)
