"""Benchmark of issue 3: synthesize, import and run the programme for a city, against a plain reference.

The reference, run in the same process on the same files: the three CSVs read with ``csv.reader`` and
inserted with ``sqlite3.executemany`` into equivalent tables in one transaction — no validation, no
normalization, no encryption. Budgets: import ≤ 3× the reference; programme run ≤ 2 s on SQLite.

    python bench/register.py [--residents 460517] [--seed 7]
"""

from __future__ import annotations

import argparse
import csv
import os
import sqlite3
import tempfile
import time
from datetime import date
from pathlib import Path

from civicseal.homes import init_home
from civicseal.keys.city import load_city_keys
from civicseal.programme.service import create_programme, run_programme
from civicseal.register.importer import import_register
from civicseal.register.synth import synthesize
from civicseal.store.engine import DATABASE_URL_ENV

REFERENCE_TABLES = {
    "residents.csv": "residents",
    "tax.csv": "tax_assessments",
    "accounts.csv": "bank_accounts",
}


def reference_import(files: list[Path], db: Path) -> float:
    """Plain csv.reader + executemany into tables with the same columns, one transaction."""
    started = time.perf_counter()
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    with conn:
        for path in files:
            with path.open(encoding="utf-8", newline="") as f:
                reader = csv.reader(f)
                header = next(reader)
                table = REFERENCE_TABLES[path.name]
                conn.execute(f"CREATE TABLE {table} ({', '.join(header)})")
                marks = ", ".join("?" * len(header))
                conn.executemany(f"INSERT INTO {table} VALUES ({marks})", reader)
    conn.close()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--residents", type=int, default=460_517)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    os.environ.pop(DATABASE_URL_ENV, None)  # the budgets are for the embedded SQLite store
    work = Path(tempfile.mkdtemp(prefix="civicseal-bench-"))
    register = work / "register"
    register.mkdir()

    started = time.perf_counter()
    summary = synthesize(args.residents, args.seed, register)
    synth_s = time.perf_counter() - started
    files = [summary.residents_path, summary.tax_path, summary.accounts_path]

    reference_s = reference_import(files, work / "reference.db")

    home = init_home(work / "home")
    cipher = load_city_keys(home.keys).field_cipher()
    started = time.perf_counter()
    import_register(home.engine, cipher, files)
    import_s = time.perf_counter() - started

    create_programme(home.engine, "bench", reference_date=date(2022, 6, 1), fiscal_year=2022, amount=100_000)
    started = time.perf_counter()
    result = run_programme(home.engine, "bench")
    run_s = time.perf_counter() - started

    ratio = import_s / reference_s
    print(f"residents                 {summary.residents:>12,}")
    print(f"rows (residents+tax+acct) {summary.residents + summary.tax_rows + summary.accounts:>12,}")
    print(f"synth                     {synth_s:>10.2f} s  {summary.residents / synth_s:>12,.0f} residents/s"
          "  (budget ≥ 100,000/s)")
    print(f"import                    {import_s:>10.2f} s  {summary.residents / import_s:>12,.0f} residents/s")
    print(f"reference executemany     {reference_s:>10.2f} s  {summary.residents / reference_s:>12,.0f} residents/s")
    print(f"import / reference        {ratio:>10.2f} ×  (budget ≤ 3×)")
    print(f"programme run             {run_s:>10.2f} s  (budget ≤ 2 s)  entitled {result.entitled:,}")


if __name__ == "__main__":
    main()
