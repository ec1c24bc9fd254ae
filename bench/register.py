"""Benchmark of issue 3: synthesize, import and run the programme for a city, against a plain reference.

The reference, run in the same process on the same files: the three CSVs read with ``csv.reader`` and
inserted with ``sqlite3.executemany`` into equivalent tables (same columns, keys and indexes) in one
transaction — no validation, no normalization, no encryption.
Budgets: import ≤ 3× the reference; programme run ≤ 2 s on SQLite.

    python bench/register.py [--residents 460517] [--seed 7]
"""

from __future__ import annotations

import csv
import sqlite3
import time
from pathlib import Path

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
    print(f"programme run             {city.run_s:>10.2f} s  (budget ≤ 2 s)  entitled {city.run.entitled:,}")


if __name__ == "__main__":
    main()
