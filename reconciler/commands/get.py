"""`reconcile get jobs [-l k=v] [--status S] [-o json|yaml|wide]`: kubectl's `get` over
the read model — name, schedule, zone, next fire, last run and its outcome, state."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any

from reconciler.commands._common import connect, read_database_url
from reconciler.commands._output import add_output, emit
from reconciler.core.vocabulary import JobState

HELP = "list jobs: schedule, next fire, last run and its outcome, state"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("resource", choices=("jobs", "job"), help="what to list: jobs")
    parser.add_argument(
        "-l",
        "--selector",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="only jobs with this label (repeat: all must match)",
    )
    parser.add_argument(
        "--status",
        action="append",
        default=[],
        choices=[state.value for state in JobState],
        help="only jobs in this state (repeat for several)",
    )
    add_output(parser)


def run(args: argparse.Namespace) -> int:
    from reconciler.core.readout import job_document, jobs_text
    from reconciler.core.status import view_job
    from reconciler.errors import ConfigError
    from reconciler.store.lean_read import read_job_rows_lean

    labels = []
    for item in args.selector:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"-l {item!r}: expected KEY=VALUE")
        labels.append((key, value))
    # The driver alone, without SQLAlchemy's import: this command is a whole process.
    rows = read_job_rows_lean(read_database_url(args), labels=labels)
    if rows is None:  # a URL only SQLAlchemy reads (or reports as invalid)
        rows = _read_with_sqlalchemy(args, tuple(labels))
    now = datetime.now(UTC)
    views = [view_job(row, now=now) for row in rows]
    if args.status:
        views = [view for view in views if view.state.value in args.status]
    emit(
        args,
        lambda: {"items": [job_document(view) for view in views]},
        lambda wide, paint: jobs_text(views, wide=wide, paint=paint),
    )
    return 0


def _read_with_sqlalchemy(
    args: argparse.Namespace, labels: tuple[tuple[str, str], ...]
) -> list[Any]:
    from reconciler.store.status import JobSelector, read_job_rows

    with connect(args) as connection:
        return read_job_rows(connection, JobSelector(labels=labels))
