"""Tracing a found copy back to the package it came from.

Three kinds of evidence, strongest first:

* **canaries** — synthetic households unique to one package (their pseudonym, reference number or name);
* **pseudonyms** — per-package household pseudonyms: equal in two files only if both came from one package;
* **reference numbers** — the same in every package that carries the household, so they narrow the
  candidates and still work when the identifier column was stripped.

The file is read as data, never trusted: CSV (UTF-8 or CP932), Parquet, XLSX or plain text, reduced to a
set of distinct tokens. Only counts and package ids are reported, never a value from the file.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Connection, Engine, select

from civicseal.audit import log as audit
from civicseal.cseal.errors import SealError
from civicseal.ledger.models import Package
from civicseal.register.importer import decode_lines
from civicseal.seal.models import Canary, PackageMember
from civicseal.seal.secrets import PSEUDONYM_CHARS
from civicseal.store.engine import transaction

PSEUDONYM = re.compile(rf"\b[a-z2-7]{{{PSEUDONYM_CHARS}}}\b")
REFERENCE = re.compile(r"(?<!\d)(\d{4})[ -]?(\d{4})[ -]?(\d{4})(?!\d)")
DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
SEPARATORS = re.compile(r"[,\t;|]")
CHUNK = 500
MAX_ROWS = 5_000_000


def _rows(path: Path) -> Iterator[list[str]]:
    """Rows of cells, whatever the file: a Parquet or XLSX row, or a line of CSV or text split on separators."""
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        for batch in pq.ParquetFile(path).iter_batches():
            for row in batch.to_pylist():
                yield [str(v) for v in row.values() if v is not None]
    elif suffix in (".xlsx", ".xlsm"):
        from openpyxl import load_workbook

        book = load_workbook(path, read_only=True, data_only=True)
        for sheet in book.worksheets:
            for row in sheet.iter_rows(values_only=True):
                yield [str(v) for v in row if v is not None]
        book.close()
    else:
        for line in decode_lines(path):
            yield [cell.strip().strip('"') for cell in SEPARATORS.split(line)]


@dataclass
class Found:
    """What a file holds that can be evidence: pseudonym-like and reference-like tokens, (name, date) pairs."""

    pseudonyms: set[str] = field(default_factory=set)
    references: set[str] = field(default_factory=set)
    name_dates: set[tuple[str, str]] = field(default_factory=set)

    def add_file(self, path: Path) -> None:
        for count, row in enumerate(_rows(path)):
            if count > MAX_ROWS:
                raise SealError(f"{path.name}: too large to trace here (more than {MAX_ROWS:,} rows)")
            text = " ".join(row)
            self.pseudonyms.update(PSEUDONYM.findall(text.lower()))
            self.references.update("".join(m) for m in REFERENCE.findall(text))
            names = [c.replace("\u3000", " ") for c in row if " " in c or "\u3000" in c]
            dates = DATE.findall(text)
            self.name_dates.update((name, date) for name in names for date in dates)


@dataclass
class Evidence:
    package_id: str
    purpose: str
    recipient_id: int
    canaries: int = 0
    pseudonyms: int = 0
    reference_numbers: int = 0
    records: int = 0

    @property
    def verdict(self) -> str:
        if self.canaries or self.pseudonyms:
            return "came from this package"
        return "holds households this package carries"

    def as_dict(self) -> dict[str, object]:
        return {
            "package_id": self.package_id,
            "purpose": self.purpose,
            "canaries": self.canaries,
            "pseudonyms": self.pseudonyms,
            "reference_numbers": self.reference_numbers,
            "records_in_package": self.records,
            "verdict": self.verdict,
        }


@dataclass
class TraceResult:
    files: int
    pseudonym_like: int
    reference_like: int
    packages: list[Evidence] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {
            "files": self.files,
            "pseudonym_like_tokens": self.pseudonym_like,
            "reference_like_tokens": self.reference_like,
            "packages": [e.as_dict() for e in self.packages],
        }


def _chunks(values: Iterable[str]) -> Iterator[list[str]]:
    listed = sorted(values)
    for start in range(0, len(listed), CHUNK):
        yield listed[start : start + CHUNK]


def _count_pseudonyms(conn: Connection, pseudonyms: set[str]) -> Counter[str]:
    """Households per package whose pseudonym appears (a household has several member rows: count it once)."""
    found: Counter[str] = Counter()
    for chunk in _chunks(pseudonyms):
        rows = conn.execute(
            select(PackageMember.package_id, PackageMember.pseudonym)
            .where(PackageMember.pseudonym.in_(chunk))
            .distinct()
        ).all()
        found.update(package_id for package_id, _ in rows)
    return found


def _count_canaries(conn: Connection, found: Found) -> Counter[str]:
    """Canaries by pseudonym or reference number (unique to a package), or by name beside birth date in one row:
    canary names come from the same lists as residents', so a name alone proves nothing."""
    matched: dict[str, set[str]] = {}
    for column, values in ((Canary.pseudonym, found.pseudonyms), (Canary.reference_number, found.references)):
        for chunk in _chunks(values):
            for package_id, canary in conn.execute(
                select(Canary.package_id, Canary.pseudonym).where(column.in_(chunk))
            ):
                matched.setdefault(package_id, set()).add(canary)
    names = {name for name, _ in found.name_dates}
    for chunk in _chunks(names):
        rows = conn.execute(
            select(Canary.package_id, Canary.pseudonym, Canary.name, Canary.name_kana, Canary.birth_date).where(
                Canary.name.in_(chunk) | Canary.name_kana.in_(chunk)
            )
        ).all()
        for package_id, canary, name, kana, born in rows:
            if (name, born) in found.name_dates or (kana, born) in found.name_dates:
                matched.setdefault(package_id, set()).add(canary)
    return Counter({package_id: len(canaries) for package_id, canaries in matched.items()})


def _count_references(conn: Connection, references: set[str]) -> Counter[str]:
    """Households per package whose reference number appears."""
    from civicseal.programme.models import Entitlement

    found: Counter[str] = Counter()
    for chunk in _chunks(references):
        rows = conn.execute(
            select(PackageMember.package_id, PackageMember.household_code)
            .join(Entitlement, Entitlement.household_code == PackageMember.household_code)
            .join(
                Package, (Package.id == PackageMember.package_id) & (Package.programme_id == Entitlement.programme_id)
            )
            .where(Entitlement.reference_number.in_(chunk))
            .distinct()
        ).all()
        found.update(package_id for package_id, _ in rows)
    return found


def trace(engine: Engine, paths: list[Path], *, actor: str | None = None) -> TraceResult:
    found = Found()
    for path in paths:
        found.add_file(path)
    with engine.connect() as conn:
        canaries = _count_canaries(conn, found)
        by_pseudonym = _count_pseudonyms(conn, found.pseudonyms)
        by_reference = _count_references(conn, found.references)
        candidates = set(canaries) | set(by_pseudonym) | set(by_reference)
        packages = {
            p.id: p
            for chunk in _chunks(candidates)
            for p in conn.execute(
                select(Package.id, Package.purpose, Package.recipient_id, Package.records).where(Package.id.in_(chunk))
            )
        }
    evidence = [
        Evidence(
            package_id=package_id,
            purpose=packages[package_id].purpose,
            recipient_id=packages[package_id].recipient_id,
            canaries=canaries[package_id],
            pseudonyms=by_pseudonym[package_id],
            reference_numbers=by_reference[package_id],
            records=packages[package_id].records,
        )
        for package_id in candidates
    ]
    evidence.sort(key=lambda e: (-e.canaries, -e.pseudonyms, -e.reference_numbers, e.package_id))
    result = TraceResult(len(paths), len(found.pseudonyms), len(found.references), evidence)
    with transaction(engine) as conn:  # a found copy of personal data was read against the register
        audit.append(
            conn, "package.trace", "files", len(paths),
            {"packages_matched": len(evidence), "came_from": sum(1 for e in evidence if e.canaries or e.pseudonyms)},
            actor=actor,
        )  # fmt: skip
    return result
