"""Many new file records (a cold apply's job_files rows) as binary COPY data made here
(store.file_records.encode_new_records): written, they are exactly the rows psycopg's
own COPY writes (the driver's path of store.db.upsert, given the same records); records
of which one path exists already are refused whole, and the upsert follows."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Engine

from reconciler.spec.checks import NameSite
from reconciler.spec.diagnostics import Diagnostic
from reconciler.spec.records import FileRecord, RecordedJob
from reconciler.store import file_records
from reconciler.store.db import BULK_ROWS, create_sync_engine, upsert
from reconciler.store.file_records import (
    copy_new_records,
    encode_new_records,
    write_file_records,
)
from reconciler.store.migrate import upgrade_database
from reconciler.store.tables import job_files

pytestmark = pytest.mark.services

NOW = datetime(2026, 12, 3, 10, 45, 0, 250001, tzinfo=UTC)
# Any text PostgreSQL holds: no NUL, no lone surrogate (not UTF-8).
TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"))
POSITION = st.integers(min_value=0, max_value=2**31 - 1)


@pytest.fixture(scope="module")
def engine() -> Iterator[Engine]:
    from tests.conftest import fresh_database

    with fresh_database() as url:
        upgrade_database(url)
        engine = create_sync_engine(url)
        yield engine
        engine.dispose()


@st.composite
def records(draw: st.DrawFn) -> list[FileRecord]:
    """BULK_ROWS records (so that the driver's path is psycopg's COPY too): one drawn at
    random for every few made alike, with jobs, name sites and diagnostics."""
    jobs = st.builds(
        RecordedJob,
        name=TEXT,
        line=POSITION,
        column=POSITION,
        spec_hash=st.text("0123456789abcdef", min_size=64, max_size=64),
        previous_names=st.lists(TEXT, max_size=2).map(tuple),
        open_ended=st.booleans(),
    )
    sites = st.builds(NameSite, name=TEXT, source=TEXT, line=POSITION, column=POSITION)
    problems = st.builds(
        Diagnostic, path=TEXT, line=POSITION, column=POSITION, code=TEXT, message=TEXT
    )
    drawn = draw(
        st.lists(
            st.tuples(
                TEXT,
                st.text("0123456789abcdef", max_size=64),
                st.lists(jobs, max_size=3).map(tuple),
                st.lists(sites, max_size=2).map(tuple),
                st.lists(problems, max_size=2).map(tuple),
            ),
            min_size=1,
            max_size=8,
        )
    )
    context = draw(st.text("0123456789abcdef", min_size=1, max_size=64))
    made = []
    for n in range(BULK_ROWS):
        path, digest, found, names, problems_found = drawn[n % len(drawn)]
        made.append(FileRecord(f"{n:04d}/{path}", digest, context, found, names, problems_found))
    return made


def stored(engine: Engine) -> list[tuple[Any, ...]]:
    with engine.connect() as connection:
        query = "SELECT path, digest, context, outcome::text, recorded_at FROM job_files"
        return [tuple(row) for row in connection.execute(sa.text(query + " ORDER BY path"))]


def clear(engine: Engine) -> None:
    with engine.begin() as connection:
        connection.execute(sa.text("DELETE FROM job_files"))


def driver_writes(engine: Engine, made: list[FileRecord], now: datetime) -> list[tuple[Any, ...]]:
    """What psycopg's COPY (store.db.upsert) writes of `made`: the other implementation."""
    values = [
        {
            "path": record.path,
            "digest": record.digest,
            "context": record.context,
            "outcome": record.outcome_json(),
            "recorded_at": now,
        }
        for record in made
    ]
    clear(engine)
    with engine.begin() as connection:
        upsert(connection, job_files, values, key="path")
    return stored(engine)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(made=records(), hours=st.integers(min_value=-12, max_value=12))
def test_new_records_written_are_the_rows_psycopg_copies(
    engine: Engine, made: list[FileRecord], hours: int
) -> None:
    now = NOW.astimezone(timezone(timedelta(hours=hours)))
    copied = driver_writes(engine, made, now)
    clear(engine)
    data = encode_new_records(made, now=now)
    assert data is not None
    with engine.begin() as connection:
        assert copy_new_records(connection, data)
    assert stored(engine) == copied


def test_a_cold_write_goes_through_the_binary_copy(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """write_file_records on an empty table: the rows encoded here (the driver's path
    not taken), the same rows; a path written meanwhile: refused whole, upserted."""
    made = [FileRecord(f"f{n:04d}.yaml", f"{n:064x}", "ctx", (), (), ()) for n in range(BULK_ROWS)]
    copied = driver_writes(engine, made, NOW)
    clear(engine)
    encoded: list[bytes | None] = []

    def spied(*args: Any, **kwargs: Any) -> bytes | None:
        encoded.append(encode_new_records(*args, **kwargs))
        return encoded[-1]

    monkeypatch.setattr(file_records, "encode_new_records", spied)
    wanted = {record.path: record for record in made}
    with engine.begin() as connection:
        write_file_records(connection, wanted, known={}, now=NOW)
    assert len(encoded) == 1 and encoded[0] is not None
    assert stored(engine) == copied
    clear(engine)
    with engine.begin() as connection:
        write_file_records(connection, {made[7].path: made[7]}, known={}, now=NOW - timedelta(1))
        write_file_records(connection, wanted, known={}, now=NOW)  # made[7]'s path: taken
    assert len(encoded) == 2
    assert stored(engine) == copied


def test_what_has_no_binary_form_here_is_left_to_the_driver() -> None:
    good = FileRecord("a.yaml", "0" * 64, "ctx", (), (), ())
    assert encode_new_records([good], now=NOW) is not None
    bad = FileRecord("a\x00.yaml", "0" * 64, "ctx", (), (), ())
    assert encode_new_records([good, bad], now=NOW) is None
    assert encode_new_records([good], now=NOW.replace(tzinfo=None)) is None
