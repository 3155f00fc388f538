"""reconciler/core/diff.py as it was before helper renderfast2 made the text render faster
(main at 858d796), verbatim but for this docstring and its imports of the other old modules:
what tests/unit/core/test_render_old.py compares the renderers with."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from reconciler.core.state import JobContent
from reconciler.redact import looks_secret, mask_text, redact

SENSITIVE = "(sensitive)"


@dataclass(frozen=True, slots=True)
class FieldDiff:
    path: str
    before: Any
    after: Any


class FieldDiffer:
    """Computes field diffs, remembering for its own lifetime which paths look secret
    and how each string is shown: across the thousands of jobs of one plan, both repeat
    (every job has `task`, most share a queue or a timezone). Make one per rendering or
    per batch of log lines; it holds no other state."""

    def __init__(self) -> None:
        self._secret_paths: dict[str, bool] = {}
        self._shown_text: dict[str, str] = {}
        # Per pair of key sequences (most updates of a plan share one), the union of
        # their keys sorted, or None when the paths under them do not sort by key.
        self._key_orders: dict[tuple[tuple[Any, ...], tuple[Any, ...]], list[Any] | None] = {}

    def between(self, before: JobContent | None, after: JobContent | None) -> list[FieldDiff]:
        """What one change of a plan does field by field: every field of an add (no
        `before`) or a remove (no `after`); for an update, the fields that differ and
        the file it moved to; when only the status or the file moved, that alone."""
        if before is None or after is None:
            side = after or before
            if side is None:
                return []
            fields = [(path, self.show(path, value)) for path, value in _leaves(side.essence)]
            if before is None:
                return [FieldDiff(path, None, value) for path, value in fields]
            return [FieldDiff(path, value, None) for path, value in fields]
        moved = [FieldDiff("source", before.source, after.source)]
        if before.spec_hash == after.spec_hash:
            if before.status != after.status:
                return [FieldDiff("status", before.status, after.status)]
            return moved if before.source != after.source else []
        diffs = self.diff(before.essence, after.essence)
        return diffs + moved if before.source != after.source else diffs

    def diff(self, before: Mapping[str, Any], after: Mapping[str, Any]) -> list[FieldDiff]:
        """The paths whose values differ between two essences, in path order.

        Equal top-level values have equal leaves, so only the top-level keys whose values
        differ are flattened (most of an update is unchanged), when the paths under the
        sorted keys sort as the keys do (see `_sorts_by_top_key`)."""
        shape = (tuple(before), tuple(after))
        order = self._key_orders.get(shape, _UNKNOWN)
        if order is _UNKNOWN:
            keys = before.keys() | after.keys()
            order = self._key_orders[shape] = sorted(keys) if _sorts_by_top_key(keys) else None
        if order is None:
            return self._diff_flat(flatten(before), flatten(after))
        diffs = []
        for key in order:
            old, new = before.get(key, _ABSENT), after.get(key, _ABSENT)
            if old != new:
                # A key on one side only is absent from the other's flat paths (a secret
                # path added shows None -> "(sensitive)", not "(sensitive)" on both sides).
                diffs += self._diff_flat(
                    {} if old is _ABSENT else flatten({key: old}),
                    {} if new is _ABSENT else flatten({key: new}),
                )
        return diffs

    def _diff_flat(
        self, flat_before: dict[str, Any], flat_after: dict[str, Any]
    ) -> list[FieldDiff]:
        diffs = []
        for path in _differing(flat_before, flat_after):
            old, new = flat_before.get(path), flat_after.get(path)
            if old != new:
                if self.is_secret(path):
                    old = SENSITIVE if path in flat_before else None
                    new = SENSITIVE if path in flat_after else None
                else:
                    old, new = self.masked(old), self.masked(new)
                diffs.append(FieldDiff(path, old, new))
        return diffs

    def show(self, path: str, value: Any) -> Any:
        """The value at `path` as a plan may show it: "(sensitive)" under a secret-looking
        path, else with secrets found by their shape masked."""
        return SENSITIVE if self.is_secret(path) else self.masked(value)

    def is_secret(self, path: str) -> bool:
        """Whether one of the keys of `path` looks secret (its values show as
        "(sensitive)"), remembered per path."""
        known = self._secret_paths.get(path)
        if known is None:
            known = self._secret_paths[path] = any(map(looks_secret, path.split(".")))
        return known

    def masked(self, value: Any) -> Any:
        """`value` with secrets found by their shape masked."""
        if type(value) is str:
            shown = self._shown_text.get(value)
            if shown is None:
                shown = self._shown_text[value] = mask_text(value)
            return shown
        if value is None or type(value) in _SCALARS:
            return value
        return redact(value)


Made = TypeVar("Made")
# What a field becomes in one output, per path: a function of its shown value (None
# leaves the field out).
View = Callable[[str], Callable[[Any], Made | None]]


class FieldViews(Generic[Made]):
    """What each field of a whole essence (an add's or a remove's) becomes in one
    output (a line, a JSON entry), made once per distinct path and value: across the
    thousands of jobs of a plan most fields repeat (every job has a task, most share a
    queue and a zone). `view(path)` is asked once per path for the function that makes
    the field from its shown value (None: left out); fields whose value is None are no
    difference from nothing and never made.

    An essence is walked mapping by mapping, each by its keys sorted once per set of
    keys (`_Level`): a scalar at any depth (`kwargs.data.n`) costs one look-up in its
    path's table for its type, and nothing is flattened or sorted per essence. A mapping
    whose keys would not sort as its paths do (`_sorts_by_top_key`) is flattened and its
    paths sorted, as they always are."""

    def __init__(self, differ: FieldDiffer, view: View[Made]) -> None:
        self._differ = differ
        self._view = view
        self._fields: dict[str, _Field[Made]] = {}
        self._made: dict[tuple[str, type, Any], Made | None] = {}
        self._top: _Level[Made] = _Level("", self._field)

    def __call__(self, essence: Mapping[str, Any]) -> list[Made]:
        every: list[Made] = []
        self.into(essence, every)
        return every

    def into(self, essence: Mapping[str, Any], every: list[Made]) -> None:
        """Append what each field of `essence` makes to `every`, in path order."""
        self._walk(self._top, essence, every)

    def _field(self, path: str) -> _Field[Made]:
        field = self._fields.get(path)
        if field is None:
            view = self._view(path)
            field = self._fields[path] = _Field(path, self._differ, view, self._field)
        return field

    def _walk(self, level: _Level[Made], mapping: Mapping[Any, Any], every: list[Made]) -> None:
        """Append what each field under `mapping` (at `level`) makes to `every`."""
        unknown = _UNKNOWN
        keys = tuple(mapping)
        if keys == level.keys:  # the last mapping's keys (compared, not hashed)
            order = level.last
        else:
            order = level.orders.get(keys, unknown)
            if order is unknown:
                order = level.order(keys)
            level.keys, level.last = keys, order
        if order is None:
            every += self._leaves(flatten(mapping, level.path))
            return
        append = every.append
        # The hot loop of a render (19 fields a job, 100,000 jobs): a str, int or bool
        # costs a look-up in its path's table for its type (the type is part of the key,
        # as `1 == True`); its first value a call.
        for key, strs, ints, bools, field in order:
            value = mapping[key]
            kind = type(value)
            if kind is str:
                item = strs.get(value, unknown)
                if item is unknown:
                    item = strs[value] = field.make(value)
            elif kind is int:
                item = ints.get(value, unknown)
                if item is unknown:
                    item = ints[value] = field.make(value)
            elif kind is bool:
                item = bools.get(value, unknown)
                if item is unknown:
                    item = bools[value] = field.make(value)
            elif value is None:
                continue  # no difference from nothing
            elif kind is dict and value:
                self._walk(field.below, value, every)
                continue
            elif not value and kind in _CONTAINERS:  # `args: []`
                item = field.empty(value)
            else:  # a float, a list, another kind of mapping
                every += self._leaves(flatten({key: value}, level.path))
                continue
            if item is not None:
                append(item)

    def _leaves(self, flat: Mapping[str, Any]) -> list[Made]:
        made, every = self._made, []
        for path in sorted(flat):
            value = flat[path]
            if value is None:
                continue  # no difference from nothing
            kind = type(value)
            if kind in _HASHABLE or (kind in _CONTAINERS and not value):
                key = (path, kind, value if kind in _HASHABLE else None)
                if key in made:
                    item = made[key]
                else:
                    item = made[key] = self._field(path).make(value)
            else:
                item = self._field(path).make(value)
            if item is not None:
                every.append(item)
        return every


class _Field(Generic[Made]):
    """One path of the essences: what its values make, what an empty container there
    made (by its type), and the level below it (for a mapping there)."""

    __slots__ = ("_empties", "_masked", "_secret", "_view", "below", "path")

    def __init__(
        self,
        path: str,
        differ: FieldDiffer,
        view: Callable[[Any], Made | None],
        fields: Callable[[str], _Field[Made]],
    ) -> None:
        self.path, self._view = path, view
        # What FieldDiffer.show(path, value) does, decided for the path once.
        self._secret, self._masked = differ.is_secret(path), differ.masked
        self._empties: dict[type, Made | None] = {}
        self.below: _Level[Made] = _Level(path, fields)

    def make(self, value: Any) -> Made | None:
        return self._view(SENSITIVE if self._secret else self._masked(value))

    def empty(self, value: Any) -> Made | None:
        """What the empty container `value` makes, once per type."""
        made = self._empties.get(type(value), _UNKNOWN)
        if made is _UNKNOWN:
            made = self._empties[type(value)] = self.make(value)
        return made


class _Level(Generic[Made]):
    """The mappings found at one path of the essences (the top level at ""): per set
    of keys, an entry per key in sorted key order (the key, its tables per scalar type:
    what each value made, and its field), or None when the paths under the keys do not
    sort as the keys."""

    __slots__ = ("_entries", "_field", "keys", "last", "orders", "path")

    def __init__(self, path: str, field: Callable[[str], _Field[Made]]) -> None:
        self.path, self._field = path, field
        self.orders: dict[tuple[Any, ...], list[_Entry[Made]] | None] = {}
        # The keys of the last mapping walked at this level and their order.
        self.keys: tuple[Any, ...] | None = None
        self.last: list[_Entry[Made]] | None = None
        self._entries: dict[str, _Entry[Made]] = {}

    def order(self, keys: tuple[Any, ...]) -> list[_Entry[Made]] | None:
        order = None
        if _sorts_by_top_key(keys):
            order = [self._entry(key) for key in sorted(keys)]
        self.orders[keys] = order
        return order

    def _entry(self, key: str) -> _Entry[Made]:
        entry = self._entries.get(key)
        if entry is None:
            path = f"{self.path}.{key}" if self.path else key
            entry = self._entries[key] = (key, {}, {}, {}, self._field(path))
        return entry


_UNKNOWN: Any = object()
_ABSENT: Any = object()  # a key missing from one side of a diff
# A key of a level: the key, what its str, int and bool values made, its field.
_Entry = tuple[
    str, dict[str, Made | None], dict[int, Made | None], dict[bool, Made | None], _Field[Made]
]

# Values that stand for themselves in a key (besides empty containers). Not float: 0.0
# and -0.0 are equal keys but print differently.
_HASHABLE = frozenset({str, int, bool})
_CONTAINERS = frozenset({list, tuple, dict})


def _sorts_by_top_key(keys: Iterable[Any]) -> bool:
    """Whether the flattened paths under these top-level keys, sorted, come out grouped
    by key in sorted key order: str keys without a character sorting before or at "."
    (so that `a.x` never falls between `a` and `a-b`), none empty (flatten drops an
    empty prefix)."""
    return all(type(key) is str and key != "" and min(key) > "." for key in keys)


def changed_paths(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    """The flattened paths whose values differ between two essences, in order (what
    FieldDiffer.diff lists, without showing any value)."""
    flat_before, flat_after = flatten(before), flatten(after)
    return _differing(flat_before, flat_after)


def _differing(flat_before: Mapping[str, Any], flat_after: Mapping[str, Any]) -> list[str]:
    """The paths whose values differ, sorted; but not an empty mapping on one side whose
    fields are paths on the other (`kwargs: {}` -> `kwargs.data.a: 1`): its fields are
    the difference, the mapping does not become null."""
    paths = sorted(flat_before.keys() | flat_after.keys())
    differ = [path for path in paths if flat_before.get(path) != flat_after.get(path)]
    emptied = {path for path in differ if flat_before.get(path, {}) == flat_after.get(path, {})}
    if not emptied:
        return differ
    parents = {path.rsplit(".", 1)[0] for path in paths if "." in path}
    for path in list(parents):
        while "." in path:
            path = path.rsplit(".", 1)[0]
            parents.add(path)
    return [path for path in differ if path not in parents or path not in emptied]


def _leaves(essence: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """Every (path, value) of an essence but those whose value is None (no difference
    from nothing), in path order."""
    flat = flatten(essence)
    return [(path, flat[path]) for path in sorted(flat) if flat[path] is not None]


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """`{"schedule": {"cron": "x"}}` -> `{"schedule.cron": "x"}`; empty mappings and
    every other value are leaves."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        kind = type(value)
        if value and (kind is dict or (kind not in _LEAVES and isinstance(value, Mapping))):
            flat.update(flatten(value, path))
        else:
            flat[path] = value
    return flat


_SCALARS = frozenset({int, bool, float})
# The types of most leaves, told apart from a mapping without asking the ABC.
_LEAVES = frozenset({str, int, bool, float, list, type(None)})
