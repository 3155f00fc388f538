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
    colour_wanted,
    leave_to_exit,
    open_engine,
    open_read_only_engine,
    require_jobs_dir,
    settings_from,
)
from reconciler.commands.plan import add_plan_flags

if TYPE_CHECKING:
    from reconciler.core.approval import SavedPlan
    from reconciler.core.plan import Plan
    from reconciler.engine.reconcile import ReconcileResult
    from reconciler.settings import Settings
    from reconciler.spec.loader import LoadAhead

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
    # `apply --dry-run` is `reconcile plan`, its output flags included; without
    # --dry-run they are refused (reconciler.cli), as apply prints no other format.
    parser.add_argument(
        "--format",
        choices=("text", "json", "markdown"),
        default=None,
        help="with --dry-run: the plan's format (as `reconcile plan --format`)",
    )
    parser.add_argument(
        "--out",
        metavar="FILE",
        default=None,
        help="with --dry-run: also save the plan (as `reconcile plan --out`)",
    )


def run(args: argparse.Namespace) -> int:
    if getattr(args, "dry_run", False):
        from reconciler.commands import plan

        args.format = args.format or "text"  # plan's default
        return plan.run(args)  # the plan, its output and its exit codes; nothing written
    from reconciler.commands._noop import quick_apply

    quick = quick_apply(args)  # nothing to change: said and recorded without the full path
    if quick is not None:
        print(quick, end="")
        return EXIT_OK
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
    ahead = _load_ahead(settings)
    text = _PlanText(colour=colour_wanted(), wanted=not args.quiet)
    try:
        result = _apply(args, settings, expected, approved, ahead, text)
        leave_to_exit((result, text))
        return _report(args, result, text)
    finally:
        if ahead is not None:
            ahead.cancel()  # not needed after all (or the pass failed before the files)


def _load_ahead(settings: Settings) -> LoadAhead | None:
    """On a database without file records every file will be parsed: start a child
    parsing them from the last one backwards now, while this process imports SQLAlchemy
    and migrates; the pass then parses from the first on until they meet
    (spec.loader.LoadAhead)."""
    from reconciler.store.emptiness import holds_no_file_records

    if settings.source != "worktree" or not holds_no_file_records(settings.database_url):
        return None
    from reconciler.spec.loader import load_ahead

    return load_ahead(settings.jobs_dir, settings=settings)


def _apply(
    args: argparse.Namespace,
    settings: Settings,
    expected: str | None,
    approved: SavedPlan | None,
    ahead: LoadAhead | None,
    text: _PlanText,
) -> ReconcileResult:
    from reconciler.core.vocabulary import Trigger
    from reconciler.engine.reconcile import reconcile_once
    from reconciler.store.migrate import upgrade_database

    upgrade_database(settings.database_url)
    engine = open_engine(settings)
    try:
        return reconcile_once(
            engine,
            settings,
            trigger=Trigger.CLI,
            apply=True,
            allow_mass_delete=args.allow_mass_delete,
            allow_invalid=args.allow_invalid,
            expected_plan_hash=expected,
            approved=approved,
            ahead=ahead,
            planned=text.start,
        )
    finally:
        engine.dispose()


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
    print(render_text(preview, colour=colour_wanted()), end="")
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


class _PlanText:
    """The text of the plan being applied, rendered while the pass waits for the added
    jobs' scheduler rows (reconcile_once's `planned`: a forked child makes them; the
    other core is busy with it, so a child rendering too only shared that core and
    copied pages; bench/RESULTS.md "The plan's text rendered while the rows are
    made"); rendered when asked if the pass did not call `start`. The same function
    on the same plan: the same bytes."""

    def __init__(self, *, colour: bool, wanted: bool) -> None:
        self._colour, self._wanted = colour, wanted
        self._rendered: tuple[Plan, str] | None = None

    def start(self, plan: Plan) -> None:
        if self._wanted and self._rendered is None:
            self._rendered = (plan, self._render(plan))

    def of(self, plan: Plan) -> str:
        if self._rendered is not None and self._rendered[0] is plan:
            return self._rendered[1]
        return self._render(plan)

    def _render(self, plan: Plan) -> str:
        from reconciler.core.render import render_text

        return render_text(plan, colour=self._colour)


def _report(args: argparse.Namespace, result: ReconcileResult, text: _PlanText) -> int:
    from reconciler.core.vocabulary import ReconcileOutcome

    plan = result.plan
    invalid = result.outcome == ReconcileOutcome.INVALID
    if not args.quiet and (plan.has_changes or invalid):
        print(text.of(plan), end="")
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
