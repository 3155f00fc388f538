"""libyaml's parse events at the cost of a C call each, for `yamlsafe`'s builder.

PyYAML's C parser (`yaml._yaml.CParser.get_event`) builds each event by calling the
class its module holds under the event's name (`yaml._yaml.ScalarEvent`, ...), PyYAML's
pure-Python classes: their `__init__` (seven attribute stores into a fresh `__dict__`
for a scalar) was a third of the cost of getting an event, more than libyaml's own
parsing. `cheap_events()` puts subclasses of those classes in their place for as long
as a parse runs: BaseException's C constructor keeps the positional arguments the
parser passes as `args`, and no Python code runs. The builder unpacks `args` (the
order below is the parser's); the original attribute names still read the same values
(properties, for the rarer paths and for any other reader of events meanwhile).

Process-wide while it lasts (the parser reads its module's globals): another thread
using PyYAML's C parser *events* at the same time (`yaml.parse` with a C loader; the
C loaders' `load` builds nodes, not events, and is unaffected) gets these subclasses,
which `isinstance` and the attributes treat as the originals, but `type(e) is
ScalarEvent` and `CParser.check_event(ScalarEvent)` do not. Nothing in this project
reads events but `yamlsafe`. Threads of `yamlsafe` may overlap: the classes go back
when the last one ends.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import yaml._yaml as _c_parser_module
from yaml import events as _events

# Each event class's fields, in the order yaml._yaml's `_event_to_object` passes them
# (PyYAML 6.0; tests/spec/test_events.py compares every field with the originals').
_FIELDS: dict[str, tuple[str, ...]] = {
    "StreamStartEvent": ("start_mark", "end_mark", "encoding"),
    "StreamEndEvent": ("start_mark", "end_mark"),
    "DocumentStartEvent": ("start_mark", "end_mark", "explicit", "version", "tags"),
    "DocumentEndEvent": ("start_mark", "end_mark", "explicit"),
    "AliasEvent": ("anchor", "start_mark", "end_mark"),
    "ScalarEvent": ("anchor", "tag", "implicit", "value", "start_mark", "end_mark", "style"),
    "SequenceStartEvent": ("anchor", "tag", "implicit", "start_mark", "end_mark", "flow_style"),
    "SequenceEndEvent": ("start_mark", "end_mark"),
    "MappingStartEvent": ("anchor", "tag", "implicit", "start_mark", "end_mark", "flow_style"),
    "MappingEndEvent": ("start_mark", "end_mark"),
}


def _field(index: int) -> property:
    return property(lambda event: event.args[index])


def _cheap_class(name: str, fields: tuple[str, ...]) -> type:
    original = getattr(_events, name)
    namespace: dict[str, Any] = {"__slots__": (), "__module__": __name__}
    namespace.update((field, _field(index)) for index, field in enumerate(fields))
    # BaseException first: its C __new__/__init__ and `args`; the original for isinstance.
    return type(name, (BaseException, original), namespace)


CHEAP: dict[str, type] = {name: _cheap_class(name, fields) for name, fields in _FIELDS.items()}
ScalarEvent = CHEAP["ScalarEvent"]
AliasEvent = CHEAP["AliasEvent"]
MappingStartEvent = CHEAP["MappingStartEvent"]
MappingEndEvent = CHEAP["MappingEndEvent"]
SequenceStartEvent = CHEAP["SequenceStartEvent"]
SequenceEndEvent = CHEAP["SequenceEndEvent"]
DocumentStartEvent = CHEAP["DocumentStartEvent"]
DocumentEndEvent = CHEAP["DocumentEndEvent"]
StreamEndEvent = CHEAP["StreamEndEvent"]


class _Swap:
    """How many parses use the cheap classes now; the lock is held only to count."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.users = 0


_SWAP = _Swap()  # process-wide, as the module globals it guards


@contextmanager
def cheap_events() -> Iterator[None]:
    """While inside: every event PyYAML's C parser returns is one of `CHEAP`'s."""
    with _SWAP.lock:
        if _SWAP.users == 0:
            vars(_c_parser_module).update(CHEAP)
        _SWAP.users += 1
    try:
        yield
    finally:
        with _SWAP.lock:
            _SWAP.users -= 1
            if _SWAP.users == 0:
                vars(_c_parser_module).update((name, getattr(_events, name)) for name in CHEAP)
