"""Small registers written as CSV for tests: each resident a dict over sensible defaults."""

from __future__ import annotations

import csv
from pathlib import Path

from civicseal.register.columns import Kind, english_header

DEFAULT_RESIDENT = {
    "relationship": "head",
    "name": "尼崎 太郎",
    "name_kana": "アマガサキ タロウ",
    "sex": "1",
    "birth_date": "1960-04-01",
    "postcode": "660-0881",
    "address": "兵庫県尼崎市昭和通2丁目1-1",
    "moved_in": "",
    "moved_out": "",
    "deceased": "",
    "my_number": "",
}


def write_csv(path: Path, kind: Kind, rows: list[dict[str, str]], encoding: str = "utf-8") -> Path:
    header = english_header(kind)
    with path.open("w", encoding=encoding, newline="") as f:
        writer = csv.DictWriter(f, header, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({key: row.get(key, "") for key in header})
    return path


def resident(code: str, household: str, **fields: str) -> dict[str, str]:
    return {**DEFAULT_RESIDENT, "resident_code": code, "household_code": household, **fields}


def tax(
    code: str, year: str = "2022", *, levy: str = "exempt", income: str = "0", dependent_of: str = ""
) -> dict[str, str]:
    return {
        "resident_code": code,
        "fiscal_year": year,
        "per_capita_levy": levy,
        "income": income,
        "dependent_of": dependent_of,
    }


def register_files(directory: Path, residents: list[dict[str, str]], taxes: list[dict[str, str]]) -> list[Path]:
    return [
        write_csv(directory / "residents.csv", Kind.RESIDENTS, residents),
        write_csv(directory / "tax.csv", Kind.TAX, taxes),
    ]
