"""Benchmark of issue 3: synthesize, import and run the programme for a city, against a plain reference.

The reference, run in the same process on the same files: the three CSVs read with ``csv.reader`` and
inserted with ``executemany`` into equivalent tables (same columns, keys and indexes) in one
transaction — no validation, no normalization, no encryption. It runs on both SQLite libraries civicseal
uses (``store.driver``): the store's (3.51 where pysqlite3-binary is installed) and Python's own; the
ratio is printed against each, the store's being the stricter where it is the faster.
On PostgreSQL (127.0.0.1:5432, user postgres, or CIVICSEAL_BENCH_PG as an admin URL) the same import runs
into a fresh database, against a plain COPY of the same files into equivalent tables in another.
Budgets: import ≤ 2× the reference on SQLite, ≤ 1.5× the plain COPY on PostgreSQL; programme run ≤ 1.5 s on
SQLite as a whole process (``civicseal programme run`` with its start-up, for a second programme on the same
register; the in-process figure is printed too). Each store also imports the same files a second time, as a
city re-imports an extract: nothing is written, and the time is printed against the first import's.

    python bench/register.py [--residents 460517] [--seed 7]
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import ModuleType

import psycopg

from civicseal.homes import init_home
from civicseal.keys.city import load_city_keys
from civicseal.register.importer import import_register
from civicseal.store.driver import python_sqlite3, sqlite3
from civicseal.store.engine import DATABASE_URL_ENV, make_engine, write_patiently
from civicseal.store.home import Home
from common import build_city, city_arguments, postgres_database, store_url, timed

# Tables equivalent to the store's: the same columns, primary keys and indexes; no validation, no
# normalization, no encryption. Index upkeep is part of storing a register, so the reference pays it too.
REFERENCE_TABLES = {
    "residents.csv": (
        "residents",
        "resident_code, household_code, relationship, name, name_kana, sex, birth_date, postcode, address, moved_in,"
        " moved_out, deceased, my_number",
        "resident_code",
        ["household_code", "my_number"],
    ),
    "tax.csv": (
        "tax_assessments",
        "resident_code, fiscal_year, per_capita_levy, income, dependent_of",
        "resident_code, fiscal_year",
        [],
    ),
    "accounts.csv": (
        "bank_accounts",
        "household_code, bank_code, branch_code, account_type, account_number, holder_kana",
        "household_code",
        ["account_number"],
    ),
}


def reference_ddl(name: str, *, postgres: bool) -> list[str]:
    """The reference table of a file (text columns on PostgreSQL, untyped on SQLite) and its indexes."""
    table, columns, key, indexed = REFERENCE_TABLES[name]
    typed = ", ".join(f"{c} text" for c in columns.split(", ")) if postgres else columns
    rowid = "" if postgres else " WITHOUT ROWID"
    create = f"CREATE TABLE {table} ({typed}, PRIMARY KEY ({key})){rowid}"
    return [create, *(f"CREATE INDEX ix_{table}_{column} ON {table} ({column})" for column in indexed)]


def reference_import(files: list[Path], db: Path, library: ModuleType) -> float:
    """Plain csv.reader + executemany into equivalent tables, one transaction."""
    started = time.perf_counter()
    conn = library.connect(db)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    with conn:
        for path in files:
            for statement in reference_ddl(path.name, postgres=False):
                conn.execute(statement)
            with path.open(encoding="utf-8", newline="") as f:
                reader = csv.reader(f)
                header = next(reader)
                table = REFERENCE_TABLES[path.name][0]
                conn.executemany(f"INSERT INTO {table} VALUES ({', '.join('?' * len(header))})", reader)
    conn.close()
    return time.perf_counter() - started


def whole_process_run(home: Home) -> float:
    """``civicseal programme run`` as staff type it, start-up included: a second programme on the same register,
    so it creates as many entitlements as the first run did."""
    cli = [str(Path(sys.executable).with_name("civicseal")), "programme"]
    where = ["--home", str(home.path), "--json"]
    create = ["create", "bench-cli", "--reference-date", "2022-06-01", "--fiscal-year", "2022", "--amount", "100000"]
    subprocess.run([*cli, *create, *where], check=True, stdout=subprocess.DEVNULL)
    started = time.perf_counter()
    subprocess.run([*cli, "run", "bench-cli", *where], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def reference_copy(files: list[Path], url: str) -> float:
    """Plain COPY of the three files into equivalent PostgreSQL tables, one transaction."""
    started = time.perf_counter()
    with psycopg.connect(url) as conn:
        for path in files:
            for statement in reference_ddl(path.name, postgres=True):
                conn.execute(statement)
            table = REFERENCE_TABLES[path.name][0]
            with conn.cursor().copy(f"COPY {table} FROM STDIN (FORMAT csv, HEADER true)") as copy, path.open("rb") as f:
                while chunk := f.read(1 << 20):
                    copy.write(chunk)
    return time.perf_counter() - started


def postgres_import(files: list[Path], work: Path) -> tuple[float, float, float]:
    """The import into a fresh PostgreSQL database, the same files again, and the plain COPY into another."""
    with postgres_database() as reference_url, postgres_database() as store:
        reference_s = reference_copy(files, reference_url)
        os.environ[DATABASE_URL_ENV] = store_url(store)
        try:
            home = init_home(work / "home-postgresql")
            cipher = load_city_keys(home.keys).field_cipher()
            import_s = timed(lambda: import_register(home.engine, cipher, files))
            again_s = timed(lambda: import_register(home.engine, cipher, files))
            home.engine.dispose()
        finally:
            os.environ.pop(DATABASE_URL_ENV, None)
    return import_s, again_s, reference_s


def write_lock_waits(files: list[Path], work: Path) -> float:
    """The longest a small write (as a revocation writes) waited while the register was imported into a fresh
    SQLite home: a prober asks for the write lock every 0.1 s throughout."""
    home = init_home(work / "home-contention")
    cipher = load_city_keys(home.keys).field_cipher()
    prober_engine = make_engine(home.database_url)
    waits: list[float] = []
    importing = threading.Thread(target=import_register, args=(home.engine, cipher, files))
    importing.start()
    while importing.is_alive():
        waits.append(timed(lambda: write_patiently(prober_engine, lambda conn: conn.exec_driver_sql(PROBE))))
        time.sleep(0.1)
    importing.join()
    prober_engine.dispose()
    return max(waits)


PROBE = "DELETE FROM audit_head WHERE 0 = 1"  # takes the write lock, changes nothing


def main() -> None:
    args = city_arguments(__doc__.splitlines()[0])
    reference: dict[str, float] = {}

    def references(files: list[Path], work: Path) -> None:
        for library in (sqlite3, python_sqlite3):
            label = f"SQLite {library.sqlite_version}" + (", Python's" if library is python_sqlite3 else "")
            reference[label] = reference_import(files, work / f"reference-{len(reference)}.db", library)

    city = build_city(args.residents, args.seed, before_import=references)
    summary = city.synth
    cipher = load_city_keys(city.home.keys).field_cipher()
    again_s = timed(lambda: import_register(city.home.engine, cipher, city.files))
    pg_import_s, pg_again_s, pg_reference_s = postgres_import(city.files, city.work)
    longest_wait = write_lock_waits(city.files, city.work)
    rows = summary.residents + summary.tax_rows + summary.accounts
    print(f"residents                 {summary.residents:>12,}")
    print(f"rows (residents+tax+acct) {rows:>12,}")
    print(
        f"synth                     {city.synth_s:>10.2f} s  {summary.residents / city.synth_s:>12,.0f} residents/s"
        "  (budget ≥ 100,000/s)"
    )
    print(
        f"import                    {city.import_s:>10.2f} s  {summary.residents / city.import_s:>12,.0f} residents/s"
    )
    for label, reference_s in reference.items():
        print(
            f"reference executemany     {reference_s:>10.2f} s  {summary.residents / reference_s:>12,.0f} residents/s"
            f"  ({label})"
        )
        print(f"import / reference        {city.import_s / reference_s:>10.2f} ×  (budget ≤ 2×; {label})")
    print(f"re-import, same files     {again_s:>10.2f} s  ({again_s / city.import_s:.2f} × the first import)")
    print(f"write-lock wait in import {longest_wait:>10.2f} s  (a revocation's; budget ≤ 5 s)")
    print(f"PostgreSQL import         {pg_import_s:>10.2f} s")
    print(f"PostgreSQL re-import      {pg_again_s:>10.2f} s  ({pg_again_s / pg_import_s:.2f} × the first import)")
    print(f"PostgreSQL plain COPY     {pg_reference_s:>10.2f} s")
    print(f"PostgreSQL import / COPY  {pg_import_s / pg_reference_s:>10.2f} ×  (budget ≤ 1.5×)")
    print(f"programme run (in process){city.run_s:>10.2f} s  entitled {city.run.entitled:,}")
    print(f"programme run (process)   {whole_process_run(city.home):>10.2f} s  (budget ≤ 1.5 s, start-up included)")


if __name__ == "__main__":
    main()
