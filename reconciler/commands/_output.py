"""Output of the read commands: text (aligned, coloured only on a terminal), `-o wide`,
`-o json`, `-o yaml`. Every time is RFC 3339 UTC (`Z`)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from typing import Any

from reconciler.core.moments import jsonable
from reconciler.core.readout import Paint, painter

FORMATS = ("text", "wide", "json", "yaml")


def add_output(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-o",
        "--output",
        "--format",
        dest="output",
        choices=FORMATS,
        default="text",
        help="text (default), wide (more columns), json or yaml",
    )


def colour_paint() -> Paint:
    """Colour on a terminal, unless NO_COLOR is set (no-color.org)."""
    return painter(sys.stdout.isatty() and not os.environ.get("NO_COLOR"))


def emit(args: argparse.Namespace, document: Any, text: Callable[[bool, Paint], str]) -> None:
    """Print `document` (a value, or a function making it: text output never builds it)
    as json/yaml, or `text(wide, paint)`."""
    if args.output in ("json", "yaml") and callable(document):
        document = document()
    if args.output == "json":
        print(json.dumps(jsonable(document), indent=2, ensure_ascii=False))
    elif args.output == "yaml":
        import yaml

        print(yaml.safe_dump(jsonable(document), sort_keys=False, allow_unicode=True), end="")
    else:
        print(text(args.output == "wide", colour_paint()))
