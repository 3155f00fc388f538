"""`reconcile explain JOB [--at TIME | --since 7d | --from T --to T]`: "why didn't it
fire?" — every slot the job's schedule defines in the window, with its fate (ran,
missed, coalesced, skipped, absent, not yet due) and the reason. For a TIME that is not
a slot: the nearest slots and their fates."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any

from reconciler.commands._common import connect
from reconciler.commands._output import add_output, emit

HELP = "why did (or didn't) a job fire: every slot in a window with its fate and reason"
MAX_SLOTS = 10_000


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("job", help="the job's name")
    window = parser.add_mutually_exclusive_group()
    window.add_argument("--at", help="one time (RFC 3339; UTC without an offset)")
    window.add_argument("--since", help="a window ending now: 30m, 24h, 7d (default 24h)")
    window.add_argument("--from", dest="start", help="window start (with --to, default now)")
    parser.add_argument("--to", dest="end", help="window end (default now)")
    parser.add_argument(
        "--limit", type=int, default=MAX_SLOTS, help=f"at most this many slots ({MAX_SLOTS})"
    )
    add_output(parser)


def run(args: argparse.Namespace) -> int:
    from reconciler.errors import ConfigError

    now = datetime.now(UTC)
    try:
        start, end = _window(args, now)
    except ValueError as error:
        raise ConfigError(str(error)) from None
    with connect(args) as connection:
        document = _explain(connection, args, start, end, now)
    if document is None:
        raise ConfigError(f"no job named {args.job!r}")
    emit(args, document, lambda _wide, paint: _text(document, paint))
    return 0


def _window(args: argparse.Namespace, now: datetime) -> tuple[datetime, datetime]:
    from reconciler.core.moments import parse_age, parse_moment

    if args.at:
        moment = parse_moment(args.at)
        return moment, moment
    end = parse_moment(args.end) if args.end else now
    start = parse_moment(args.start) if args.start else end - parse_age(args.since or "24h")
    if start > end:
        raise ValueError("the window starts after it ends")
    return start, end


def _explain(
    connection: Any, args: argparse.Namespace, start: datetime, end: datetime, now: datetime
) -> dict[str, Any] | None:
    from reconciler.core.readout import schedule_summary
    from reconciler.core.slots import nearest_slots
    from reconciler.store.history import explain_window

    limit = max(1, min(args.limit, MAX_SLOTS))
    answer = explain_window(
        connection, args.job, start=start, end=end, after=None, limit=limit, now=now
    )
    if answer is None:
        return None
    document: dict[str, Any] = {
        "job": args.job,
        "schedule": schedule_summary(
            answer.spec.model_dump(mode="json")["schedule"], answer.spec.timezone
        ),
        "from": start,
        "to": end,
        "slots": answer.slots,
        "truncated": answer.next_after is not None,
    }
    if args.at and not answer.slots:
        before, after = nearest_slots(answer.spec, start)
        document["note"] = f"{args.at} is not a slot of this schedule; the nearest slots:"
        for slot in (before, after):
            if slot is not None:
                near = explain_window(
                    connection, args.job, start=slot, end=slot, after=None, limit=1, now=now
                )
                assert near is not None
                document["slots"] += near.slots
    return document


def _text(document: dict[str, Any], paint: Any) -> str:
    from reconciler.core.moments import rfc3339
    from reconciler.core.readout import schedule_cell, slots_text

    schedule = document["schedule"] or {}
    lines = [
        f"Job:      {document['job']}",
        f"Schedule: {schedule_cell(schedule)} ({schedule.get('timezone', '?')})",
        f"Window:   {rfc3339(document['from'])} .. {rfc3339(document['to'])}",
    ]
    if "note" in document:
        lines.append(document["note"])
    lines += ["", slots_text(document["slots"], paint=paint)]
    if document["truncated"]:
        lines.append(f"... more slots follow: narrow the window (at most {MAX_SLOTS} shown)")
    return "\n".join(lines)
