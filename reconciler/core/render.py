"""Plans as text (Terraform-like), JSON (for scripts) and Markdown (for pull requests).

Rendering never changes a plan and a plan never depends on how it is rendered.
Values of secret-looking fields were already replaced by "(sensitive)" in the plan.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from reconciler.core.plan import ACTIONS, Change, Plan
from reconciler.core.vocabulary import Action
from reconciler.spec.model import JobSpec

FORMAT_VERSION = 1
_COLOUR = {"+": "32", "~": "33", "-": "31", "!": "35"}


def render_json(plan: Plan) -> str:
    return json.dumps(plan_document(plan), indent=2, sort_keys=False, default=str)


def plan_document(plan: Plan) -> dict[str, Any]:
    """The JSON plan: a stable, versioned document."""
    return {
        "format_version": FORMAT_VERSION,
        "plan_hash": plan.plan_hash,
        "revision": {"commit": plan.revision.commit, "dirty": plan.revision.dirty},
        "summary": dict(plan.summary),
        "has_changes": plan.has_changes,
        "refused": plan.refused,
        "changes": [_change_document(change) for change in plan.changes],
        "quarantined": [
            {"path": path, "errors": [d.as_dict() for d in diagnostics]}
            for path, diagnostics in sorted(plan.quarantined.items())
        ],
        "foreign": list(plan.foreign),
        "hints": list(plan.hints),
    }


def _change_document(change: Change) -> dict[str, Any]:
    return {
        "action": change.action,
        "job": change.job,
        "renamed_from": change.renamed_from,
        "source": change.source,
        "reason": change.reason,
        # What the plan hash covers of this change (a saved plan is checked against it).
        "content": {"before": change.before_key, "after": change.after_key},
        "diffs": [
            {"path": diff.path, "before": diff.before, "after": diff.after} for diff in change.diffs
        ],
        "next_fires_before": [_iso(moment) for moment in change.fires_before],
        "next_fires_after": [_iso(moment) for moment in change.fires_after],
    }


def render_text(plan: Plan, *, colour: bool = False) -> str:
    paint = _painter(colour)
    lines = [f"Revision: {plan.revision.label()}", ""]
    if not plan.has_changes:
        lines.append(_no_changes(plan))
    else:
        lines.append("Reconcile will perform these actions:")
        for change in plan.changes:
            lines.append("")
            lines.extend(_change_text(change, paint))
    lines.extend(_trailer_text(plan))
    return "\n".join(lines) + "\n"


def _no_changes(plan: Plan) -> str:
    """ "No changes." says the scheduler matches the files only when every file is valid."""
    if plan.quarantined:
        return (
            f"No changes for the valid files. {len(plan.quarantined)} file(s) are "
            "QUARANTINED (invalid): their jobs keep their last applied spec."
        )
    return "No changes. The scheduler matches the job files."


def _change_text(change: Change, paint: Any) -> list[str]:
    symbol = change.action.symbol
    where = f"  ({change.source})" if change.source else ""
    renamed = f" (was {change.renamed_from})" if change.renamed_from else ""
    lines = [paint(symbol, f"  {symbol} {change.action:<7} {change.job}") + renamed + where]
    lines.append(f"      # {change.reason}")
    if change.action != Action.ADD and change.action != Action.REMOVE:
        for diff in change.diffs:
            lines.append(f"      {diff.path}: {_value(diff.before)} -> {_value(diff.after)}")
    elif change.action == Action.ADD:
        # The JSON plan lists every field; people read only what differs from the defaults.
        for diff in change.diffs:
            if not _is_default(diff.path, diff.after):
                lines.append(f"      {diff.path}: {_value(diff.after)}")
    if change.fires_before:
        lines.append("      next fires before: " + ", ".join(map(_iso, change.fires_before)))
    if change.fires_after:
        lines.append("      next fires after:  " + ", ".join(map(_iso, change.fires_after)))
    return lines


def change_line(change: Change, *, limit: int = 3) -> str:
    """One line naming a change, for logs and job events:
    `~ nightly-report: schedule.cron "0 2 * * *" -> "0 3 * * *"`. Secret values are
    already `(sensitive)` in the diffs."""
    head = f"{change.action.symbol} {change.job}"
    if change.action == Action.ADD:
        return f"{head}: added from {change.source}"
    if change.action == Action.REMOVE:
        return f"{head}: removed"
    if change.action == Action.REPAIR:
        return f"{head}: repaired ({change.reason})"
    diffs = change.diffs
    parts = [f"{d.path} {_value(d.before)} -> {_value(d.after)}" for d in diffs[:limit]]
    if len(diffs) > limit:
        parts.append(f"and {len(diffs) - limit} more")
    return f"{head}: " + (", ".join(parts) if parts else change.reason)


def _trailer_text(plan: Plan) -> list[str]:
    lines: list[str] = []
    if plan.quarantined:
        lines += ["", "Quarantined files (their jobs keep their last applied spec):"]
        for diagnostics in (plan.quarantined[path] for path in sorted(plan.quarantined)):
            lines += [f"  {diagnostic.render()}" for diagnostic in diagnostics]
    if plan.foreign:
        lines += ["", "Foreign apscheduler_jobs rows (not ours, left alone):"]
        lines += [f"  {row_id}" for row_id in plan.foreign]
    if plan.hints:
        lines += ["", "Hints:"] + [f"  {hint}" for hint in plan.hints]
    counts = ", ".join(f"{plan.summary.get(action, 0)} to {action}" for action in ACTIONS)
    lines += ["", f"Plan: {counts}.", f"Plan hash: {plan.plan_hash}"]
    if plan.refused:
        lines += ["", f"REFUSED: {plan.refused}"]
    return lines


def render_markdown(plan: Plan) -> str:
    """For a pull-request comment: a summary table, then one collapsible diff."""
    lines = [f"### Reconcile plan for `{plan.revision.label()}`", ""]
    if plan.refused:
        lines += [f"> **Refused:** {plan.refused}", ""]
    if not plan.has_changes:
        lines.append(
            _no_changes(plan).replace("No changes", "**No changes", 1).replace(".", ".**", 1)
        )
    else:
        lines += ["| action | job | source | reason |", "| --- | --- | --- | --- |"]
        for change in plan.changes:
            renamed = f" (was `{change.renamed_from}`)" if change.renamed_from else ""
            lines.append(
                f"| {change.action.symbol} {change.action} | `{change.job}`{renamed} "
                f"| `{change.source or ''}` | {_escape(change.reason)} |"
            )
        lines += ["", "<details><summary>Field changes and next fire times</summary>", ""]
        lines += ["```diff", *_markdown_diff(plan), "```", "", "</details>"]
    if plan.quarantined:
        lines += ["", "**Quarantined files** (their jobs keep their last applied spec):", ""]
        for path in sorted(plan.quarantined):
            for diagnostic in plan.quarantined[path]:
                lines.append(f"- `{diagnostic.render()}`")
    if plan.foreign:
        lines += ["", "Foreign scheduler rows (left alone): " + ", ".join(plan.foreign)]
    if plan.hints:
        lines += ["", "**Hints:**", ""] + [f"- {_escape(hint)}" for hint in plan.hints]
    counts = " · ".join(f"{plan.summary.get(a, 0)} {a}" for a in ACTIONS)
    # The whole hash: `reconcile apply --plan-hash` takes exactly this.
    lines += ["", f"**Plan:** {counts}", "", f"Plan hash: `{plan.plan_hash}`"]
    return "\n".join(lines) + "\n"


def _markdown_diff(plan: Plan) -> list[str]:
    lines: list[str] = []
    for change in plan.changes:
        sign = {Action.ADD: "+", Action.REMOVE: "-"}.get(change.action, "!")
        lines.append(f"{sign} {change.action} {change.job}")
        for diff in change.diffs:
            if change.action in (Action.ADD, Action.REMOVE) and _is_default(
                diff.path, diff.after if change.action == Action.ADD else diff.before
            ):
                continue
            if diff.before is not None and change.action != Action.ADD:
                lines.append(f"-   {diff.path}: {_value(diff.before)}")
            if diff.after is not None and change.action != Action.REMOVE:
                lines.append(f"+   {diff.path}: {_value(diff.after)}")
        if change.fires_after:
            lines.append("    next fires: " + ", ".join(map(_iso, change.fires_after)))
    return lines


def _is_default(path: str, value: Any) -> bool:
    field = JobSpec.model_fields.get(path)
    if field is None:
        return path.startswith("schedule.interval.") and value == 0
    return bool(field.get_default(call_default_factory=True) == value)


def _painter(colour: bool) -> Any:
    def paint(symbol: str, text: str) -> str:
        return f"\x1b[{_COLOUR[symbol]}m{text}\x1b[0m" if colour else text

    return paint


def _value(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def _iso(moment: datetime) -> str:
    return moment.isoformat()


def _escape(text: str) -> str:
    return text.replace("|", "\\|")
