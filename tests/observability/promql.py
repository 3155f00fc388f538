"""The PromQL of docker/: where it is (dashboards, alert rules), which series it selects.

promtool checks the syntax; this module only has to find the vector selectors of
expressions that promtool accepts: a metric name and its `{...}` matchers.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml

DOCKER = Path(__file__).resolve().parents[2] / "docker"
DASHBOARDS = DOCKER / "grafana" / "dashboards"
ALERTS = DOCKER / "prometheus" / "alerts.yml"

# Grafana's built-in variables, replaced by values that keep the expression valid PromQL.
GRAFANA_VARIABLES = {
    "$__rate_interval": "1m",
    "$__interval": "30s",
    "$__range": "5m",
}
# Series that Prometheus makes itself; the code cannot export them.
PROMETHEUS_SERIES = frozenset({"up"})

_KEYWORDS = frozenset(
    {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right"}
    | {"bool", "offset", "inf", "nan", "atan2"}
)
# Keywords followed by a parenthesised list of label names (not an expression).
_LABEL_LISTS = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right"})
_TOKEN = re.compile(
    r"""
      (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
    | (?P<range>\[[^\]]*\])
    | (?P<number>(?:0x[0-9a-fA-F]+|\d+(?:\.\d*)?(?:[eE][+-]?\d+)?(?:ms|[smhdwy])?)+)
    | (?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)
    | (?P<punct>[{}(),@])
    | (?P<operator>[-+*/%^=!<>~]+)
    | (?P<space>\s+)
    """,
    re.VERBOSE,
)


@dataclass(frozen=True)
class Selector:
    """One vector selector: `name{matchers}` (matchers as written, without braces)."""

    name: str
    matchers: str

    def promql(self) -> str:
        return f"{self.name}{{{self.matchers}}}" if self.matchers else self.name


@dataclass(frozen=True)
class Query:
    """One expression of docker/, and where it comes from (for messages)."""

    origin: str
    expr: str


def selectors(expr: str) -> list[Selector]:
    """The vector selectors of a valid PromQL expression, in order of appearance.

    Raises ValueError for a selector without a metric name (`{__name__=...}`): the names
    a dashboard uses must be visible to the checks."""
    tokens = [(kind, text) for kind, text in _tokenize(expr) if kind != "space"]
    found: list[Selector] = []
    index = 0
    while index < len(tokens):
        kind, text = tokens[index]
        following = tokens[index + 1][1] if index + 1 < len(tokens) else ""
        if kind == "name" and text in _LABEL_LISTS and following == "(":
            index = _skip_group(tokens, index + 1, "(", ")")
            continue
        if kind == "punct" and text == "{":
            raise ValueError(f"a selector without a metric name in {expr!r}")
        if (
            kind == "name"
            and text not in _KEYWORDS
            and following != "("
            and not _aggregation(tokens, index)
        ):
            end = index + 1
            matchers = ""
            if following == "{":
                end = _skip_group(tokens, index + 1, "{", "}")
                matchers = "".join(t for _, t in tokens[index + 2 : end - 1])
            found.append(Selector(text, matchers))
            index = end
            continue
        index += 1
    return found


def metric_names(expr: str) -> set[str]:
    return {selector.name for selector in selectors(expr)}


def with_grafana_variables(expr: str, **variables: str) -> str:
    """The expression as Prometheus receives it from Grafana: built-in variables and the
    dashboard's own (`job="..."` for `$job`) replaced."""
    for name, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(name, value)
    for name, value in variables.items():
        expr = expr.replace(f"${{{name}}}", value).replace(f"${name}", value)
    if "$" in expr:
        raise ValueError(f"a Grafana variable is left in {expr!r}")
    return expr


def dashboard_files() -> list[Path]:
    return sorted(DASHBOARDS.glob("*.json"))


def dashboard_queries(path: Path) -> Iterator[Query]:
    """Every panel target's expression (rows' nested panels too) and every query variable."""
    board = json.loads(path.read_text())
    for panel in _panels(board.get("panels", [])):
        for target in panel.get("targets", []):
            if target.get("expr"):
                yield Query(
                    f"{path.name}: {panel.get('title')} [{target.get('refId')}]", target["expr"]
                )
    for variable in board.get("templating", {}).get("list", []):
        if variable.get("type") == "query":
            query = variable.get("query")
            text = query.get("query") if isinstance(query, dict) else query
            yield Query(f"{path.name}: variable {variable['name']}", str(text))


def label_values_metric(variable_query: str) -> tuple[str, str]:
    """(metric, label) of Grafana's `label_values(metric, label)`."""
    match = re.fullmatch(
        r"\s*label_values\(\s*([a-zA-Z_:][\w:]*)\s*,\s*(\w+)\s*\)\s*", variable_query
    )
    if not match:
        raise ValueError(f"not label_values(metric, label): {variable_query!r}")
    return match.group(1), match.group(2)


def rule_queries(path: Path = ALERTS) -> Iterator[Query]:
    rules = yaml.safe_load(path.read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            name = rule.get("alert") or rule.get("record")
            yield Query(f"{path.name}: {group['name']}/{name}", rule["expr"])


def all_panel_queries() -> list[Query]:
    """Dashboard panel expressions (not the variables' label_values, which are Grafana's)."""
    return [
        query
        for path in dashboard_files()
        for query in dashboard_queries(path)
        if ": variable " not in query.origin
    ]


def _tokenize(expr: str) -> Iterator[tuple[str, str]]:
    position = 0
    while position < len(expr):
        match = _TOKEN.match(expr, position)
        if match is None:
            raise ValueError(f"cannot read {expr[position : position + 20]!r} in {expr!r}")
        kind = match.lastgroup
        assert kind is not None
        yield kind, match.group()
        position = match.end()


def _skip_group(tokens: list[tuple[str, str]], start: int, opening: str, closing: str) -> int:
    """Index after the group that opens at `start`."""
    depth = 0
    for index in range(start, len(tokens)):
        if tokens[index][1] == opening:
            depth += 1
        elif tokens[index][1] == closing:
            depth -= 1
            if depth == 0:
                return index + 1
    raise ValueError("unbalanced " + opening + closing)


def _aggregation(tokens: list[tuple[str, str]], index: int) -> bool:
    # `sum by (x) (...)`: an aggregation whose grouping comes before its argument.
    following = tokens[index + 1][1] if index + 1 < len(tokens) else ""
    return following in {"by", "without"}


def _panels(panels: list[dict]) -> Iterator[dict]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))
