"""Tracing a found copy back to the recipient, then the package, it came from.

Three kinds of evidence:

* **canaries** — synthetic households kept for one recipient (seal/canaries.py), matched by any of their
  fields. A row holding a canary's reference number, pseudonym or address (one the city controls, unless
  another canary shares it), or its name or kana beside its birth date, is the canary; a name alone, which
  a resident may share, makes the recipient a possible source. They name the recipient; a canary's
  pseudonym also names the package;
* **pseudonyms** — per-package household pseudonyms: equal in two files only if both came from one package;
* **reference numbers** — the same in every package that carries the household, so they narrow the
  candidates and still work when the identifier column was stripped.

The file is read as data, never trusted: CSV (UTF-8 or CP932), Parquet, XLSX or plain text, row by row;
names and addresses are compared without spaces and after NFKC, so a re-typed copy still matches. Only
counts, recipients and package ids are reported, never a value from the file.
"""

from __future__ import annotations

import bisect
import re
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice, pairwise
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, select, text

from civicseal.audit import log as audit
from civicseal.cseal.errors import SealError
from civicseal.ledger.models import Package, PackageMember, Recipient
from civicseal.register.errors import RegisterError
from civicseal.register.importer import decode_lines
from civicseal.register.normalize import parse_date
from civicseal.seal.models import CanaryHousehold, PackageCanary
from civicseal.seal.secrets import PSEUDONYM_CHARS
from civicseal.store.bulk import insert_rows
from civicseal.store.engine import transaction

PSEUDONYM = re.compile(rf"\b[a-z2-7]{{{PSEUDONYM_CHARS}}}\b")
REFERENCE = re.compile(r"(?<!\d)(\d{4})[ -]?(\d{4})[ -]?(\d{4})(?!\d)")
DATE_LIKE = re.compile(
    r"(?:明治|大正|昭和|平成|令和|[MTSHR])?\s?[0-9０-９元]{1,4}\s?[-/.年]\s?[0-9０-９]{1,2}\s?[-/.月]\s?[0-9０-９]{1,2}日?"
)
SPACES = re.compile(r"\s+")
PREFECTURE = re.compile(r"^\w{2,3}?[都道府県]")
CITY = re.compile(r"^\w+?[市区]")
SEPARATORS = re.compile(r"[,\t;|]")
ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
SEP, ROW = "\x00", "\x01"  # between cells and rows where a chunk is searched whole
CHUNK_ROWS = 10_000
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


def squash(value: str) -> str:
    """How names and addresses are compared: NFKC (full-width to ASCII, half-width kana to full), no spaces."""
    return SPACES.sub("", unicodedata.normalize("NFKC", value))


DISTINCTIVE = frozenset({"reference_number", "pseudonym", "address"})
"""Fields no resident shares with a canary: its address is one the city controls."""
NAMES = frozenset({"name", "name_kana"})


class CanaryIndex:
    """Every canary household's fields, by the value a found file would show."""

    def __init__(self, conn: Connection) -> None:
        self.by_value: dict[str, set[tuple[int, str]]] = defaultdict(set)
        self.at_address: dict[str, set[int]] = defaultdict(set)
        t = CanaryHousehold
        query = select(t.id, t.reference_number, t.name, t.name_kana, t.birth_date, t.address)
        for canary, reference, name, kana, born, address in conn.execute(query):
            self.by_value[reference].add((canary, "reference_number"))
            self.by_value[squash(name)].add((canary, "name"))
            self.by_value[squash(kana)].add((canary, "name_kana"))
            self.by_value[born].add((canary, "birth_date"))
            full = squash(address)  # also as written without the prefecture, or the prefecture and city
            local = PREFECTURE.sub("", full, count=1)
            for variant in {full, local, CITY.sub("", local, count=1)}:
                self.by_value[variant].add((canary, "address"))
                self.at_address[variant].add(canary)
        self.shared = {c for canaries in self.at_address.values() if len(canaries) > 1 for c in canaries}
        # Every candidate of a row but its dates is a run of a squashed cell, so a row none of whose squashed
        # cells holds a value of some field other than a birth date names no canary (a birth date alone
        # names none): one search over a chunk of rows skips the rest of the work for nearly every row.
        telling = [value for value, entries in self.by_value.items() if any(f != "birth_date" for _, f in entries)]
        dated = [entries for value, entries in self.by_value.items() if ISO_DATE.fullmatch(value)]
        self._screened = all(f == "birth_date" for entries in dated for _, f in entries) and not any(
            SEP in value or ROW in value for value in telling
        )  # else a date in a row could be an address or a name, or a value spans what separates cells
        self._telling = re.compile("|".join(map(re.escape, telling))) if telling else None

    def naming(self, rows: list[list[str]]) -> list[int]:
        """The places of the rows that may name or hint at a canary; a row left out cannot."""
        if not self._screened:
            return list(range(len(rows)))
        if self._telling is None:
            return []
        block = squash(ROW.join(SEP.join(row) for row in rows))
        if block.count(ROW) != len(rows) - 1:  # a cell holds the separator itself: row by row
            return [i for i, row in enumerate(rows) if self._telling.search(squash(SEP.join(row)))]
        found = [m.start() for m in self._telling.finditer(block)]
        if not found:
            return []
        ends = [m.start() for m in re.finditer(ROW, block)]
        return sorted({bisect.bisect(ends, at) for at in found})


@dataclass
class Found:
    """What a file holds that can be evidence: pseudonym-like and reference-like tokens, canaries' fields."""

    pseudonyms: set[str] = field(default_factory=set)
    references: set[str] = field(default_factory=set)
    canaries: dict[int, set[str]] = field(default_factory=lambda: defaultdict(set))  # found: fields that matched
    possible: dict[int, set[str]] = field(default_factory=lambda: defaultdict(set))  # by a name alone

    def add_file(self, path: Path, index: CanaryIndex) -> None:
        """A chunk of rows at a time: tokens are found in the chunk's text at once (no pattern can cross the
        line break between rows), and only the rows that may name a canary are judged one by one."""
        rows, count = _rows(path), 0
        while chunk := list(islice(rows, CHUNK_ROWS)):
            count += len(chunk)
            if count > MAX_ROWS + 1:
                raise SealError(f"{path.name}: too large to trace here (more than {MAX_ROWS:,} rows)")
            texts = [" ".join(row) for row in chunk]
            block = "\n".join(texts)
            self.pseudonyms.update(PSEUDONYM.findall(block.lower()))
            self.references.update("".join(m) for m in REFERENCE.findall(block))
            if index.by_value:
                for i in index.naming(chunk):
                    self._add_canaries(chunk[i], texts[i], index)

    def _add_canaries(self, row: list[str], text: str, index: CanaryIndex) -> None:
        """Judged row by row: a name beside the same canary's birth date or address is that canary; apart, it
        is a possibility only (so is an address two canaries share)."""
        in_row: dict[int, set[str]] = defaultdict(set)
        for value in _candidates(row, text):
            for canary, name in index.by_value.get(value, ()):
                in_row[canary].add(name)
        for canary, fields in in_row.items():
            if fields == {"address"} and canary in index.shared:  # another canary lives there too: whose?
                self.possible[canary] |= fields
            elif fields & DISTINCTIVE or (fields & NAMES and "birth_date" in fields):
                self.canaries[canary] |= fields
            elif fields & NAMES:
                self.possible[canary] |= fields


def _candidates(row: list[str], text: str) -> set[str]:
    """Each cell squashed, its words and pairs of adjacent words (a name in a line of free text), and the
    dates in the row in ISO form."""
    out: set[str] = set()
    for cell in row:
        words = unicodedata.normalize("NFKC", cell).split()
        out.add("".join(words))
        if len(words) > 1:
            out.update(words)
            out.update(a + b for a, b in pairwise(words))
    for date in DATE_LIKE.findall(text):
        try:
            out.add(parse_date(date).isoformat())
        except RegisterError:
            continue
    return out


@dataclass
class Evidence:
    package_id: str
    purpose: str
    recipient_id: int
    canaries: int = 0  # canaries found that this package carried
    pseudonyms: int = 0  # real households by this package's pseudonym
    reference_numbers: int = 0
    records: int = 0
    own_canaries: int = 0  # canaries found under this package's pseudonym for them
    possible: int = 0  # canaries it carried whose name alone was found

    @property
    def verdict(self) -> str:
        if self.pseudonyms or self.own_canaries:
            return "came from this package"
        if self.canaries:
            return "carried the canaries found"
        if self.possible:
            return "carried a canary whose name was found"
        return "holds households this package carries"

    def as_dict(self) -> dict[str, object]:
        return {
            "package_id": self.package_id,
            "purpose": self.purpose,
            "canaries": self.canaries,
            "canaries_by_name_only": self.possible,
            "pseudonyms": self.pseudonyms,
            "reference_numbers": self.reference_numbers,
            "records_in_package": self.records,
            "verdict": self.verdict,
        }


@dataclass
class RecipientEvidence:
    """One recipient and what points to it; its packages best first."""

    recipient: str
    canaries: int  # its canary households found in the files
    possible: int  # its canaries of which only a name was found
    fields: tuple[str, ...]  # the canary fields that matched
    packages: list[Evidence]

    @property
    def verdict(self) -> str:
        if self.canaries or any(e.pseudonyms or e.own_canaries for e in self.packages):
            return "came from this recipient"
        if self.possible:
            return "may have come from this recipient (only a canary's name or shared address: a resident may share it)"
        return "holds households sent to this recipient"

    def as_dict(self) -> dict[str, object]:
        return {
            "recipient": self.recipient,
            "verdict": self.verdict,
            "canaries": self.canaries,
            "canaries_by_name_only": self.possible,
            "canary_fields": list(self.fields),
            "packages": [e.as_dict() for e in self.packages],
        }


@dataclass
class TraceResult:
    files: int
    pseudonym_like: int
    reference_like: int
    recipients: list[RecipientEvidence] = field(default_factory=list)

    @property
    def packages(self) -> list[Evidence]:
        """Every matching package, recipient by recipient, best first."""
        return [e for r in self.recipients for e in r.packages]

    def as_dict(self) -> dict[str, object]:
        return {
            "files": self.files,
            "pseudonym_like_tokens": self.pseudonym_like,
            "reference_like_tokens": self.reference_like,
            "recipients": [r.as_dict() for r in self.recipients],
        }


def _chunks(values: Iterable[Any]) -> Iterator[list[Any]]:
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


def _canaries_by_pseudonym(conn: Connection, found: Found) -> Counter[str]:
    """Canaries found under a package's own pseudonym for them: counted per package, and as canary fields."""
    own: Counter[str] = Counter()
    for chunk in _chunks(found.pseudonyms):
        query = select(PackageCanary.package_id, PackageCanary.canary_id).where(PackageCanary.pseudonym.in_(chunk))
        for package_id, canary in conn.execute(query):
            own[package_id] += 1
            found.canaries[canary].add("pseudonym")
    return own


def _packages_carrying(conn: Connection, canaries: Iterable[int]) -> Counter[str]:
    carrying: Counter[str] = Counter()
    for chunk in _chunks(canaries):
        carrying.update(
            conn.execute(select(PackageCanary.package_id).where(PackageCanary.canary_id.in_(chunk))).scalars()
        )
    return carrying


def _owners(conn: Connection, canaries: set[int]) -> dict[int, set[int]]:
    """Recipient id: its canaries among ``canaries``."""
    owners: dict[int, set[int]] = defaultdict(set)
    for chunk in _chunks(canaries):
        query = select(CanaryHousehold.recipient_id, CanaryHousehold.id).where(CanaryHousehold.id.in_(chunk))
        for recipient_id, canary in conn.execute(query):
            owners[recipient_id].add(canary)
    return owners


FOUND_REFERENCES = "cs_trace_references"


def _count_references(conn: Connection, references: set[str]) -> Counter[str]:
    """Households per package whose reference number appears: the numbers staged once in a temporary table
    and counted in one join (a leaked mailing quotes tens of thousands)."""
    if not references:
        return Counter()
    conn.exec_driver_sql(f"CREATE TEMPORARY TABLE IF NOT EXISTS {FOUND_REFERENCES} (number VARCHAR(12) PRIMARY KEY)")
    conn.exec_driver_sql(f"DELETE FROM {FOUND_REFERENCES}")
    insert_rows(conn, FOUND_REFERENCES, ("number",), ((r,) for r in sorted(references)))
    rows = conn.execute(
        text(
            f"SELECT m.package_id, COUNT(DISTINCT m.household_code) FROM {FOUND_REFERENCES} f"
            " JOIN entitlements e ON e.reference_number = f.number"
            " JOIN package_members m ON m.household_code = e.household_code"
            " JOIN packages p ON p.id = m.package_id AND p.programme_id = e.programme_id"
            " GROUP BY m.package_id"
        )
    )
    return Counter({package_id: int(households) for package_id, households in rows})


def trace(engine: Engine, paths: list[Path], *, actor: str | None = None) -> TraceResult:
    found = Found()
    with engine.connect() as conn:
        index = CanaryIndex(conn)
    for path in paths:
        found.add_file(path, index)
    with engine.connect() as conn:
        own = _canaries_by_pseudonym(conn, found)
        by_pseudonym = _count_pseudonyms(conn, found.pseudonyms)
        by_reference = _count_references(conn, found.references)
        possible = {c: f for c, f in found.possible.items() if c not in found.canaries}
        canaries_in, possible_in = _packages_carrying(conn, found.canaries), _packages_carrying(conn, possible)
        owners = _owners(conn, set(found.canaries) | set(possible))
        candidates = set(canaries_in) | set(possible_in) | set(by_pseudonym) | set(by_reference) | set(own)
        packages = {
            p.id: p
            for chunk in _chunks(candidates)
            for p in conn.execute(
                select(Package.id, Package.purpose, Package.recipient_id, Package.records).where(Package.id.in_(chunk))
            )
        }
        names = {recipient_id: name for recipient_id, name in conn.execute(select(Recipient.id, Recipient.name))}
    evidence: dict[int, list[Evidence]] = defaultdict(list)
    for package_id in candidates:
        p = packages[package_id]
        evidence[p.recipient_id].append(
            Evidence(
                package_id=package_id,
                purpose=p.purpose,
                recipient_id=p.recipient_id,
                canaries=canaries_in[package_id],
                pseudonyms=by_pseudonym[package_id],
                reference_numbers=by_reference[package_id],
                records=p.records,
                own_canaries=own[package_id],
                possible=possible_in[package_id],
            )
        )
    recipients = []
    for recipient_id in set(evidence) | set(owners):
        mine = owners[recipient_id]
        listed = sorted(
            evidence[recipient_id],
            key=lambda e: (
                -(e.pseudonyms + e.own_canaries),
                -e.canaries,
                -e.possible,
                -e.reference_numbers,
                e.package_id,
            ),
        )
        fields = set().union(*(found.canaries.get(c) or possible[c] for c in mine))
        recipients.append(
            RecipientEvidence(
                recipient=names[recipient_id],
                canaries=sum(1 for c in mine if c in found.canaries),
                possible=sum(1 for c in mine if c in possible),
                fields=tuple(sorted(fields)),
                packages=listed,
            )
        )
    recipients.sort(
        key=lambda r: (
            -r.canaries,
            -max((e.pseudonyms + e.own_canaries for e in r.packages), default=0),
            -r.possible,
            -max((e.reference_numbers for e in r.packages), default=0),
            r.recipient,
        )
    )
    result = TraceResult(len(paths), len(found.pseudonyms), len(found.references), recipients)
    with transaction(engine) as conn:  # a found copy of personal data was read against the register
        details = {
            "recipients_matched": len(recipients),
            "packages_matched": len(candidates),
            "came_from": sum(1 for e in result.packages if e.pseudonyms or e.own_canaries),
        }
        audit.append(conn, "package.trace", "files", len(paths), details, actor=actor)
    return result
