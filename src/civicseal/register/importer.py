"""Register import: three CSV files in, one transaction out — all of it, or (with rejects) the valid rows.

Every rule that fails is reported as ``file:line: column: rule`` and never with the value. Each distinct
raw value is normalized once per column (registers repeat dates, towns and codes endlessly), rows are
written with the driver's ``executemany``, and a row whose keyed digest is unchanged is not written at all,
so re-importing the same files changes nothing.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlalchemy import Connection, Engine

from civicseal.audit import log as audit
from civicseal.clock import tokyo_today, utcnow
from civicseal.payments.banks import branch_exists
from civicseal.register import normalize as n
from civicseal.register.columns import COLUMNS, SIGNATURE, Column, Kind, header_names
from civicseal.register.errors import InvalidValue, RegisterError
from civicseal.store.engine import placeholder, transaction
from civicseal.store.fieldcrypt import FieldCipher
from civicseal.store.files import atomic_writer

MAX_PRINTED_PROBLEMS = 100
WRITE_BATCH = 20_000
UTF8_BOM = b"\xef\xbb\xbf"
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


def _file_problem(path: Path, rule: str) -> ImportRefused:
    return ImportRefused([Problem(path.name, 0, "", rule)])


def decode_lines(path: Path) -> list[str]:
    """UTF-8 (BOM or not) when the file decodes as UTF-8, else CP932; UTF-16 and mixed files are refused."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise _file_problem(path, f"cannot be read ({exc.strerror})") from None
    if data.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" in data[:4096]:
        raise _file_problem(path, "is UTF-16; save it as UTF-8 or CP932")
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
            text = n.normalize_text(raw)
            if not text:
                value: object = InvalidValue("is required") if self.column.required else None
            else:
                n.check_length(text, self.column.limit)
                value = self.column.parse(text)
        except InvalidValue as exc:
            value = exc
            self.bad.add(raw)
        self[raw] = value
        return value


@dataclass
class ParsedFile:
    path: Path
    kind: Kind
    rows: list[tuple[int, tuple]]  # (first physical line, values in COLUMNS order)


def detect_kind(path: Path, header: list[str]) -> tuple[Kind, list[int | None]]:
    """Which of the three files this is, and where each of its columns stands in the header."""
    cells = [n.normalize_text(cell).lower() for cell in header]
    for kind in Kind:
        names = header_names(kind)
        if SIGNATURE[kind] not in {names.get(cell) for cell in cells}:
            continue
        problems = []
        positions: dict[str, int] = {}
        for index, cell in enumerate(cells):
            name = names.get(cell)
            if name is None:
                problems.append(Problem(path.name, 1, f"column {index + 1}", f"unknown column for a {kind} file"))
            elif name in positions:
                problems.append(Problem(path.name, 1, name, "column appears twice"))
            else:
                positions[name] = index
        for column in COLUMNS[kind]:
            if column.required and column.name not in positions:
                problems.append(Problem(path.name, 1, column.name, "required column is missing"))
        if problems:
            raise ImportRefused(problems)
        return kind, [positions.get(column.name) for column in COLUMNS[kind]]
    raise _file_problem(path, "header names no residents, tax or accounts columns")


def _split_rows(
    name: str, lines: list[str], reader: Iterator[list[str]], width: int, problems: list[Problem]
) -> tuple[list[list[str]], list[int], list[int]]:
    """Rows with their first physical line; rows of the wrong width or broken quoting are rejected."""
    try:
        body = list(reader)
    except csv.Error:
        body = None
    one_row_per_line = body is not None and len(body) == len(lines) - 1
    if one_row_per_line and all(len(values) == width for values in body):  # the common case, at C speed
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


def parse_file(path: Path, problems: list[Problem]) -> ParsedFile:
    """Split into rows, then normalize column by column: registers repeat their values endlessly."""
    lines = decode_lines(path)
    if not lines:
        raise _file_problem(path, "is empty (no header)")
    reader = csv.reader(lines, strict=True)
    header = next(reader)
    kind, positions = detect_kind(path, header)
    name = path.name
    raw_rows, line_numbers, rejected = _split_rows(name, lines, reader, len(header), problems)
    raw_columns = list(zip(*raw_rows, strict=True)) if raw_rows else []
    bad_rows: set[int] = set()
    parsed_columns: list[list[object]] = []
    for index, column in zip(positions, COLUMNS[kind], strict=True):
        if index is None or not raw_rows:
            parsed_columns.append([None] * len(raw_rows))
            continue
        cache = _ColumnCache(column)
        parsed_columns.append(list(map(cache.__getitem__, raw_columns[index])))
        if cache.bad:
            for i, raw in enumerate(raw_columns[index]):
                if raw in cache.bad:
                    problems.append(Problem(name, line_numbers[i], column.name, cache[raw].rule))
                    bad_rows.add(i)
    rows: list[tuple[int, tuple]] = [
        (-line, ()) if i in bad_rows else (line, row)
        for i, (line, row) in enumerate(zip(line_numbers, zip(*parsed_columns, strict=True), strict=True))
    ]
    rows.extend((-line, ()) for line in rejected)
    return ParsedFile(path, kind, rows)


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


def _iso(value: object) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else value.isoformat()  # type: ignore[attr-defined]


def _head_problem(members: list[tuple[bool, bool]]) -> str | None:
    """(is head, is current) per member → the broken rule, if any."""
    if not any(current for _, current in members):
        return None  # everyone left or died: no head needed
    heads = sum(1 for is_head, current in members if is_head and current)
    if heads == 1:
        return None
    return "household has no current head" if heads == 0 else f"household has {heads} current heads"


def _is_current(moved_out: str | None, deceased: str | None, today: str) -> bool:
    """Current = neither moved out nor deceased as of today (a date after today has not happened yet)."""
    return (moved_out is None or moved_out > today) and (deceased is None or deceased > today)


class _Check:
    """Cross-row rules over the parsed files; rows that fail are turned into rejected lines."""

    def __init__(self, files: list[ParsedFile], stored: StoredRegister, today: str, problems: list[Problem]) -> None:
        self.files = files
        self.stored = stored
        self.today = today
        self.problems = problems
        self.cascaded: dict[tuple[str, int], str] = {}

    def reject(self, parsed: ParsedFile, index: int, column: str, rule: str) -> None:
        line, _ = parsed.rows[index]
        self.problems.append(Problem(parsed.path.name, line, column, rule))
        parsed.rows[index] = (-line, ())

    def residents(self, parsed: ParsedFile) -> None:
        seen: dict[str, int] = {}
        households: dict[str, list[int]] = defaultdict(list)
        for index, (line, row) in enumerate(parsed.rows):
            if line < 0:
                continue
            code = row[0]
            if code in seen:
                self.reject(parsed, index, "resident_code", f"appears twice (first on line {seen[code]})")
                continue
            seen[code] = line
            if row[6] > self.today:
                self.reject(parsed, index, "birth_date", "after today")
                continue
            households[row[1]].append(index)
        self._heads(parsed, households)

    def _heads(self, parsed: ParsedFile, households: dict[str, list[int]]) -> None:
        """After the merge, a household with a current member has exactly one current head.

        Households named in the file are checked with their stored members; a household only left by
        someone in the file (a move to another household) is checked too, at the mover's line.
        """
        rows = parsed.rows
        in_file = {rows[i][1][0]: i for indexes in households.values() for i in indexes}
        stored_by_household: dict[str, list[tuple[bool, bool]]] = defaultdict(list)
        left: dict[str, list[int]] = defaultdict(list)  # former household → movers' row indexes
        for code, (household, is_head, moved_out, deceased, _) in self.stored.residents.items():
            mover = in_file.get(code)
            if mover is None:
                stored_by_household[household].append((is_head, _is_current(moved_out, deceased, self.today)))
            elif rows[mover][1][1] != household and household not in households:
                left[household].append(mover)
        for household, indexes in households.items():
            members = [
                (rows[i][1][2] == "head", _is_current(rows[i][1][10], rows[i][1][11], self.today)) for i in indexes
            ]
            heads = _head_problem(members + stored_by_household.get(household, []))
            if heads:
                self._reject_household(parsed, indexes, heads)
        for household, movers in left.items():
            heads = _head_problem(stored_by_household.get(household, []))
            if heads:
                self._reject_household(parsed, movers, f"leaves its former household: {heads}")

    def _reject_household(self, parsed: ParsedFile, indexes: list[int], rule: str) -> None:
        first_line = min(abs(parsed.rows[i][0]) for i in indexes)
        self.problems.append(Problem(parsed.path.name, first_line, "relationship", rule))
        for i in indexes:
            line = abs(parsed.rows[i][0])
            self.cascaded[(parsed.path.name, line)] = f"household rejected (see line {first_line})"
            parsed.rows[i] = (-line, ())

    def known_residents(self) -> set[str]:
        codes = set(self.stored.residents)
        for parsed in self.files:
            if parsed.kind is Kind.RESIDENTS:
                codes.update(row[0] for line, row in parsed.rows if line > 0)
        return codes

    def known_households(self) -> set[str]:
        codes = {household for household, *_ in self.stored.residents.values()}
        for parsed in self.files:
            if parsed.kind is Kind.RESIDENTS:
                codes.update(row[1] for line, row in parsed.rows if line > 0)
        return codes

    def tax(self, parsed: ParsedFile, residents: set[str]) -> None:
        seen: dict[tuple[str, int], int] = {}
        for index, (line, row) in enumerate(parsed.rows):
            if line < 0:
                continue
            key = (row[0], row[1])
            if row[0] not in residents:
                self.reject(parsed, index, "resident_code", "names no resident in the register")
            elif key in seen:
                self.reject(
                    parsed, index, "fiscal_year", f"second row for this resident and year (first on line {seen[key]})"
                )
            elif row[4] is not None and row[4] not in residents:
                self.reject(parsed, index, "dependent_of", "names no resident in the register")
            else:
                seen[key] = line

    def accounts(self, parsed: ParsedFile, households: set[str]) -> None:
        seen: dict[str, int] = {}
        for index, (line, row) in enumerate(parsed.rows):
            if line < 0:
                continue
            if row[0] not in households:
                self.reject(parsed, index, "household_code", "names no household in the register")
            elif row[0] in seen:
                self.reject(
                    parsed, index, "household_code", f"second account for this household (first on line {seen[row[0]]})"
                )
            elif not branch_exists(row[1], row[2]):
                self.reject(parsed, index, "branch_code", "bank and branch code pair is not in the Zengin data")
            else:
                seen[row[0]] = line


# ---------------------------------------------------------------------------------------------- writing

RESIDENT_COLUMNS = (
    "resident_code",
    "household_code",
    "relationship",
    "is_head",
    "name",
    "name_kana",
    "sex",
    "birth_date",
    "postcode",
    "address",
    "moved_in",
    "moved_out",
    "deceased",
    "my_number_enc",
    "my_number_bidx",
    "row_mac",
)
TAX_COLUMNS = ("resident_code", "fiscal_year", "taxed", "income_enc", "dependent_of", "row_mac")
ACCOUNT_COLUMNS = (
    "household_code",
    "bank_code",
    "branch_code",
    "account_type",
    "account_number_enc",
    "account_number_bidx",
    "holder_kana",
    "row_mac",
)
TABLES = {
    Kind.RESIDENTS: ("residents", RESIDENT_COLUMNS, 1),
    Kind.TAX: ("tax_assessments", TAX_COLUMNS, 2),
    Kind.ACCOUNTS: ("bank_accounts", ACCOUNT_COLUMNS, 1),
}


def _resident_record(row: tuple, cipher: FieldCipher) -> tuple:
    code, household, relationship, name, kana, sex, birth, postcode, address, moved_in, moved_out, deceased, mn = row
    mac = cipher.row_mac(row)
    enc = bidx = None
    if mn is not None:
        enc, bidx = cipher.encrypt(mn, "residents.my_number"), cipher.blind_index(mn, "residents.my_number")
    return (
        code,
        household,
        relationship,
        relationship == "head",
        name,
        kana,
        sex,
        birth,
        postcode,
        address,
        moved_in,
        moved_out,
        deceased,
        enc,
        bidx,
        mac,
    )


def _tax_record(row: tuple, cipher: FieldCipher) -> tuple:
    code, year, taxed, income, dependent_of = row
    enc = None if income is None else cipher.encrypt(str(income), "tax_assessments.income")
    return (code, year, taxed, enc, dependent_of, cipher.row_mac(row))


def _account_record(row: tuple, cipher: FieldCipher) -> tuple:
    household, bank, branch, account_type, number, holder = row
    return (
        household,
        bank,
        branch,
        account_type,
        cipher.encrypt(number, "bank_accounts.account_number"),
        cipher.blind_index(number, "bank_accounts.account_number"),
        holder,
        cipher.row_mac(row),
    )


RECORD = {Kind.RESIDENTS: _resident_record, Kind.TAX: _tax_record, Kind.ACCOUNTS: _account_record}


def _batches(items: Iterable[tuple], size: int) -> Iterator[list[tuple]]:
    batch: list[tuple] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _write(
    conn: Connection, parsed: ParsedFile, cipher: FieldCipher, stored: dict, counts: Counts, progress: ProgressFn
) -> None:
    table, columns, key_width = TABLES[parsed.kind]
    mark = placeholder(conn)
    insert = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join([mark] * len(columns))})"
    keys, rest = columns[:key_width], columns[key_width:]
    update = (
        f"UPDATE {table} SET {', '.join(f'{c} = {mark}' for c in rest)} "
        f"WHERE {' AND '.join(f'{c} = {mark}' for c in keys)}"
    )
    record = RECORD[parsed.kind]
    rows = [row for line, row in parsed.rows if line > 0]
    done = 0
    for batch in _batches(rows, WRITE_BATCH):
        new, changed = [], []
        for row in batch:
            key = row[0] if key_width == 1 else row[:key_width]
            old = stored.get(key)
            if old is None:
                new.append(record(row, cipher))
                continue
            old_mac = old[-1] if isinstance(old, tuple) else old
            if old_mac == cipher.row_mac(row):
                counts.unchanged += 1
                continue
            values = record(row, cipher)
            changed.append(values[key_width:] + values[:key_width])
        if new:
            conn.exec_driver_sql(insert, new)
        if changed:
            conn.exec_driver_sql(update, changed)
        counts.new += len(new)
        counts.updated += len(changed)
        done += len(batch)
        progress(f"writing {parsed.kind}", done, len(rows))


def _write_rejects(path: Path, parsed_files: list[ParsedFile], problems: list[Problem], cascaded: dict) -> None:
    """Rejected rows go aside with the rules they broke, in a private file, so they can be fixed and re-imported."""
    rules: dict[tuple[str, int], list[str]] = defaultdict(list)
    for problem in problems:
        if problem.line > 0:
            rules[(problem.file, problem.line)].append(f"{problem.column}: {problem.rule}")
    with atomic_writer(path, text=True) as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["file", "line", "rules", "raw_line"])
        for parsed in parsed_files:
            lines = decode_lines(parsed.path)
            name = parsed.path.name
            for line in sorted(-line for line, _ in parsed.rows if line < 0):
                found = rules.get((name, line)) or [cascaded.get((name, line), "rejected")]
                writer.writerow([name, line, "; ".join(found), lines[line - 1]])


def _no_progress(stage: str, done: int, total: int) -> None:
    return None


ORDER = {Kind.RESIDENTS: 0, Kind.TAX: 1, Kind.ACCOUNTS: 2}


def import_register(
    engine: Engine,
    cipher: FieldCipher,
    files: Sequence[Path],
    *,
    rejects: Path | None = None,
    now: datetime | None = None,
    actor: str | None = None,
    progress: ProgressFn = _no_progress,
) -> ImportSummary:
    """Import any subset of the three files in one transaction; see the module docstring for the rules."""
    now = now or utcnow()
    today = tokyo_today(now).isoformat()
    problems: list[Problem] = []
    parsed_files: list[ParsedFile] = []
    for path in files:
        parsed_files.append(parse_file(Path(path), problems))
        progress("reading", len(parsed_files), len(files))
    kinds = [p.kind for p in parsed_files]
    for kind in set(kinds):
        if kinds.count(kind) > 1:
            raise RegisterError(f"two {kind} files given; import them one at a time")
    parsed_files.sort(key=lambda p: ORDER[p.kind])
    summary = ImportSummary()
    with transaction(engine) as conn:
        stored = StoredRegister.load(conn)
        check = _Check(parsed_files, stored, today, problems)
        for parsed in parsed_files:
            if parsed.kind is Kind.RESIDENTS:
                check.residents(parsed)
        residents = check.known_residents()
        households = check.known_households()
        for parsed in parsed_files:
            if parsed.kind is Kind.TAX:
                check.tax(parsed, residents)
            elif parsed.kind is Kind.ACCOUNTS:
                check.accounts(parsed, households)
        if problems and rejects is None:
            raise ImportRefused(problems)
        summary.rows_read = sum(len(p.rows) for p in parsed_files)
        if summary.rows_read == 0:
            return summary
        targets = {Kind.RESIDENTS: stored.residents, Kind.TAX: stored.tax, Kind.ACCOUNTS: stored.accounts}
        for parsed in parsed_files:
            counts = {Kind.RESIDENTS: summary.residents, Kind.TAX: summary.tax, Kind.ACCOUNTS: summary.accounts}
            _write(conn, parsed, cipher, targets[parsed.kind], counts[parsed.kind], progress)
        summary.rejected = sum(1 for p in parsed_files for line, _ in p.rows if line < 0)
        summary.problems = problems
        details: dict[str, int | str | None] = {**summary.as_dict(), "files": len(files)}
        audit.append(conn, "register.import", "register", "register", details, actor=actor, now=now)
        if rejects is not None and problems:
            _write_rejects(rejects, parsed_files, problems, check.cascaded)
    return summary
