"""Our inventory (`scheduled_jobs`), the quarantine list and the reconcile history."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Collection, Iterable, Mapping
from datetime import datetime
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from reconciler.core.plan import Target
from reconciler.core.state import InventoryRow
from reconciler.spec.diagnostics import Diagnostic
from reconciler.store.binary_copy import (
    NULL_FIELD,
    SIGNATURE,
    TRAILER,
    bool_field,
    copied_as_new,
    copy_data,
    int4_field,
    jsonb_field,
    text_field,
    timestamptz_field,
)
from reconciler.store.db import json_bytes, upsert
from reconciler.store.tables import (
    job_events,
    job_runs,
    quarantined_files,
    reconcile_runs,
    scheduled_jobs,
)


class EssenceCache:
    """Specs by hash: a hash names its content for ever, so a daemon fetches each spec
    from the database once and later passes read only names and hashes."""

    def __init__(self) -> None:
        self._by_hash: dict[str, Mapping[str, Any]] = {}
        # The rows of the last read, by their column values: unchanged rows are reused.
        self.rows: dict[tuple[Any, ...], InventoryRow] = {}

    def get(self, spec_hash: str) -> Mapping[str, Any] | None:
        return self._by_hash.get(spec_hash)

    def put(self, spec_hash: str, essence: Mapping[str, Any]) -> None:
        self._by_hash[spec_hash] = essence


def read_inventory(
    connection: Connection, cache: EssenceCache | None = None
) -> dict[str, InventoryRow]:
    cache = cache or EssenceCache()
    t = scheduled_jobs
    columns = (t.c.name, t.c.spec_hash, t.c.status, t.c.source_file, t.c.source_line, t.c.revision)
    # Specs as text, decoded here by orjson rather than by the driver's json.loads, row
    # by row: 10,000 specs are the bulk of a one-shot plan's reads.
    spec_text = sa.cast(t.c.spec, sa.Text)
    heads: list[tuple[Any, ...]]
    if not cache.rows:  # nothing known (a one-shot command, a first pass): one query
        heads = []
        for *head, spec in connection.execute(sa.select(*columns, spec_text)):
            if cache.get(head[1]) is None:
                cache.put(head[1], _load_json(spec))
            heads.append(tuple(head))
    else:
        heads = [tuple(row) for row in connection.execute(sa.select(*columns))]
        _fetch_specs(connection, cache, {head[1] for head in heads})
    known, fresh = cache.rows, {}
    for key in heads:  # (name, spec_hash, status, source_file, source_line, revision)
        item = known.get(key)
        if item is None:
            name, spec_hash, status, source, line, revision = key
            essence = cache.get(spec_hash) or {}
            item = InventoryRow(name, essence, spec_hash, status, source, line, revision)
        fresh[key] = item
    cache.rows = fresh
    return {item.name: item for item in fresh.values()}


def _fetch_specs(connection: Connection, cache: EssenceCache, hashes: set[str]) -> None:
    """Put the specs of `hashes` the cache does not hold yet into it."""
    t = scheduled_jobs
    missing = sorted(spec_hash for spec_hash in hashes if cache.get(spec_hash) is None)
    spec_text = sa.cast(t.c.spec, sa.Text)
    for start in range(0, len(missing), 5000):
        chunk = missing[start : start + 5000]
        query = sa.select(t.c.spec_hash, spec_text).where(t.c.spec_hash.in_(chunk))
        for spec_hash, spec in connection.execute(query):
            cache.put(spec_hash, _load_json(spec))


# Nineteen digits in a row may be an integer beyond 64 bits, which orjson would read as a
# float (json reads it exactly).
_LONG_NUMBER = re.compile(r"\d{19}")


def _load_json(text: str) -> Any:
    if _LONG_NUMBER.search(text):
        return json.loads(text)
    return orjson.loads(text)


# The columns `upsert_inventory` writes (`generation` is the table's default, or moved
# by one on conflict), in the order of `encode_new_inventory`'s fields.
INVENTORY_COLUMNS = (
    "name",
    "spec",
    "spec_hash",
    "task",
    "queue",
    "labels",
    "status",
    "source_file",
    "source_line",
    "revision",
    "revision_dirty",
    "created_at",
    "updated_at",
)


def upsert_inventory(
    connection: Connection, targets: Iterable[Target], *, now: datetime, expect_new: bool = False
) -> None:
    """Write the inventory rows of `targets`. `expect_new`: see store.db.upsert."""
    values = [
        {
            "name": target.spec.name,
            "spec": dict(target.essence),
            "spec_hash": target.spec_hash,
            "task": target.spec.task,
            "queue": target.spec.queue,
            "labels": dict(target.spec.labels),
            "status": target.status,
            "source_file": target.source,
            "source_line": target.line,
            "revision": target.revision,
            "revision_dirty": target.revision_dirty,
            "created_at": now,
            "updated_at": now,
        }
        for target in targets
    ]
    if not values:
        return
    upsert(
        connection,
        scheduled_jobs,
        values,
        key="name",
        keep=frozenset({"created_at"}),
        extra={"generation": scheduled_jobs.c.generation + 1},
        expect_new=expect_new,
    )


def encode_new_inventory(targets: Iterable[Target], *, now: datetime) -> bytes | None:
    """The inventory rows `upsert_inventory(targets, now=now)` writes (in the order of
    INVENTORY_COLUMNS), as binary COPY data (store.binary_copy); None when one of them
    has no binary form here (then upsert them: the driver reports what is wrong).

    Made field by field, each row one join (10,000 rows: 0.10 s of CPU against 0.145 s
    for the dicts of `upsert_inventory` and psycopg's row writer); the fields of the
    columns with few values (task, queue, status, file, revision) once per value."""
    try:
        return _encode_inventory(targets, now)
    except (ValueError, TypeError, AttributeError):  # AttributeError: a None in a text
        return None


def _encode_inventory(targets: Iterable[Target], now: datetime) -> bytes:
    out = io.BytesIO()
    write = out.write
    write(SIGNATURE)
    stamp = timestamptz_field(now)
    # The fields of the columns with few values, by value (in column order): task and
    # queue; status and file; revision, revision_dirty, created_at and updated_at.
    routes: dict[tuple[str, str], bytes] = {}
    places: dict[tuple[str, str], bytes] = {}
    versions: dict[tuple[str | None, bool], bytes] = {}
    count = len(INVENTORY_COLUMNS).to_bytes(2, "big")
    for target in targets:
        spec = target.spec
        try:
            essence, labels = orjson.dumps(dict(target.essence)), orjson.dumps(dict(spec.labels))
        except TypeError:  # what orjson refuses: as the driver's path writes it (db.json_text)
            essence, labels = json_bytes(dict(target.essence)), json_bytes(dict(spec.labels))
        route = (spec.task, spec.queue)
        if route not in routes:
            routes[route] = text_field(route[0]) + text_field(route[1])
        place = (str(target.status), target.source)
        if place not in places:
            places[place] = text_field(place[0]) + text_field(place[1])
        version = (target.revision, target.revision_dirty)
        if version not in versions:
            revision = NULL_FIELD if version[0] is None else text_field(version[0])
            versions[version] = revision + bool_field(version[1]) + stamp + stamp
        write(
            b"".join(
                (
                    count,
                    text_field(spec.name),
                    jsonb_field(essence),
                    text_field(target.spec_hash),
                    routes[route],
                    jsonb_field(labels),
                    places[place],
                    int4_field(target.line),
                    versions[version],
                )
            )
        )
    write(TRAILER)
    return out.getvalue()


def copy_new_inventory(connection: Connection, data: bytes) -> bool:
    """Write inventory rows made by `encode_new_inventory` (PostgreSQL), in a
    savepoint; False, and nothing written, when one of their names has a row already
    (then upsert them: see store.db.upsert)."""
    return copied_as_new(
        connection, lambda: copy_data(connection, scheduled_jobs.name, INVENTORY_COLUMNS, [data])
    )


def delete_inventory(connection: Connection, names: Iterable[str]) -> None:
    names = list(names)
    for start in range(0, len(names), 5000):
        chunk = names[start : start + 5000]
        connection.execute(sa.delete(scheduled_jobs).where(scheduled_jobs.c.name.in_(chunk)))


def rename_inventory(connection: Connection, renames: Mapping[str, str]) -> None:
    """Give inventory rows their new names (old -> new); created_at and generation stay."""
    t = scheduled_jobs
    for old, new in renames.items():
        connection.execute(sa.update(t).where(t.c.name == old).values(name=new))


def rename_ledger(connection: Connection, renames: Mapping[str, str]) -> None:
    """Move run history to the new names. Run ids (Celery task ids) are kept, so runs in
    flight still find their rows. A slot the new name already holds (a job of that name
    existed before) keeps its own row."""
    t = job_runs
    for old, new in renames.items():
        taken = t.alias("taken")
        same_slot = (
            sa.select(sa.literal(1))
            .where(taken.c.job_name == new, taken.c.scheduled_time == t.c.scheduled_time)
            .exists()
        )
        connection.execute(sa.update(t).where(t.c.job_name == old, ~same_slot).values(job_name=new))
        # Its events are history too (`describe job NEW` lists the changes before the rename).
        connection.execute(
            sa.update(job_events).where(job_events.c.job_name == old).values(job_name=new)
        )


def replace_quarantine(
    connection: Connection, quarantined: Mapping[str, tuple[Diagnostic, ...]], *, now: datetime
) -> None:
    """Make `quarantined_files` hold exactly the files quarantined now; `since` survives."""
    t = quarantined_files
    rows = connection.execute(sa.select(t.c.path, t.c.since, t.c.diagnostics)).all()
    wanted = {path: [d.as_dict() for d in found] for path, found in quarantined.items()}
    if {row.path: row.diagnostics for row in rows} == wanted:
        return  # the common case of a daemon pass: write nothing
    existing = {row.path: row.since for row in rows}
    gone = set(existing) - set(quarantined)
    if gone:
        connection.execute(sa.delete(t).where(t.c.path.in_(sorted(gone))))
    values = [
        {
            "path": path,
            "diagnostics": wanted[path],
            "since": existing.get(path, now),
            "last_seen": now,
        }
        for path in quarantined
    ]
    upsert(connection, t, values, key="path", keep=frozenset({"since"}))


def record_reconcile_run(connection: Connection, **values: Any) -> int:
    result = connection.execute(sa.insert(reconcile_runs).values(**values))
    key = result.inserted_primary_key
    assert key is not None  # an INSERT of one row always has one
    return int(key[0])


def read_applied_specs(
    connection: Connection, names: Collection[str]
) -> list[tuple[str, dict[str, Any], str]]:
    """(name, spec, spec_hash) of the managed jobs among `names`: their applied specs."""
    if not names:
        return []
    columns = (scheduled_jobs.c.name, scheduled_jobs.c.spec, scheduled_jobs.c.spec_hash)
    query = sa.select(*columns).where(scheduled_jobs.c.name.in_(sorted(names)))
    return [(name, spec, spec_hash) for name, spec, spec_hash in connection.execute(query)]
