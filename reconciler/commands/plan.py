"""`reconcile plan` (also `reconcile --dry-run`, `reconcile apply --dry-run`): what apply
would do, changing nothing: no row, no table, not even a database file.

Exit codes: 0 no changes, 2 changes, 1 error or a quarantined file (unless
--allow-invalid), 3 refused by a safety guard.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from reconciler.commands._common import (
    EXIT_CHANGES,
    EXIT_ERROR,
    EXIT_OK,
    EXIT_REFUSED,
    add_format,
    colour_wanted,
    open_read_only_engine,
    require_jobs_dir,
    schema_ready,
    settings_from,
)

if TYPE_CHECKING:
    from reconciler.core.plan import Plan

HELP = "show what apply would change (a dry run); exit 0 none, 2 changes, 1 invalid, 3 refused"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_format(parser, "text", "json", "markdown")
    add_plan_flags(parser)
    parser.add_argument(
        "--out",
        metavar="FILE",
        help="also save the plan (JSON) for `reconcile apply FILE`, which applies exactly it",
    )


def add_plan_flags(parser: argparse.ArgumentParser) -> None:
    """The flags plan shares with apply (so that `apply --dry-run` plans as apply would)."""
    parser.add_argument(
        "--allow-mass-delete",
        action="store_true",
        help="allow removing all jobs or more than RECONCILER_MAX_DELETE_FRACTION of them",
    )
    parser.add_argument(
        "--allow-invalid",
        action="store_true",
        help="quarantined (invalid) files are not an error: their jobs keep their last "
        "applied spec, the other files apply (the daemon's semantics)",
    )


def run(args: argparse.Namespace) -> int:
    from reconciler.commands._noop import quick_plan

    quick = quick_plan(args)  # nothing changed: said without the full path's imports
    if quick is not None:
        print(quick, end="")
        return EXIT_OK
    from reconciler.core.plan_json import render_json
    from reconciler.core.render import render_markdown, render_text
    from reconciler.core.vocabulary import Trigger
    from reconciler.engine.reconcile import reconcile_once

    settings = settings_from(args)
    require_jobs_dir(settings)
    engine = open_read_only_engine(settings)
    try:
        if not schema_ready(engine):
            print(
                "note: the database has no schema yet; planning against an empty state",
                file=sys.stderr,
            )
        result = reconcile_once(
            engine,
            settings,
            trigger=Trigger.CLI,
            apply=False,
            allow_mass_delete=getattr(args, "allow_mass_delete", False),
        )
    finally:
        engine.dispose()
    plan = result.plan
    _warn_past_one_offs(plan)
    fmt = getattr(args, "format", "text")
    if fmt == "json":
        print(render_json(plan))
    elif fmt == "markdown":
        print(render_markdown(plan), end="")
    else:
        print(render_text(plan, colour=colour_wanted()), end="")
    out = getattr(args, "out", None)
    if out:
        Path(out).write_text(render_json(plan) + "\n", encoding="utf-8")
        print(
            f"Saved the plan to {out}; apply exactly it with `reconcile apply {out}`.",
            file=sys.stderr,
        )
    if plan.quarantined and not getattr(args, "allow_invalid", False):
        print(
            f"error: {len(plan.quarantined)} job file(s) are invalid (quarantined); fix them, "
            "or pass --allow-invalid to plan the valid files only",
            file=sys.stderr,
        )
        return EXIT_ERROR
    if plan.refused:
        return EXIT_REFUSED
    return EXIT_CHANGES if plan.has_changes else EXIT_OK


def _warn_past_one_offs(plan: Plan) -> None:
    """AT_IN_PAST on stderr for each added or updated one-off job whose time has passed
    (stdout stays the plan document, whatever the format)."""
    from datetime import UTC, datetime

    from reconciler.printable import printable
    from reconciler.spec.checks import past_one_off

    now = datetime.now(UTC)
    for change in plan.changes:
        if change.target is None:
            continue
        why = past_one_off(change.target.spec, now=now)
        if why is not None:
            where = f"{printable(change.target.source)}:{change.target.line}"
            print(f"warning: {where}: AT_IN_PAST {change.job}: {why}", file=sys.stderr)
