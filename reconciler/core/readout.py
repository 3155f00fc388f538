"""Text of the read commands (`status`, `get jobs`, `describe job`, `runs`, `explain`):
kubectl-style aligned columns, coloured only when asked (a terminal). Pure: values of
the read model in, text out. Times are RFC 3339 UTC (`Z`) everywhere.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from reconciler.core.moments import rfc3339
from reconciler.core.status import DRIFT_DETAILS, JobView, StatusView
from reconciler.core.vocabulary import Fate, JobState, Role, RunStatus
from reconciler.printable import printable

Paint = Callable[[str, str], str]
NONE = "-"
_COLOURS = {
    "red": "31",
    "green": "32",
    "yellow": "33",
    "magenta": "35",
    "cyan": "36",
    "dim": "2",
}
STATE_COLOURS = {
    JobState.QUARANTINED: "magenta",
    JobState.FAILING: "red",
    JobState.LATE: "yellow",
    JobState.PAUSED: "cyan",
    JobState.COMPLETED: "dim",
    JobState.ACTIVE: "green",
}
# By run status, and by slot fate (`explain`).
OUTCOME_COLOURS: dict[str, str] = {
    RunStatus.SUCCEEDED: "green",
    Fate.RAN: "green",
    RunStatus.FAILED: "red",
    RunStatus.EXPIRED: "red",
    RunStatus.MISSED: "yellow",
    Fate.ABSENT: "red",
    RunStatus.SKIPPED: "cyan",
    Fate.COALESCED: "cyan",
}
_CRON_FIELDS = ("year", "month", "week", "day", "day_of_week", "hour", "minute", "second")
_INTERVAL_UNITS = (
    ("weeks", "w"),
    ("days", "d"),
    ("hours", "h"),
    ("minutes", "m"),
    ("seconds", "s"),
)


def painter(colour: bool) -> Paint:
    """`plain` without colour (renderers skip colour work for it)."""
    if not colour:
        return plain

    def paint(name: str, text: str) -> str:
        if name not in _COLOURS or not text:
            return text
        return f"\x1b[{_COLOURS[name]}m{text}\x1b[0m"

    return paint


def plain(_: str, text: str) -> str:
    return text


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], paints: Any = None) -> str:
    """Columns padded to their widest cell, two spaces apart (kubectl). `paints`, per row,
    may map a column index to a colour name; padding is computed on the plain text."""
    widths = [max(map(len, column)) for column in zip(headers, *rows, strict=True)]
    # Pad every column but the last (no trailing blanks).
    pads = [*widths[:-1], 0]
    lines = [_line(headers, pads)]
    if paints is None or all(not colours or paint is plain for colours, paint in paints):
        lines.extend(_line(row, pads) for row in rows)
    else:
        for row, (colours, paint) in zip(rows, paints, strict=True):
            cells = [
                paint(colours[index], cell) + " " * (pad - len(cell))
                if index in colours
                else cell.ljust(pad)
                for index, (cell, pad) in enumerate(zip(row, pads, strict=True))
            ]
            lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def _line(cells: Sequence[str], pads: Sequence[int]) -> str:
    return "  ".join(map(str.ljust, cells, pads)).rstrip()


def schedule_summary(schedule: Any, timezone: Any) -> dict[str, str] | None:
    """{kind, value, timezone} from the spec's `schedule`; None if it has an unknown shape."""
    if not isinstance(schedule, Mapping):
        return None
    zone = timezone if isinstance(timezone, str) else "UTC"
    if "cron" in schedule:
        cron = schedule["cron"]
        if isinstance(cron, Mapping):
            # Fields not given are absent from a stored essence but None in a model dump.
            given = [key for key in _CRON_FIELDS if cron.get(key) is not None]
            cron = " ".join(f"{key}={cron[key]}" for key in given)
        return {"kind": "cron", "value": str(cron), "timezone": zone}
    if isinstance(schedule.get("interval"), Mapping):
        interval = schedule["interval"]
        parts = [f"{interval[key]}{unit}" for key, unit in _INTERVAL_UNITS if interval.get(key)]
        return {"kind": "interval", "value": "".join(parts) or "0s", "timezone": zone}
    if "at" in schedule:
        return {"kind": "date", "value": str(schedule["at"]), "timezone": zone}
    return None


def job_document(view: JobView) -> dict[str, Any]:
    """One job of `get jobs -o json|yaml`."""
    row = view.row
    return {
        "name": row.name,
        "state": view.state,
        "status": row.status,
        "schedule": schedule_summary(row.schedule, row.timezone),
        "next_fire": view.next_fire,
        "last_run": None
        if row.last_run_id is None
        else {
            "id": row.last_run_id,
            "slot": row.last_run_slot,
            "status": row.last_run_status,
            "finished_at": row.last_run_finished,
        },
        "task": row.task,
        "queue": row.queue,
        "labels": dict(row.labels),
        "source_file": row.source_file,
        "revision": row.revision,
        "quarantined": row.quarantined,
        "drift": view.drift,
    }


def jobs_text(views: Sequence[JobView], *, wide: bool, paint: Paint = plain) -> str:
    if not views:
        return "No jobs found."
    headers = ["NAME", "SCHEDULE", "ZONE", "NEXT FIRE", "LAST RUN", "OUTCOME", "STATUS"]
    if wide:
        headers += ["TASK", "QUEUE", "LABELS", "SOURCE", "REVISION"]
    rows, paints = [], []
    for view in views:
        row = view.row
        summary = schedule_summary(row.schedule, row.timezone) or {}
        cells = [
            row.name,
            schedule_cell(summary),
            summary.get("timezone", "?"),
            rfc3339(view.next_fire) or NONE,
            rfc3339(row.last_run_slot) or NONE,
            row.last_run_status or NONE,
            view.state.value,
        ]
        if wide:
            labels = ",".join(f"{k}={v}" for k, v in sorted(row.labels.items()))
            cells += [
                row.task,
                row.queue,
                printable(labels) or NONE,
                printable(row.source_file),
                (row.revision or NONE)[:12],
            ]
        rows.append(cells)
        if paint is not plain:
            colours = {6: STATE_COLOURS[view.state]}
            if row.last_run_status in OUTCOME_COLOURS:
                colours[5] = OUTCOME_COLOURS[row.last_run_status]
            paints.append((colours, paint))
    return table(headers, rows, paints or None)


def schedule_cell(summary: Mapping[str, str]) -> str:
    prefix = {"interval": "every ", "date": "at "}.get(summary.get("kind", ""), "")
    return prefix + summary.get("value", "?")


def status_text(view: StatusView, *, paint: Paint = plain) -> str:
    leader = view.leader
    if leader is None:
        leads = paint("red", "none")
    else:
        state = paint("green" if view.leader_state == "alive" else "red", view.leader_state.value)
        leads = (
            f"{leader['instance']} (epoch {leader['epoch']}, {state}, "
            f"heartbeat {rfc3339(leader['heartbeat_at'])})"
        )
    standbys = [i["instance"] for i in view.instances if i["role"] == Role.STANDBY and i["fresh"]]
    lines = [f"Leader:         {leads}"]
    if standbys:
        lines.append(f"Standbys:       {', '.join(standbys)}")
    lines.append("Last reconcile: " + _reconcile_text(view.last_reconcile))
    revision = view.applied_revision or "(none recorded: not a git checkout)"
    dirty = " (dirty)" if view.applied_revision_dirty else ""
    lines.append(f"Revision:       {revision}{dirty}")
    total = sum(view.jobs_by_status.values())
    states = ", ".join(f"{n} {state}" for state, n in view.jobs_by_state.items() if n)
    lines.append(f"Jobs:           {total}" + (f" ({states})" if states else ""))
    count = len(view.quarantined)
    lines.append(f"Quarantined:    {count} file{'' if count == 1 else 's'}")
    for entry in view.quarantined:
        for diagnostic in entry["diagnostics"]:
            lines.append(
                f"  {diagnostic['path']}:{diagnostic['line']}:{diagnostic['column']}: "
                f"{diagnostic['code']} {diagnostic['message']}"
            )
    lines.append(f"Drift:          {len(view.drifted_jobs)}")
    for name, kind in view.drifted_jobs[:20]:
        lines.append(f"  {name}: {kind.value} ({DRIFT_DETAILS[kind]})")
    pending = view.pending_changes
    detail = ", ".join(f"{count} {action}" for action, count in pending.items())
    if detail:
        detail = f" ({detail}: a RECONCILER_SYNC=manual daemon left them for `reconcile apply`)"
    lines.append(f"Pending:        {sum(pending.values())}{detail}")
    for title, jobs in (("Failing", view.failing), ("Late", view.late)):
        lines.append(f"{title + ':':<16}{len(jobs)}")
        if jobs:
            lines.append(_indent(jobs_text(jobs[:20], wide=False, paint=paint)))
    return "\n".join(lines)


def _reconcile_text(last: Mapping[str, Any] | None) -> str:
    if not last:
        return "never"
    # Updates and renames share their symbol (`~`), as in the plan.
    changed = last["updated"] + (last.get("renamed") or 0)
    counts = f"+{last['added']} ~{changed} -{last['removed']} !{last['repaired']}"
    return (
        f"{rfc3339(last['started_at'])} {last['outcome']} via {last['trigger']} "
        f"({counts}, {(last['duration_seconds'] or 0):.3f} s)"
    )


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())


def runs_text(runs: Sequence[Mapping[str, Any]], *, wide: bool, paint: Paint = plain) -> str:
    if not runs:
        return "No runs found."
    headers = ["JOB", "SLOT", "STATUS", "LATENESS", "DURATION", "REASON"]
    if wide:
        headers += ["RUN ID", "WORKER", "TASK"]
    rows, paints = [], []
    for run in runs:
        cells = [
            run["job"],
            rfc3339(run["scheduled_time"]) or NONE,
            run["status"],
            _seconds(run["lateness_seconds"]),
            _seconds(run["duration_seconds"]),
            run["reason"] or NONE,
        ]
        if wide:
            cells += [run["id"], run["worker"] or NONE, run["task"]]
        rows.append(cells)
        paints.append(({2: OUTCOME_COLOURS.get(run["status"], "")}, paint))
    return table(headers, rows, paints)


def _seconds(value: float | None) -> str:
    return NONE if value is None else f"{value:.3f}s"


def slots_text(slots: Sequence[Mapping[str, Any]], *, paint: Paint = plain) -> str:
    if not slots:
        return "No slots in this window."
    headers = ["SLOT", "FATE", "RUN", "DETAIL"]
    rows, paints = [], []
    for slot in slots:
        rows.append(
            [
                rfc3339(slot["slot"]) or NONE,
                slot["fate"],
                slot.get("run_id") or NONE,
                slot["reason"],
            ]
        )
        paints.append(({1: OUTCOME_COLOURS.get(slot["fate"], "")}, paint))
    return table(headers, rows, paints)
