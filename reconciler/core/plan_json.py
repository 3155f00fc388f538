"""The plan as a JSON document (for scripts and saved plans): stable and versioned.

Written by orjson, in exactly the text `json.dumps(document, indent=2, default=str)`
writes (tests/unit/core/test_render_scale.py holds the two to that).
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

import orjson

from reconciler.core.diff import FieldDiffer, FieldViews
from reconciler.core.plan import Change, Plan

FORMAT_VERSION = 1


def render_json(plan: Plan) -> str:
    changes = _JsonChanges()
    return _dump_json(_document(plan, changes), holds_float=changes.holds_float)


def plan_document(plan: Plan) -> dict[str, Any]:
    """The JSON plan: a stable, versioned document. Equal field entries and fire-time
    lists may be one shared object (the document is data to serialise, not to edit)."""
    return _document(plan, _JsonChanges())


def _document(plan: Plan, changes: _JsonChanges) -> dict[str, Any]:
    return {
        "format_version": FORMAT_VERSION,
        "plan_hash": plan.plan_hash,
        "revision": {"commit": plan.revision.commit, "dirty": plan.revision.dirty},
        # Plain str keys: orjson refuses keys that are str subclasses (enum members).
        "summary": {str(action): count for action, count in plan.summary.items()},
        "has_changes": plan.has_changes,
        "refused": plan.refused,
        "changes": [changes.document(change) for change in plan.changes],
        "quarantined": [
            {"path": path, "errors": [d.as_dict() for d in diagnostics]}
            for path, diagnostics in sorted(plan.quarantined.items())
        ],
        "foreign": list(plan.foreign),
        "hints": list(plan.hints),
    }


class _JsonChanges:
    """The change documents of one JSON plan, noting whether any value is a float."""

    def __init__(self) -> None:
        differ = self._differ = FieldDiffer()
        self.holds_float = False
        self._added = FieldViews(differ, lambda path, value: self._entry(path, None, value))
        self._removed = FieldViews(differ, lambda path, value: self._entry(path, value, None))
        self._fire_times: dict[tuple[datetime, ...], list[str]] = {}

    def document(self, change: Change) -> dict[str, Any]:
        return {
            "action": change.action,
            "job": change.job,
            "renamed_from": change.renamed_from,
            "source": change.source,
            "reason": change.reason,
            # What the plan hash covers of this change (a saved plan is checked against it).
            "content": {"before": change.before_key, "after": change.after_key},
            "diffs": self._diffs(change),
            "next_fires_before": self._listed(change.fires_before),
            "next_fires_after": self._listed(change.fires_after),
        }

    def _diffs(self, change: Change) -> list[dict[str, Any]]:
        before, after = change.before, change.after
        if before is None and after is not None:
            return self._added(after.essence)
        if after is None and before is not None:
            return self._removed(before.essence)
        diffs = self._differ.between(before, after)
        return [self._entry(diff.path, diff.before, diff.after) for diff in diffs]

    def _listed(self, moments: tuple[datetime, ...]) -> list[str]:
        """Fire times as text, each list written once (jobs that share a schedule share
        their next fire times)."""
        known = self._fire_times.get(moments)
        if known is None:
            known = self._fire_times[moments] = [moment.isoformat() for moment in moments]
        return known

    def _entry(self, path: str, before: Any, after: Any) -> dict[str, Any]:
        if _holds_float(before) or _holds_float(after):
            self.holds_float = True
        return {"path": path, "before": before, "after": after}


def _dump_json(document: dict[str, Any], *, holds_float: bool) -> str:
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
