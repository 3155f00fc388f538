"""Hostile-input-safe YAML: bytes in, plain Python data (and, on request, positions) out.

Why not `yaml.safe_load`: it accepts alias bombs, keeps the last of two duplicate keys,
crashes the process (CSafeLoader segfaults in its recursive composer) on 50,000 nested
`[`, and its errors print the offending source line. Here libyaml's C *parser* (an
explicit state stack, no recursion) produces events, and a flat loop in this module
builds the data from them, so that:

- nesting deeper than `max_depth` stops the parse at the first too-deep node, before
  libyaml has read further (flow nesting makes libyaml quadratic: stopping early matters);
- tags, anchors and aliases, duplicate keys and non-text keys are reported, never built;
- scalars are resolved exactly as PyYAML's YAML 1.1 resolver does (`no` is false,
  `0755` is 493), and the same loop can record, for every node, where it starts and
  whether it was a plain (unquoted) scalar, so a later type error can say "quote it";
- everywhere in a job file a plain value must mean the same in YAML 1.1 and YAML 1.2's
  core schema: `no`/`on`/`y` (any case), `1:30`, `0755`, `1_000`, `0b11`, `0o17`, `1e3`
  are refused with "quote it" at their position (YAML_COERCION). Inside `args` and
  `kwargs` (free-form values no model type can catch) so are dates, and `1.10`-style
  numbers whose trailing zero the number loses; elsewhere a timestamp is what the `at`,
  `start` and `end` fields take either way. So a job means what any YAML 1.2 reader
  would take it to mean.

The caller bounds the byte size (see `reconciler.spec.files`). Everything here is pure
but for the event classes PyYAML's C parser is given while one parse runs (see
`reconciler.spec.events`: no Python code per event).
Building plain data is about twice as fast as `yaml.load_all(..., CSafeLoader)`; the
positions are only recorded when asked for (`locate_nodes`), i.e. when a document has
an error to report.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.events import AliasEvent, ScalarEvent
from yaml.nodes import ScalarNode
from yaml.resolver import Resolver

from reconciler.redact import REDACTED, looks_secret
from reconciler.spec import events as cheap
from reconciler.spec.diagnostics import Diagnostic

# Structural problems listed per file; the rest are counted in one line per code.
MAX_DIAGNOSTICS_PER_FILE = 100
# A path from a document's root to a node: mapping keys and sequence indexes.
NodePath = tuple[str | int, ...]
# YAML forbids C0 controls (but tab, LF, CR), DEL, C1 controls (but NEL) and surrogates.
_CONTROL_BYTES = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_CONTROL_CHARS = re.compile("[\x80-\x84\x86-\x9f\ud800-\udfff\ufffe\uffff]")
_CONTROL_BYTE_VALUES = bytes(b for b in range(256) if _CONTROL_BYTES.match(bytes([b])))


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """Where one node starts (1-based), and where its key starts if it is a mapping value.

    `plain` is true for an unquoted, untagged scalar: only those are subject to YAML 1.1
    type resolution. `text` is the scalar as written (None for collections).
    """

    line: int
    column: int
    key_line: int
    key_column: int
    plain: bool
    text: str | None


@dataclass(frozen=True, slots=True)
class YamlDocument:
    """One document: its data, where its root node starts (1-based), whether the
    structure was clean (no tag, alias, duplicate or non-text key), and where its
    top-level `name` key is (for duplicate-name messages; the root's position if none)."""

    data: Any
    line: int
    column: int
    clean: bool
    name_line: int
    name_column: int
    # Plain values outside args/kwargs that YAML 1.1 and 1.2 core read differently
    # (`paused: yes`, `retries: 0755`): YAML_COERCION diagnostics for the loader.
    ambiguous: tuple[Diagnostic, ...] = ()


@dataclass(frozen=True, slots=True)
class ParsedYaml:
    """The documents read before the first fatal error, and every problem found.

    A fatal problem (encoding, syntax, nesting) ends the parse; structural problems
    (tags, aliases, duplicate keys) mark their document unclean and parsing goes on,
    so that one run reports them all.
    """

    documents: tuple[YamlDocument, ...]
    diagnostics: tuple[Diagnostic, ...]


class _Abort(Exception):
    """Stop the parse: `diagnostic` is fatal for the whole file."""

    def __init__(self, diagnostic: Diagnostic) -> None:
        super().__init__(diagnostic.message)
        self.diagnostic = diagnostic


class ScalarMemo:
    """What plain scalar texts resolved to without a problem, as a key (YAML 1.1) and as
    a value (checked against YAML 1.2 core; by whether it is free-form), for the parses
    that share it: the jobs of a folder repeat their keys and many values (`t0`, `30`,
    dates). Owned by the caller (one load); at most `_REMEMBERED` texts of each kind,
    however hostile the files; only immutable values (text, numbers, booleans, None,
    dates), so a value may sit in several documents."""

    __slots__ = ("keys", "values")

    def __init__(self) -> None:
        self.keys: dict[str, Any] = {}
        self.values: dict[tuple[str, bool], Any] = {}


def parse_yaml(
    data: bytes, *, path: str, max_depth: int, memo: ScalarMemo | None = None
) -> ParsedYaml:
    """Parse every document of `data` into plain data (dict, list, str, int, float,
    bool, None, date, datetime). Never raises for any input; problems are diagnostics
    labelled with `path`. `memo`: shared with other parses (a fresh one if None); the
    result is the same either way."""
    problem = check_text(data, path=path)
    if problem is not None:
        return ParsedYaml((), (problem,))
    builder = _Builder(path=path, max_depth=max_depth, record=False, memo=memo or ScalarMemo())
    fatal = builder.run(data)
    diagnostics = [
        *builder.diagnostics,
        *builder.summarise_suppressed(),
        *([fatal] if fatal else []),
    ]
    return ParsedYaml(tuple(builder.documents), tuple(diagnostics))


def locate_nodes(data: bytes, *, max_depth: int) -> list[dict[NodePath, NodeInfo]]:
    """Per document, the position of every node by its path from the root.

    Meant for text `parse_yaml` already read without a fatal problem; for other text
    the list covers the documents read before the problem."""
    builder = _Builder(path="", max_depth=max_depth, record=True, memo=ScalarMemo())
    builder.run(data)
    return builder.indexes


def check_text(data: bytes, *, path: str) -> Diagnostic | None:
    """BINARY_FILE for control bytes, NOT_UTF8 for invalid UTF-8, else None."""
    # Searched for only when there is one: deleting them all is 5 times faster than
    # the search, and then ASCII text cannot hold a refused character (all above 0x7f).
    byte_match = None
    if len(data.translate(None, _CONTROL_BYTE_VALUES)) != len(data):
        byte_match = _CONTROL_BYTES.search(data)
    if byte_match is not None:
        line, column = _position_of(data, byte_match.start())
        return Diagnostic(
            path, line, column, "BINARY_FILE", f"control byte 0x{data[byte_match.start()]:02x}"
        )
    if data.isascii():
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line, column = _position_of(data, error.start)
        return Diagnostic(path, line, column, "NOT_UTF8", f"invalid UTF-8: {error.reason}")
    match = _CONTROL_CHARS.search(text)
    if match is not None:
        line, column = _position_of(data, len(text[: match.start()].encode("utf-8")))
        code = ord(text[match.start()])
        return Diagnostic(path, line, column, "BINARY_FILE", f"control character U+{code:04X}")
    return None


def _position_of(data: bytes, offset: int) -> tuple[int, int]:
    """1-based line and column (in characters, as editors count) of a byte offset."""
    line_start = data.rfind(b"\n", 0, offset) + 1
    column = len(data[line_start:offset].decode("utf-8", errors="replace")) + 1
    return data.count(b"\n", 0, offset) + 1, column


class _Builder:
    """Turns libyaml events into data. One instance per parse.

    The containers under construction are kept on an explicit stack (never recursion),
    so the depth bound is the only limit on input shape.
    """

    def __init__(self, *, path: str, max_depth: int, record: bool, memo: ScalarMemo) -> None:
        self.path = path
        self.max_depth = max_depth
        self.record = record
        self.documents: list[YamlDocument] = []
        self.indexes: list[dict[NodePath, NodeInfo]] = []
        self.diagnostics: list[Diagnostic] = []
        self._convert = _scalar_constructors()
        self.problems = 0  # every structural problem, shown or not
        self.suppressed: dict[str, int] = {}
        self._keys = memo.keys
        self._values = memo.values

    def run(self, data: bytes) -> Diagnostic | None:
        """Consume all events; return the fatal diagnostic that stopped it, if any."""
        try:
            with cheap.cheap_events():
                self._consume(yaml.CSafeLoader(data).get_event)
        except _Abort as abort:
            return abort.diagnostic
        except yaml.MarkedYAMLError as error:
            return self._syntax_error(error)
        except yaml.YAMLError as error:  # ReaderError: has an offset, no mark
            position = getattr(error, "position", 0)
            line, column = _position_of(data, position if isinstance(position, int) else 0)
            reason = getattr(error, "reason", "unreadable text")
            return Diagnostic(self.path, line, column, "YAML_SYNTAX", str(reason))
        return None

    def _syntax_error(self, error: yaml.MarkedYAMLError) -> Diagnostic:
        # Built from the problem and context only: str(error) may quote the source line.
        mark = error.problem_mark or error.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark is not None else (0, 0)
        message = error.problem or "invalid YAML"
        if error.context:
            context_mark = error.context_mark
            where = f" (line {context_mark.line + 1})" if context_mark is not None else ""
            message = f"{message} {error.context}{where}"
        if "maximum nesting depth" in message:
            # libyaml >= 0.2.5 (PyYAML 6.0.4's wheels) stops deep flow nesting itself,
            # sometimes before our own depth check sees the node: the same problem.
            return Diagnostic(self.path, line, column, "NESTING_TOO_DEEP", message)
        if error.context == "while scanning an alias":
            # The classic: an unquoted cron expression. `*` starts an alias in YAML.
            message += '; a value starting with * must be quoted, e.g. "*/5 * * * *"'
        return Diagnostic(self.path, line, column, "YAML_SYNTAX", message)

    def _consume(self, next_event: Callable[[], Any]) -> None:
        # One flat loop with local variables: this is the hot path of every load. The
        # innermost open container is `top`; `key` says what it waits for: `_NO_KEY` (a
        # mapping's next key), a key (that key's value), `_ITEM` (a sequence's next item)
        # or `_ROOT` (no container open: a document's root node). The outer containers'
        # (top, key, key_mark) are on `stack`, outermost first: its length is the depth.
        record = self.record
        max_depth = self.max_depth
        keys_get = self._keys.get
        values_get = self._values.get
        stack: list[tuple[Any, Any, Any]] = []
        top: Any = None
        key: Any = _ROOT
        key_mark: Any = None  # where the innermost mapping's pending key starts
        path: NodePath = ()  # the innermost container's path (only when recording)
        paths: list[NodePath] = []  # the outer containers' paths (only when recording)
        doc = _DocumentState()
        # While > 0: the depth from which on the open containers are inside a document's
        # `args` or `kwargs`, where plain values follow YAML 1.2 core (`_resolve_core`).
        strict_from = 0
        free_form = False  # bool(strict_from)
        # Events are `cheap.CHEAP`'s (see `run`): their fields are unpacked from `args`.
        while True:
            event = next_event()
            kind = type(event)
            if kind is _SCALAR or kind is _ALIAS:
                if kind is _ALIAS:
                    self._report_structure(event)
                    value: Any = None
                    mark = event.args[1]
                else:
                    anchor, tag, implicit, value, mark, _, _ = event.args
                    if anchor is not None or tag is not None:
                        self._report_structure(event)
                    # Only text starting like this can be anything but text, in YAML 1.1
                    # or 1.2 core: the plain-text fast path skips both resolvers.
                    elif not implicit[0] or value[:1] not in _IMPLICIT:
                        pass
                    elif key is _NO_KEY or key is _ROOT:  # a key (`_key_text` checks it), a root
                        value = keys_get(value, _UNKNOWN)
                        if value is _UNKNOWN:
                            value = self._resolve_key(event)
                    else:
                        value = values_get((value, free_form), _UNKNOWN)
                        if value is _UNKNOWN:
                            open_levels = (stack, top, key)
                            value = self._resolve_core(event, doc, open_levels, free_form=free_form)
                if key is _NO_KEY:
                    if type(value) is not str or value in top:
                        value = self._key_text(event, value, top)
                    key = value
                    key_mark = mark
                    if value == "name" and len(stack) == 1:
                        doc.name_mark = key_mark
                    continue
                if key is _ROOT and doc.root_mark is None:
                    doc.root_mark = mark
                if record:
                    doc.index[_child_path(top, key, path)] = _node_info(event, key, key_mark)
            elif kind is _MAPPING_START or kind is _SEQUENCE_START:
                anchor, tag, _, mark, _, _ = event.args
                if anchor is not None or tag is not None:
                    self._report_structure(event)
                if len(stack) >= max_depth:
                    message = f"nesting deeper than {max_depth} levels"
                    raise _Abort(self._at(event, "NESTING_TOO_DEEP", message))
                if key is _NO_KEY:
                    message = "a mapping key must be text, not a collection"
                    raise _Abort(self._at(event, "INVALID_TYPE", message))
                if key is _ROOT and doc.root_mark is None:
                    doc.root_mark = mark
                if record:
                    paths.append(path)
                    path = _child_path(top, key, path)
                    doc.index[path] = _node_info(event, key, key_mark)
                if not free_form and len(stack) == 1 and key in _FREE_FORM_FIELDS:
                    strict_from = 2
                    free_form = True
                stack.append((top, key, key_mark))
                if kind is _MAPPING_START:
                    top, key = {}, _NO_KEY
                else:
                    top, key = [], _ITEM
                key_mark = None
                continue
            elif kind is _MAPPING_END or kind is _SEQUENCE_END:
                value = top
                top, key, key_mark = stack.pop()
                if len(stack) < strict_from:
                    strict_from = 0
                    free_form = False
                if record:
                    path = paths.pop()
            elif kind is _DOCUMENT_START:
                doc = _DocumentState(first_problem=self.problems)
                continue
            elif kind is _DOCUMENT_END:
                self._close_document(doc, event)
                continue
            elif kind is _STREAM_END:
                return
            else:  # StreamStartEvent
                continue
            # A complete node (scalar, alias or closed collection): attach it to its parent.
            if key is _ITEM:
                top.append(value)
            elif key is _ROOT:
                doc.root = value
            else:
                top[key] = value
                key = _NO_KEY

    def _close_document(self, doc: _DocumentState, event: Any) -> None:
        mark = doc.root_mark if doc.root_mark is not None else event.start_mark
        name = doc.name_mark if doc.name_mark is not None else mark
        clean = self.problems == doc.first_problem
        self.documents.append(
            YamlDocument(
                doc.root,
                mark.line + 1,
                mark.column + 1,
                clean,
                name.line + 1,
                name.column + 1,
                tuple(doc.ambiguous),
            )
        )
        self.indexes.append(doc.index)

    def _resolve_key(self, event: Any) -> Any:
        problems = self.problems
        value = self._resolve(event)
        if self.problems == problems and len(self._keys) < _REMEMBERED:
            self._keys[event.value] = value
        return value

    def _resolve(self, event: Any) -> Any:
        """The value PyYAML's YAML 1.1 resolver gives this plain, untagged scalar.

        Text that YAML 1.1 claims but cannot convert (`2024-02-30`, an integer of 5,000
        digits) makes PyYAML raise ValueError; here it is a YAML_COERCION problem."""
        text: str = event.value
        for tag, pattern in _IMPLICIT.get(text[:1], ()):
            if pattern.match(text):
                convert = self._convert.get(tag)
                if convert is None:
                    return text
                try:
                    return convert(text)
                except (ValueError, OverflowError) as error:
                    kind = tag.rsplit(":", 1)[-1]
                    message = (
                        f"read as a {kind}, but not a valid one ({str(error)[:60]}); "
                        "write it in quotes if you mean the text"
                    )
                    self._report(self._at(event, "YAML_COERCION", message))
                    return text
        return text

    def _resolve_core(
        self, event: Any, doc: _DocumentState, open_levels: _Levels, *, free_form: bool
    ) -> Any:
        """A plain value not remembered yet, checked against YAML 1.2 core.

        Inside args/kwargs (`free_form`): its value if YAML 1.1 (PyYAML) and YAML 1.2
        core agree on it and nothing is lost (`1.10`), else a YAML_COERCION problem (and
        the text). Elsewhere the YAML 1.1 value is kept, and a disagreement is only noted
        in the document's `ambiguous`: the loader reports it unless the model already
        said something about that node (a text field's own "quote it" message is more
        precise). A timestamp there is no disagreement: the fields that take one (`at`,
        `start`, `end`) read the text the same way. `open_levels`: the containers open
        around the value, for a message (see `_open`)."""
        text: str = event.value
        if len(text) < 19 and text.isdigit() and text.isascii() and text[0] != "0":
            # Digits without a leading zero: a decimal integer in YAML 1.1 and 1.2 core
            # alike, nothing lost (the resolvers' answer, without their regexes).
            return int(text)
        problems = self.problems
        yaml11 = self._resolve(event)
        if not free_form and isinstance(yaml11, date):
            problem = None
        else:
            problem = core_disagreement(text, yaml11, lossless=free_form)
        if problem is None:
            if self.problems == problems and len(self._values) < _REMEMBERED:
                self._values[text, free_form] = yaml11
            return yaml11
        containers, pending_keys = _open(*open_levels)
        if any(type(key) is str and looks_secret(key) for key in pending_keys):
            problem = problem.replace(text, REDACTED)  # `pin: 0123` must not be printed
        where = _dotted_path(containers, pending_keys)
        diagnostic = self._at(event, "YAML_COERCION", f"{where}: {problem}")
        if not free_form:
            doc.ambiguous.append(diagnostic)
            return yaml11
        self._report(diagnostic)
        return text

    def _key_text(self, event: Any, value: Any, mapping: dict[str, Any]) -> str:
        """The mapping key as text; reports non-text and duplicate keys."""
        if type(value) is not str:
            if isinstance(event, ScalarEvent):
                shown = describe_value(value)
                message = f"key read as {shown}; write it in quotes if you mean the text"
                self._report(self._at(event, "YAML_COERCION", message))
                value = str(event.value)
            else:
                value = ""
        if value in mapping:
            self._report(
                self._at(event, "DUPLICATE_KEY", f"key {value!r} appears twice in this mapping")
            )
        return value

    def _report(self, diagnostic: Diagnostic) -> None:
        # Bounded: a 1 MB file of aliases would otherwise print 250,000 lines.
        self.problems += 1
        if len(self.diagnostics) < MAX_DIAGNOSTICS_PER_FILE:
            self.diagnostics.append(diagnostic)
        else:
            self.suppressed[diagnostic.code] = self.suppressed.get(diagnostic.code, 0) + 1

    def summarise_suppressed(self) -> list[Diagnostic]:
        """One diagnostic per code whose reports were cut off by the bound."""
        return [
            Diagnostic(self.path, 0, 0, code, f"{count} more problems of this kind not shown")
            for code, count in sorted(self.suppressed.items())
        ]

    def _report_structure(self, event: Any) -> None:
        if isinstance(event, AliasEvent):
            self._report(self._at(event, "YAML_ALIAS", "aliases (*name) are not allowed"))
            return
        if event.anchor is not None:
            self._report(self._at(event, "YAML_ALIAS", "anchors (&name) are not allowed"))
        if event.tag is not None:
            message = f"tag {_short(event.tag)} is not allowed; write plain YAML"
            self._report(self._at(event, "YAML_TAG", message))

    def _at(self, event: Any, code: str, message: str) -> Diagnostic:
        mark = event.start_mark
        return Diagnostic(self.path, mark.line + 1, mark.column + 1, code, message)


class _DocumentState:
    """What one document has collected so far."""

    __slots__ = ("ambiguous", "first_problem", "index", "name_mark", "root", "root_mark")

    def __init__(self, first_problem: int = 0) -> None:
        self.first_problem = first_problem
        self.root: Any = None
        self.root_mark: Any = None
        self.name_mark: Any = None
        self.index: dict[NodePath, NodeInfo] = {}
        self.ambiguous: list[Diagnostic] = []


class _NoKey:
    """Marks a mapping that waits for a key (None is a valid, if refused, key value)."""


_NO_KEY = _NoKey()
_ITEM = _NoKey()  # a sequence waits for its next item
_ROOT = _NoKey()  # no container is open: a document waits for its root node
_UNKNOWN = _NoKey()  # a text not remembered yet
# The event classes `_consume` sees (`cheap.cheap_events`).
_SCALAR = cheap.ScalarEvent
_ALIAS = cheap.AliasEvent
_MAPPING_START = cheap.MappingStartEvent
_MAPPING_END = cheap.MappingEndEvent
_SEQUENCE_START = cheap.SequenceStartEvent
_SEQUENCE_END = cheap.SequenceEndEvent
_DOCUMENT_START = cheap.DocumentStartEvent
_DOCUMENT_END = cheap.DocumentEndEvent
_STREAM_END = cheap.StreamEndEvent
# At most this many scalar texts of each kind are remembered per memo (bounded however
# hostile the files).
_REMEMBERED = 4096
_IMPLICIT: dict[str, list[tuple[str, re.Pattern[str]]]] = Resolver.yaml_implicit_resolvers
# Top-level fields whose values are free-form JSON for the task: no model type there
# would notice that YAML 1.1 turned `NO` into false.
_FREE_FORM_FIELDS = frozenset({"args", "kwargs"})

# YAML 1.2 core schema (https://yaml.org/spec/1.2.2/#1032-tag-resolution).
_CORE_NULL = re.compile(r"null|Null|NULL|~|")
_CORE_BOOL = {"true": True, "True": True, "TRUE": True, "false": False, "False": False}
_CORE_BOOL["FALSE"] = False
_CORE_INT10 = re.compile(r"[-+]?[0-9]+")
_CORE_INT8 = re.compile(r"0o[0-7]+")
_CORE_INT16 = re.compile(r"0x[0-9a-fA-F]+")
_CORE_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")
_CORE_SPECIAL = re.compile(r"[-+]?\.(inf|Inf|INF)|\.nan|\.NaN|\.NAN")
# Booleans of YAML 1.1 in any case, `y` and `n` included (PyYAML reads those as text,
# other YAML 1.1 readers do not): ambiguous, whatever this parser would make of them.
_YAML11_BOOLEAN = re.compile(r"(?i)yes|no|on|off|y|n")
# `1.10`: a number whose trailing zero the number loses (a version, a price as text).
_LOSSY_DECIMAL = re.compile(r"[-+]?[0-9]*\.[0-9]*[0-9]0")


def resolve_core(text: str) -> Any:
    """The value YAML 1.2's core schema gives a plain scalar."""
    if _CORE_NULL.fullmatch(text):
        return None
    if text in _CORE_BOOL:
        return _CORE_BOOL[text]
    if _CORE_INT10.fullmatch(text):
        try:
            return int(text)
        except ValueError:  # beyond Python's digit limit: the 1.1 resolver reported it
            return text
    if _CORE_INT8.fullmatch(text):
        return int(text[2:], 8)
    if _CORE_INT16.fullmatch(text):
        return int(text[2:], 16)
    if _CORE_FLOAT.fullmatch(text):
        return float(text)
    if _CORE_SPECIAL.fullmatch(text):
        return float(text.lower().replace(".", ""))  # float() reads inf / -inf / nan
    return text


def core_disagreement(text: str, yaml11: Any, *, lossless: bool = True) -> str | None:
    """Why the plain scalar `text` (read as `yaml11` by YAML 1.1) must be quoted, or None.
    `lossless`: a number that drops a trailing zero (`1.10`) must be quoted too. Every
    reason says how to write it."""
    quote = f"quote it ('{text}') if you mean the text"
    if _YAML11_BOOLEAN.fullmatch(text):
        return (
            f"{text!r} is a boolean in YAML 1.1 and text in YAML 1.2; "
            f"{quote}, or write true or false"
        )
    yaml12 = resolve_core(text)
    differs = yaml11 != yaml12 and not (type(yaml11) is float and math.isnan(yaml11))
    if type(yaml11) is not type(yaml12) or differs:
        meanings = f"{_meaning(yaml11)} in YAML 1.1 and {_meaning(yaml12)} in YAML 1.2"
        return f"{text!r} is {meanings}; {quote}"
    if lossless and type(yaml12) is float and _LOSSY_DECIMAL.fullmatch(text):
        return f"{text!r} is the number {yaml12!r} (the trailing zero is lost); {quote}"
    return None


def _meaning(value: Any) -> str:
    return "text" if isinstance(value, str) else describe_value(value)


def _dotted_path(containers: list[Any], pending_keys: list[Any]) -> str:
    """The dotted path of the value about to be attached to the innermost container."""
    steps = [
        str(key) if type(container) is dict else str(len(container))
        for container, key in zip(containers, pending_keys, strict=True)
    ]
    return ".".join(steps)


# `_consume`'s state: the outer levels' (container, key, key mark), the innermost
# container and its key.
_Levels = tuple[list[tuple[Any, Any, Any]], Any, Any]


def _open(stack: list[tuple[Any, Any, Any]], top: Any, key: Any) -> tuple[list[Any], list[Any]]:
    """The open containers, outermost first, and the key each awaits the value of
    (`_NO_KEY` for a sequence), from `_consume`'s state."""
    levels = [*stack[1:], (top, key, None)]
    containers = [container for container, _, _ in levels]
    pending_keys = [_NO_KEY if step is _ITEM else step for _, step, _ in levels]
    return containers, pending_keys


def _child_path(top: Any, key: Any, path: NodePath) -> NodePath:
    """The path of the node about to be attached to `top` (whose path is `path`)."""
    if key is _ROOT:
        return ()
    return (*path, len(top) if key is _ITEM else key)


def _node_info(event: Any, key: Any, key_mark: Any) -> NodeInfo:
    mark = event.start_mark
    in_mapping = key is not _ITEM and key is not _ROOT
    if not in_mapping or key_mark is None:
        key_mark = mark
    scalar = isinstance(event, ScalarEvent)
    return NodeInfo(
        line=mark.line + 1,
        column=mark.column + 1,
        key_line=key_mark.line + 1,
        key_column=key_mark.column + 1,
        plain=scalar and bool(event.implicit[0]) and event.tag is None,
        text=event.value if scalar else None,
    )


def _scalar_constructors() -> dict[str, Callable[[str], Any]]:
    """PyYAML's own converters for the implicit YAML 1.1 types, keyed by tag."""
    constructor = SafeConstructor()

    def converter(tag: str) -> Callable[[str], Any]:
        method = SafeConstructor.yaml_constructors[tag]
        return lambda text: method(constructor, ScalarNode(tag, text))

    names = ("null", "bool", "int", "float", "timestamp")
    return {f"tag:yaml.org,2002:{n}": converter(f"tag:yaml.org,2002:{n}") for n in names}


def describe_value(value: Any) -> str:
    """How a resolved YAML value reads in a message: `boolean false`, `number 493`."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, int | float):
        return f"number {value!r}"
    if hasattr(value, "isoformat"):
        return f"date {value.isoformat()}"
    return type(value).__name__


def describe_kind(value: Any) -> str:
    """What kind of value this is, in a message: `text`, `a mapping`, `boolean true`."""
    if isinstance(value, str):
        return "text"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, date):
        return "a date"
    return describe_value(value)


def _short(tag: str) -> str:
    return tag.replace("tag:yaml.org,2002:", "!!")
