"""Plans as text (Terraform-like), JSON (for scripts) and Markdown (for pull requests).

Rendering never changes a plan and a plan never depends on how it is rendered.
Field diffs are computed here, where they are shown (reconciler.core.diff), secrets
hidden. A plan of SUMMARY_FROM changes or more opens with a table of its changes by
folder and action; every change follows, as in a small plan.

Each renderer writes 10,000 changes in a fraction of a second (bench/bench_render.py):
one FieldDiffer per call remembers the paths and strings that repeat across jobs, field
defaults are read from the model once, and the JSON text is written by orjson.

Paths, field keys and values, reasons and row ids come from outside: text and
Markdown show them as `reconciler.printable` does (no control or bidi character
reaches a terminal), and Markdown keeps each in its cell, list item or fence as text
(`reconciler.core.markdown_text`; tests/unit/core/test_markdown_oracle.py parses it).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import datetime
from operator import attrgetter
from typing import Any

from reconciler.core.diff import FieldDiffer, FieldViews
from reconciler.core.markdown_text import code_span, fence_for, inline_text
from reconciler.core.plan import ACTIONS, Change, Plan
from reconciler.core.vocabulary import Action
from reconciler.printable import printable, printable_json
from reconciler.spec.model import JobSpec

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
    lines.append("")  # the text's last line break, without copying the text once more
    return "\n".join(lines)


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
        self._add = FieldViews(self._differ, _shown_unless_default("      ")).into
        self._moments = FireTimes(_joined)
        # Per file, its path as shown (a file holds several jobs).
        self._sources: dict[str, str] = {}

    def write(self, change: Change, lines: list[str]) -> None:
        action = change.action
        opening, closing = self._heads[action]
        head = f"{opening}{change.job}{closing}"
        if change.renamed_from:
            head += f" (was {change.renamed_from})"
        if change.source:
            source = self._sources.get(change.source)
            if source is None:
                source = self._sources[change.source] = printable(change.source)
            head = f"{head}  ({source})"
        lines += ("", head, f"      # {printable(change.reason)}")
        if action is Action.ADD:
            if change.after is not None:
                self._add(change.after.essence, lines)
        elif action is not Action.REMOVE:
            lines += [
                f"      {printable(diff.path)}: {_value(diff.before)} -> {_value(diff.after)}"
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
        head = f"{prefix}{printable(path)}: "
        default = _DEFAULTS.get(path, _NO_DEFAULT)
        if isinstance(default, _NoDefault) and not path.startswith("schedule.interval."):
            # A str (most values, printable) without `_value`'s call nor `_json_text`'s.
            return lambda value: (
                head + (_encode_text(value) if value.isprintable() else _json_text(value))
                if type(value) is str
                else head + _value(value)
            )
        return lambda value: None if _is_default(path, value) else head + _value(value)

    return view


def change_line(change: Change, *, limit: int = 3, differ: FieldDiffer | None = None) -> str:
    """One line naming a change, for logs and job events:
    `~ nightly-report: schedule.cron "0 2 * * *" -> "0 3 * * *"`, secret values shown
    as `(sensitive)`. Pass one `differ` for the lines of a whole plan."""
    head = f"{change.action.symbol} {change.job}"
    if change.action == Action.ADD:
        return f"{head}: added from {printable(change.source or '')}"
    if change.action == Action.REMOVE:
        return f"{head}: removed"
    if change.action == Action.REPAIR:
        return f"{head}: repaired ({printable(change.reason)})"
    diffs = (differ or FieldDiffer()).between(change.before, change.after)
    parts = [f"{printable(d.path)} {_value(d.before)} -> {_value(d.after)}" for d in diffs[:limit]]
    if len(diffs) > limit:
        parts.append(f"and {len(diffs) - limit} more")
    return f"{head}: " + (", ".join(parts) if parts else printable(change.reason))


def _trailer_text(plan: Plan) -> list[str]:
    lines: list[str] = []
    if plan.quarantined:
        lines += ["", "Quarantined files (their jobs keep their last applied spec):"]
        for diagnostics in (plan.quarantined[path] for path in sorted(plan.quarantined)):
            lines += [f"  {diagnostic.render()}" for diagnostic in diagnostics]
    if plan.foreign:
        lines += ["", "Foreign apscheduler_jobs rows (not ours, left alone):"]
        lines += [f"  {printable(row_id)}" for row_id in plan.foreign]
    if plan.hints:
        lines += ["", "Hints:"] + [f"  {printable(hint)}" for hint in plan.hints]
    counts = ", ".join(f"{plan.summary.get(action, 0)} to {action}" for action in ACTIONS)
    lines += ["", f"Plan: {counts}.", f"Plan hash: {plan.plan_hash}"]
    if plan.refused:
        lines += ["", f"REFUSED: {plan.refused}"]
    return lines


def _summary_text(changes: Iterable[Change]) -> list[str]:
    """The changes counted by folder and action, as an aligned table."""
    header, rows, total = _summary_rows(changes)
    table = [header, *([printable(row[0]), *row[1:]] for row in rows), total]
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
        # Per action, its cell and the row's opening (an enum member formats slowly).
        openings = {action: f"| {action.symbol} {action} | `" for action in Action}
        # Per file, its cell (a file holds several jobs).
        sources: dict[str | None, str] = {}
        for change in plan.changes:
            renamed = f" (was `{change.renamed_from}`)" if change.renamed_from else ""
            source = sources.get(change.source)
            if source is None:
                source = sources[change.source] = _source_cell(change.source)
            lines.append(
                f"{openings[change.action]}{change.job}`{renamed} "
                f"| {source} | {inline_text(change.reason)} |"
            )
        # Nothing shown holds a line break (`printable`), so no line of the block
        # starts with a backtick; the fence is longer than any run of them all the same.
        block = "\n".join(_markdown_diff(plan))
        fence = fence_for(block)
        lines += ["", "<details><summary>Field changes and next fire times</summary>", ""]
        lines += [fence + "diff", block, fence, "", "</details>"]
    if plan.quarantined:
        lines += ["", "**Quarantined files** (their jobs keep their last applied spec):", ""]
        for path in sorted(plan.quarantined):
            for diagnostic in plan.quarantined[path]:
                lines.append(f"- {code_span(diagnostic.render())}")
    if plan.foreign:
        foreign = ", ".join(map(inline_text, plan.foreign))
        lines += ["", "Foreign scheduler rows (left alone): " + foreign]
    if plan.hints:
        # A hint's code spans are meant (it names jobs, whose names Markdown reads not).
        lines += ["", "**Hints:**", ""] + [f"- {_pipes_escaped(hint)}" for hint in plan.hints]
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
    lines += [f"| {_source_cell(row[0])} | " + " | ".join(row[1:]) + " |" for row in rows]
    lines.append("| **total** | " + " | ".join(f"**{n}**" for n in total[1:]) + " |")
    return [*lines, ""]


def _source_cell(source: str | None) -> str:
    """A file's or a folder's path as a table cell: code, as written (`printable`)."""
    return code_span(printable(source or ""), in_table=True)


def _markdown_diff(plan: Plan) -> list[str]:
    differ = FieldDiffer()
    added = FieldViews(differ, _shown_unless_default("+   "))
    removed = FieldViews(differ, _shown_unless_default("-   "))
    moments = FireTimes(_joined)
    # Per action, what opens its line: the diff's sign (an update's "!") and the action.
    openings = {action: f"{_DIFF_SIGNS.get(action, '!')} {action} " for action in Action}
    lines: list[str] = []
    for change in plan.changes:
        lines.append(openings[change.action] + change.job)
        if change.before is None and change.after is not None:
            lines += added(change.after.essence)
        elif change.after is None and change.before is not None:
            lines += removed(change.before.essence)
        else:
            for diff in differ.between(change.before, change.after):
                path = printable(diff.path)
                if diff.before is not None:
                    lines.append(f"-   {path}: {_value(diff.before)}")
                if diff.after is not None:
                    lines.append(f"+   {path}: {_value(diff.after)}")
        # The fire times a change stops and starts, signed as its fields are: what CI
        # posts on a pull request shows the next fires before and after.
        if change.fires_before:
            lines.append("-   next fires: " + moments(change.fires_before))
        if change.fires_after:
            lines.append("+   next fires: " + moments(change.fires_after))
    return lines


_DIFF_SIGNS = {Action.ADD: "+", Action.REMOVE: "-"}


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
        return _json_text(value)
    if kind is bool:
        return "true" if value else "false"
    if kind is int:
        return int.__repr__(value)
    if value is None:
        return "null"
    return printable_json(json.dumps(value, ensure_ascii=False, sort_keys=True, default=str))


_encode_text: Callable[[str], str] = json.encoder.encode_basestring


def _json_text(text: str) -> str:
    """`text` as a JSON string, with nothing a terminal obeys left raw (`printable_json`,
    asked only when str.isprintable says no: most values are plain)."""
    encoded = _encode_text(text)
    return encoded if encoded.isprintable() else printable_json(encoded)


def _pipes_escaped(text: str) -> str:
    return text.replace("|", "\\|")
