"""The schema is written twice: the tables (`store/tables.py`, what the code queries) and
the migrations (`migrations/versions`, what a database really gets). Alembic's
autogenerate comparison of a database migrated to head against the tables' metadata
must find nothing, on both databases: types, nullability, defaults, indexes, unique
constraints and foreign keys included."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from reconciler.store.migrate import upgrade_database
from reconciler.store.tables import metadata

# alembic_version is Alembic's own bookkeeping, not one of our tables.
_ALEMBIC_TABLE = "alembic_version"


def _include_on(dialect: str) -> Any:
    """alembic_version left out; so are the indexes the tables create on another
    dialect only (`Index.ddl_if(dialect=...)`, which Alembic's comparison ignores)."""

    def include(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
        if type_ == "table" and name == _ALEMBIC_TABLE:
            return False
        only_on = getattr(getattr(obj, "_ddl_if", None), "dialect", None)
        return reflected or only_on in (None, dialect)

    return include


def schema_differences(url: str) -> list[Any]:
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection,
                opts={
                    "compare_type": True,
                    "compare_server_default": True,
                    "include_object": _include_on(connection.dialect.name),
                },
            )
            return list(compare_metadata(context, metadata))
    finally:
        engine.dispose()


@pytest.mark.services
def test_the_migrations_create_exactly_the_tables(db_url: str) -> None:
    upgrade_database(db_url)
    assert schema_differences(db_url) == []


@pytest.mark.services
def test_the_comparison_sees_a_difference(db_url: str) -> None:
    """Not a comparison that cannot fail: at the first migration, the tables and columns
    the later ones add are reported missing."""
    upgrade_database(db_url, "0001")
    found = schema_differences(db_url)
    assert any(difference[0] == "add_table" for difference in found), found
