"""`reconcile runs [JOB] [--status S] [--since 24h] [--limit N]`: the run ledger, newest
first: slot, status, lateness, duration and the reason of a miss or a skip."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

from reconciler.commands._common import connect
from reconciler.commands._output import add_output, emit

HELP = "runs from the ledger, newest first (all jobs or one)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("job", nargs="?", help="only this job's runs")
    parser.add_argument(
        "--status",
        action="append",
        default=[],
        help="only runs with this status: succeeded, failed, missed, skipped ... (repeat)",
    )
    parser.add_argument("--since", default="24h", help="age of the oldest slot (default 24h)")
    parser.add_argument("--limit", type=int, default=100, help="at most this many (default 100)")
    add_output(parser)


def run(args: argparse.Namespace) -> int:
    from reconciler.api.shape import run_dict
    from reconciler.core.moments import parse_age
    from reconciler.core.readout import runs_text
    from reconciler.errors import ConfigError
    from reconciler.store.history import read_all, runs_statement

    try:
        since = datetime.now(UTC) - parse_age(args.since)
    except ValueError as error:
        raise ConfigError(f"--since: {error}") from None
    statement = runs_statement(
        job=args.job, statuses=tuple(args.status), since=since, limit=max(args.limit, 1)
    )
    with connect(args) as connection:
        runs = [run_dict(row) for row in read_all(connection, statement)]
    emit(args, {"items": runs}, lambda wide, paint: runs_text(runs, wide=wide, paint=paint))
    return 0
