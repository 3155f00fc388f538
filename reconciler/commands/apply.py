"""`reconcile apply`: apply the plan once. Exit 0 applied or nothing to do, 1 error
(including a stale --plan-hash), 3 refused by a safety guard."""

from __future__ import annotations

import argparse

from reconciler.commands._common import open_engine, require_jobs_dir, stdout_is_terminal

HELP = "apply the plan once (exit 0 done, 1 error or stale plan, 3 refused)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--plan-hash",
        help="apply only if the plan is still exactly the previewed one (its plan_hash)",
    )
    parser.add_argument(
        "--allow-mass-delete",
        action="store_true",
        help="allow removing all jobs or more than RECONCILER_MAX_DELETE_FRACTION of them",
    )
    parser.add_argument("--quiet", action="store_true", help="print only the summary line")


def run(args: argparse.Namespace) -> int:
    from reconciler.cli import settings_from
    from reconciler.core.render import render_text
    from reconciler.engine.reconcile import reconcile_once
    from reconciler.store.migrate import upgrade_database

    settings = settings_from(args)
    require_jobs_dir(settings)
    upgrade_database(settings.database_url)
    engine = open_engine(settings)
    try:
        result = reconcile_once(
            engine,
            settings,
            trigger="cli",
            apply=True,
            allow_mass_delete=args.allow_mass_delete,
            expected_plan_hash=args.plan_hash,
        )
    finally:
        engine.dispose()
    plan = result.plan
    if not args.quiet and plan.has_changes:
        print(render_text(plan, colour=stdout_is_terminal()), end="")
    counts = ", ".join(f"{count} {action}" for action, count in plan.summary.items() if count)
    verb = "Applied" if plan.has_changes else "No changes"
    detail = f": {counts}" if counts else ""
    print(f"{verb}{detail} ({len(plan.quarantined)} quarantined files, {result.duration:.2f} s).")
    return 0
