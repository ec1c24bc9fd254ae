"""The migrated store is the schema the models declare: tables, columns and indexes, on both stores."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from civicseal.schema import metadata
from civicseal.store.home import Home

# A length SQLite does not keep (it stores any text): not a difference a migration could make.
SHAPE = {"add_table", "remove_table", "add_column", "remove_column", "add_index", "remove_index"}


def test_the_migrated_store_has_the_models_tables_columns_and_indexes(home: Home) -> None:
    with home.engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), metadata)
    flat = [d for group in differences for d in (group if isinstance(group, list) else [group])]
    assert [d for d in flat if d[0] in SHAPE] == []
