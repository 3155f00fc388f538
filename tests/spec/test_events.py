"""spec.events: libyaml's events as cheap classes carry what PyYAML's own carry, and
PyYAML's C parser gets its own classes back afterwards, whatever happened meanwhile.

What it catches (each fault tried, each failed a test): two fields swapped in `_FIELDS`,
a field left out, the classes not put back after an exception or while another thread
still parses, a cheap class that is no longer a subclass of PyYAML's."""

from __future__ import annotations

import inspect
import threading
from typing import Any

import pytest
import yaml
import yaml._yaml as c_parser_module
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from yaml import events as original_events

from reconciler.spec import events

from .test_builder_reference import streams

EXAMPLES = settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
HOSTILE = "a: &x [1, *x]\n--- !!map\n? [k]\n: {b: !t 'q'}\nc: |\n  lit\n...\n%YAML 1.1\n--- x\n"


def _fields(event: Any) -> dict[str, Any]:
    """Every field of PyYAML's class by name, a mark as what it says (marks have no
    equality)."""
    original = getattr(original_events, type(event).__name__)
    names = inspect.signature(original.__init__).parameters
    found = {name: getattr(event, name) for name in names if name != "self"}
    for name in ("start_mark", "end_mark"):
        mark = found[name]
        found[name] = (mark.name, mark.index, mark.line, mark.column, mark.buffer, mark.pointer)
    return found


def _events(data: bytes) -> list[Any]:
    """Every event up to the end or the first error (and the error's text)."""
    parser = yaml.CSafeLoader(data)
    found: list[Any] = []
    try:
        while not found or not isinstance(found[-1], original_events.StreamEndEvent):
            found.append(parser.get_event())
    except yaml.YAMLError as error:
        found.append(str(error))
    return found


def assert_same_events(data: bytes) -> None:
    originals = _events(data)
    with events.cheap_events():
        cheap = _events(data)
    assert len(cheap) == len(originals)
    for new, old in zip(cheap, originals, strict=True):
        if isinstance(old, str):
            assert new == old
            continue
        assert type(new) is events.CHEAP[type(old).__name__]
        assert isinstance(new, type(old))
        assert _fields(new) == _fields(old)


@EXAMPLES
@given(streams())
def test_the_cheap_events_carry_what_pyyaml_s_carry(text: str) -> None:
    assert_same_events(text.encode("utf-8", errors="surrogatepass"))


@EXAMPLES
@given(st.text(max_size=200))
def test_any_text_gives_the_same_events(text: str) -> None:
    assert_same_events(text.encode("utf-8", errors="surrogatepass"))


def test_every_kind_of_event_is_compared() -> None:
    with events.cheap_events():
        kinds = {type(event).__name__ for event in _events(HOSTILE.encode())}
    assert kinds == set(events.CHEAP)
    assert_same_events(HOSTILE.encode())


def test_the_fields_are_pyyaml_s_parameters_in_order() -> None:
    for name, fields in events._FIELDS.items():
        parameters = inspect.signature(getattr(original_events, name).__init__).parameters
        assert tuple(parameters)[1:] == fields


def _globals() -> dict[str, Any]:
    return {name: getattr(c_parser_module, name) for name in events.CHEAP}


def test_the_originals_come_back_after_an_error() -> None:
    before = _globals()
    assert all(cls is getattr(original_events, name) for name, cls in before.items())
    with pytest.raises(RuntimeError), events.cheap_events():
        assert _globals() == events.CHEAP
        raise RuntimeError
    assert _globals() == before


def test_the_originals_come_back_when_the_last_thread_ends() -> None:
    before = _globals()
    inside, leave = threading.Event(), threading.Event()

    def parse_long() -> None:
        with events.cheap_events():
            inside.set()
            leave.wait(10)

    thread = threading.Thread(target=parse_long)
    thread.start()
    inside.wait(10)
    with events.cheap_events():
        pass
    assert _globals() == events.CHEAP  # the other parse still runs
    leave.set()
    thread.join()
    assert _globals() == before
