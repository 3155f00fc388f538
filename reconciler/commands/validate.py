"""`reconcile validate [PATH ...]`: parse and validate job files; no database needed.

Prints every diagnostic of every file (`path:line:col: CODE message`, never the source
line), or a one-line summary when all is valid. Exit 0 valid, 1 invalid.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from reconciler.spec.diagnostics import render_text
from reconciler.spec.loader import LoadResult, load_paths

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
    from reconciler.cli import settings_from

    settings = settings_from(args)
    paths = list(args.paths) or [settings.jobs_dir]
    result = load_paths(paths, settings=settings)
    renderers = {"text": render_summary, "json": render_json, "markdown": render_markdown}
    output = renderers[args.format](result)
    sys.stdout.write(output + "\n")
    return 0 if result.valid else 1


def render_summary(result: LoadResult) -> str:
    """The diagnostics, then one summary line: `3 files, 7 jobs: valid`."""
    counts = f"{_plural(result.files, 'file')}, {_plural(len(result.jobs), 'job')}"
    if result.valid:
        return f"{counts}: valid"
    bad = _plural(len(result.quarantined), "file")
    problems = _plural(len(result.diagnostics), "error")
    return f"{render_text(result.diagnostics)}\n{counts}: invalid, {problems} in {bad}"


def render_json(result: LoadResult) -> str:
    """{"valid", "files", "jobs", "errors": [{path, line, column, code, message}]}."""
    document = {
        "valid": result.valid,
        "files": result.files,
        "jobs": len(result.jobs),
        "errors": [diagnostic.as_dict() for diagnostic in result.diagnostics],
    }
    return json.dumps(document, indent=2)


def render_markdown(result: LoadResult) -> str:
    """A heading with the verdict and, when invalid, a table of the diagnostics."""
    counts = f"{_plural(result.files, 'file')}, {_plural(len(result.jobs), 'job')}"
    if result.valid:
        return f"### Job files: valid\n\n{counts}."
    rows = [
        f"| `{d.path}:{d.line}:{d.column}` | `{d.code}` | {_cell(d.message)} |"
        for d in result.diagnostics
    ]
    table = "\n".join(["| where | code | problem |", "| --- | --- | --- |", *rows])
    bad = _plural(len(result.quarantined), "file")
    return f"### Job files: invalid\n\n{counts}; {bad} quarantined.\n\n{table}"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"
