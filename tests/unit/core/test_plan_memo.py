"""A previous plan's basis only saves work: the same inputs give the same plan with or
without it, whatever sequence of states came before (the daemon passes each plan's basis
to the next), and make_plan changes neither it nor any mapping it reads."""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from reconciler.core.memory import CoreMemory
from reconciler.core.plan import Plan, actual_after, make_plan
from reconciler.core.plan_basis import PlanBasis, timed_due
from reconciler.core.state import ActualState, DerivedDict, DesiredState
from reconciler.spec.diagnostics import Diagnostic
from reconciler.spec.model import JobSpec
from reconciler.store.job_state import pickle_job
from reconciler.store.scheduler_rows import RowDecoder
from tests.unit.core.planning import NOW, applied, desired, foreign_row, spec, with_rows


def same_plan(
    previous: PlanBasis | None,
    wanted: DesiredState,
    actual: ActualState,
    now: datetime = NOW,
    **options: Any,
) -> PlanBasis:
    """The basis of the plan made with `previous`, that plan checked equal to the plan
    made without it."""
    reusing = make_plan(wanted, actual, now=now, previous=previous, **options)
    fresh = make_plan(wanted, actual, now=now, **options)
    assert reusing.plan_hash == fresh.plan_hash
    assert reusing.changes == fresh.changes
    assert reusing.foreign == fresh.foreign
    assert reusing.basis is not None
    return reusing.basis


def plan_of(
    previous: PlanBasis | None,
    wanted: DesiredState,
    actual: ActualState,
    now: datetime = NOW,
    **options: Any,
) -> Plan:
    """The plan made with `previous`, checked equal to the plan made without it."""
    same_plan(previous, wanted, actual, now, **options)
    return make_plan(wanted, actual, now=now, previous=previous, **options)


def assert_only_claimed_keys_changed(before: Mapping[str, object], after: object) -> None:
    """A DerivedDict's claim (the keys it changed) is all that changed: the plan trusts it."""
    assert isinstance(after, DerivedDict) and after.base is before
    unchanged = (set(before) | set(after)) - after.changed
    assert all(before.get(key) is after.get(key) is not None for key in unchanged)


def test_basis_is_used_and_gives_the_same_plan_over_a_sequence_of_states() -> None:
    jobs = [spec("a"), spec("b", paused=True), spec("c", schedule={"interval": {"minutes": 5}})]
    wanted, actual = desired(*jobs), applied(*jobs)
    assert not plan_of(None, wanted, actual).has_changes
    basis = same_plan(None, wanted, actual)
    assert basis.unsettled == frozenset()
    # The same objects again: every job is reused, nothing is compared.
    assert basis.names_to_examine(wanted, actual, now=NOW) == set()
    assert not plan_of(basis, wanted, actual).has_changes
    # A lost row makes exactly that job examined.
    assert basis.names_to_examine(wanted, with_rows(actual, a=None), now=NOW) == {"a"}
    # A scheduler row lost: same desired and inventory objects, but the row differs.
    assert [c.action for c in plan_of(basis, wanted, with_rows(actual, a=None)).changes] == [
        "repair"
    ]
    # A spec edited: a new DesiredJob object for "c" only.
    edited = desired(jobs[0], jobs[1], spec("c", schedule={"interval": {"minutes": 7}}))
    edited_jobs = dict(edited.jobs)
    edited_jobs["a"], edited_jobs["b"] = wanted.jobs["a"], wanted.jobs["b"]
    edited = DesiredState(jobs=edited_jobs, revision=edited.revision)
    result = plan_of(basis, edited, actual)
    assert [(c.action, c.job) for c in result.changes] == [("update", "c")]
    # A foreign row appears in a new scheduler mapping.
    result = plan_of(basis, wanted, with_rows(actual, other=foreign_row("other")))
    assert result.foreign == ("other",)


def test_a_job_of_a_quarantined_file_is_removed_once_the_file_is_gone() -> None:
    jobs = [spec("a"), spec("b")]
    actual = applied(*jobs)
    broken = {"b.yaml": (Diagnostic("b.yaml", 1, 1, "YAML_SYNTAX", "broken"),)}
    frozen = desired(jobs[0], quarantined=broken)
    assert not plan_of(None, frozen, actual).has_changes
    basis = same_plan(None, frozen, actual)
    # Found in sync while its file was quarantined: not examined again...
    assert basis.names_to_examine(frozen, actual, now=NOW) == set()
    # ...until the set of quarantined files changes.
    gone = DesiredState(jobs=frozen.jobs, revision=frozen.revision)
    result = plan_of(basis, gone, actual, max_delete_fraction=1.0)
    assert [(c.action, c.job) for c in result.changes] == [("remove", "b")]


def test_a_job_whose_status_moves_with_time_is_examined_again_at_its_next_fire() -> None:
    ends = NOW + timedelta(minutes=30)
    job = spec("a", end=ends.isoformat())
    wanted, actual = desired(job), applied(job)
    assert not plan_of(None, wanted, actual).has_changes
    basis = same_plan(None, wanted, actual)
    assert basis.unsettled == frozenset()
    assert basis.timed == {"a": NOW + timedelta(minutes=5)}  # its next fire (*/5)
    assert basis.names_to_examine(wanted, actual, now=NOW + timedelta(minutes=4)) == set()
    assert basis.names_to_examine(wanted, actual, now=NOW + timedelta(minutes=5)) == {"a"}
    assert basis.names_to_examine(wanted, actual, now=NOW - timedelta(seconds=1)) == {"a"}
    later = NOW + timedelta(hours=1)
    reusing = make_plan(wanted, actual, now=later, previous=basis)
    assert [(c.action, c.job) for c in reusing.changes] == [("update", "a")]
    assert reusing.plan_hash == make_plan(wanted, actual, now=later).plan_hash


def test_a_past_one_off_is_settled_for_good_and_a_jittered_job_never() -> None:
    past = spec("past", schedule={"at": (NOW - timedelta(days=1)).isoformat()})
    ahead = spec("ahead", schedule={"at": (NOW + timedelta(days=1)).isoformat()})
    jittered = spec("jittered", end=(NOW + timedelta(days=1)).isoformat(), jitter_seconds=30)
    wanted, actual = desired(past, ahead, jittered), applied(past, ahead, jittered)
    done = replace(actual.inventory["past"], status="completed")  # as applying it left it
    actual = ActualState(
        inventory={**actual.inventory, "past": done},
        scheduler={k: v for k, v in actual.scheduler.items() if k != "past"},
    )
    assert not plan_of(None, wanted, actual).has_changes
    basis = same_plan(None, wanted, actual)
    assert basis.timed == {"past": None, "ahead": NOW + timedelta(days=1)}
    assert basis.unsettled == {"jittered"}
    much_later = NOW + timedelta(days=400)
    assert basis.names_to_examine(wanted, actual, now=much_later) == {"ahead", "jittered"}
    changed = plan_of(basis, wanted, actual, now=much_later)
    assert [(c.action, c.job) for c in changed.changes] == [
        ("update", "ahead"),
        ("update", "jittered"),
    ]


def test_actual_after_is_what_the_plan_leaves() -> None:
    kept, edited, dropped = spec("kept"), spec("edited"), spec("dropped")
    actual = applied(kept, edited, dropped)
    changed = spec("edited", kwargs={"n": 2})
    wanted = desired(kept, changed, spec("new"))
    result = make_plan(wanted, actual, now=NOW, max_delete_fraction=1.0)
    decoder, written = RowDecoder(), {}
    for change in result.changes:
        if change.target is not None:
            job = change.target.scheduler
            written[job.id] = decoder.decode(job.id, NOW.timestamp(), pickle_job(job, NOW))
    after = actual_after(actual, result, written)
    assert set(after.inventory) == set(after.scheduler) == {"kept", "edited", "new"}
    assert after.inventory["kept"] is actual.inventory["kept"]
    assert after.scheduler["kept"] is actual.scheduler["kept"]
    assert after.inventory["edited"].spec_hash == wanted.jobs["edited"].spec_hash
    assert after.scheduler["new"] is written["new"]
    assert not make_plan(wanted, after, now=NOW).has_changes


def test_actual_after_a_rename_holds_the_job_under_its_new_name() -> None:
    """The daemon's next watch pass plans from `actual_after` (its inventory fingerprint
    moved only by its own writes): a renamed job left out of it was planned as an `add`
    on that pass (found from outside: `+ tock: added` logged after `~ tock: name`)."""
    actual = applied(spec("tick"), spec("other"))
    wanted = desired(spec("tock", previous_names=["tick"]), spec("other"))
    result = make_plan(wanted, actual, now=NOW)
    assert [(c.action, c.job) for c in result.changes] == [("rename", "tock")]
    decoder, written = RowDecoder(), {}
    for change in result.changes:
        assert change.target is not None
        job = change.target.scheduler
        written[job.id] = decoder.decode(job.id, NOW.timestamp(), pickle_job(job, NOW))
    after = actual_after(actual, result, written)
    assert set(after.inventory) == set(after.scheduler) == {"tock", "other"}
    assert after.inventory["tock"].spec_hash == wanted.jobs["tock"].spec_hash
    assert not make_plan(wanted, after, now=NOW, previous=result.basis).has_changes


def test_random_sequences_of_states_give_the_plans_of_a_fresh_diff() -> None:
    """A daemon's life in miniature: each step changes a few jobs' desired, inventory or
    scheduler objects (or the clock, or the quarantine), sometimes applies the plan, and
    the plan made with the last basis must equal the plan made from scratch at every
    step."""
    rng = random.Random(20261130)
    names = [f"job-{n}" for n in range(12)]

    def variant(name: str, now: datetime) -> JobSpec:
        """One of eight specs; "ends soon" ends 30 minutes after the current clock, a
        one-off fires within the hour or fired half an hour ago."""
        at = now + timedelta(minutes=rng.choice([-30, 7, 25, 50]))
        return rng.choice(
            [
                spec(name),
                spec(name, kwargs={"n": 1}),
                spec(name, paused=True),
                spec(name, end=(now + timedelta(minutes=30)).isoformat()),
                spec(name, schedule={"interval": {"minutes": 7}}),
                spec(name, schedule={"at": at.isoformat()}),
                spec(name, schedule={"interval": {"minutes": 7}}, end=at.isoformat()),
                spec(name, end=(now + timedelta(minutes=30)).isoformat(), jitter_seconds=60),
            ]
        )

    picked = [variant(name, NOW) for name in names]
    wanted, actual = desired(*picked), applied(*picked)
    basis: PlanBasis | None = None
    now = NOW
    examined = []
    broken = {"job-0.yaml": (Diagnostic("job-0.yaml", 1, 1, "YAML_SYNTAX", "broken"),)}
    for _ in range(600):
        jobs = dict(wanted.jobs)
        quarantined = dict(wanted.quarantined)
        for name in rng.sample(names, rng.randint(0, 3)):
            roll = rng.random()
            if roll < 0.5:  # edited (or, rarely, unchanged but re-parsed: a new object)
                jobs[name] = desired(variant(name, now)).jobs[name]
            elif roll < 0.7:
                jobs.pop(name, None)
            elif roll < 0.75:
                actual = with_rows(actual, **{name: None})
            elif roll < 0.8:  # another process applied another version of the job
                other = applied(variant(name, now))
                inventory = {**actual.inventory, name: other.inventory[name]}
                actual = ActualState(inventory=inventory, scheduler=actual.scheduler)
            elif roll < 0.85:
                actual = with_rows(actual, **{f"foreign-{name}": foreign_row(f"foreign-{name}")})
            elif roll < 0.9:  # its owner removed it
                actual = with_rows(actual, **{f"foreign-{name}": None})
            elif roll < 0.95 and name in actual.scheduler:
                # A fire moved it on (its verdict stands), or a hand stopped it (not).
                row = actual.scheduler[name]
                moved = None if row.next_run_time is None or rng.random() < 0.3 else 60.0
                later = None if moved is None else row.next_run_time + moved  # type: ignore[operator]
                actual = with_rows(actual, **{name: replace(row, next_run_time=later)})
            else:
                quarantined = {} if quarantined else broken
        clock = rng.random()
        if clock < 0.3:  # time passes, across fire times or not
            now += timedelta(minutes=rng.choice([1, 3, 5, 7, 20]), seconds=rng.choice([0, 30]))
        elif clock < 0.33:  # the clock is set back
            now -= timedelta(minutes=rng.choice([1, 10]))
        wanted = DesiredState(jobs=jobs, quarantined=quarantined, revision=wanted.revision)
        options = {"now": now, "max_delete_fraction": 1.0}
        examine = basis.names_to_examine(wanted, actual, now=now) if basis is not None else None
        examined.append(len(names) if examine is None else len(examine))
        reusing = make_plan(wanted, actual, previous=basis, **options)
        fresh = make_plan(wanted, actual, **options)
        assert reusing.plan_hash == fresh.plan_hash
        assert reusing.changes == fresh.changes and reusing.foreign == fresh.foreign
        basis = reusing.basis
        assert basis is not None and basis.due == timed_due(basis.timed)
        if rng.random() < 0.6:  # applied: the next state is what the plan leaves
            decoder, written = RowDecoder(), {}
            for change in fresh.changes:
                if change.target is not None:
                    job = change.target.scheduler
                    paused = change.target.status == "paused"
                    moment = None if paused else now
                    written[job.id] = decoder.decode(
                        job.id,
                        None if moment is None else moment.timestamp(),
                        pickle_job(job, moment),
                    )
            after = actual_after(actual, fresh, written)
            for before_map, after_map in (
                (actual.inventory, after.inventory),
                (actual.scheduler, after.scheduler),
            ):
                assert_only_claimed_keys_changed(before_map, after_map)
            actual = after
    # The basis was really used: most passes examined a few names, not all of them.
    assert sorted(examined)[len(examined) // 2] <= 4, examined


def test_deriving_from_a_derived_mapping_changes_neither() -> None:
    """Generations are not chained in memory, yet no mapping is modified to that end: a
    derived base is held weakly."""
    first = {"a": 1, "b": 2}
    second = DerivedDict({**first, "b": 3}, base=first, changed=["b"])
    third = DerivedDict({**second, "c": 4}, base=second, changed=["c"])
    assert second.base is first and second.changed == {"b"}
    assert third.base is second and dict(second) == {"a": 1, "b": 3}
    del second
    assert third.base is None  # nothing holds it: a diff against it compares everything


def test_a_core_memory_only_saves_work() -> None:
    """The engine's CoreMemory lives for the process: plans made with it are the plans
    made without it, and a job planned again reuses its scheduler row content."""
    memory = CoreMemory()
    jobs = [spec("a"), spec("b", paused=True)]
    wanted = desired(*jobs)
    for actual in (applied(), applied(*jobs), with_rows(applied(*jobs), a=None)):
        remembered = make_plan(wanted, actual, now=NOW, memory=memory)
        assert remembered.changes == make_plan(wanted, actual, now=NOW).changes
    first = make_plan(wanted, applied(), now=NOW, memory=memory).changes[0].target
    again = make_plan(wanted, applied(), now=NOW, memory=memory).changes[0].target
    assert first is not None and again is not None
    assert again.scheduler is first.scheduler
