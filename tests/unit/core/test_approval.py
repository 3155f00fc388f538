"""The plan hash covers actions, jobs and content, never reasons; mismatches are told
apart by its halves (pure)."""

from __future__ import annotations

from dataclasses import replace

from reconciler.core.approval import explain_mismatch
from reconciler.core.plan import Change, Plan, plan_hash
from reconciler.core.state import Revision


def change(job: str, *, before: str | None = "h1|active|a.yaml", after: str = "h2|active|a.yaml"):
    return Change(
        action="update",
        job=job,
        source="a.yaml",
        reason="spec changed",
        before_key=before,
        after_key=after,
    )


def plan_of(*changes: Change) -> Plan:
    return Plan(
        changes=changes,
        quarantined={},
        foreign=(),
        revision=Revision(),
        managed_jobs=1,
        desired_jobs=1,
        plan_hash=plan_hash(changes),
    )


def test_rewording_a_reason_keeps_the_hash_content_changes_it() -> None:
    base = change("a")
    assert plan_hash([base]) == plan_hash([replace(base, reason="another wording")])
    assert plan_hash([base]) != plan_hash([replace(base, after_key="h3|active|a.yaml")])
    assert plan_hash([base]) != plan_hash([replace(base, action="pause")])
    assert plan_hash([base]) != plan_hash([replace(base, job="b")])
    assert len(plan_hash([base])) == 64


def test_a_moved_state_and_a_different_plan_get_their_own_message() -> None:
    approved = plan_of(change("a"))
    moved = plan_of(change("a", before="h9|active|a.yaml"))
    assert approved.plan_hash[:32] == moved.plan_hash[:32]
    text = explain_mismatch(approved.plan_hash, moved)
    assert text.startswith("the state moved") and " a " in text
    different = plan_of(change("a", after="h7|active|a.yaml"))
    text = explain_mismatch(approved.plan_hash, different)
    assert text.startswith("a different plan")
    assert approved.plan_hash in text and different.plan_hash in text
