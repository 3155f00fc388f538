"""`reconcile apply [PLAN_FILE]`: apply the plan once.

Exit 0 applied or nothing to do; 1 error, a quarantined file (unless --allow-invalid),
a plan that is not the approved one (--plan-hash, PLAN_FILE), or a declined
confirmation; 3 refused by a safety guard. `--dry-run` is `reconcile plan`.

On a terminal, apply shows the plan and asks before writing anything; what it then
applies is exactly the plan shown (its hash), or nothing. `--auto-approve`, and a
stdin that is not a terminal (CI, pipes), skip the question.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from reconciler.commands._common import (
    EXIT_ERROR,
    EXIT_OK,
    open_engine,
    open_read_only_engine,
    require_jobs_dir,
    settings_from,
    stdout_is_terminal,
)
from reconciler.commands.plan import add_plan_flags

if TYPE_CHECKING:
    from reconciler.core.approval import SavedPlan
    from reconciler.engine.reconcile import ReconcileResult

HELP = "apply the plan once (exit 0 done, 1 error, invalid or stale plan, 3 refused)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "plan_file",
        nargs="?",
        metavar="PLAN_FILE",
        help="a plan saved by `reconcile plan --out FILE`: apply exactly it, or refuse",
    )
    parser.add_argument(
        "--plan-hash",
        help="apply only if the plan is still exactly the previewed one (its plan_hash)",
    )
    add_plan_flags(parser)
    parser.add_argument(
        "--auto-approve",
        action="store_true",
        help="do not ask for confirmation on a terminal",
    )
    parser.add_argument("--quiet", action="store_true", help="print only the summary line")


def run(args: argparse.Namespace) -> int:
    if getattr(args, "dry_run", False):
        from reconciler.commands import plan

        return plan.run(args)  # the plan, its output and its exit codes; nothing written
    from reconciler.core.vocabulary import Trigger
    from reconciler.engine.reconcile import reconcile_once
    from reconciler.store.migrate import upgrade_database

    settings = settings_from(args)
    require_jobs_dir(settings)
    approved = _saved_plan(args.plan_file)
    expected = args.plan_hash
    if approved is not None and expected is not None and expected != approved.plan_hash:
        print(
            f"error: --plan-hash {expected} is not the hash of {approved.path} "
            f"({approved.plan_hash})",
            file=sys.stderr,
        )
        return EXIT_ERROR
    if _should_ask(args):
        shown = _confirm(args)
        if shown is None:
            return EXIT_ERROR
        expected = expected or shown  # apply exactly what was shown, or nothing
    upgrade_database(settings.database_url)
    engine = open_engine(settings)
    try:
        result = reconcile_once(
            engine,
            settings,
            trigger=Trigger.CLI,
            apply=True,
            allow_mass_delete=args.allow_mass_delete,
            allow_invalid=args.allow_invalid,
            expected_plan_hash=expected,
            approved=approved,
        )
    finally:
        engine.dispose()
    return _report(args, result)


def _saved_plan(path: str | None) -> SavedPlan | None:
    if path is None:
        return None
    from pathlib import Path

    from reconciler.core.approval import read_saved_plan
    from reconciler.errors import ConfigError

    try:
        text = Path(path).read_text(encoding="utf-8")
        return read_saved_plan(text, path=path)
    except (OSError, ValueError) as error:
        raise ConfigError(f"cannot read the saved plan: {error}") from None


def _should_ask(args: argparse.Namespace) -> bool:
    return not args.auto_approve and sys.stdin.isatty()


def _confirm(args: argparse.Namespace) -> str | None:
    """Show the plan and ask. The shown plan's hash if the answer is yes (or there is
    nothing to ask about: no changes, invalid files, a refusal; the apply pass itself
    then says so and records it), None if declined."""
    from reconciler.core.render import render_text
    from reconciler.core.vocabulary import Trigger
    from reconciler.engine.reconcile import reconcile_once

    settings = settings_from(args)
    engine = open_read_only_engine(settings)
    try:
        preview = reconcile_once(
            engine,
            settings,
            trigger=Trigger.CLI,
            apply=False,
            allow_mass_delete=args.allow_mass_delete,
        ).plan
    finally:
        engine.dispose()
    if (
        not preview.has_changes
        or preview.refused
        or (preview.quarantined and not args.allow_invalid)
    ):
        return preview.plan_hash
    print(render_text(preview, colour=stdout_is_terminal()), end="")
    print("\nDo you want to apply these changes? Only 'yes' will be accepted.")
    try:
        answer = input("  Enter a value: ")
    except EOFError:
        answer = ""
    if answer.strip() != "yes":
        print("Apply cancelled: nothing was changed.", file=sys.stderr)
        return None
    args.quiet = True  # the plan was just shown
    return preview.plan_hash


def _report(args: argparse.Namespace, result: ReconcileResult) -> int:
    from reconciler.core.render import render_text
    from reconciler.core.vocabulary import ReconcileOutcome

    plan = result.plan
    invalid = result.outcome == ReconcileOutcome.INVALID
    if not args.quiet and (plan.has_changes or invalid):
        print(render_text(plan, colour=stdout_is_terminal()), end="")
    if invalid:
        print(
            f"error: {len(plan.quarantined)} job file(s) are invalid (quarantined): nothing "
            "was applied; fix them, or pass --allow-invalid to apply the valid files",
            file=sys.stderr,
        )
        return EXIT_ERROR
    counts = ", ".join(f"{count} {action}" for action, count in plan.summary.items() if count)
    verb = "Applied" if plan.has_changes else "No changes"
    detail = f": {counts}" if counts else ""
    print(f"{verb}{detail} ({len(plan.quarantined)} quarantined files, {result.duration:.2f} s).")
    return EXIT_OK
