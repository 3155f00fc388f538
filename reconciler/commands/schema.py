"""`reconcile schema`: print, write or check the JSON Schema of job files."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from reconciler.spec.schema import SCHEMA_FILE, render_schema

HELP = "print the JSON Schema of job files (--output to write it, --check to compare)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--output", "-o", type=Path, help=f"write the schema to this file (e.g. {SCHEMA_FILE})"
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="exit 1 if the file given by --output (default "
        f"{SCHEMA_FILE}) differs from the models",
    )


def run(args: argparse.Namespace) -> int:
    """Exit 0 when printed, written or up to date; 1 when --check finds it stale."""
    text = render_schema()
    if args.check:
        target = args.output or Path(SCHEMA_FILE)
        current = target.read_text(encoding="utf-8") if target.is_file() else None
        if current != text:
            state = "missing" if current is None else "stale"
            print(f"{target} is {state}: run `reconcile schema --output {target}`", file=sys.stderr)
            return 1
        print(f"{target} is up to date")
        return 0
    if args.output is None:
        sys.stdout.write(text)
        return 0
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text, encoding="utf-8")
    print(f"wrote {args.output}")
    return 0
