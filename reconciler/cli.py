"""The `reconcile` console script: parses the command line and hands over to a command.

Exit codes (the table in README.md "Commands"): 0 success / no changes, 1 error or
invalid input, 2 the plan has changes, 3 refused by a safety guard. No traceback ever
reaches the user for an error we expected; an unexpected one is reported in one line as
a bug (exit 1), with the traceback only when RECONCILER_DEBUG=1.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import logging
import os
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import TYPE_CHECKING, NoReturn

from reconciler import __version__
from reconciler.commands._common import EXIT_ERROR, EXIT_OK, EXIT_REFUSED
from reconciler.errors import (
    ReconcilerError,
    RefusedError,
    operational_message,
)
from reconciler.heap import tune_heap
from reconciler.logs import configure_logging
from reconciler.redact import mask_logs, mask_text

if TYPE_CHECKING:  # pydantic-settings is imported by the commands that load settings
    pass


# name on the command line -> module in reconciler.commands
COMMANDS = {
    "validate": "validate",
    "plan": "plan",
    "apply": "apply",
    "status": "status",
    "get": "get",
    "describe": "describe",
    "runs": "runs",
    "explain": "explain",
    "run": "run",
    "api": "api",
    "worker": "worker",
    "dev": "dev",
    "schema": "schema",
    "db": "db",
    "next": "next",
}
# Commands that do one thing and exit. They run without CPython's cyclic collector: it
# would only re-scan what they keep until they exit (and again at exit), and what they
# allocate is freed with the process (bench/RESULTS.md "Figures behind code choices").
# The long-running ones (run, api, worker, dev) keep it.
ONE_SHOT_COMMANDS = frozenset(
    {
        "validate",
        "plan",
        "apply",
        "status",
        "get",
        "describe",
        "runs",
        "explain",
        "schema",
        "db",
        "next",
    }
)
# The one-shot commands that may load every job file (thousands of them): their C heap is
# set up for many allocations kept until the exit (reconciler.heap).
BULK_COMMANDS = frozenset({"validate", "plan", "apply"})
# `--dry-run`, wherever it is placed, is `reconcile plan` for these; any other command
# refuses it (usage error) rather than run for real.
DRY_RUN_COMMANDS = frozenset({"plan", "apply"})


def _command(name: str) -> ModuleType:
    return importlib.import_module(f"reconciler.commands.{COMMANDS[name]}")


class _Parser(argparse.ArgumentParser):
    """argparse exits 2 on a usage error, but 2 means "the plan has changes" here."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_ERROR, f"{self.prog}: error: {message}\n")


# The common flags that take a value (what `_invoked_command` must step over).
_VALUE_FLAGS = ("--jobs-dir", "--database-url")


def _invoked_command(arguments: Sequence[str]) -> str | None:
    """The command named on the command line, told without importing any command module,
    or None when it cannot be told (help, --version, an unknown name, nothing)."""
    remaining = iter(arguments)
    for item in remaining:
        if item in ("-h", "--help", "--version"):
            return None
        if item.startswith("--") and "=" not in item:
            # argparse also accepts an unambiguous prefix (`--database`) of a flag
            if len(item) > 2 and any(flag.startswith(item) for flag in _VALUE_FLAGS):
                next(remaining, None)  # the flag's value
            continue
        if item.startswith("-"):
            continue
        return item if item in COMMANDS else None
    return None


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser of every command, or with `command` only of that one: the other command
    modules are then never imported, and a one-shot command (`reconcile get jobs`, a no-op
    `reconcile plan`) pays only for its own imports. The full parser is for help and for
    errors that list the commands."""
    parser = _Parser(
        prog="reconcile",
        description="Scheduled jobs as YAML in git, reconciled into APScheduler and Celery.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--dry-run", action="store_true", help="the same as `reconcile plan` (change nothing)"
    )
    _add_common(parser)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS if command is None else (command,):
        module = _command(name)
        sub = subparsers.add_parser(name, help=module.HELP, description=module.HELP)
        _add_common(sub)
        module.add_arguments(sub)
        if name in DRY_RUN_COMMANDS:
            # SUPPRESS: `reconcile --dry-run apply` keeps the flag given before the command.
            sub.add_argument(
                "--dry-run",
                action="store_true",
                default=argparse.SUPPRESS,
                help="show the plan, change nothing (exit codes of `reconcile plan`)",
            )
    return parser


def _add_common(parser: argparse.ArgumentParser) -> None:
    # SUPPRESS keeps a flag given before the sub-command from being reset by the sub-parser.
    parser.add_argument(
        "--jobs-dir",
        default=argparse.SUPPRESS,
        help="folder of job files (env RECONCILER_JOBS_DIR, default ./jobs.d)",
    )
    parser.add_argument(
        "--database-url",
        default=argparse.SUPPRESS,
        help="postgresql://... or sqlite:///... (env RECONCILER_DATABASE_URL)",
    )


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if "--dry-run" in arguments and not set(arguments) & set(COMMANDS):
        # `reconcile --dry-run [plan flags]` is `reconcile plan [plan flags]`.
        arguments = ["plan" if item == "--dry-run" else item for item in arguments]
    parser = build_parser(_invoked_command(arguments))
    args = parser.parse_args(arguments)
    if args.command is None:
        parser.print_help()
        return EXIT_ERROR
    if getattr(args, "dry_run", False) and args.command not in DRY_RUN_COMMANDS:
        # A dry run that runs for real is the worst bug a plan tool can have: refuse.
        parser.error(
            f"--dry-run means nothing for `reconcile {args.command}`; "
            "it applies to `reconcile plan` and `reconcile apply` (the plan, no change)"
        )
    applies = args.command == "apply" and not getattr(args, "dry_run", False)
    if applies and (args.format is not None or args.out is not None):
        parser.error("--format and --out are the plan's: `reconcile apply --dry-run` takes them")
    one_shot = argv is None and args.command in ONE_SHOT_COMMANDS
    if one_shot:
        gc.disable()  # the program itself (not a caller passing argv): it exits after
        if args.command in BULK_COMMANDS:
            tune_heap()
    configure_logging()
    mask_logs(logging.getLogger().handlers)  # secrets by value never reach a log line
    try:
        return _run(args)
    finally:
        if one_shot:
            # The interpreter's exit runs a full collection over everything the command
            # kept (~0.1-0.15 s after a cold apply of 10,000 jobs); frozen objects are
            # not scanned. Nothing is skipped: atexit handlers and finalizers still run.
            gc.freeze()


def _run(args: argparse.Namespace) -> int:
    """Run the command; expected errors become a message and an exit code."""
    try:
        return int(_command(args.command).run(args))
    except RefusedError as error:
        print(f"refused: {mask_text(str(error))}", file=sys.stderr)
        return EXIT_REFUSED
    except ReconcilerError as error:  # ConfigError, TransientError, ... (reconciler.errors)
        print(f"error: {mask_text(str(error))}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `reconcile plan | head`: the reader left; not an error of ours.
        sys.stderr.close()
        return EXIT_OK
    except Exception as error:
        if os.environ.get("RECONCILER_DEBUG") == "1":
            raise
        operational = operational_message(error)
        if operational is not None:
            print(f"error: {operational}", file=sys.stderr)
            return EXIT_ERROR
        print(
            "internal error (a bug, please report it): "
            f"{type(error).__name__}: {mask_text(str(error))}",
            file=sys.stderr,
        )
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
