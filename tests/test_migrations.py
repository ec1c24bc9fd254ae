"""The migrated store is the schema the models declare: tables, columns and indexes, on both stores."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from civicseal.schema import metadata
from civicseal.store.home import Home

# A length SQLite does not keep (it stores any text): not a difference a migration could make.
SHAPE = {"add_table", "remove_table", "add_column", "remove_column", "add_index", "remove_index"}


def test_the_migrated_store_has_the_models_tables_columns_and_indexes(home: Home) -> None:
    with home.engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), metadata)
    flat = [d for group in differences for d in (group if isinstance(group, list) else [group])]
    assert [d for d in flat if d[0] in SHAPE] == []


def test_postgresql_indexes_carry_the_columns_the_models_include(home: Home) -> None:
    """What compare_metadata does not look at: an index that holds a column for the run to read it alone."""
    declared = {
        index.name: list(index.dialect_options["postgresql"]["include"] or ())
        for table in metadata.tables.values()
        for index in table.indexes
    }
    assert declared["ix_residents_household_code"] == ["resident_code"]
    with home.engine.connect() as conn:
        if conn.dialect.name != "postgresql":
            return  # SQLite's indexes of WITHOUT ROWID tables hold the key: nothing to include
        stored = {
            index["name"]: list(index.get("dialect_options", {}).get("postgresql_include", []))
            for table in metadata.tables
            for index in inspect(conn).get_indexes(table)
        }
    assert {name: stored[name] for name in declared} == declared
