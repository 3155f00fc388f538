"""The YAML builder as it was before its rewrite for speed (main 09d3961): the oracle
that tests/spec/test_builder_reference.py holds the fast one to. Its loop kept every open
container, pending key and key mark on parallel lists and read them back per event; the
fast one keeps the innermost in local variables and skips the resolvers for decimal
integers. Same data, positions and diagnostics for every input, or a test fails.

Frozen: never changed to follow the module (a behaviour change is made there, and shows
here as a failing comparison that the change must explain). Its `run` is main's of
f602bc2, from before the builder read libyaml's events as `spec.events`' cheap
classes: this loop reads PyYAML's own."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any
from unittest.mock import patch

import yaml
from yaml.events import (
    AliasEvent,
    DocumentEndEvent,
    DocumentStartEvent,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
)

from reconciler.redact import REDACTED, looks_secret
from reconciler.spec import yamlsafe
from reconciler.spec.diagnostics import Diagnostic
from reconciler.spec.yamlsafe import (
    _CONTROL_BYTES,
    _CONTROL_CHARS,
    _FREE_FORM_FIELDS,
    _IMPLICIT,
    _NO_KEY,
    _REMEMBERED,
    _UNKNOWN,
    NodeInfo,
    NodePath,
    ParsedYaml,
    _Abort,
    _Builder,
    _DocumentState,
    _dotted_path,
    _position_of,
    core_disagreement,
)


def parse_yaml(data: bytes, *, path: str, max_depth: int) -> ParsedYaml:
    """yamlsafe.parse_yaml through the old builder and the old text check."""
    with (
        patch.object(yamlsafe, "_Builder", OldBuilder),
        patch.object(yamlsafe, "check_text", check_text),
    ):
        return yamlsafe.parse_yaml(data, path=path, max_depth=max_depth)


def locate_nodes(data: bytes, *, max_depth: int) -> list[dict[NodePath, NodeInfo]]:
    """yamlsafe.locate_nodes through the old builder."""
    with patch.object(yamlsafe, "_Builder", OldBuilder):
        return yamlsafe.locate_nodes(data, max_depth=max_depth)


def check_text(data: bytes, *, path: str) -> Diagnostic | None:
    """BINARY_FILE for control bytes, NOT_UTF8 for invalid UTF-8, else None."""
    byte_match = _CONTROL_BYTES.search(data)
    if byte_match is not None:
        line, column = _position_of(data, byte_match.start())
        return Diagnostic(
            path, line, column, "BINARY_FILE", f"control byte 0x{data[byte_match.start()]:02x}"
        )
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


class OldBuilder(_Builder):
    """The old loop and its resolver of values, on PyYAML's own event classes."""

    def run(self, data: bytes) -> Diagnostic | None:
        loader = yaml.CSafeLoader(data)
        try:
            self._consume(loader.get_event)
        except _Abort as abort:
            return abort.diagnostic
        except yaml.MarkedYAMLError as error:
            return self._syntax_error(error)
        except yaml.YAMLError as error:  # ReaderError: has an offset, no mark
            position = getattr(error, "position", 0)
            line, column = _position_of(data, position if isinstance(position, int) else 0)
            reason = getattr(error, "reason", "unreadable text")
            return Diagnostic(self.path, line, column, "YAML_SYNTAX", str(reason))
        finally:
            loader.dispose()
        return None

    def _consume(self, next_event: Callable[[], Any]) -> None:
        # One flat loop with local variables: this is the hot path of every load.
        record = self.record
        containers: list[Any] = []  # open dicts and lists, outermost first
        pending_keys: list[Any] = []  # per open container: the key awaiting its value
        key_marks: list[Any] = []  # per open container: that key's mark
        paths: list[NodePath] = []  # per open container: its path (only when recording)
        doc = _DocumentState()
        # While > 0: the depth from which on the open containers are inside a document's
        # `args` or `kwargs`, where plain values follow YAML 1.2 core (`_resolve_core`).
        strict_from = 0
        while True:
            event = next_event()
            kind = type(event)
            if kind is ScalarEvent or kind is AliasEvent:
                if kind is AliasEvent or event.anchor is not None or event.tag is not None:
                    self._report_structure(event)
                    value: Any = None if kind is AliasEvent else event.value
                elif event.implicit[0] and event.value[:1] in _IMPLICIT:
                    # Only text starting like this can be anything but text, in YAML 1.1
                    # or 1.2 core: the plain-text fast path skips both resolvers.
                    if containers and not (
                        type(containers[-1]) is dict and pending_keys[-1] is _NO_KEY
                    ):
                        value = self._resolve_core(
                            event, containers, pending_keys, doc, free_form=bool(strict_from)
                        )
                    else:  # a key: `_key_text` checks it
                        value = self._keys.get(event.value, _UNKNOWN)
                        if value is _UNKNOWN:
                            value = self._resolve_key(event)
                else:
                    value = event.value  # quoted, or plain text no resolver could claim
                if doc.root_mark is None:
                    doc.root_mark = event.start_mark
                top = containers[-1] if containers else None
                if type(top) is dict and pending_keys[-1] is _NO_KEY:
                    if type(value) is not str or value in top:
                        value = self._key_text(event, value, top)
                    pending_keys[-1] = value
                    key_marks[-1] = event.start_mark
                    if len(containers) == 1 and pending_keys[-1] == "name":
                        doc.name_mark = event.start_mark
                    continue
                if record:
                    path = _child_path(containers, pending_keys, paths)
                    doc.index[path] = _node_info(event, containers, key_marks)
            elif kind is MappingStartEvent or kind is SequenceStartEvent:
                if event.anchor is not None or event.tag is not None:
                    self._report_structure(event)
                if len(containers) >= self.max_depth:
                    message = f"nesting deeper than {self.max_depth} levels"
                    raise _Abort(self._at(event, "NESTING_TOO_DEEP", message))
                if containers and type(containers[-1]) is dict and pending_keys[-1] is _NO_KEY:
                    message = "a mapping key must be text, not a collection"
                    raise _Abort(self._at(event, "INVALID_TYPE", message))
                if doc.root_mark is None:
                    doc.root_mark = event.start_mark
                if record:
                    path = _child_path(containers, pending_keys, paths)
                    doc.index[path] = _node_info(event, containers, key_marks)
                    paths.append(path)
                if (
                    not strict_from
                    and len(containers) == 1
                    and type(containers[0]) is dict
                    and pending_keys[0] in _FREE_FORM_FIELDS
                ):
                    strict_from = 2
                containers.append({} if kind is MappingStartEvent else [])
                pending_keys.append(_NO_KEY)
                key_marks.append(None)
                continue
            elif kind is MappingEndEvent or kind is SequenceEndEvent:
                value = containers.pop()
                pending_keys.pop()
                key_marks.pop()
                if len(containers) < strict_from:
                    strict_from = 0
                if record:
                    paths.pop()
            elif kind is DocumentStartEvent:
                doc = _DocumentState(first_problem=self.problems)
                continue
            elif kind is DocumentEndEvent:
                self._close_document(doc, event)
                continue
            elif kind is StreamEndEvent:
                return
            else:  # StreamStartEvent
                continue
            # A complete node (scalar, alias or closed collection): attach it to its parent.
            if not containers:
                doc.root = value
                continue
            top = containers[-1]
            if type(top) is list:
                top.append(value)
            else:
                top[pending_keys[-1]] = value
                pending_keys[-1] = _NO_KEY

    def _resolve_core(
        self,
        event: Any,
        containers: list[Any],
        pending_keys: list[Any],
        doc: _DocumentState,
        *,
        free_form: bool,
    ) -> Any:
        """A plain value, checked against YAML 1.2 core.

        Inside args/kwargs (`free_form`): its value if YAML 1.1 (PyYAML) and YAML 1.2
        core agree on it and nothing is lost (`1.10`), else a YAML_COERCION problem (and
        the text). Elsewhere the YAML 1.1 value is kept, and a disagreement is only noted
        in the document's `ambiguous`: the loader reports it unless the model already
        said something about that node (a text field's own "quote it" message is more
        precise). A timestamp there is no disagreement: the fields that take one (`at`,
        `start`, `end`) read the text the same way."""
        text: str = event.value
        remembered = self._values.get((text, free_form), _UNKNOWN)
        if remembered is not _UNKNOWN:
            return remembered
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
        if any(type(key) is str and looks_secret(key) for key in pending_keys):
            problem = problem.replace(text, REDACTED)  # `pin: 0123` must not be printed
        where = _dotted_path(containers, pending_keys)
        diagnostic = self._at(event, "YAML_COERCION", f"{where}: {problem}")
        if not free_form:
            doc.ambiguous.append(diagnostic)
            return yaml11
        self._report(diagnostic)
        return text


def _child_path(containers: list[Any], pending_keys: list[Any], paths: list[NodePath]) -> NodePath:
    if not containers:
        return ()
    top = containers[-1]
    step = len(top) if type(top) is list else pending_keys[-1]
    return (*paths[-1], step)


def _node_info(event: Any, containers: list[Any], key_marks: list[Any]) -> NodeInfo:
    mark = event.start_mark
    in_mapping = bool(containers) and type(containers[-1]) is dict
    key_mark = key_marks[-1] if in_mapping and key_marks[-1] is not None else mark
    scalar = type(event) is ScalarEvent
    return NodeInfo(
        line=mark.line + 1,
        column=mark.column + 1,
        key_line=key_mark.line + 1,
        key_column=key_mark.column + 1,
        plain=scalar and bool(event.implicit[0]) and event.tag is None,
        text=event.value if scalar else None,
    )
