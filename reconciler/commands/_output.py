"""Output of the read commands: text (aligned, coloured only on a terminal), `-o wide`,
`-o json`, `-o yaml`. Every time is RFC 3339 UTC (`Z`)."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from reconciler.commands._common import colour_wanted
from reconciler.core.moments import jsonable, rfc3339
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
    return painter(colour_wanted())


def json_text(document: Any) -> str:
    """`document` as indented JSON, times in RFC 3339 UTC (`rfc3339`), enums by value.
    orjson: the standard library's encoder costs more than the rest of `get jobs -o json`."""
    import orjson

    options = orjson.OPT_INDENT_2 | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_NON_STR_KEYS
    return orjson.dumps(document, default=_json_default, option=options).decode()


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return rfc3339(value)
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"not JSON: {type(value).__name__}")


def emit(args: argparse.Namespace, document: Any, text: Callable[[bool, Paint], str]) -> None:
    """Print `document` (a value, or a function making it: text output never builds it)
    as json/yaml, or `text(wide, paint)`."""
    if args.output in ("json", "yaml") and callable(document):
        document = document()
    if args.output == "json":
        print(json_text(document))
    elif args.output == "yaml":
        import yaml

        print(yaml.safe_dump(jsonable(document), sort_keys=False, allow_unicode=True), end="")
    else:
        print(text(args.output == "wide", colour_paint()))
