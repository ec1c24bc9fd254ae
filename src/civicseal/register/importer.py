"""Register import: three CSV files in, one transaction out — all of it, or (with rejects) the valid rows.

Every rule that fails is reported as ``file:line: column: rule`` and never with the value. Each distinct
raw value is normalized once per column (registers repeat dates, towns and codes endlessly), rows are
written with the driver's ``executemany``, and a row whose keyed digest is unchanged is not written at all,
so re-importing the same files changes nothing.
"""

from __future__ import annotations

import csv
import gc
import io
import multiprocessing
import operator
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from itertools import compress
from pathlib import Path

from sqlalchemy import Connection, Engine

from civicseal.audit import log as audit
from civicseal.clock import tokyo_today, utcnow
from civicseal.register import normalize as n
from civicseal.register.banks import zengin_problem
from civicseal.register.columns import COLUMNS, Column, Kind, header_names, recognize, spellings
from civicseal.register.errors import InvalidValue, RegisterError
from civicseal.register.models import tax_row_key
from civicseal.store.base import Base
from civicseal.store.engine import placeholder, transaction
from civicseal.store.fieldcrypt import FieldCipher
from civicseal.store.files import write_private

MAX_PRINTED_PROBLEMS = 100
WRITE_BATCH = 20_000
BULK_LOAD = 10_000  # rows into an empty table from which indexes are built afterwards
UTF8_BOM = b"\xef\xbb\xbf"
# csv's default (128 KiB) would turn a long cell into a "broken quote"; read it, and let its column's limit
# name the rule. The whole file is in memory anyway.
FIELD_SIZE_LIMIT = 1 << 30
ProgressFn = Callable[[str, int, int], None]


@dataclass(frozen=True, order=True)
class Problem:
    """One broken rule. ``line`` 0 means the whole file."""

    file: str
    line: int
    column: str
    rule: str

    def __str__(self) -> str:
        if self.line == 0:
            return f"{self.file}: {self.rule}"
        return f"{self.file}:{self.line}: {self.column}: {self.rule}"


class ImportRefused(RegisterError):
    """The import broke rules; nothing was written."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = sorted(problems)
        shown = "\n".join(str(p) for p in self.problems[:MAX_PRINTED_PROBLEMS])
        more = len(self.problems) - MAX_PRINTED_PROBLEMS
        tail = f"\n… and {more} more problems" if more > 0 else ""
        count = len(self.problems)
        noun = "problem" if count == 1 else "problems"
        super().__init__(f"{shown}{tail}\nimport refused: {count} {noun}; nothing was written")

    def __reduce__(self) -> tuple[type, tuple[list[Problem]]]:
        """Rebuilt from its problems when it crosses from the parsing worker (pickling passes the message)."""
        return (ImportRefused, (self.problems,))


@dataclass
class Counts:
    new: int = 0
    updated: int = 0
    unchanged: int = 0


@dataclass
class ImportSummary:
    residents: Counts = field(default_factory=Counts)
    tax: Counts = field(default_factory=Counts)
    accounts: Counts = field(default_factory=Counts)
    rows_read: int = 0
    rejected: int = 0
    problems: list[Problem] = field(default_factory=list)

    def as_dict(self) -> dict[str, int]:
        out = {"rejected_rows": self.rejected}
        for kind in ("residents", "tax", "accounts"):
            counts: Counts = getattr(self, kind)
            out |= {f"{kind}_new": counts.new, f"{kind}_updated": counts.updated, f"{kind}_unchanged": counts.unchanged}
        return out


# ---------------------------------------------------------------------------------------------- reading


ZIP_MAGIC = b"PK\x03\x04"  # .cseal packages and .xlsx workbooks are ZIP archives


def _file_problem(path: Path, rule: str) -> ImportRefused:
    return ImportRefused([Problem(path.name, 0, "", rule)])


def decode_lines(path: Path) -> list[str]:
    """UTF-8 (BOM or not) when the file decodes as UTF-8, else CP932; UTF-16 and mixed files are refused."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise _file_problem(path, f"cannot be read ({exc.strerror})") from None
    if data.startswith(ZIP_MAGIC):
        raise _file_problem(
            path,
            "is a ZIP archive, not a CSV file: a sealed package (.cseal) opens with `civicseal open`;"
            " save a spreadsheet (.xlsx) as CSV (UTF-8 or CP932)",
        )
    if data.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" in data[:4096]:
        raise _file_problem(path, "is UTF-16 or binary; save it as CSV in UTF-8 or CP932")
    data = data.removeprefix(UTF8_BOM)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = _decode_cp932(path, data)
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def _decode_cp932(path: Path, data: bytes) -> str:
    utf8_seen = False
    first_bad = 0
    for number, raw in enumerate(data.split(b"\n"), start=1):
        if raw.isascii():
            continue
        try:
            raw.decode("utf-8")
            utf8_seen = True
        except UnicodeDecodeError:
            first_bad = first_bad or number
        if utf8_seen and first_bad:
            raise ImportRefused(
                [Problem(path.name, first_bad, "-", "not UTF-8 while other lines are (mixed encodings)")]
            )
    try:
        return data.decode("cp932")
    except UnicodeDecodeError:
        raise _file_problem(path, "is neither UTF-8 nor CP932") from None


class _ColumnCache(dict):
    """Normalize each distinct raw value of a column once; a failure is cached as its InvalidValue.

    Lookups go through ``dict.__getitem__`` at C speed; only a value not seen before reaches Python.
    """

    def __init__(self, column: Column) -> None:
        super().__init__()
        self.column = column
        self.bad: set[str] = set()

    def __missing__(self, raw: str) -> object:
        fast = self.column.fast
        if fast is not None and (value := fast(raw)) is not None:
            self[raw] = value
            return value
        try:
            value = self.column.read(raw)
        except InvalidValue as exc:
            value = exc
            self.bad.add(raw)
        self[raw] = value
        return value


def _parse_column(column: Column, raw: Sequence[str]) -> tuple[list[object], _ColumnCache]:
    """A whole column at once; a column every value of which needs no normalization skips the cache."""
    cache = _ColumnCache(column)
    if column.bulk is not None and (values := column.bulk(raw, column.required)) is not None:
        return values, cache
    return list(map(cache.__getitem__, raw)), cache


@dataclass
class ParsedFile:
    """One file, column by column: ``columns[i]`` holds COLUMNS[kind][i]'s values, the last the row digests.

    ``valid[i]`` is False once row i broke a rule; ``lines[i]`` is its first physical line. Rows refused
    before their fields could be read (wrong width, broken quoting) are only in ``unreadable``.
    """

    path: Path
    kind: Kind
    lines: list[int]
    columns: list[list[object]]
    valid: list[bool]
    unreadable: list[int]
    records: list[list[object]]  # the table's columns (TABLES order), every row read, secrets encrypted

    def column(self, name: str) -> list[object]:
        return self.columns[INDEX[self.kind][name]]

    def valid_indexes(self) -> Iterator[int]:
        return compress(range(len(self.lines)), self.valid)

    @property
    def rows_read(self) -> int:
        return len(self.lines) + len(self.unreadable)

    @property
    def rejected_lines(self) -> list[int]:
        return sorted([line for line, ok in zip(self.lines, self.valid, strict=True) if not ok] + self.unreadable)


INDEX = {kind: {column.name: i for i, column in enumerate(columns)} for kind, columns in COLUMNS.items()}


def detect_kind(path: Path, header: list[str]) -> tuple[Kind, list[int | None]]:
    """Which of the three files this is, and where each of its columns stands in the header."""
    cells = header_cells(path, header)
    kind = recognize(ANY_HEADER.get(cell) for cell in cells)
    if kind is None:
        raise _file_problem(path, "header does not tell a residents, tax or accounts file; check the first line")
    return kind, locate_columns(path, cells, COLUMNS[kind], f"a {kind} file")


def header_cells(path: Path, header: list[str]) -> list[str]:
    """Header cells folded as every field is, lower-cased: headers are matched without regard to case."""
    try:
        return [n.normalize_text(cell).lower() for cell in header]
    except InvalidValue as exc:
        raise ImportRefused([Problem(path.name, 1, "-", exc.rule)]) from None


def locate_columns(path: Path, cells: list[str], columns: Sequence[Column], what: str) -> list[int | None]:
    """Where each column stands in the header; unknown, doubled and missing required columns are refused."""
    names = spellings(columns)
    problems = []
    positions: dict[str, int] = {}
    for index, cell in enumerate(cells):
        name = names.get(cell)
        if name is None:
            problems.append(Problem(path.name, 1, f"column {index + 1}", f"unknown column for {what}"))
        elif name in positions:
            problems.append(Problem(path.name, 1, name, "column appears twice"))
        else:
            positions[name] = index
    for column in columns:
        if column.required and column.name not in positions:
            problems.append(Problem(path.name, 1, column.name, "required column is missing"))
    if problems:
        raise ImportRefused(problems)
    return [positions.get(column.name) for column in columns]


ANY_HEADER = {cell: name for kind in Kind for cell, name in header_names(kind).items()}


def _split_rows(
    name: str, lines: list[str], reader: Iterator[list[str]], width: int, problems: list[Problem]
) -> tuple[list[list[str]], list[int], list[int]]:
    """Rows with their first physical line; rows of the wrong width or broken quoting are rejected."""
    try:
        body = list(reader)
    except csv.Error:
        body = None
    one_row_per_line = body is not None and len(body) == len(lines) - 1
    if one_row_per_line and set(map(len, body)) <= {width}:  # the common case, at C speed
        return body, list(range(2, len(lines) + 1)), []
    # Each line keeps its end here, so a line break inside a quoted field stays in the field and is refused
    # as a control character (csv.reader given lines without ends would join the two lines silently).
    reader = csv.reader([line + "\n" for line in lines[1:]], strict=True)
    raw_rows: list[list[str]] = []
    line_numbers: list[int] = []
    rejected: list[int] = []
    start = 2
    while True:
        try:
            values = next(reader)
        except StopIteration:
            break
        except csv.Error:
            problems.append(Problem(name, start, "-", "contains a control character or a broken quote"))
            rejected.append(start)
            start = reader.line_num + 2
            continue
        line, start = start, reader.line_num + 2
        if len(values) != width:
            problems.append(Problem(name, line, "-", f"has {len(values)} fields where the header has {width}"))
            rejected.append(line)
            continue
        raw_rows.append(values)
        line_numbers.append(line)
    return raw_rows, line_numbers, rejected


def open_csv(path: Path) -> tuple[list[str], Iterator[list[str]], list[str]]:
    """A file's decoded lines, a CSV reader past its header, and the header; an empty file is refused."""
    lines = decode_lines(path)
    if not lines:
        raise _file_problem(path, "empty file")
    csv.field_size_limit(FIELD_SIZE_LIMIT)
    reader = csv.reader(lines, strict=True)
    try:
        header = next(reader)
    except csv.Error:
        raise ImportRefused([Problem(path.name, 1, "-", "contains a control character or a broken quote")]) from None
    return lines, reader, header


@dataclass
class Rows:
    """A file's rows read against its columns: ``columns[i]`` holds the i-th column's values."""

    line_numbers: list[int]
    columns: list[list[object]]
    valid: list[bool]
    unreadable: list[int]


def parse_rows(
    path: Path,
    lines: list[str],
    reader: Iterator[list[str]],
    width: int,
    columns: Sequence[Column],
    positions: Sequence[int | None],
    problems: list[Problem],
) -> Rows:
    """Split into rows, then normalize column by column: registers repeat their values endlessly."""
    name = path.name
    raw_rows, line_numbers, unreadable = _split_rows(name, lines, reader, width, problems)
    raw_columns = list(zip(*raw_rows, strict=True)) if raw_rows else [()] * width
    valid = [True] * len(raw_rows)
    values_by_column: list[list[object]] = []
    for index, column in zip(positions, columns, strict=True):
        if index is None:
            values_by_column.append([None] * len(raw_rows))
            continue
        values, cache = _parse_column(column, raw_columns[index])
        values_by_column.append(values)
        if cache.bad:
            for i, raw in enumerate(raw_columns[index]):
                if raw in cache.bad:
                    problems.append(Problem(name, line_numbers[i], column.name, cache[raw].rule))
                    valid[i] = False
    return Rows(line_numbers, values_by_column, valid, unreadable)


def parse_file(path: Path, problems: list[Problem], cipher: FieldCipher) -> ParsedFile:
    lines, reader, header = open_csv(path)
    kind, positions = detect_kind(path, header)
    rows = parse_rows(path, lines, reader, len(header), COLUMNS[kind], positions, problems)
    line_numbers, columns, valid, unreadable = rows.line_numbers, rows.columns, rows.valid, rows.unreadable
    # The row digests, last: over each row's line (a row that spans lines holds a line break and is refused).
    columns.append(list(map(cipher.row_mac, [lines[number - 1] for number in line_numbers])))
    # Secrets are encrypted here, for every row read: in the worker process too, and at C speed per column.
    return ParsedFile(path, kind, line_numbers, columns, valid, unreadable, _table_columns(kind, columns, cipher))


def _parse_in_worker(path: Path, cipher: FieldCipher) -> tuple[ParsedFile, list[Problem]]:
    problems: list[Problem] = []
    return parse_file(path, problems, cipher), problems


def _kind_of(path: Path) -> Kind | None:
    """The file's kind from its header alone, or None when that is unclear (the full parse then says why)."""
    try:
        with path.open("rb") as f:
            first = f.readline(64 * 1024).removeprefix(UTF8_BOM).rstrip(b"\r\n")
        for encoding in ("utf-8", "cp932"):
            try:
                return detect_kind(path, next(csv.reader([first.decode(encoding)])))[0]
            except UnicodeDecodeError:
                continue
    except (OSError, RegisterError, StopIteration, csv.Error):
        return None
    return None


def parse_files(
    paths: list[Path], problems: list[Problem], cipher: FieldCipher, progress: ProgressFn
) -> Iterator[ParsedFile]:
    """Parsed files, the residents file (else the largest) first: it is parsed here while a second process
    parses the others, so the caller can check and write residents before the rest arrives.

    The worker is forked (it starts at once and inherits the paused GC) when this generator is first
    advanced: the caller must hold no database connection then, since none may be shared across a fork.
    """
    if len(paths) < 2 or "fork" not in multiprocessing.get_all_start_methods():
        for done, path in enumerate(paths, 1):
            yield parse_file(path, problems, cipher)
            progress("reading", done, len(paths))
        return
    kinds = {path: _kind_of(path) for path in paths}
    local = next(
        (path for path in paths if kinds[path] is Kind.RESIDENTS),
        max(paths, key=lambda p: p.stat().st_size if p.exists() else 0),
    )
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("fork")) as pool:
        others = [(path, pool.submit(_parse_in_worker, path, cipher)) for path in paths if path != local]
        yield parse_file(local, problems, cipher)
        progress("reading", 1, len(paths))
        for done, (_, future) in enumerate(others, 2):
            parsed, found = future.result()
            problems.extend(found)
            progress("reading", done, len(paths))
            yield parsed


# ---------------------------------------------------------------------------------------------- checking


@dataclass
class StoredRegister:
    """What the store already holds, read only when it holds anything: keys, heads and row digests."""

    residents: dict[str, tuple[str, bool, str | None, str | None, bytes]] = field(default_factory=dict)
    tax: dict[tuple[str, int], bytes] = field(default_factory=dict)
    accounts: dict[str, bytes] = field(default_factory=dict)

    @classmethod
    def load(cls, conn: Connection) -> StoredRegister:
        stored = cls()
        if conn.exec_driver_sql("SELECT 1 FROM residents LIMIT 1").first() is None:
            return stored
        rows = conn.exec_driver_sql(
            "SELECT resident_code, household_code, is_head, moved_out, deceased, row_mac FROM residents"
        )
        stored.residents = {r[0]: (r[1], bool(r[2]), _iso(r[3]), _iso(r[4]), bytes(r[5])) for r in rows}
        rows = conn.exec_driver_sql("SELECT resident_code, fiscal_year, row_mac FROM tax_assessments")
        stored.tax = {(r[0], r[1]): bytes(r[2]) for r in rows}
        rows = conn.exec_driver_sql("SELECT household_code, row_mac FROM bank_accounts")
        stored.accounts = {r[0]: bytes(r[1]) for r in rows}
        return stored

    def digests(self, kind: Kind) -> dict:
        if kind is Kind.RESIDENTS:
            return {code: row[-1] for code, row in self.residents.items()}
        return self.tax if kind is Kind.TAX else self.accounts


def _iso(value: object) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else value.isoformat()  # type: ignore[attr-defined]


def _head_rule(current_heads: int) -> str:
    return "household has no current head" if current_heads == 0 else f"household has {current_heads} current heads"


def _is_current(moved_out: str | None, deceased: str | None, today: str) -> bool:
    """Current = neither moved out nor deceased as of today (a date after today has not happened yet)."""
    return (moved_out is None or moved_out > today) and (deceased is None or deceased > today)


class _Check:
    """Cross-row rules over the parsed files; rows that fail are marked invalid."""

    def __init__(self, files: list[ParsedFile], stored: StoredRegister, today: str, problems: list[Problem]) -> None:
        self.files = files
        self.stored = stored
        self.today = today
        self.problems = problems
        self.cascaded: dict[tuple[str, int], str] = {}

    def reject(self, parsed: ParsedFile, index: int, column: str, rule: str) -> None:
        self.problems.append(Problem(parsed.path.name, parsed.lines[index], column, rule))
        parsed.valid[index] = False

    def residents(self, parsed: ParsedFile) -> None:
        codes, births = parsed.column("resident_code"), parsed.column("birth_date")
        clean = all(parsed.valid) and len(set(codes)) == len(codes) and max(births, default="") <= self.today  # type: ignore[type-var]
        if not clean:  # find the rows at fault; the common case needs no loop
            seen: dict[object, int] = {}
            for i in list(parsed.valid_indexes()):
                code = codes[i]
                if code in seen:
                    self.reject(parsed, i, "resident_code", f"appears twice (first on line {seen[code]})")
                elif births[i] > self.today:  # type: ignore[operator]
                    self.reject(parsed, i, "birth_date", "after today")
                else:
                    seen[code] = parsed.lines[i]
        self._heads(parsed)

    def _heads(self, parsed: ParsedFile) -> None:
        """After the merge, a household with a current member has exactly one current head.

        Households named in the file are checked with their stored members; a household only left by
        someone in the file (a move to another household) is checked too, at the mover's line.
        """
        codes, household_of = parsed.column("resident_code"), parsed.column("household_code")
        relationship, moved_out, deceased = (parsed.column(c) for c in ("relationship", "moved_out", "deceased"))
        valid = list(parsed.valid_indexes())
        stored = self.stored.residents
        in_file = {codes[i]: i for i in valid} if stored else {}
        in_file_households = {household_of[i] for i in valid} if stored else set()
        heads: Counter[object] = Counter()  # current heads per household, after the merge
        occupied: set[object] = set()  # households with a current member, after the merge
        left: dict[str, list[int]] = defaultdict(list)  # former household → movers' row indexes
        today = self.today
        for code, (household, is_head, gone, died, _) in stored.items():
            mover = in_file.get(code)
            if mover is None:
                if _is_current(gone, died, today):
                    occupied.add(household)
                    heads[household] += is_head
            elif household_of[mover] != household and household not in in_file_households:
                left[household].append(mover)
        rows = valid if len(valid) < len(codes) else None  # None: every row, whole columns at C speed
        pick = (lambda column: column) if rows is None else (lambda column: [column[i] for i in rows])
        households_column = pick(household_of)
        current = [
            (gone is None or gone > today) and (died is None or died > today)  # type: ignore[operator]
            for gone, died in zip(pick(moved_out), pick(deceased), strict=True)
        ]
        is_head = n.head_flags(pick(relationship))  # type: ignore[arg-type]
        occupied.update(compress(households_column, current))
        heads.update(compress(households_column, map(operator.and_, current, is_head)))
        broken = {h: _head_rule(heads[h]) for h in occupied if heads[h] != 1}
        if broken:
            by_household: dict[object, list[int]] = defaultdict(list)
            for i in valid:
                by_household[household_of[i]].append(i)
            for household, indexes in by_household.items():
                if household in broken:
                    self._reject_household(parsed, indexes, broken[household])
            for household, movers in left.items():
                if household in broken:
                    self._reject_household(parsed, movers, f"leaves its former household: {broken[household]}")

    def _reject_household(self, parsed: ParsedFile, indexes: list[int], rule: str) -> None:
        first_line = min(parsed.lines[i] for i in indexes)
        self.problems.append(Problem(parsed.path.name, first_line, "relationship", rule))
        for i in indexes:
            self.cascaded[(parsed.path.name, parsed.lines[i])] = f"household rejected (see line {first_line})"
            parsed.valid[i] = False

    def known(self, column: str, stored: Iterable[str]) -> set[object]:
        """Codes the register will hold after the merge: stored ones and this import's valid residents."""
        codes: set[object] = set(stored)
        for parsed in self.files:
            if parsed.kind is Kind.RESIDENTS:
                codes.update(compress(parsed.column(column), parsed.valid))
        return codes

    def tax(self, parsed: ParsedFile, residents: set[object]) -> None:
        codes, years, supporters = (parsed.column(c) for c in ("resident_code", "fiscal_year", "dependent_of"))
        if (
            all(parsed.valid)
            and set(codes) <= residents
            and set(supporters) - {None} <= residents
            and len(set(zip(codes, years, strict=True))) == len(codes)
        ):
            return  # every rule holds: no row to find
        seen: dict[tuple[object, object], int] = {}
        for i in list(parsed.valid_indexes()):
            key = (codes[i], years[i])
            if codes[i] not in residents:
                self.reject(parsed, i, "resident_code", "names no resident in the register")
            elif key in seen:
                self.reject(
                    parsed, i, "fiscal_year", f"second row for this resident and year (first on line {seen[key]})"
                )
            elif supporters[i] is not None and supporters[i] not in residents:
                self.reject(parsed, i, "dependent_of", "names no resident in the register")
            else:
                seen[key] = parsed.lines[i]

    def accounts(self, parsed: ParsedFile, households: set[object]) -> None:
        codes, banks, branches = (parsed.column(c) for c in ("household_code", "bank_code", "branch_code"))
        seen: dict[object, int] = {}
        for i in list(parsed.valid_indexes()):
            if codes[i] not in households:
                self.reject(parsed, i, "household_code", "names no household in the register")
            elif codes[i] in seen:
                self.reject(
                    parsed, i, "household_code", f"second account for this household (first on line {seen[codes[i]]})"
                )
            elif zengin := zengin_problem(banks[i], branches[i]):  # type: ignore[arg-type]
                self.reject(parsed, i, *zengin)
            else:
                seen[codes[i]] = parsed.lines[i]


# ---------------------------------------------------------------------------------------------- writing

TABLES: dict[Kind, tuple[str, tuple[str, ...], int]] = {
    Kind.RESIDENTS: (
        "residents",
        (
            "resident_code", "household_code", "relationship", "name", "name_kana", "sex", "birth_date",
            "postcode", "address", "moved_in", "moved_out", "deceased", "row_mac", "is_head",
            "my_number_enc", "my_number_bidx",
        ),
        1,
    ),
    Kind.TAX: (
        "tax_assessments",
        ("resident_code", "fiscal_year", "taxed", "dependent_of", "row_mac", "income_enc"),
        2,
    ),
    Kind.ACCOUNTS: (
        "bank_accounts",
        (
            "household_code", "bank_code", "branch_code", "account_type", "holder_kana", "row_mac",
            "account_number_enc", "account_number_bidx",
        ),
        1,
    ),
}  # fmt: skip


def _encrypted(
    values: Sequence[object], cipher: FieldCipher, column: str, row_keys: Sequence[object]
) -> list[bytes | None]:
    return cipher.encrypt_many([None if v is None else str(v) for v in values], column, row_keys)


def _blind(values: Sequence[object], cipher: FieldCipher, column: str) -> list[bytes | None]:
    return [None if v is None else cipher.blind_index(str(v), column) for v in values]


def _table_columns(kind: Kind, columns: list[list[object]], cipher: FieldCipher) -> list[list[object]]:
    """The table's columns in TABLES order: plain ones as parsed, secret ones encrypted and blind-indexed."""
    _, names, _ = TABLES[kind]
    pick = {name: columns[i] for name, i in INDEX[kind].items()}
    pick["row_mac"] = columns[-1]
    if kind is Kind.RESIDENTS:
        pick["is_head"] = n.head_flags(pick["relationship"])  # type: ignore[arg-type]
        pick["my_number_enc"] = _encrypted(pick["my_number"], cipher, "residents.my_number", pick["resident_code"])
        pick["my_number_bidx"] = _blind(pick["my_number"], cipher, "residents.my_number")
    elif kind is Kind.TAX:
        pick["taxed"] = pick["per_capita_levy"]
        row_keys = list(map(tax_row_key, pick["resident_code"], pick["fiscal_year"]))
        pick["income_enc"] = _encrypted(pick["income"], cipher, "tax_assessments.income", row_keys)
    else:
        pick["account_number_enc"] = _encrypted(
            pick["account_number"], cipher, "bank_accounts.account_number", pick["household_code"]
        )
        pick["account_number_bidx"] = _blind(pick["account_number"], cipher, "bank_accounts.account_number")
    return [pick[name] for name in names]


def _record_columns(parsed: ParsedFile, rows: list[int]) -> list[list[object]]:
    if len(rows) == len(parsed.lines):  # the common case: every row, no copies
        return parsed.records
    return [[column[i] for i in rows] for column in parsed.records]


def _write(conn: Connection, parsed: ParsedFile, stored: dict, counts: Counts, progress: ProgressFn) -> None:
    table, names, key_width = TABLES[parsed.kind]
    mark = placeholder(conn)
    insert = f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join([mark] * len(names))})"
    keys, rest = names[:key_width], names[key_width:]
    update = (
        f"UPDATE {table} SET {', '.join(f'{c} = {mark}' for c in rest)} "
        f"WHERE {' AND '.join(f'{c} = {mark}' for c in keys)}"
    )
    valid = list(parsed.valid_indexes())
    new, changed = _partition(parsed, valid, key_width, stored, counts)
    inserts = list(zip(*_record_columns(parsed, new), strict=True)) if new else []
    updates: list[tuple] = []
    if changed:
        records = _record_columns(parsed, changed)
        updates = list(zip(*records[key_width:], *records[:key_width], strict=True))
    done = counts.unchanged
    with _indexes_built_after(conn, table, bulk=not stored and len(inserts) > BULK_LOAD):
        for statement, rows in ((insert, inserts), (update, updates)):
            for start in range(0, len(rows), WRITE_BATCH):
                batch = rows[start : start + WRITE_BATCH]
                conn.exec_driver_sql(statement, batch)
                done += len(batch)
                progress(f"writing {parsed.kind}", done, len(valid))
    counts.new += len(inserts)
    counts.updated += len(updates)


@contextmanager
def _indexes_built_after(conn: Connection, table: str, *, bulk: bool) -> Iterator[None]:
    """Loading an empty table: secondary indexes are built once afterwards (a sort) rather than row by row.

    Inside the import's transaction, so a failure leaves them as they were.
    """
    indexes = list(Base.metadata.tables[table].indexes) if bulk else []
    for index in indexes:
        index.drop(conn)
    yield
    for index in indexes:
        index.create(conn)


def _partition(
    parsed: ParsedFile, valid: list[int], key_width: int, stored: dict, counts: Counts
) -> tuple[list[int], list[int]]:
    """Rows to insert and rows to update; a row whose digest is stored unchanged is neither."""
    if not stored:
        return valid, []
    _, names, _ = TABLES[parsed.kind]
    key_columns = [parsed.column(name) for name in names[:key_width]]
    digests = parsed.columns[-1]
    new, changed = [], []
    for i in valid:
        old = stored.get(key_columns[0][i] if key_width == 1 else tuple(c[i] for c in key_columns))
        if old is None:
            new.append(i)
        elif old == digests[i]:
            counts.unchanged += 1
        else:
            changed.append(i)
    return new, changed


# The encodings a rejects file is written in: UTF-8 with a BOM (without one, Japanese Excel shows it
# garbled) or CP932 for older spreadsheets.
class RejectsEncoding(StrEnum):
    UTF8 = "utf-8"
    CP932 = "cp932"


CODECS = {RejectsEncoding.UTF8: "utf-8-sig", RejectsEncoding.CP932: "cp932"}


def _write_rejects(
    path: Path, parsed_files: list[ParsedFile], problems: list[Problem], cascaded: dict, encoding: RejectsEncoding
) -> None:
    """Rejected rows go aside with the rules they broke, in a private file, to be fixed and re-imported."""
    rules: dict[tuple[str, int], list[str]] = defaultdict(list)
    for problem in problems:
        if problem.line > 0:
            rules[(problem.file, problem.line)].append(f"{problem.column}: {problem.rule}")
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\r\n")
    writer.writerow(["file", "line", "rules", "raw_line"])
    for parsed in parsed_files:
        lines = decode_lines(parsed.path)
        name = parsed.path.name
        for line in parsed.rejected_lines:
            found = rules.get((name, line)) or [cascaded.get((name, line), "rejected")]
            writer.writerow([name, line, "; ".join(found), lines[line - 1]])
    try:
        data = text.getvalue().encode(CODECS[encoding])
    except UnicodeEncodeError:
        raise RegisterError(
            f"rejects: a rejected line holds a character {encoding} cannot carry; nothing was imported;"
            " write the rejects as UTF-8 (--rejects-encoding utf-8)"
        ) from None
    write_private(path, data)


def _no_progress(stage: str, done: int, total: int) -> None:
    return None


ORDER = {Kind.RESIDENTS: 0, Kind.TAX: 1, Kind.ACCOUNTS: 2}


def import_register(
    engine: Engine,
    cipher: FieldCipher,
    files: Sequence[Path],
    *,
    rejects: Path | None = None,
    rejects_encoding: RejectsEncoding = RejectsEncoding.UTF8,
    now: datetime | None = None,
    actor: str | None = None,
    progress: ProgressFn = _no_progress,
) -> ImportSummary:
    """Import any subset of the three files in one transaction; see the module docstring for the rules."""
    with paused_gc():
        return _import(
            engine,
            cipher,
            files,
            rejects=rejects,
            rejects_encoding=rejects_encoding,
            now=now or utcnow(),
            actor=actor,
            progress=progress,
        )


@contextmanager
def paused_gc() -> Iterator[None]:
    """Millions of small rows, none in a cycle: the cyclic collector would rescan them all, again and again."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _import(
    engine: Engine,
    cipher: FieldCipher,
    files: Sequence[Path],
    *,
    rejects: Path | None,
    rejects_encoding: RejectsEncoding,
    now: datetime,
    actor: str | None,
    progress: ProgressFn,
) -> ImportSummary:
    today = tokyo_today(now).isoformat()
    problems: list[Problem] = []
    engine.dispose()  # no pooled connection may cross the fork below
    arriving = parse_files([Path(p) for p in files], problems, cipher, progress)
    first = next(arriving)  # forks the worker, before any connection is opened
    parsed_files = [first]
    summary = ImportSummary()
    counts = {Kind.RESIDENTS: summary.residents, Kind.TAX: summary.tax, Kind.ACCOUNTS: summary.accounts}
    written: set[Kind] = set()
    with transaction(engine) as conn:
        stored = StoredRegister.load(conn)
        check = _Check(parsed_files, stored, today, problems)
        if first.kind is Kind.RESIDENTS:
            check.residents(first)
            if not problems or rejects is not None:  # written while the other files are still being parsed;
                _write(conn, first, stored.digests(first.kind), counts[first.kind], progress)  # undone on refusal
                written.add(first.kind)
        parsed_files.extend(arriving)
        seen: dict[Kind, str] = {}
        for parsed in parsed_files:
            if parsed.kind in seen:
                rule = f"a second {parsed.kind} file (the first is {seen[parsed.kind]}); import them one at a time"
                raise ImportRefused([Problem(parsed.path.name, 0, "", rule)])
            seen[parsed.kind] = parsed.path.name
        parsed_files.sort(key=lambda p: ORDER[p.kind])
        for parsed in parsed_files:
            if parsed.kind is Kind.RESIDENTS and parsed is not first:
                check.residents(parsed)
        residents = check.known("resident_code", stored.residents)
        households = check.known("household_code", (row[0] for row in stored.residents.values()))
        for parsed in parsed_files:
            if parsed.kind is Kind.TAX:
                check.tax(parsed, residents)
            elif parsed.kind is Kind.ACCOUNTS:
                check.accounts(parsed, households)
        if problems and rejects is None:
            raise ImportRefused(problems)
        summary.rows_read = sum(p.rows_read for p in parsed_files)
        if summary.rows_read == 0:
            return summary
        for parsed in parsed_files:
            if parsed.kind not in written:
                _write(conn, parsed, stored.digests(parsed.kind), counts[parsed.kind], progress)
        summary.rejected = sum(len(p.rejected_lines) for p in parsed_files)
        summary.problems = problems
        details: dict[str, int | str | None] = {**summary.as_dict(), "files": len(files)}
        audit.append(conn, "register.import", "register", "register", details, actor=actor, now=now)
        if rejects is not None and problems:
            _write_rejects(rejects, parsed_files, problems, check.cascaded, rejects_encoding)
    return summary
