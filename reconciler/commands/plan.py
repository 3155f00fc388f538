"""`reconcile plan` (also `reconcile --dry-run`): what apply would do, changing nothing.

Exit codes: 0 no changes, 2 changes, 1 error, 3 refused by a safety guard.
"""

from __future__ import annotations

import argparse
import sys

from reconciler.commands._common import (
    add_format,
    open_engine,
    require_jobs_dir,
    schema_ready,
    stdout_is_terminal,
)

HELP = "show what apply would change (a dry run); exit 0 none, 2 changes, 3 refused"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_format(parser, "text", "json", "markdown")
    parser.add_argument(
        "--allow-mass-delete",
        action="store_true",
        help="plan as `apply --allow-mass-delete` would (no refusal for mass removal)",
    )


def run(args: argparse.Namespace) -> int:
    from reconciler.cli import EXIT_CHANGES, EXIT_OK, EXIT_REFUSED, settings_from
    from reconciler.core.render import render_json, render_markdown, render_text
    from reconciler.engine.reconcile import reconcile_once

    settings = settings_from(args)
    require_jobs_dir(settings)
    engine = open_engine(settings)
    try:
        if not schema_ready(engine):
            print(
                "note: the database has no schema yet; planning against an empty state",
                file=sys.stderr,
            )
        result = reconcile_once(
            engine,
            settings,
            trigger="cli",
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
        print(render_text(plan, colour=stdout_is_terminal()), end="")
    if plan.refused:
        return EXIT_REFUSED
    return EXIT_CHANGES if plan.has_changes else EXIT_OK


def _warn_past_one_offs(plan: object) -> None:
    """AT_IN_PAST on stderr for each added or updated one-off job whose time has passed
    (stdout stays the plan document, whatever the format)."""
    from datetime import UTC, datetime

    from reconciler.spec.checks import past_one_off

    now = datetime.now(UTC)
    for change in plan.changes:  # type: ignore[attr-defined]
        if change.target is None:
            continue
        why = past_one_off(change.target.spec, now=now)
        if why is not None:
            where = f"{change.target.source}:{change.target.line}"
            print(f"warning: {where}: AT_IN_PAST {change.job}: {why}", file=sys.stderr)
