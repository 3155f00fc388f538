"""reconciler/core/render.py as it was before helper renderfast2 made the text render faster
(main at 858d796), verbatim but for this docstring and its imports of the other old modules:
what tests/unit/core/test_render_old.py compares the renderers with."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import datetime
from operator import attrgetter
from typing import Any

from reconciler.core.plan import ACTIONS, Change, Plan
from reconciler.core.vocabulary import Action
from reconciler.spec.model import JobSpec
from tests.unit.core.old_diff import FieldDiffer, FieldViews

# From this many changes on, text and Markdown open with a summary by folder and action.
SUMMARY_FROM = 20
_COLOUR = {"+": "32", "~": "33", "-": "31", "!": "35"}


def render_text(plan: Plan, *, colour: bool = False) -> str:
    lines = [f"Revision: {plan.revision.label()}", ""]
    if not plan.has_changes:
        lines.append(_no_changes(plan))
    else:
        if len(plan.changes) >= SUMMARY_FROM:
            lines += _summary_text(plan.changes)
        lines.append("Reconcile will perform these actions:")
        write = _TextChanges(colour=colour).write
        for change in plan.changes:
            write(change, lines)
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


class _TextChanges:
    """The lines of each change of one text plan, each opened by an empty line, appended
    to the plan's lines."""

    def __init__(self, *, colour: bool) -> None:
        # Per action, what comes before and after the job's name in its head line.
        self._heads = {
            action: (
                f"\x1b[{_COLOUR[action.symbol]}m" * colour + f"  {action.symbol} {action:<7} ",
                "\x1b[0m" * colour,
            )
            for action in Action
        }
        # The JSON plan lists every field; people read only what differs from the defaults.
        self._differ = FieldDiffer()
        self._added = FieldViews(self._differ, _shown_unless_default("      "))
        self._moments = FireTimes(_joined)

    def write(self, change: Change, lines: list[str]) -> None:
        action = change.action
        opening, closing = self._heads[action]
        head = opening + change.job + closing
        if change.renamed_from:
            head += f" (was {change.renamed_from})"
        if change.source:
            head += f"  ({change.source})"
        lines += ("", head, "      # " + change.reason)
        if action is Action.ADD:
            if change.after is not None:
                self._added.into(change.after.essence, lines)
        elif action is not Action.REMOVE:
            lines += [
                f"      {diff.path}: {_value(diff.before)} -> {_value(diff.after)}"
                for diff in self._differ.between(change.before, change.after)
            ]
        if change.fires_before:
            lines.append("      next fires before: " + self._moments(change.fires_before))
        if change.fires_after:
            lines.append("      next fires after:  " + self._moments(change.fires_after))


def _shown_unless_default(prefix: str) -> Callable[[str], Callable[[Any], str | None]]:
    """Per path, a field as one line, `{prefix}path: value`; None for a field at its
    default (`_is_default`, decided per path once: most fields have no default)."""

    def view(path: str) -> Callable[[Any], str | None]:
        head = f"{prefix}{path}: "
        default = _DEFAULTS.get(path, _NO_DEFAULT)
        if isinstance(default, _NoDefault) and not path.startswith("schedule.interval."):
            return lambda value: head + _value(value)
        return lambda value: None if _is_default(path, value) else head + _value(value)

    return view


def change_line(change: Change, *, limit: int = 3, differ: FieldDiffer | None = None) -> str:
    """One line naming a change, for logs and job events:
    `~ nightly-report: schedule.cron "0 2 * * *" -> "0 3 * * *"`, secret values shown
    as `(sensitive)`. Pass one `differ` for the lines of a whole plan."""
    head = f"{change.action.symbol} {change.job}"
    if change.action == Action.ADD:
        return f"{head}: added from {change.source}"
    if change.action == Action.REMOVE:
        return f"{head}: removed"
    if change.action == Action.REPAIR:
        return f"{head}: repaired ({change.reason})"
    diffs = (differ or FieldDiffer()).between(change.before, change.after)
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


def _summary_text(changes: Iterable[Change]) -> list[str]:
    """The changes counted by folder and action, as an aligned table."""
    header, rows, total = _summary_rows(changes)
    table = [header, *rows, total]
    widths = [max(len(row[column]) for row in table) for column in range(len(header))]
    lines = ["Changes by folder:", ""]
    for row in table:
        cells = [row[0].ljust(widths[0])]
        cells += [cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True)]
        lines.append("  " + "  ".join(cells).rstrip())
    return [*lines, ""]


def _summary_rows(
    changes: Iterable[Change],
) -> tuple[list[str], list[list[str]], list[str]]:
    """Header, one row per folder (sorted), and the total row; a column per action that
    occurs, in the plan's action order."""
    # Counted by file in C first (a plan's changes are far more than its files).
    counts: Counter[tuple[str, Action]] = Counter()
    for (source, action), count in Counter(map(_SOURCE_AND_ACTION, changes)).items():
        counts[_folder(source), action] += count
    actions = [action for action in ACTIONS if any(a == action for _, a in counts)]
    folders = sorted({folder for folder, _ in counts})
    header = ["folder", *actions, "total"]
    rows = []
    for folder in folders:
        numbers = [counts[folder, action] for action in actions]
        rows.append([folder, *map(str, numbers), str(sum(numbers))])
    totals = [sum(counts[folder, action] for folder in folders) for action in actions]
    return header, rows, ["total", *map(str, totals), str(sum(totals))]


_SOURCE_AND_ACTION = attrgetter("source", "action")


def _folder(source: str | None) -> str:
    """The folder of a job file, relative to the jobs folder ("." for its top)."""
    return (source or "").rpartition("/")[0] or "."


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
        if len(plan.changes) >= SUMMARY_FROM:
            lines += _summary_markdown(plan.changes)
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


def _summary_markdown(changes: Iterable[Change]) -> list[str]:
    header, rows, total = _summary_rows(changes)
    lines = [
        "| " + " | ".join(header) + " |",
        "| --- |" + " ---: |" * (len(header) - 1),
    ]
    lines += [f"| `{row[0]}` | " + " | ".join(row[1:]) + " |" for row in rows]
    lines.append("| **total** | " + " | ".join(f"**{n}**" for n in total[1:]) + " |")
    return [*lines, ""]


def _markdown_diff(plan: Plan) -> list[str]:
    differ = FieldDiffer()
    added = FieldViews(differ, _shown_unless_default("+   "))
    removed = FieldViews(differ, _shown_unless_default("-   "))
    moments = FireTimes(_joined)
    lines: list[str] = []
    for change in plan.changes:
        sign = {Action.ADD: "+", Action.REMOVE: "-"}.get(change.action, "!")
        lines.append(f"{sign} {change.action} {change.job}")
        if change.before is None and change.after is not None:
            lines += added(change.after.essence)
        elif change.after is None and change.before is not None:
            lines += removed(change.before.essence)
        else:
            for diff in differ.between(change.before, change.after):
                if diff.before is not None:
                    lines.append(f"-   {diff.path}: {_value(diff.before)}")
                if diff.after is not None:
                    lines.append(f"+   {diff.path}: {_value(diff.after)}")
        # (The fire lines in today's format: the old code's walk is what this file keeps.)
        if change.fires_before:
            lines.append("-   next fires: " + moments(change.fires_before))
        if change.fires_after:
            lines.append("+   next fires: " + moments(change.fires_after))
    return lines


class FireTimes:
    """Lists of fire times as text, each written once per rendering: the jobs that share
    a schedule share one tuple of next fire times (the plan's fire memo), so a list is
    known by identity, not by equality (equal moments may print differently: the same
    instant in two zones, or a repeated wall-clock time and its fold)."""

    def __init__(self, write: Callable[[tuple[datetime, ...]], str]) -> None:
        self._write = write
        # By the tuple's id; each entry holds its tuple, so no other takes that id.
        self._known: dict[int, tuple[tuple[datetime, ...], str]] = {}

    def __call__(self, moments: tuple[datetime, ...]) -> str:
        known = self._known.get(id(moments))
        if known is None or known[0] is not moments:
            known = self._known[id(moments)] = (moments, self._write(moments))
        return known[1]


def _joined(moments: tuple[datetime, ...]) -> str:
    return ", ".join([moment.isoformat() for moment in moments])


class _NoDefault:
    """Equal to nothing: a field without a default (`name`, `task`) is always shown."""

    def __eq__(self, other: object) -> bool:
        return False

    def __hash__(self) -> int:
        return 0


def _field_defaults() -> dict[str, Any]:
    """Each top-level JobSpec field's default, read once (pydantic's `get_default`
    costs an `inspect.signature` per call)."""
    return {
        name: _NoDefault() if field.is_required() else field.get_default(call_default_factory=True)
        for name, field in JobSpec.model_fields.items()
    }


_DEFAULTS = _field_defaults()
_NO_DEFAULT: Any = _NoDefault()  # equal to nothing: never a field's default


def _is_default(path: str, value: Any) -> bool:
    if path in _DEFAULTS:
        return bool(_DEFAULTS[path] == value)
    return path.startswith("schedule.interval.") and value == 0


def _value(value: Any) -> str:
    """`value` as one line of JSON (as `json.dumps(value, ensure_ascii=False,
    sort_keys=True, default=str)` writes it, the common scalars without its set-up)."""
    kind = type(value)
    if kind is str:
        return _encode_text(value)
    if kind is bool:
        return "true" if value else "false"
    if kind is int:
        return int.__repr__(value)
    if value is None:
        return "null"
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


_encode_text: Callable[[str], str] = json.encoder.encode_basestring


def _escape(text: str) -> str:
    return text.replace("|", "\\|")
