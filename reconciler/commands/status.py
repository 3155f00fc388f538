"""`reconcile status`: leader, last reconcile, applied revision, jobs by state,
quarantined files, drift, pending changes, failing and late jobs — the one read model
(`reconciler.core.status`) that the API serves too, read from the database alone."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

from reconciler.commands._common import connect, read_database_url
from reconciler.commands._output import add_output, emit

HELP = "summary: leader, revision, jobs by state, quarantine, drift, failing and late jobs"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_output(parser)


def run(args: argparse.Namespace) -> int:
    from reconciler.core.readout import status_text
    from reconciler.core.status import build_status
    from reconciler.store.lean_read import read_status_rows_lean

    now = datetime.now(UTC)
    details = args.output in ("text", "wide")  # the listed jobs' schedules: text only
    # On PostgreSQL the driver alone (no SQLAlchemy import, no SQLAlchemy rows).
    rows = read_status_rows_lean(read_database_url(args), now=now, details=details)
    if rows is None:
        from reconciler.store.status import read_status_rows

        with connect(args) as connection:
            rows = read_status_rows(connection, now=now, details=details)
    view = build_status(rows, now=now)
    emit(args, view.document(), lambda _wide, paint: status_text(view, paint=paint))
    return 0
