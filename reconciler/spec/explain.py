"""Pydantic validation errors and check findings, turned into positioned diagnostics.

Pure. The hard part is the location: pydantic's `loc` mixes data keys with union tags
(`schedule → cron → cron → CronFieldMap → second → str`), so it is walked against the
document's own data, and the node index from `yamlsafe.locate_nodes` gives the line and
column. Unions report one error per member; those are merged into one diagnostic, and
a member whose shape does not fit the input (text where a mapping was written) is dropped
when another member reports something deeper.

Messages never contain pydantic's `input`: values may be secrets. They may contain a
scalar's own text when it is the subject (a time zone name, `no` read as false).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from reconciler.spec.checks import Finding
from reconciler.spec.diagnostics import Diagnostic
from reconciler.spec.model import FORBIDDEN_OPTIONS, CronFieldMap, Interval, JobSpec
from reconciler.spec.yamlsafe import NodeInfo, NodePath, describe_kind, describe_value

_SCHEDULE_KINDS = ("cron", "interval", "at")
# Error types that say "wrong type of value", with what was expected, in words.
_EXPECTED = {
    "string_type": "text",
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "bool_type": "true or false",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "list_type": "a list",
    "datetime_type": "a date and time",
    "invalid-json-value": "JSON data (text, numbers, true/false, lists, mappings)",
}
_CODES = {
    "extra_forbidden": "UNKNOWN_FIELD",
    "missing": "MISSING_FIELD",
    "cron_syntax": "CRON_SYNTAX",
    "unknown_timezone": "UNKNOWN_TIMEZONE",
    "host_timezone": "HOST_TIMEZONE",
    "start_after_end": "START_AFTER_END",
}
_NAME_RULE = (
    "a name is 1-128 lowercase letters, digits, '.', '_' or '-', "
    "starting and ending with a letter or digit"
)
_TASK_RULE = "a task is a dotted Python name such as reconciler.tasks.example_task"


def _known_fields() -> dict[NodePath, tuple[str, ...]]:
    """The keys each mapping of a job document may hold, by the mapping's path."""
    return {
        (): tuple(JobSpec.model_fields),
        ("schedule",): _SCHEDULE_KINDS,
        ("schedule", "interval"): tuple(Interval.model_fields),
        ("schedule", "cron"): tuple(CronFieldMap.model_fields),
    }


def explain_errors(
    error: ValidationError, *, data: Any, index: Mapping[NodePath, NodeInfo], source: str
) -> list[Diagnostic]:
    """One diagnostic per distinct problem in `error`, positioned through `index`."""
    groups: dict[tuple[NodePath, bool], list[ErrorDetails]] = {}
    for details in error.errors(include_url=False, include_input=False):
        groups.setdefault(_locate(details, data), []).append(details)
    diagnostics: list[Diagnostic] = []
    for (path, at_key), group in groups.items():
        if _only_type_errors(group) and _has_deeper(path, groups):
            continue  # a union member that does not fit the written shape
        diagnostics.extend(_explain_group(path, at_key, group, data, index, source))
    return diagnostics


def explain_findings(
    findings: Iterable[Finding], *, index: Mapping[NodePath, NodeInfo], source: str
) -> list[Diagnostic]:
    """Findings of `checks.check_job`, at the position of the field they are about."""
    diagnostics = []
    for finding in findings:
        line, column = _position(index, finding.field, at_key=False)
        diagnostics.append(Diagnostic(source, line, column, finding.code, finding.message))
    return diagnostics


def _locate(details: ErrorDetails, data: Any) -> tuple[NodePath, bool]:
    """The data path an error is about, and whether it is about the key (not the value)."""
    kind, loc = details["type"], tuple(details["loc"])
    if kind == "start_after_end":
        return ("start",) if isinstance(data, dict) and "start" in data else (), True
    if len(loc) >= 2 and loc[0] == "schedule" and loc[1] in _SCHEDULE_KINDS:
        loc = (loc[0], *loc[2:])  # drop the discriminator's tag
    path: list[str | int] = []
    node = data
    for step in loc:
        if not _has_child(node, step):
            continue  # a union member's tag, or a key that is missing
        node = node[step]
        path.append(step)
    return tuple(path), kind == "extra_forbidden"


def _has_child(node: Any, step: str | int) -> bool:
    if isinstance(node, dict):
        return step in node
    return isinstance(node, list) and isinstance(step, int) and 0 <= step < len(node)


def _only_type_errors(group: Sequence[ErrorDetails]) -> bool:
    return all(details["type"] in _EXPECTED for details in group)


def _has_deeper(path: NodePath, groups: Mapping[tuple[NodePath, bool], object]) -> bool:
    return any(len(other) > len(path) and other[: len(path)] == path for other, _ in groups)


def _explain_group(
    path: NodePath,
    at_key: bool,
    group: Sequence[ErrorDetails],
    data: Any,
    index: Mapping[NodePath, NodeInfo],
    source: str,
) -> list[Diagnostic]:
    line, column = _position(index, path, at_key=at_key)
    value = _value_at(data, path)
    explained: list[tuple[str, str]] = []
    type_errors = [d for d in group if d["type"] in _EXPECTED]
    if type_errors:
        explained.append(_explain_type(path, type_errors, value, index.get(path)))
    for details in group:
        if details["type"] not in _EXPECTED:
            explained.append(_explain_one(path, details, value))
    unique = dict.fromkeys(explained)
    diagnostics = [Diagnostic(source, line, column, code, message) for code, message in unique]
    if any(details["type"] == "cron_syntax" for details in group):
        diagnostics += _surprising_numbers(path, value, index, source)
    return diagnostics


def _surprising_numbers(
    path: NodePath, value: Any, index: Mapping[NodePath, NodeInfo], source: str
) -> list[Diagnostic]:
    """YAML_COERCION for cron map fields whose number is not what was written: `1:30`
    (sexagesimal, 90) or `0755` (octal, 493). Such a field is valid as a number, so only
    the cron error that follows says something is wrong; this says what."""
    if not isinstance(value, dict):
        return []
    diagnostics = []
    for key, number in value.items():
        node = index.get((*path, key))
        if node is None or not node.plain or node.text is None:
            continue
        if isinstance(number, int | float) and node.text != str(number):
            message = (
                f"{_dotted((*path, key))}: read as {describe_value(number)}; "
                f"write '{node.text}' in quotes if you mean the text"
            )
            diagnostics.append(Diagnostic(source, node.line, node.column, "YAML_COERCION", message))
    return diagnostics


def _explain_type(
    path: NodePath, group: Sequence[ErrorDetails], value: Any, node: NodeInfo | None
) -> tuple[str, str]:
    field = _dotted(path)
    if node is not None and node.plain and node.text is not None and not isinstance(value, str):
        wants_text = any(d["type"] in ("string_type", "invalid-json-value") for d in group)
        if wants_text and node.text == "":
            return "INVALID_TYPE", f"{field}: the value is empty"
        # null is null in every YAML version: a plain type error, not a 1.1 surprise.
        if wants_text and value is not None:
            text = node.text if len(node.text) <= 40 else node.text[:37] + "..."
            message = (
                f"{field}: read as {describe_value(value)}; "
                f"write '{text}' in quotes if you mean the text"
            )
            return "YAML_COERCION", message
    expected = " or ".join(dict.fromkeys(_EXPECTED[d["type"]] for d in group))
    return "INVALID_TYPE", f"{field}: expected {expected}, found {describe_kind(value)}"


def _explain_one(path: NodePath, details: ErrorDetails, value: Any) -> tuple[str, str]:
    kind, message = details["type"], details["msg"]
    field = _dotted(path)
    if kind == "extra_forbidden" and len(path) == 1 and path[0] in FORBIDDEN_OPTIONS:
        return "FORBIDDEN_OPTION", f"{path[0]} is a Celery publish option jobs may not set"
    if kind == "extra_forbidden":
        return "UNKNOWN_FIELD", _unknown_field_message(path)
    if kind == "missing":
        missing = details["loc"][-1] if details["loc"] else "?"
        where = f" in {field}" if path else ""
        return "MISSING_FIELD", f"required field {missing!r} is missing{where}"
    if kind == "string_pattern_mismatch" and path == ("name",):
        return "INVALID_NAME", f"name: {_NAME_RULE}"
    if kind == "string_pattern_mismatch" and path == ("task",):
        return "INVALID_VALUE", f"task: {_TASK_RULE}"
    if kind == "invalid_schedule" and isinstance(value, dict):
        return "INVALID_VALUE", _schedule_message(value)
    if kind in _CODES:
        return _CODES[kind], message
    if kind.startswith("datetime"):
        return "INVALID_VALUE", f"{field}: expected a date and time such as 2030-01-01T09:00:00"
    return "INVALID_VALUE", f"{field}: {message}" if field else message


def _schedule_message(schedule: Mapping[str, Any]) -> str:
    kinds = [key for key in schedule if key in _SCHEDULE_KINDS]
    if len(kinds) > 1:
        return f"schedule: {' and '.join(kinds)} together; a schedule has exactly one kind"
    unknown = [key for key in schedule if key not in _SCHEDULE_KINDS]
    message = "schedule: needs exactly one of cron, interval, at"
    if unknown:
        close = difflib.get_close_matches(str(unknown[0]), _SCHEDULE_KINDS, n=1, cutoff=0.5)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        message += f" (found {unknown[0]!r}{hint})"
    return message


def _unknown_field_message(path: NodePath) -> str:
    key = str(path[-1])
    known = _known_fields().get(path[:-1], ())
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    where = f" in {_dotted(path[:-1])}" if path[:-1] else ""
    return f"unknown field {key!r}{where}{hint}"


def _position(
    index: Mapping[NodePath, NodeInfo], path: NodePath, *, at_key: bool
) -> tuple[int, int]:
    """The node's (or its key's) 1-based position; the nearest known ancestor's if the
    path is not in the index; (0, 0) if nothing is."""
    for length in range(len(path), -1, -1):
        node = index.get(path[:length])
        if node is not None:
            if at_key and length == len(path):
                return node.key_line, node.key_column
            return node.line, node.column
    return 0, 0


def _value_at(data: Any, path: NodePath) -> Any:
    node = data
    for step in path:
        node = node[step]
    return node


def _dotted(path: NodePath) -> str:
    return ".".join(str(step) for step in path) or "document"
