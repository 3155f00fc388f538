"""The plan is a pure function of desired and actual state: every action, every rule."""

from __future__ import annotations

import dataclasses
import hashlib

from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.core.diff import SENSITIVE, FieldDiffer
from reconciler.core.plan import Change, plan_hash, split_intent
from reconciler.core.plan_json import plan_document
from reconciler.core.vocabulary import Action
from reconciler.spec.diagnostics import Diagnostic
from reconciler.spec.essence import canonical_json
from tests.unit.core.planning import (
    applied,
    desired,
    foreign_row,
    plan,
    spec,
    with_rows,
)


def actions(result):
    return [(change.action, change.job) for change in result.changes]


def test_nothing_changed_is_no_changes() -> None:
    jobs = [spec("a"), spec("b", paused=True)]
    result = plan(desired(*jobs), applied(*jobs))
    assert not result.has_changes
    assert result.refused is None
    assert dict(result.summary) == dict.fromkeys(
        ("add", "update", "pause", "resume", "rename", "remove", "repair"), 0
    )


def test_new_job_is_added_with_its_next_fires() -> None:
    result = plan(desired(spec("a")), applied())
    assert actions(result) == [("add", "a")]
    change = result.changes[0]
    assert change.reason == "declared in a.yaml:1, not scheduled yet"
    assert [t.isoformat() for t in change.fires_after] == [
        "2026-11-22T12:05:00+00:00",
        "2026-11-22T12:10:00+00:00",
        "2026-11-22T12:15:00+00:00",
    ]
    assert change.target is not None and change.target.status == "active"


def test_changed_schedule_is_an_update_with_field_diff_and_fires_before_after() -> None:
    before, after = spec("a"), spec("a", schedule={"cron": "0 * * * *"})
    result = plan(desired(after), applied(before))
    assert actions(result) == [("update", "a")]
    change = result.changes[0]
    assert [
        (d.path, d.before, d.after) for d in FieldDiffer().between(change.before, change.after)
    ] == [("schedule.cron", "*/5 * * * *", "0 * * * *")]
    assert change.fires_before[0].isoformat() == "2026-11-22T12:05:00+00:00"
    assert change.fires_after[0].isoformat() == "2026-11-22T13:00:00+00:00"
    assert change.target is not None and not change.target.keep_next_run_time


def test_changed_kwargs_keep_the_row_timing() -> None:
    result = plan(desired(spec("a", kwargs={"n": 2})), applied(spec("a", kwargs={"n": 1})))
    change = result.changes[0]
    assert change.action == "update"
    assert change.fires_before == change.fires_after == ()
    assert change.target is not None and change.target.keep_next_run_time


def test_pause_and_resume() -> None:
    result = plan(desired(spec("a", paused=True)), applied(spec("a")))
    assert actions(result) == [("pause", "a")]
    target = result.changes[0].target
    assert target is not None and target.status == "paused"
    result = plan(desired(spec("a")), applied(spec("a", paused=True)))
    assert actions(result) == [("resume", "a")]
    assert result.changes[0].fires_after  # resumed: next fires from now


def test_pause_together_with_other_edits_is_an_update() -> None:
    result = plan(desired(spec("a", paused=True, queue="scheduled")), applied(spec("a")))
    assert actions(result) == [("update", "a")]


def test_undeclared_job_is_removed() -> None:
    jobs = [spec(name) for name in "abc"]
    result = plan(desired(*jobs[:2]), applied(*jobs))
    assert actions(result) == [("remove", "c")]
    assert result.refused is None


def test_quarantined_file_keeps_its_jobs_untouched() -> None:
    jobs = [spec("a"), spec("b")]
    broken = {"b.yaml": (Diagnostic("b.yaml", 3, 1, "YAML_SYNTAX", "bad"),)}
    result = plan(desired(jobs[0], quarantined=broken), applied(*jobs))
    assert not result.has_changes
    assert list(result.quarantined) == ["b.yaml"]


def test_quarantined_job_is_still_repaired_to_its_last_applied_spec() -> None:
    jobs = [spec("a"), spec("b")]
    broken = {"b.yaml": (Diagnostic("b.yaml", 3, 1, "YAML_SYNTAX", "bad"),)}
    actual = with_rows(applied(*jobs), b=None)
    result = plan(desired(jobs[0], quarantined=broken), actual)
    assert actions(result) == [("repair", "b")]
    assert "quarantined" in result.changes[0].reason


def test_missing_scheduler_row_is_repaired() -> None:
    result = plan(desired(spec("a")), with_rows(applied(spec("a")), a=None))
    assert actions(result) == [("repair", "a")]
    assert result.changes[0].reason == "drift: its apscheduler_jobs row is missing"


def test_changed_trigger_in_scheduler_row_is_repaired() -> None:
    other = applied(spec("a", schedule={"cron": "1 * * * *"})).scheduler["a"]
    result = plan(desired(spec("a")), with_rows(applied(spec("a")), a=other))
    assert actions(result) == [("repair", "a")]
    assert "trigger differs" in result.changes[0].reason


def test_wrong_callable_and_unreadable_rows_are_repaired() -> None:
    row = applied(spec("a")).scheduler["a"]
    wrong = dataclasses.replace(row, func="old.module:gone")
    assert (
        "instead of"
        in plan(desired(spec("a")), with_rows(applied(spec("a")), a=wrong)).changes[0].reason
    )
    broken = dataclasses.replace(row, readable=False)
    assert (
        "cannot be decoded"
        in plan(desired(spec("a")), with_rows(applied(spec("a")), a=broken)).changes[0].reason
    )


def test_paused_state_mismatch_is_repaired() -> None:
    row = applied(spec("a")).scheduler["a"]
    result = plan(
        desired(spec("a")),
        with_rows(applied(spec("a")), a=dataclasses.replace(row, next_run_time=None)),
    )
    assert actions(result) == [("repair", "a")]


def test_foreign_rows_are_reported_and_never_touched() -> None:
    result = plan(desired(spec("a")), with_rows(applied(spec("a")), zz=foreign_row("zz")))
    assert not result.has_changes
    assert result.foreign == ("zz",)


def test_removing_more_than_the_fraction_is_refused() -> None:
    jobs = [spec(f"j{i}") for i in range(10)]
    result = plan(desired(*jobs[:2]), applied(*jobs), max_delete_fraction=0.5)
    assert result.refused is not None and "8 of 10" in result.refused
    allowed = plan(desired(*jobs[:2]), applied(*jobs), allow_mass_delete=True)
    assert allowed.refused is None and allowed.summary["remove"] == 8


def test_empty_desired_set_is_refused() -> None:
    result = plan(desired(), applied(spec("a")), max_delete_fraction=1.0)
    assert result.refused is not None and "no job at all" in result.refused


def test_past_one_off_date_is_added_as_completed_without_fires() -> None:
    result = plan(desired(spec("once", schedule={"at": "2020-01-01T00:00:00"})), applied())
    change = result.changes[0]
    assert change.action == "add" and change.fires_after == ()
    assert change.target is not None and change.target.status == "completed"


def test_secret_values_never_enter_what_a_plan_shows() -> None:
    before = spec("a", kwargs={"password": "hunter2-canary", "user": "x"})
    after = spec("a", kwargs={"password": "new-canary", "user": "y"})
    change = plan(desired(after), applied(before)).changes[0]
    diffs = FieldDiffer().between(change.before, change.after)
    assert "canary" not in repr(diffs) and "canary" not in repr(change.before)
    assert ("kwargs.password", SENSITIVE, SENSITIVE) in [(d.path, d.before, d.after) for d in diffs]


def test_plan_hash_is_stable_and_moves_with_the_changes() -> None:
    first = plan(desired(spec("a"), spec("b")), applied(spec("a")))
    again = plan(desired(spec("a"), spec("b")), applied(spec("a")))
    other = plan(desired(spec("a"), spec("c")), applied(spec("a")))
    assert first.plan_hash == again.plan_hash
    assert first.plan_hash != other.plan_hash


def test_plan_is_pure() -> None:
    state = desired(spec("a"), spec("b", paused=True))
    first, second = plan(state, applied(spec("b"))), plan(state, applied(spec("b")))
    assert plan_document(first) == plan_document(second)
    assert [c.target.scheduler.fingerprint for c in first.changes if c.target] == [
        c.target.scheduler.fingerprint for c in second.changes if c.target
    ]


texts = st.one_of(st.none(), st.text(max_size=8), st.text(alphabet="\ud800\udfff€a", max_size=3))


@settings(max_examples=200, deadline=None)
@given(
    rows=st.lists(
        st.tuples(st.sampled_from(list(Action)), st.text(max_size=8), texts, texts, texts),
        max_size=6,
    )
)
def test_the_plan_hash_is_sha256_of_the_canonical_json(rows) -> None:
    """plan_hash skips canonical_json's search for floats (a change holds none): the
    same digests, and the same error for a lone surrogate (which orjson refuses)."""
    changes = [
        Change(action, job, None, "why", renamed_from=old, before_key=was, after_key=now)
        for action, job, old, was, now in rows
    ]

    def digest(part: object) -> str:
        return hashlib.sha256(canonical_json(part).encode()).hexdigest()[:32]

    assert _outcome(lambda: plan_hash(changes)) == _outcome(
        lambda: "".join(digest(part) for part in split_intent(changes))
    )


def _outcome(compute):
    try:
        return compute()
    except UnicodeEncodeError:
        return "UnicodeEncodeError"
