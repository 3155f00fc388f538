"""The plan as a JSON document (for scripts and saved plans): stable and versioned.

`render_json` writes exactly the text `json.dumps(plan_document(plan), indent=2,
default=str)` writes, without building the document: the frame (the document but its
changes) by orjson, each change as text from pieces made once per rendering
(tests/unit/core/test_render_reference.py and test_render_scale.py hold the two
together).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

import orjson

from reconciler.core.diff import FieldDiffer, FieldViews
from reconciler.core.plan import Change, Plan
from reconciler.core.render import FireTimes
from reconciler.core.vocabulary import Action

FORMAT_VERSION = 1


def render_json(plan: Plan) -> str:
    frame = _dump_json(_document(plan, None), holds_float=False)
    if not plan.changes:
        return frame
    head, found, tail = frame.partition(_NO_CHANGES)
    if not found:  # pragma: no cover - the frame always lists its (no) changes
        raise AssertionError("the JSON frame has no list of changes")
    pieces = [head, '\n  "changes": [\n']
    _JsonText(pieces).write(plan.changes)
    pieces += ["\n  ],\n", tail]
    return "".join(pieces)


# How the frame lists its (no) changes: no JSON string holds a line break, so this text
# is the key itself.
_NO_CHANGES = '\n  "changes": [],\n'


def plan_document(plan: Plan) -> dict[str, Any]:
    """The JSON plan: a stable, versioned document (what `render_json` writes)."""
    return _document(plan, FieldDiffer())


def _document(plan: Plan, differ: FieldDiffer | None) -> dict[str, Any]:
    """The document; without a `differ`, its frame (an empty list of changes)."""
    return {
        "format_version": FORMAT_VERSION,
        "plan_hash": plan.plan_hash,
        "revision": {"commit": plan.revision.commit, "dirty": plan.revision.dirty},
        # Plain str keys: orjson refuses keys that are str subclasses (enum members).
        "summary": {str(action): count for action, count in plan.summary.items()},
        "has_changes": plan.has_changes,
        "refused": plan.refused,
        "changes": [] if differ is None else [_change(c, differ) for c in plan.changes],
        "quarantined": [
            {"path": path, "errors": [d.as_dict() for d in diagnostics]}
            for path, diagnostics in sorted(plan.quarantined.items())
        ],
        "foreign": list(plan.foreign),
        "hints": list(plan.hints),
    }


def _change(change: Change, differ: FieldDiffer) -> dict[str, Any]:
    return {
        "action": change.action,
        "job": change.job,
        "renamed_from": change.renamed_from,
        "source": change.source,
        "reason": change.reason,
        # What the plan hash covers of this change (a saved plan is checked against it).
        "content": {"before": change.before_key, "after": change.after_key},
        "diffs": [
            {"path": diff.path, "before": diff.before, "after": diff.after}
            for diff in differ.between(change.before, change.after)
        ],
        "next_fires_before": [moment.isoformat() for moment in change.fires_before],
        "next_fires_after": [moment.isoformat() for moment in change.fires_after],
    }


class _JsonText:
    """The changes of one plan as the text of the document's list of changes (indented
    as `json.dumps(..., indent=2)` indents it there), appended to `pieces` (joined once:
    21 MB for 10,000 adds) from parts written once per rendering: a field entry per
    distinct path and value (FieldViews), a list per set of fire times (jobs that share
    a schedule share their next fires)."""

    def __init__(self, pieces: list[str]) -> None:
        self._pieces = pieces
        differ = self._differ = FieldDiffer()
        # Each entry ends with the entries' separator (the last one's is cut off): the
        # entries go into the pieces as they are, not joined per change first.
        self._added = FieldViews(differ, _added_entry).into
        self._removed = FieldViews(differ, _removed_entry).into
        self._listed = FireTimes(_fire_list)

    def write(self, changes: Iterable[Change]) -> None:
        pieces, listed = self._pieces, self._listed
        append = pieces.append
        # A file's jobs share their source: written once. An add's reason names its line.
        texts: dict[str | None, str] = {None: "null"}
        opening = '    {\n      "action": '
        for change in changes:
            source = change.source
            before_key, after_key = change.before_key, change.after_key
            append(
                f"{opening}{_ACTIONS[change.action]},\n"
                f'      "job": {_text(change.job)},\n'
                f'      "renamed_from": {_text_or_null(change.renamed_from)},\n'
                f'      "source": {texts.get(source) or _remembered(texts, source)},\n'
                f'      "reason": {_text(change.reason)},\n'
                '      "content": {\n        "before": '
                f"{'null' if before_key is None else _text(before_key)},\n"
                f'        "after": {"null" if after_key is None else _text(after_key)}\n'
                '      },\n      "diffs": '
            )
            append(_ENTRIES_OPEN)
            first = len(pieces)
            before, after = change.before, change.after
            if before is None and after is not None:
                self._added(after.essence, pieces)
            elif after is None and before is not None:
                self._removed(before.essence, pieces)
            else:
                diffs = self._differ.between(before, after)
                pieces += [_entry(diff.path, diff.before, diff.after) for diff in diffs]
            if len(pieces) > first:
                pieces[-1] = pieces[-1][: -len(_SEPARATOR)]
                closing = _ENTRIES_CLOSE
            else:
                pieces[-1], closing = "[]", ""
            fires_before, fires_after = change.fires_before, change.fires_after
            if fires_before or fires_after:
                append(
                    f"{closing},\n"
                    '      "next_fires_before": '
                    f"{listed(fires_before) if fires_before else '[]'},\n"
                    '      "next_fires_after": '
                    f"{listed(fires_after) if fires_after else '[]'}\n    }}"
                )
            else:  # every add of a plan made without previews (`reconcile apply`)
                append(_NO_FIRES[closing])
            opening = ',\n    {\n      "action": '


def _remembered(texts: dict[str | None, str], text: str | None) -> str:
    """`text` as JSON, remembered in `texts`."""
    shown = texts[text] = _text_or_null(text)
    return shown


def _fire_list(moments: tuple[datetime, ...]) -> str:
    if not moments:
        return "[]"
    items = ",\n".join([f"        {_text(moment.isoformat())}" for moment in moments])
    return f"[\n{items}\n      ]"


_ENTRIES_OPEN, _SEPARATOR, _ENTRIES_CLOSE = "[\n", ",\n", "\n      ]"
# What closes a change without next fires, by what closes its list of diffs.
_NO_FIRES = {
    closing: f'{closing},\n      "next_fires_before": [],\n      "next_fires_after": []\n    }}'
    for closing in (_ENTRIES_CLOSE, "")
}
# json's own encoder of a string (ensure_ascii), in C.
_text: Callable[[str], str] = json.encoder.encode_basestring_ascii
_ACTIONS = {action: _text(action) for action in Action}


def _text_or_null(text: str | None) -> str:
    return "null" if text is None else _text(text)


def _entry(path: str, before: Any, after: Any) -> str:
    """A field entry of a change's "diffs", indented as its item there, and the
    entries' separator."""
    return (
        f'        {{\n          "path": {_text(path)},\n'
        f'          "before": {_value(before)},\n'
        f'          "after": {_value(after)}\n        }},\n'
    )


def _added_entry(path: str) -> Callable[[Any], str]:
    """Per path, `_entry(path, None, value)` of a value, the path written once."""
    opening = f'        {{\n          "path": {_text(path)},\n          "before": null,\n'
    # A str (most values) without `_value`'s call.
    return lambda value: (
        f'{opening}          "after": {_text(value) if type(value) is str else _value(value)}'
        "\n        },\n"
    )


def _removed_entry(path: str) -> Callable[[Any], str]:
    """Per path, `_entry(path, value, None)` of a value, the path written once."""
    opening = f'        {{\n          "path": {_text(path)},\n          "before": '
    return lambda value: f'{opening}{_value(value)},\n          "after": null\n        }},\n'


def _value(value: Any) -> str:
    """A field's value as the entry's key writes it (`json.dumps` indents a value's own
    lines under its key: 10 spaces in an entry)."""
    kind = type(value)
    if kind is str:
        return _text(value)
    if value is None:
        return "null"
    if kind is bool:
        return "true" if value else "false"
    if kind is int:
        return int.__repr__(value)
    return _dump_json(value, holds_float=_holds_float(value)).replace("\n", "\n          ")


def _dump_json(document: Any, *, holds_float: bool) -> str:
    """`json.dumps(document, indent=2, default=str)`, byte for byte, written by orjson
    (whose indented text is the same but for floats, non-ASCII text, and the types it
    refuses). Documents holding floats go through json, as does anything orjson refuses."""
    if not holds_float:
        try:
            text = orjson.dumps(document, option=orjson.OPT_INDENT_2)
        except TypeError:
            pass
        else:
            if text.isascii() and b"\x7f" not in text:
                return text.decode()
            return _NOT_ASCII.sub(_escape_char, text.decode())
    return json.dumps(document, indent=2, sort_keys=False, default=str)


# What json's ensure_ascii escapes that orjson writes as is (orjson already escapes the
# control characters exactly as json does).
_NOT_ASCII = re.compile("[\x7f-\U0010ffff]")


def _escape_char(match: re.Match[str]) -> str:
    code = ord(match[0])
    if code < 0x10000:
        return f"\\u{code:04x}"
    code -= 0x10000
    return f"\\u{0xD800 | (code >> 10):04x}\\u{0xDC00 | (code & 0x3FF):04x}"


def _holds_float(value: Any) -> bool:
    """Whether a field value is, or holds, a float (or a type json writes through
    `default=str`): the values orjson would not spell as json does."""
    kind = type(value)
    if kind is str or kind is int or value is None or isinstance(value, str | int):
        return False  # a bool is an int; str and int enums are spelled by their values
    if kind is dict:
        return any(map(_holds_float, value.values()))
    if kind is list or kind is tuple:
        return any(map(_holds_float, value))
    return True
