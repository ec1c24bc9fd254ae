"""The migrated store is the schema the models declare: tables, columns and indexes, on both stores."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

from civicseal.cli import run
from civicseal.homes import init_home
from civicseal.schema import metadata
from civicseal.store.base import unsampled
from civicseal.store.engine import DATABASE_URL_ENV, SQLITE_FILE, transaction
from civicseal.store.home import Home
from civicseal.store.migrate import MIGRATIONS, REVISION, alembic_config

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


def test_postgresql_tables_keep_the_room_the_models_declare(home: Home) -> None:
    """Also unseen by compare_metadata: a table's fillfactor, which keeps its status changes on the page."""
    declared = {
        name: [f"{key}={value}" for key, value in (table.dialect_options["postgresql"]["with"] or {}).items()]
        for name, table in metadata.tables.items()
    }
    assert declared["entitlements"] == ["fillfactor=50"]
    with home.engine.connect() as conn:
        if conn.dialect.name != "postgresql":
            return  # SQLite has no such setting
        options = "SELECT relname, COALESCE(reloptions, '{}') FROM pg_class WHERE relkind = 'r' AND relname = ANY(:t)"
        stored = dict(conn.execute(text(options), {"t": list(declared)}).all())
    assert {name: list(stored[name]) for name in declared} == declared


def test_postgresql_samples_only_the_columns_the_models_let_it(home: Home) -> None:
    """Also unseen by compare_metadata: a column's statistics target. Names and addresses are never sampled."""
    declared = {(name, column) for name, table in metadata.tables.items() for column in unsampled(table)}
    assert declared == {("residents", "name"), ("residents", "address")}
    with home.engine.connect() as conn:
        if conn.dialect.name != "postgresql":
            return  # SQLite keeps no per-column statistics target
        stored = conn.execute(
            text(
                "SELECT c.relname, a.attname FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid"
                " WHERE c.relnamespace = to_regnamespace(current_schema())::oid AND c.relkind = 'r'"
                " AND a.attnum > 0 AND a.attstattarget = 0"
            )
        ).all()
    assert {(table, column) for table, column in stored} == declared


def test_the_revision_commands_expect_is_the_newest_migration() -> None:
    assert ScriptDirectory(str(MIGRATIONS)).get_current_head() == REVISION


def test_a_store_an_older_civicseal_made_is_refused_until_upgraded(
    home: Home, capsys: pytest.CaptureFixture[str]
) -> None:
    command.downgrade(alembic_config(home.engine), "0014")
    home.engine.dispose()
    listing = ["programme", "list", "--json", "--home", str(home.path)]
    assert run(listing) == 1
    refused = json.loads(capsys.readouterr().out)
    assert refused["rule"] == "schema_behind"
    assert "schema 0014" in refused["error"] and f"needs {REVISION}" in refused["error"]
    assert "civicseal upgrade" in refused["error"]
    assert run(["upgrade", "--json", "--home", str(home.path)]) == 0
    assert json.loads(capsys.readouterr().out) == {"from": "0014", "to": REVISION, "changed": True}
    assert run(listing) == 0
    assert json.loads(capsys.readouterr().out) == {"programmes": []}
    assert run(["upgrade", "--json", "--home", str(home.path)]) == 0  # again: nothing to do, nothing logged
    assert json.loads(capsys.readouterr().out)["changed"] is False
    assert run(["audit", "show", "--json", "--home", str(home.path)]) == 0
    entries = json.loads(capsys.readouterr().out)["entries"]
    upgrades = [json.loads(e["details"]) for e in entries if e["action"] == "store.upgrade"]
    assert upgrades == [{"from": "0014", "to": REVISION}]
    assert run(["audit", "verify", "--home", str(home.path)]) == 0


def test_a_store_a_newer_civicseal_migrated_is_left_alone(home: Home, capsys: pytest.CaptureFixture[str]) -> None:
    with transaction(home.engine) as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    home.engine.dispose()
    for args in (["programme", "list"], ["upgrade"]):
        assert run([*args, "--json", "--home", str(home.path)]) == 1
        assert "schema 9999, newer than this civicseal's" in json.loads(capsys.readouterr().out)["error"]


def test_a_store_with_no_schema_is_refused_and_says_where_the_home_looked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A home made on PostgreSQL, used from a shell without CIVICSEAL_DATABASE_URL, looks at its SQLite file:
    told so, with no empty civicseal.db left behind (and `upgrade` does not build a second, empty register
    there); a variable naming a database init never ran on is told so too."""
    monkeypatch.delenv(DATABASE_URL_ENV, raising=False)
    home = init_home(tmp_path / "home")
    home.engine.dispose()
    (home.path / SQLITE_FILE).unlink()
    for args in (["programme", "list"], ["upgrade"]):
        assert run([*args, "--json", "--home", str(home.path)]) == 1
        error = json.loads(capsys.readouterr().out)["error"]
        assert error.endswith("needs CIVICSEAL_DATABASE_URL set for every command, as it was for `civicseal init`")
        assert not (home.path / SQLITE_FILE).exists()
    monkeypatch.setenv(DATABASE_URL_ENV, f"sqlite:///{tmp_path / 'elsewhere.db'}")
    assert run(["programme", "list", "--json", "--home", str(home.path)]) == 1
    assert "names the database `civicseal init` was run on" in json.loads(capsys.readouterr().out)["error"]
