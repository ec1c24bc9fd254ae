"""Benchmark of issue 3: synthesize, import and run the programme for a city, against a plain reference.

The reference, run in the same process on the same files: the three CSVs read with ``csv.reader`` and
inserted with ``sqlite3.executemany`` into equivalent tables (same columns, keys and indexes) in one
transaction — no validation, no normalization, no encryption.
Budgets: import ≤ 3× the reference; programme run ≤ 1.5 s on SQLite as a whole process (``civicseal programme
run`` with its start-up, for a second programme on the same register; the in-process figure is printed too).

    python bench/register.py [--residents 460517] [--seed 7]
"""

from __future__ import annotations

import csv
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from civicseal.store.home import Home
from common import build_city, city_arguments

# Tables equivalent to the store's: the same columns, primary keys and indexes; no validation, no
# normalization, no encryption. Index upkeep is part of storing a register, so the reference pays it too.
REFERENCE_DDL = {
    "residents.csv": (
        "residents",
        [
            "CREATE TABLE residents (resident_code PRIMARY KEY, household_code, relationship, name, name_kana, sex,"
            " birth_date, postcode, address, moved_in, moved_out, deceased, my_number) WITHOUT ROWID",
            "CREATE INDEX ix_residents_household ON residents (household_code)",
            "CREATE INDEX ix_residents_my_number ON residents (my_number)",
        ],
    ),
    "tax.csv": (
        "tax_assessments",
        [
            "CREATE TABLE tax_assessments (resident_code, fiscal_year, per_capita_levy, income, dependent_of,"
            " PRIMARY KEY (resident_code, fiscal_year)) WITHOUT ROWID"
        ],
    ),
    "accounts.csv": (
        "bank_accounts",
        [
            "CREATE TABLE bank_accounts (household_code PRIMARY KEY, bank_code, branch_code, account_type,"
            " account_number, holder_kana) WITHOUT ROWID",
            "CREATE INDEX ix_bank_accounts_number ON bank_accounts (account_number)",
        ],
    ),
}


def reference_import(files: list[Path], db: Path) -> float:
    """Plain csv.reader + executemany into equivalent tables, one transaction."""
    started = time.perf_counter()
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    with conn:
        for path in files:
            table, ddl = REFERENCE_DDL[path.name]
            for statement in ddl:
                conn.execute(statement)
            with path.open(encoding="utf-8", newline="") as f:
                reader = csv.reader(f)
                header = next(reader)
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


def main() -> None:
    args = city_arguments(__doc__.splitlines()[0])
    reference: list[float] = []
    city = build_city(
        args.residents,
        args.seed,
        before_import=lambda files, work: reference.append(reference_import(files, work / "reference.db")),
    )
    summary, reference_s = city.synth, reference[0]
    ratio = city.import_s / reference_s
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
    print(f"reference executemany     {reference_s:>10.2f} s  {summary.residents / reference_s:>12,.0f} residents/s")
    print(f"import / reference        {ratio:>10.2f} ×  (budget ≤ 3×)")
    print(f"programme run (in process){city.run_s:>10.2f} s  entitled {city.run.entitled:,}")
    print(f"programme run (process)   {whole_process_run(city.home):>10.2f} s  (budget ≤ 1.5 s, start-up included)")


if __name__ == "__main__":
    main()
