"""Text from outside (file paths, field keys and values, reasons quoting them, row ids)
as it may be printed to a terminal, a CI log or a pull request.

A job file's path is chosen by whoever opens the pull request and may hold any byte
but `/` and NUL; a YAML value may hold any character through its escapes. Printed raw,
ESC or an 8-bit CSI would drive the reader's terminal (colours, cursor moves, a title,
a hyperlink), a carriage return would overwrite the line, and a bidi override would
show text in another order than it is read (Trojan Source, CVE-2021-42574).

A text holding none of these (nearly every one) is printed as it is. Any other is
written with JSON's string escapes (`\\u001b`, `\\n`), backslashes doubled, so that
what is printed reads back unambiguously: a printed text without a backslash is the
text itself.
"""

from __future__ import annotations

import re

# What JSON's encoder (`ensure_ascii=False`) leaves raw that a terminal or a viewer
# obeys: DEL, the C1 controls (0x9b is CSI, 0x9d OSC), the bidi marks, embeddings,
# overrides and isolates, and the line and paragraph separators.
_BEYOND_JSON = "\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069"
_LEFT_BY_JSON = re.compile(f"[{_BEYOND_JSON}]")
# The same, the C0 controls and the backslash (the escape character itself).
_NOT_PRINTABLE = re.compile(f"[\\x00-\\x1f\\\\{_BEYOND_JSON}]")
_SHORT = {"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f"}


def printable(text: str) -> str:
    """`text` unchanged if it holds no control, bidi character or backslash; else with
    each written as JSON writes it in a string (`\\u001b`, `\\n`, `\\\\`)."""
    # str.isprintable (false for every control, format and separator character but
    # the space) answers for nearly every text in a fraction of the search's time.
    if ("\\" not in text and text.isprintable()) or _NOT_PRINTABLE.search(text) is None:
        return text
    return _NOT_PRINTABLE.sub(_escaped, text)


def printable_json(encoded: str) -> str:
    """JSON text (`ensure_ascii=False`) with what it leaves raw escaped as `\\u007f`
    (still JSON, read back as the same value)."""
    if encoded.isprintable() or _LEFT_BY_JSON.search(encoded) is None:
        return encoded
    return _LEFT_BY_JSON.sub(_escaped, encoded)


def _escaped(match: re.Match[str]) -> str:
    character = match.group()
    return _SHORT.get(character) or f"\\u{ord(character):04x}"
