"""`reconcile describe job NAME`: one job in full — state, spec (secrets redacted),
source and revision, next fires, the last 10 runs, holds, quarantine, drift and events."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta
from typing import Any

from reconciler.commands._common import connect
from reconciler.commands._output import add_output, emit

HELP = "one job in full: spec, source, next fires, last runs, quarantine, drift, events"
LAST_RUNS = 10
_INSTANT = timedelta(microseconds=1)  # `after` is exclusive: the next run time is a fire


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("resource", choices=("job", "jobs"), help="what to describe: job")
    parser.add_argument("name", help="the job's name")
    add_output(parser)


def run(args: argparse.Namespace) -> int:
    from reconciler.errors import ConfigError

    now = datetime.now(UTC)
    with connect(args) as connection:
        document = describe_job(connection, args.name, now=now)
    if document is None:
        raise ConfigError(f"no job named {args.name!r}")
    emit(args, document, lambda _wide, paint: _text(document, paint))
    return 0


def describe_job(connection: Any, name: str, *, now: datetime) -> dict[str, Any] | None:

    from reconciler.api.scrub import redact_spec
    from reconciler.api.shape import quarantine_dict, run_dict
    from reconciler.core.readout import job_document
    from reconciler.core.status import DRIFT_DETAILS, view_job
    from reconciler.core.triggers import next_fire_times
    from reconciler.core.vocabulary import JobStatus
    from reconciler.spec.checks import never_fires_again
    from reconciler.store.history import (
        events_statement,
        read_all,
        read_job_spec,
        read_quarantine,
        runs_statement,
    )
    from reconciler.store.status import JobSelector, read_job_rows

    rows = read_job_rows(connection, JobSelector(names=(name,)))
    found = read_job_spec(connection, name)
    if not rows or found is None:
        return None
    view = view_job(rows[0], now=now)
    stored, spec = found
    quarantine = read_quarantine(connection, stored["source_file"])
    document = job_document(view)
    document.update(
        source_line=stored["source_line"],
        revision_dirty=stored["revision_dirty"],
        created_at=stored["created_at"],
        updated_at=stored["updated_at"],
        state_reason=never_fires_again(spec, now=now)
        if view.row.status == JobStatus.COMPLETED
        else None,
        # From the scheduler's next run time on, inclusive (as the API's next_fires): what
        # the daemon will fire, not what the spec would from now (a drifted or late row).
        next_fires=list(next_fire_times(spec, after=view.next_fire - _INSTANT, count=3))
        if view.next_fire is not None
        else [],
        spec=redact_spec(dict(stored["spec"])),
        quarantine=None if quarantine is None else quarantine_dict(quarantine),
        drift=None
        if view.drift is None
        else {"code": view.drift.value, "detail": DRIFT_DETAILS[view.drift]},
        holds=[],  # no Hold document kind exists yet: the field is kept for the JSON shape
        last_runs=[
            run_dict(row) for row in read_all(connection, runs_statement(job=name, limit=LAST_RUNS))
        ],
        events=read_all(connection, events_statement(name, limit=20)),
    )
    return document


def _text(document: dict[str, Any], paint: Any) -> str:
    import yaml

    from reconciler.core.moments import jsonable, rfc3339
    from reconciler.core.readout import STATE_COLOURS, runs_text
    from reconciler.printable import printable

    schedule = document["schedule"] or {}
    labels = ", ".join(printable(f"{k}={v}") for k, v in sorted(document["labels"].items()))
    revision = (document["revision"] or "-") + (" (dirty)" if document["revision_dirty"] else "")
    state = document["state"]
    lines = [
        f"Name:        {document['name']}",
        f"State:       {paint(STATE_COLOURS[state], state.value)} "
        f"(inventory: {document['status']})",
        f"Task:        {document['task']} on queue {document['queue']}",
        f"Schedule:    {schedule.get('kind', '?')} {schedule.get('value', '?')} "
        f"({schedule.get('timezone', '?')})",
        f"Labels:      {labels or '-'}",
        f"Source:      {printable(document['source_file'])}:{document['source_line']}",
        f"Revision:    {revision}",
        f"Added:       {rfc3339(document['created_at'])}",
        f"Updated:     {rfc3339(document['updated_at'])}",
        *([f"Why:         {document['state_reason']}"] if document.get("state_reason") else []),
        "Next fires:  " + (", ".join(map(str, map(rfc3339, document["next_fires"]))) or "-"),
        "Holds:       none",
    ]
    quarantine = document["quarantine"]
    if quarantine is None:
        lines.append("Quarantine:  none")
    else:
        since = rfc3339(quarantine["since"])
        lines.append(f"Quarantine:  {printable(quarantine['path'])} since {since}")
        for diagnostic in quarantine["diagnostics"]:
            lines.append(
                f"  {printable(diagnostic['path'])}:{diagnostic['line']}:{diagnostic['column']}: "
                f"{diagnostic['code']} {printable(diagnostic['message'])}"
            )
    drift = document["drift"]
    lines.append(
        "Drift:       " + ("none" if drift is None else f"{drift['code']} ({drift['detail']})")
    )
    spec_text = yaml.safe_dump(jsonable(document["spec"]), sort_keys=False).rstrip()
    lines += ["Spec:", *("  " + line for line in spec_text.splitlines())]
    lines += [f"Last runs ({len(document['last_runs'])}):"]
    if document["last_runs"]:
        lines += [
            "  " + line
            for line in runs_text(document["last_runs"], wide=False, paint=paint).splitlines()
        ]
    lines.append(f"Events ({len(document['events'])}):")
    for event in reversed(document["events"]):
        lines.append(f"  {rfc3339(event['at'])}  {printable(event['detail'])}")
    return "\n".join(lines)
