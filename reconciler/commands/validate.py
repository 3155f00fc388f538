"""`reconcile validate [PATH ...]`: parse and validate job files; no database needed.

Prints every diagnostic of every file (`path:line:col: CODE message`, never the source
line), or a one-line summary when all is valid. Exit 0 valid, 1 invalid.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

from reconciler.commands._common import settings_from
from reconciler.spec.diagnostics import Diagnostic, render_text
from reconciler.spec.loader import LoadResult, load_paths, warnings_of

HELP = "validate job files (default: the jobs folder); exit 0 valid, 1 invalid"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "paths", nargs="*", type=Path, metavar="PATH", help="files or folders (default: jobs dir)"
    )
    parser.add_argument(
        "--format",
        choices=("text", "json", "markdown"),
        default="text",
        help="output format (markdown: for a pull-request comment)",
    )


def run(args: argparse.Namespace) -> int:

    settings = settings_from(args)
    paths = list(args.paths) or [settings.jobs_dir]
    result = load_paths(paths, settings=settings)
    warnings = warnings_of(result, now=datetime.now(UTC))
    renderers = {"text": render_summary, "json": render_json, "markdown": render_markdown}
    output = renderers[args.format](result, warnings)
    sys.stdout.write(output + "\n")
    return 0 if result.valid else 1


def render_summary(result: LoadResult, warnings: tuple[Diagnostic, ...] = ()) -> str:
    """The diagnostics, the warnings, then one summary line: `3 files, 7 jobs: valid`."""
    counts = f"{_plural(result.files, 'file')}, {_plural(len(result.jobs), 'job')}"
    warned = "".join(f"warning: {w.render()}\n" for w in warnings)
    also = f", {_plural(len(warnings), 'warning')}" if warnings else ""
    if result.valid:
        return f"{warned}{counts}: valid{also}"
    bad = _plural(len(result.quarantined), "file")
    problems = _plural(len(result.diagnostics), "error")
    errors = render_text(result.diagnostics)
    return f"{errors}\n{warned}{counts}: invalid, {problems} in {bad}{also}"


def render_json(result: LoadResult, warnings: tuple[Diagnostic, ...] = ()) -> str:
    """{"valid", "files", "jobs", "errors": [{path, line, column, code, message}]}, and
    "warnings" (the same form) when there are any."""
    document: dict[str, object] = {
        "valid": result.valid,
        "files": result.files,
        "jobs": len(result.jobs),
        "errors": [diagnostic.as_dict() for diagnostic in result.diagnostics],
    }
    if warnings:
        document["warnings"] = [warning.as_dict() for warning in warnings]
    return json.dumps(document, indent=2)


def render_markdown(result: LoadResult, warnings: tuple[Diagnostic, ...] = ()) -> str:
    """A heading with the verdict and, when invalid, a table of the diagnostics."""
    counts = f"{_plural(result.files, 'file')}, {_plural(len(result.jobs), 'job')}"
    warned = "".join(f"\n\n> warning {_where(w)} `{w.code}` {_cell(w.message)}" for w in warnings)
    if result.valid:
        return f"### Job files: valid\n\n{counts}.{warned}"
    rows = [
        f"| {_where(d, in_table=True)} | `{d.code}` | {_cell(d.message)} |"
        for d in result.diagnostics
    ]
    table = "\n".join(["| where | code | problem |", "| --- | --- | --- |", *rows])
    bad = _plural(len(result.quarantined), "file")
    return f"### Job files: invalid\n\n{counts}; {bad} quarantined.\n\n{table}{warned}"


def _where(diagnostic: Diagnostic, *, in_table: bool = False) -> str:
    """`path:line:col` as code, the path as written (`printable`, whatever it holds)."""
    from reconciler.core.markdown_text import code_span
    from reconciler.printable import printable

    where = f"{printable(diagnostic.path)}:{diagnostic.line}:{diagnostic.column}"
    return code_span(where, in_table=in_table)


def _cell(text: str) -> str:
    """A message as Markdown text (it may quote the file: a key, a value)."""
    from reconciler.core.markdown_text import inline_text

    return inline_text(text.replace("\n", " "))


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"
