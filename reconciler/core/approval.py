"""Approved plans: what `apply --plan-hash H` and `apply plan.json` check, and how a
mismatch is explained (pure).

Terraform's saved plans, kept: an approved plan is applied exactly, or not at all. A
mismatch is one of two stories, and people need to know which:
- a different plan: the files (or the approval) are not the ones reviewed; show both
  hashes and the jobs whose planned change differs;
- the state moved: the same changes now start from another state (someone applied in
  between); say which jobs.
The plan hash's two halves (core.plan.plan_hash) tell the two apart from the hash
alone; a saved plan, which lists its changes, tells them apart job by job.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from reconciler.core.plan import Change, Plan

HASH_PATTERN = re.compile(r"^[0-9a-f]{64}$")
_HALF = 32


@dataclass(frozen=True, slots=True)
class ApprovedChange:
    action: str
    job: str
    renamed_from: str | None
    before: str | None  # content keys, as hashed (Change.before_key / after_key)
    after: str | None

    def intent(self) -> tuple[Any, ...]:
        return (self.action, self.job, self.renamed_from, self.after)


@dataclass(frozen=True, slots=True)
class SavedPlan:
    """A plan written by `reconcile plan --out FILE`: its hash and its changes."""

    plan_hash: str
    changes: tuple[ApprovedChange, ...]
    path: str = ""


def read_saved_plan(text: str, *, path: str) -> SavedPlan:
    """Parse a saved plan. Raises ValueError (not a saved plan of this format)."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not JSON: {error}") from None
    if not isinstance(document, dict) or document.get("format_version") != 1:
        raise ValueError(f"{path} is not a saved plan (format_version 1)")
    plan_hash = document.get("plan_hash")
    changes = document.get("changes")
    if not isinstance(plan_hash, str) or not HASH_PATTERN.match(plan_hash):
        raise ValueError(f"{path} has no valid plan_hash")
    if not isinstance(changes, list):
        raise ValueError(f"{path} has no list of changes")
    try:
        approved = tuple(
            ApprovedChange(
                action=str(item["action"]),
                job=str(item["job"]),
                renamed_from=item.get("renamed_from"),
                before=item["content"]["before"],
                after=item["content"]["after"],
            )
            for item in changes
        )
    except (KeyError, TypeError) as error:
        raise ValueError(f"{path}: a change lacks {error}") from None
    return SavedPlan(plan_hash=plan_hash, changes=approved, path=path)


def approved_of(change: Change) -> ApprovedChange:
    return ApprovedChange(
        change.action, change.job, change.renamed_from, change.before_key, change.after_key
    )


def explain_mismatch(approved_hash: str, plan: Plan, *, approved: SavedPlan | None = None) -> str:
    """Why `plan` is not the approved one, in one paragraph."""
    now = plan.plan_hash
    if approved is not None:
        return _explain_by_job(approved, plan)
    if not HASH_PATTERN.match(approved_hash):
        return (
            f"{approved_hash!r} is not a plan hash (64 hex digits, as `reconcile plan` "
            f"prints it in every format); the plan now has hash {now}"
        )
    if approved_hash[:_HALF] == now[:_HALF]:
        jobs = [c.job for c in plan.changes if c.before_key is not None]
        return (
            "the state moved since the plan was made: the same changes now start from "
            f"another state of {_names(jobs)} (approved {approved_hash}, now {now}); "
            "review `reconcile plan` again"
        )
    return (
        f"a different plan: approved {approved_hash}, but the job files and the state now "
        f"give {now}; the plan now changes {_names([c.job for c in plan.changes]) or 'nothing'}"
        "; review `reconcile plan` again"
    )


def _explain_by_job(approved: SavedPlan, plan: Plan) -> str:
    before: dict[str, ApprovedChange] = {c.job: c for c in approved.changes}
    after: dict[str, ApprovedChange] = {c.job: approved_of(c) for c in plan.changes}
    changed = sorted(
        job for job in before.keys() & after.keys() if before[job].intent() != after[job].intent()
    )
    added = sorted(after.keys() - before.keys())
    gone = sorted(before.keys() - after.keys())
    moved = sorted(
        job
        for job in before.keys() & after.keys()
        if before[job].intent() == after[job].intent() and before[job].before != after[job].before
    )
    where = f" ({approved.path})" if approved.path else ""
    if changed or added:
        parts = _parts({"changed": changed, "new": added, "no longer planned": gone})
        return (
            f"a different plan: the saved plan{where} has hash {approved.plan_hash}, the job "
            f"files and the state now give {plan.plan_hash}; {parts}; plan again"
        )
    parts = _parts({"changed since the plan was made": moved, "need no change any more": gone})
    return (
        f"the state moved since the plan{where} was made: {parts}; the saved plan "
        f"{approved.plan_hash} was not applied; plan again"
    )


def _parts(groups: Mapping[str, Sequence[str]]) -> str:
    return "; ".join(f"{label}: {_names(jobs)}" for label, jobs in groups.items() if jobs)


def _names(jobs: Sequence[str], limit: int = 10) -> str:
    shown = ", ".join(jobs[:limit])
    return shown + (f" and {len(jobs) - limit} more" if len(jobs) > limit else "")
