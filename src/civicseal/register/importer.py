"""Register import: three CSV files in, one transaction out — all of it, or (with rejects) the valid rows.

Every rule that fails is reported as ``file:line: column: rule`` and never with the value. Files are read
as a stream, in batches: each batch is normalized (each distinct raw value once per column), encrypted and
written to a staging area with each row's line; the rules that span rows and files (keys, references,
heads) then run as set-based SQL over the staging area and the store, and one short transaction merges
it. Memory does not grow with the register, and on SQLite the store's write lock is held only for that
last transaction. A row whose keyed digest is unchanged is not written at all, so re-importing the same
files changes nothing.
"""

from __future__ import annotations

import codecs
import csv
import gc
import io
import multiprocessing
import os
import re
from collections import defaultdict, deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from itertools import compress, repeat
from multiprocessing.pool import AsyncResult
from multiprocessing.synchronize import Lock
from pathlib import Path

from sqlalchemy import Connection, Engine

from civicseal.audit import log as audit
from civicseal.clock import tokyo_today, utcnow
from civicseal.register import normalize as n
from civicseal.register import staged
from civicseal.register.banks import zengin_problem
from civicseal.register.columns import COLUMNS, Column, Kind, header_key, header_names, recognize, spellings
from civicseal.register.errors import InvalidValue, RegisterError
from civicseal.register.models import tax_row_keys
from civicseal.store.bulk import analyze, copy_in, copy_text, insert_columns, keys_built_after
from civicseal.store.engine import is_sqlite, reading, writing
from civicseal.store.errors import KeyHeldTwice
from civicseal.store.fieldcrypt import FieldCipher
from civicseal.store.files import write_private
from civicseal.store.staging import staging_area, staging_file, write_to_file
from civicseal.workers import as_pool_worker

MAX_PRINTED_PROBLEMS = 100
BATCH_BYTES = 2 << 20  # read, normalized and staged at a time: about 10,000 rows
PARALLEL_BYTES = 8 << 20  # files larger than this together are parsed by worker processes
QUOTED_LINES = 100  # lines a batch may run on to keep a quoted field that spans lines in one batch
UTF8_BOM = b"\xef\xbb\xbf"
# csv's default (128 KiB) would turn a long cell into a "broken quote"; read it, and let its column's limit
# name the rule. A batch is in memory anyway.
FIELD_SIZE_LIMIT = 1 << 30
ProgressFn = Callable[[str, int, int], None]


COLUMN_NUMBER = re.compile(r"column (\d+)")


@dataclass(frozen=True)
class Problem:
    """One broken rule. ``line`` 0 means the whole file. Problems sort by file, line, column (``column 3``
    before ``column 10``) and rule."""

    file: str
    line: int
    column: str
    rule: str

    def order(self) -> tuple[str, int, int, str, str]:
        """The sort key (``sorted(problems, key=Problem.order)``: one key a problem, compared in C)."""
        number = COLUMN_NUMBER.match(self.column) if self.line == 1 else None
        return self.file, self.line, int(number[1]) if number else 0, self.column, self.rule

    def __str__(self) -> str:
        if self.line == 0:
            return f"{self.file}: {self.rule}"
        return f"{self.file}:{self.line}: {self.column}: {self.rule}"


class Note(Problem):
    """A row imported as it is that someone should know about: it refuses nothing."""


PRIVATE_USE = re.compile("[\ue000-\uf8ff\U000f0000-\U000ffffd\U00100000-\U0010fffd]")
GAIJI = "holds a 外字 (a private-use character)"


class ImportRefused(RegisterError):
    """The import broke rules; nothing was written."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = sorted(problems, key=Problem.order)
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
    notes: list[Note] = field(default_factory=list)

    def as_dict(self) -> dict[str, int]:
        out = {"rejected_rows": self.rejected, "rows_with_gaiji": len({(n.file, n.line) for n in self.notes})}
        for kind in ("residents", "tax", "accounts"):
            counts: Counts = getattr(self, kind)
            out |= {f"{kind}_new": counts.new, f"{kind}_updated": counts.updated, f"{kind}_unchanged": counts.unchanged}
        return out


# ---------------------------------------------------------------------------------------------- reading


ZIP_MAGIC = b"PK\x03\x04"  # .cseal packages and .xlsx workbooks are ZIP archives
CHUNK = 1 << 20


def _file_problem(path: Path, rule: str) -> ImportRefused:
    return ImportRefused([Problem(path.name, 0, "", rule)])


def file_encoding(path: Path) -> str:
    """UTF-8 (BOM or not) when the file decodes as UTF-8, else CP932; UTF-16 and mixed files are refused.

    Read as a stream: the file is never whole in memory.
    """
    try:
        with path.open("rb") as f:
            return _encoding(path, f)
    except OSError as exc:
        raise _file_problem(path, f"cannot be read ({exc.strerror})") from None


def _encoding(path: Path, f: io.BufferedReader) -> str:
    head = f.read(4096)
    if head.startswith(ZIP_MAGIC):
        raise _file_problem(
            path,
            "is a ZIP archive, not a CSV file: a sealed package (.cseal) opens with `civicseal open`;"
            " save a spreadsheet (.xlsx) as CSV (UTF-8 or CP932)",
        )
    if head.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" in head:
        raise _file_problem(path, "is UTF-16 or binary; save it as CSV in UTF-8 or CP932")
    f.seek(0)
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        while chunk := f.read(CHUNK):
            decoder.decode(chunk)
        decoder.decode(b"", final=True)
        return "utf-8"
    except UnicodeDecodeError:
        f.seek(0)
    utf8_seen, first_bad, cp932 = False, 0, True
    for number, raw in enumerate(f, start=1):  # lines end at b"\n", which no CP932 character holds
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
            raw.removeprefix(UTF8_BOM).decode("cp932")
        except UnicodeDecodeError:
            cp932 = False
    if not cp932:
        raise _file_problem(path, "is neither UTF-8 nor CP932")
    return "cp932"


def byte_batches(path: Path) -> Iterator[tuple[int, bytes]]:
    """The file in batches of whole lines, still encoded, each with the number of its first line.

    A batch runs on while it holds an odd number of quotes (a quoted field spanning lines stays in one
    batch, and is refused there as a control character), up to QUOTED_LINES lines. Undecoded, a batch
    travels to a parsing worker as one object, and the worker decodes it.
    """
    number = 1
    try:
        with path.open("rb") as f:
            while chunk := f.readlines(BATCH_BYTES):
                if number == 1:
                    chunk[0] = chunk[0].removeprefix(UTF8_BOM)
                data = b"".join(chunk)
                quotes = data.count(b'"')  # b'"' is never part of a CP932 character
                for _ in range(QUOTED_LINES):
                    if quotes % 2 == 0 or not (more := f.readline()):
                        break
                    chunk.append(more)
                    data += more
                    quotes += more.count(b'"')
                yield number, data
                number += len(chunk)
    except OSError as exc:
        raise _file_problem(path, f"cannot be read ({exc.strerror})") from None


def split_lines(data: bytes, encoding: str) -> list[str]:
    """A batch's lines, ends cut at LF or CRLF (a CR elsewhere stays, and is refused as a control character)."""
    text = data.decode(encoding)
    if "\r" in text:
        text = text.replace("\r\n", "\n").removesuffix("\r")
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return lines


def line_batches(path: Path, encoding: str) -> Iterator[tuple[int, list[str]]]:
    """The file's lines (ends cut at LF or CRLF) in batches, each with the number of its first line."""
    for number, data in byte_batches(path):
        yield number, split_lines(data, encoding)


def decode_lines(path: Path) -> list[str]:
    """A whole (small) file's lines, read by the import's rules (encodings, line ends)."""
    return [line for _, lines in line_batches(path, file_encoding(path)) for line in lines]


# ---------------------------------------------------------------------------------------------- parsing


class _ColumnCache(dict):
    """Normalize each distinct raw value of a column once; a failure is cached as its InvalidValue.

    Lookups go through ``dict.__getitem__`` at C speed; only a value not seen before reaches Python.
    """

    def __init__(self, column: Column) -> None:
        super().__init__()
        self.column = column
        self.bad: dict[str, str] = {}  # raw value → the rule it breaks

    def __missing__(self, raw: str) -> object:
        fast = self.column.fast
        if fast is not None and (value := fast(raw)) is not None:
            self[raw] = value
            return value
        try:
            value = self.column.read(raw)
        except InvalidValue as exc:
            value = exc
            self.bad[raw] = exc.rule
        self[raw] = value
        return value


CACHED_VALUES = 50_000  # distinct values a column's cache keeps before it starts afresh


class ColumnCaches(dict[Column, _ColumnCache]):
    """Each column's cache, kept across the batches of one import in one process: dates, relationship
    words, postcodes and bank codes repeat across the whole register, not only within a batch. A column
    whose values hardly repeat (names) starts afresh past CACHED_VALUES, so memory stays bounded; the
    caches end with the import, so no register value outlives it in a long-running process."""

    def __missing__(self, column: Column) -> _ColumnCache:
        cache = self[column] = _ColumnCache(column)
        return cache

    def of(self, column: Column) -> _ColumnCache:
        cache = self[column]
        if len(cache) > CACHED_VALUES:
            del self[column]
            cache = self[column]
        return cache


def _parse_column(column: Column, raw: Sequence[str], caches: ColumnCaches) -> tuple[list[object], dict[str, str]]:
    """A whole column at once, and its bad values with their rules; a column every value of which needs no
    normalization skips the cache."""
    if column.bulk is not None and (values := column.bulk(raw, column.required)) is not None:
        return values, {}
    cache = caches.of(column)
    return list(map(cache.__getitem__, raw)), cache.bad


INDEX = {kind: {column.name: i for i, column in enumerate(columns)} for kind, columns in COLUMNS.items()}


def detect_kind(path: Path, header: list[str], encoding: str) -> tuple[Kind, list[int | None], range]:
    """Which of the three files this is, where each of its columns stands in the header, and which columns
    have no header (:func:`unheaded`)."""
    cells = header_cells(path, header)
    kind = _kind_of(cells)
    if kind is None:
        _refuse_title_lines(path, encoding)
        raise _file_problem(path, "header does not tell a residents, tax or accounts file; check the first line")
    return kind, locate_columns(path, cells, COLUMNS[kind], f"a {kind} file"), unheaded(cells)


TITLE_LINES = 5  # lines above the header a spreadsheet's export may carry (a title, a date, a blank line)


def _refuse_title_lines(path: Path, encoding: str) -> None:
    """When line 1 is no header but one of the next lines is, say so: a list saved from a spreadsheet often
    keeps its title (住民税非課税世帯一覧 …) above the header. Only the line's number is named."""
    with path.open("rb") as f:
        lines = [f.readline() for _ in range(TITLE_LINES + 1)][1:]
    for number, raw in enumerate(lines, start=2):
        try:
            known = _kind_of(header_cells(path, read_header(path, raw.decode(encoding).rstrip("\r\n"))))
        except (UnicodeDecodeError, ImportRefused):
            continue
        if known is not None:
            above = "the line above it" if number == 2 else f"the {number - 1} lines above it"
            raise _file_problem(path, f"the header is on line {number}: delete {above} (a title) and import again")


def _kind_of(cells: list[str]) -> Kind | None:
    """The kind of file a header's cells (as ``header_cells`` folds them) tell, if any."""
    return recognize(ANY_HEADER.get(cell) for cell in cells)


def header_cells(path: Path, header: list[str]) -> list[str]:
    """Header cells as they are matched (``header_key``); a control character in one is refused."""
    try:
        return [header_key(n.normalize_text(cell)) for cell in header]
    except InvalidValue as exc:
        raise ImportRefused([Problem(path.name, 1, "-", exc.rule)]) from None


def unheaded(cells: Sequence[str]) -> range:
    """The columns after the header's last named cell. A spreadsheet saved as CSV writes empty cells for the
    columns formatted beyond its data, in the header and on every row: they are no column of the file. A
    value under one is refused with its row (:func:`parse_rows`)."""
    named = len(cells)
    while named and not cells[named - 1]:
        named -= 1
    return range(named, len(cells))


UNHEADED = "a value in a column without a header; give the column its header, or delete it"


def locate_columns(path: Path, cells: list[str], columns: Sequence[Column], what: str) -> list[int | None]:
    """Where each column stands in the header; unknown, doubled and missing required columns are refused (the
    empty cells a spreadsheet writes after the last header are not columns)."""
    names = spellings(columns)
    problems = []
    positions: dict[str, int] = {}
    for index, cell in enumerate(cells[: unheaded(cells).start]):
        name = names.get(cell)
        if name is None:  # the cell is not named: a file without a header would show a resident's data here
            problems.append(Problem(path.name, 1, column_label(index), f"unknown column for {what}"))
        elif name in positions:
            problems.append(Problem(path.name, 1, name, "column appears twice"))
        else:
            positions[name] = index
    for column in columns:
        if column.required and column.name not in positions:
            headers = " or ".join([", ".join(column.japanese), column.name])
            problems.append(Problem(path.name, 1, column.name, f"required column is missing (headed {headers})"))
    if problems:
        raise ImportRefused(problems)
    return [positions.get(column.name) for column in columns]


def column_label(index: int) -> str:
    """A column as a spreadsheet shows it, with its number: ``column 3 (C)``, ``column 28 (AB)``."""
    letters, rest = "", index + 1
    while rest:
        rest, digit = divmod(rest - 1, 26)
        letters = chr(ord("A") + digit) + letters
    return f"column {index + 1} ({letters})"


ANY_HEADER = {cell: name for kind in Kind for cell, name in header_names(kind).items()}


CSV_SPECIAL = ('"', "\r", "\x00")  # what makes csv.reader do more than split at commas


def _plain_columns(lines: list[str], width: int) -> list[list[str]] | None:
    """The common batch's columns, cut without csv.reader: no quote, CR or NUL anywhere, every line ``width``
    fields and longer than a row of empty ones. Each column is a slice of one split of the whole batch; any
    other batch goes through csv.reader, which names what is wrong with which line."""
    text = "\n".join(lines)
    if width < 2 or any(special in text for special in CSV_SPECIAL):
        return None
    if set(map(str.count, lines, repeat(","))) != {width - 1} or min(map(len, lines), default=width) < width:
        return None
    cells = text.replace("\n", ",").split(",")
    return [cells[i::width] for i in range(width)]


def _split_rows(
    name: str, lines: list[str], first: int, width: int, problems: list[Problem]
) -> tuple[list[list[str]], list[int], list[int]]:
    """Rows with their first physical line (``lines[0]`` is line ``first``); rows of the wrong width or
    broken quoting are rejected. A row of empty cells, or a blank line, holds nothing to import and is left
    out: a spreadsheet writes them for the rows below its data that were formatted or emptied."""
    try:
        body = list(csv.reader(lines, strict=True))
    except csv.Error:
        body = None
    if body is not None and len(body) == len(lines) and set(map(len, body)) <= {width} and all(map(any, body)):
        return body, list(range(first, first + len(lines))), []  # the common case
    # Each line keeps its end here, so a line break inside a quoted field stays in the field and is refused
    # as a control character (csv.reader given lines without ends would join the two lines silently).
    reader = csv.reader([line + "\n" for line in lines], strict=True)
    raw_rows: list[list[str]] = []
    line_numbers: list[int] = []
    rejected: list[int] = []
    start = first
    while True:
        try:
            values = next(reader)
        except StopIteration:
            break
        except csv.Error:
            problems.append(Problem(name, start, "-", "contains a control character or a broken quote"))
            rejected.append(start)
            start = first + reader.line_num
            continue
        line, start = start, first + reader.line_num
        if not any(values):
            continue
        if len(values) != width:
            problems.append(Problem(name, line, "-", f"has {len(values)} fields where the header has {width}"))
            rejected.append(line)
            continue
        raw_rows.append(values)
        line_numbers.append(line)
    return raw_rows, line_numbers, rejected


def read_header(path: Path, line: str) -> list[str]:
    csv.field_size_limit(FIELD_SIZE_LIMIT)
    try:
        return next(csv.reader([line], strict=True))
    except csv.Error:
        raise ImportRefused([Problem(path.name, 1, "-", "contains a control character or a broken quote")]) from None


def open_csv(path: Path) -> tuple[list[str], list[str]]:
    """A (small) file's decoded lines and its header; an empty file is refused."""
    lines = decode_lines(path)
    if not lines:
        raise _file_problem(path, "empty file")
    return lines, read_header(path, lines[0])


@dataclass
class Rows:
    """A file's rows read against its columns: ``columns[i]`` holds the i-th column's values."""

    line_numbers: list[int]
    columns: list[list[object]]
    valid: list[bool]
    unreadable: list[int]


def parse_rows(
    name: str,
    lines: list[str],
    first: int,
    width: int,
    columns: Sequence[Column],
    positions: Sequence[int | None],
    problems: list[Problem],
    caches: ColumnCaches | None = None,
    blank: range = range(0),
) -> Rows:
    """Split into rows, then normalize column by column: registers repeat their values endlessly. ``blank``:
    the columns without a header (:func:`unheaded`), where a row must hold nothing."""
    caches = ColumnCaches() if caches is None else caches
    raw_columns: Sequence[Sequence[str]] | None = _plain_columns(lines, width)
    if raw_columns is not None:
        line_numbers, unreadable = list(range(first, first + len(lines))), []
    else:
        raw_rows, line_numbers, unreadable = _split_rows(name, lines, first, width, problems)
        raw_columns = list(zip(*raw_rows, strict=True)) if raw_rows else [()] * width
    valid = [True] * len(line_numbers)
    for index in blank:
        if any(map(str.strip, raw_columns[index])):
            for i, raw in enumerate(raw_columns[index]):
                if raw.strip():
                    problems.append(Problem(name, line_numbers[i], column_label(index), UNHEADED))
                    valid[i] = False
    values_by_column: list[list[object]] = []
    for index, column in zip(positions, columns, strict=True):
        if index is None:
            values_by_column.append([None] * len(line_numbers))
            continue
        values, bad = _parse_column(column, raw_columns[index], caches)
        values_by_column.append(values)
        if bad:
            for i, raw in enumerate(raw_columns[index]):
                if raw in bad:
                    problems.append(Problem(name, line_numbers[i], column.name, bad[raw]))
                    valid[i] = False
    return Rows(line_numbers, values_by_column, valid, unreadable)


# ---------------------------------------------------------------------------------------------- staging


@dataclass(frozen=True)
class _Source:
    """A file about to be read: its encoding, its kind, where its columns stand (and which have no header),
    and the day its rows are read against (ISO: a birth after it is refused)."""

    path: Path
    encoding: str
    kind: Kind
    positions: list[int | None]
    blank: range
    width: int
    today: str
    header: str  # line 1 as decoded: found again further down, it is two files joined into one


def _open_source(path: Path, today: date) -> _Source:
    encoding = file_encoding(path)
    with path.open("rb") as f:
        first = f.readline().removeprefix(UTF8_BOM)
    if not first:
        raise _file_problem(path, "empty file")
    text = first.decode(encoding).removesuffix("\n").removesuffix("\r")
    if "\t" in text and "," not in text:
        raise _file_problem(path, "is tab-separated; save it as CSV (comma-separated) in UTF-8 or CP932")
    header = read_header(path, text)
    kind, positions, blank = detect_kind(path, header, encoding)
    return _Source(path, encoding, kind, positions, blank, len(header), today.isoformat(), text)


ORDER = {Kind.RESIDENTS: 0, Kind.TAX: 1, Kind.ACCOUNTS: 2}


def _sources(paths: Sequence[Path], today: date) -> list[_Source]:
    """The files' kinds from their headers, residents first; a second file of one kind is refused."""
    sources: list[_Source] = []
    seen: dict[Kind, str] = {}
    for path in paths:
        source = _open_source(path, today)
        if source.kind in seen:
            rule = f"a second {source.kind} file (the first is {seen[source.kind]}); import them one at a time"
            raise ImportRefused([Problem(path.name, 0, "", rule)])
        seen[source.kind] = path.name
        sources.append(source)
    return sorted(sources, key=lambda s: ORDER[s.kind])


def _stage(
    batches: Iterator[tuple[Kind, Parsed]],
    write: Callable[[Kind, list[list[object]] | bytes], None],
    sources: list[_Source],
    problems: list[Problem],
    notes: list[Note],
    progress: ProgressFn,
) -> dict[Kind, int]:
    """Read, normalize, encrypt and ``write`` the files batch by batch; return how many rows each has. What
    the batches found goes to ``problems``, or to ``notes`` when it refuses nothing."""
    sizes = {source.kind: max(source.path.stat().st_size, 1) for source in sources}
    done = dict.fromkeys(sizes, 0)
    rows_read = dict.fromkeys(sizes, 0)
    for kind, (records, found, read, length) in batches:
        problems.extend(p for p in found if not isinstance(p, Note))
        notes.extend(p for p in found if isinstance(p, Note))
        rows_read[kind] += read
        done[kind] += length
        if records and records[0]:  # else a worker staged them itself (SQLite)
            write(kind, records)
        progress(f"reading {kind}", min(done[kind], sizes[kind]), sizes[kind])
    return rows_read


def _send(conn: Connection, table: str, names: Sequence[str], records: list[list[object]] | bytes) -> None:
    """A batch's rows into a table: a worker's as the COPY text it made (PostgreSQL), else by column."""
    if isinstance(records, bytes):
        copy_in(conn, table, names, records)
    else:
        insert_columns(conn, table, names, records)


# The staged rows (by column), problems, rows read, bytes read.
Parsed = tuple[list[list[object]] | bytes, list[Problem], int, int]
# The files, their staging file if they have one, whether the rows go straight to the register's tables (a
# first import); each batch parsed, in the files' order, with its kind.
_Parser = Callable[[list[_Source], Path | None, bool], Iterator[tuple[Kind, Parsed]]]


def _parse_batch(
    source: _Source, data: bytes, first: int, cipher: FieldCipher, caches: ColumnCaches, direct: bool
) -> Parsed:
    """One batch, normalized and encrypted, its header line (line 1) left out: as staged rows, or as the
    register table's rows when they go straight into it (``direct``)."""
    lines = split_lines(data, source.encoding)
    if first == 1:
        lines, first = lines[1:], 2
    problems: list[Problem] = []
    _refuse_headers_again(source, lines, first, problems)
    kind = source.kind
    name, width, positions = source.path.name, source.width, source.positions
    rows = parse_rows(name, lines, first, width, COLUMNS[kind], positions, problems, caches, source.blank)
    _join_parts(source, rows, problems)
    if kind is Kind.RESIDENTS:
        _refuse_births_after(source, rows, problems)
        problems += _gaiji(source, rows)
    read = len(rows.line_numbers) + len(rows.unreadable)
    columns = _staged_rows(kind, rows, _encoded_lines(source, data, lines, rows), first, cipher)
    if direct:
        columns = _register_rows(source.path.name, kind, columns, problems)
    return columns, problems, read, len(data)


def _register_rows(name: str, kind: Kind, columns: list[list[object]], problems: list[Problem]) -> list[list[object]]:
    """Staged rows as the register table's own columns. An account whose bank or branch the Zengin data lacks
    is a problem here: it stops a first import loaded straight into the table, and the staged import that
    follows decides, by its rules, which of a household's accounts reports it."""
    width = len(staged.TABLES[kind][1])
    if kind is Kind.ACCOUNTS:
        lines, found, rules = columns[0], columns[-2], columns[-1]
        problems += [Problem(name, line, c, r) for line, c, r in zip(lines, found, rules, strict=True) if r]  # type: ignore[arg-type]
    return columns[1 : 1 + width]


HEADER_AGAIN = "the header again: two files joined into one? delete this line"


def _refuse_headers_again(source: _Source, lines: list[str], first: int, problems: list[Problem]) -> None:
    """Line 1 again further down (a BOM before it, when files saved with one were joined), as `copy a.csv+b.csv`
    joins exports: one problem for the line, not one per column its header words break. The line becomes a
    row of empty cells, which holds nothing to read, so the lines after it keep their numbers."""
    again = (source.header, UTF8_BOM.decode() + source.header)
    if again[0] not in lines and again[1] not in lines:  # the usual batch: two searches from C
        return
    for i, line in enumerate(lines):
        if line in again:
            problems.append(Problem(source.path.name, first + i, "-", HEADER_AGAIN))
            lines[i] = "," * (source.width - 1)


def _parse_here(cipher: FieldCipher) -> _Parser:
    caches = ColumnCaches()

    def parse(sources: list[_Source], _: Path | None, direct: bool) -> Iterator[tuple[Kind, Parsed]]:
        for source in sources:
            for first, data in byte_batches(source.path):
                yield source.kind, _parse_batch(source, data, first, cipher, caches, direct)

    return parse


_worker_cipher: FieldCipher | None = None  # a parsing worker's cipher, inherited when it is forked
_worker_caches = ColumnCaches()  # a parsing worker's column caches; the worker ends with its import
_worker_turn: Lock | None = None  # held by the worker writing to the staging file


def _start_worker(cipher: FieldCipher, turn: Lock) -> None:
    global _worker_cipher, _worker_turn  # one per worker process, set once as it starts (it inherits the paused GC)
    as_pool_worker()
    _worker_cipher, _worker_turn = cipher, turn


def _parse_in_worker(source: _Source, data: bytes, first: int, stage: Path | None, direct: bool) -> Parsed:
    """A batch parsed, and written straight into the staging file when there is one (SQLite): the rows
    need not travel back to the parent, and the workers write in turn while each parses its next batch.
    Else (PostgreSQL, whose staging tables, or on a first import the register's own, are written in the
    parent's session) the rows go back as COPY text, so the parent only sends them on.

    The turn is a lock, not SQLite's busy wait, whose growing sleeps leave the file idle after a write ends.
    """
    assert _worker_cipher is not None and _worker_turn is not None
    columns, problems, read, length = _parse_batch(source, data, first, _worker_cipher, _worker_caches, direct)
    assert not isinstance(columns, bytes)
    if stage is None:
        return copy_text(columns), problems, read, length
    with _worker_turn:
        write_to_file(stage, staged.STAGED[source.kind], staged.staged_columns(source.kind), columns)
    return [], problems, read, length


@contextmanager
def _parsers(cipher: FieldCipher, sources: list[_Source]) -> Iterator[_Parser]:
    """Batches parsed by forked workers, one per core, while this process stages the ones they finished.

    Small files are parsed here: starting workers would cost more than it saves. The workers are forked
    before any connection is opened: none may be shared across a fork.
    """
    size = sum(source.path.stat().st_size for source in sources)
    cores = os.cpu_count() or 1
    if size < PARALLEL_BYTES or cores < 2 or "fork" not in multiprocessing.get_all_start_methods():
        yield _parse_here(cipher)
        return
    context = multiprocessing.get_context("fork")
    with context.Pool(cores, initializer=_start_worker, initargs=(cipher, context.Lock())) as pool:

        def parse(sources: list[_Source], stage: Path | None, direct: bool) -> Iterator[tuple[Kind, Parsed]]:
            """A few batches in flight (memory stays bounded), across the files: the workers do not wait for
            the last batches of one file before starting on the next."""
            pending: deque[tuple[Kind, AsyncResult[Parsed]]] = deque()
            for source in sources:
                for first, data in byte_batches(source.path):
                    batch = (source, data, first, stage, direct)
                    pending.append((source.kind, pool.apply_async(_parse_in_worker, batch)))
                    if len(pending) > cores:
                        kind, result = pending.popleft()
                        yield kind, result.get()
            while pending:
                kind, result = pending.popleft()
                yield kind, result.get()

        yield parse


# Each column another is appended to (住所), with that other column (方書), by position in COLUMNS.
JOINED = {
    kind: [(INDEX[kind][c.joins], i, c.limit) for i, c in enumerate(columns) if c.joins is not None]
    for kind, columns in COLUMNS.items()
}


def _join_parts(source: _Source, rows: Rows, problems: list[Problem]) -> None:
    """方書 appended to its 住所 after a space, as a letter prints them; the whole is held to 住所's limit."""
    for target, part, limit in JOINED[source.kind]:
        if source.positions[part] is None:
            continue
        whole, parts = rows.columns[target], rows.columns[part]
        for i, (value, extra) in enumerate(zip(whole, parts, strict=True)):
            if not rows.valid[i] or extra is None:
                continue
            whole[i] = joined = f"{value} {extra}"
            if len(joined) > limit:
                column = COLUMNS[source.kind][target].name
                problems.append(
                    Problem(
                        source.path.name, rows.line_numbers[i], column, f"longer than {limit} characters with its 方書"
                    )
                )
                rows.valid[i] = False


BIRTH_DATE = INDEX[Kind.RESIDENTS]["birth_date"]


def _refuse_births_after(source: _Source, rows: Rows, problems: list[Problem]) -> None:
    """A birth after today (in Tokyo) is refused as the row is read, before any rule that spans rows."""
    births = rows.columns[BIRTH_DATE]
    latest = max(births, default="") if all(rows.valid) else max((b for b in births if type(b) is str), default="")
    if latest <= source.today:  # type: ignore[operator]
        return
    for i, birth in enumerate(births):
        if rows.valid[i] and type(birth) is str and birth > source.today:
            problems.append(Problem(source.path.name, rows.line_numbers[i], "birth_date", "after today"))
            rows.valid[i] = False


FREE_TEXT = [(INDEX[Kind.RESIDENTS][name], name) for name in ("name", "address", "relationship")]


def _gaiji(source: _Source, rows: Rows) -> list[Note]:
    """The valid rows whose name, address (方書 with it) or 続柄 holds a 外字, a character of the city's own,
    in the private-use area (as a CP932 export's user-defined rows decode): imported as they are, but no font
    prints them and a package carries them to a print shop that must map them. One search per column finds
    none, as usual."""
    notes: list[Note] = []
    every = all(rows.valid)
    numbers = rows.line_numbers if every else list(compress(rows.line_numbers, rows.valid))
    for index, column in FREE_TEXT:
        values = rows.columns[index] if every else list(compress(rows.columns[index], rows.valid))
        if PRIVATE_USE.search("\n".join(values)) is None:  # type: ignore[arg-type]  # valid: each a str
            continue
        held = [n for n, value in zip(numbers, values, strict=True) if PRIVATE_USE.search(value)]  # type: ignore[arg-type]
        notes += [Note(source.path.name, number, column, GAIJI) for number in held]
    return notes


def _encoded_lines(source: _Source, data: bytes, lines: list[str], rows: Rows) -> list[bytes]:
    """The batch's lines in UTF-8, each as its row's digest is taken over: the batch's own bytes when they are
    that already (a UTF-8 file with LF line ends, every line a row), which saves encoding them again."""
    if source.encoding != "utf-8" or b"\r" in data or len(rows.line_numbers) != len(lines):
        return "\n".join(lines).encode().split(b"\n") if lines else []
    encoded = data.split(b"\n")
    if encoded[-1] == b"":
        encoded.pop()
    return encoded[len(encoded) - len(lines) :]  # without the header, when the batch starts with it


def _staged_rows(kind: Kind, rows: Rows, lines: list[bytes], first: int, cipher: FieldCipher) -> list[list[object]]:
    """The staged rows of a batch's valid rows, by column: line, the table's columns (secrets encrypted),
    what rules need. Kept as columns: COPY text is built a column at a time, and SQLite takes them zipped."""
    if all(rows.valid):  # the common case: every row, no copies
        columns, numbers = rows.columns, rows.line_numbers
    else:
        columns = [list(compress(column, rows.valid)) for column in rows.columns]
        numbers = list(compress(rows.line_numbers, rows.valid))
    # The row digests, over each row's line (a row that spans lines holds a line break and is refused).
    digests = cipher.row_macs(lines if len(numbers) == len(lines) else [lines[number - first] for number in numbers])
    table = _table_columns(kind, [*columns, digests], cipher)
    if kind is Kind.ACCOUNTS:
        pick = INDEX[kind]
        found = list(map(zengin_problem, columns[pick["bank_code"]], columns[pick["branch_code"]]))
        table += [[z and z[0] for z in found], [z and z[1] for z in found]]
    return [numbers, *table]


def _table_columns(kind: Kind, columns: list[list[object]], cipher: FieldCipher) -> list[list[object]]:
    """The table's columns in TABLES order: plain ones as parsed, secret ones encrypted and blind-indexed.

    ``columns`` are COLUMNS[kind]'s values and, last, the row digests.
    """
    _, names, _ = staged.TABLES[kind]
    pick = {name: columns[i] for name, i in INDEX[kind].items()}
    pick["row_mac"] = columns[-1]
    if kind is Kind.RESIDENTS:
        pick["is_head"] = n.head_flags(pick["relationship"])  # type: ignore[arg-type]
        pick["my_number_enc"] = cipher.encrypt_many(pick["my_number"], "residents.my_number", pick["resident_code"])
        pick["my_number_bidx"] = cipher.blind_many(pick["my_number"], "residents.my_number")
    elif kind is Kind.TAX:
        pick["taxed"] = pick["per_capita_levy"]
        row_keys = tax_row_keys(pick["resident_code"], pick["fiscal_year"])
        pick["income_enc"] = cipher.encrypt_many(pick["income"], "tax_assessments.income", row_keys)
    else:
        number = pick["account_number"]
        pick["account_number_enc"] = cipher.encrypt_many(number, "bank_accounts.account_number", pick["household_code"])
        pick["account_number_bidx"] = cipher.blind_many(number, "bank_accounts.account_number")
    return [pick[name] for name in names]


def _check(conn: Connection, sources: list[_Source], today: date, summary: ImportSummary) -> tuple[int, list]:
    """The rules that span rows and files, over the staging area and the store as it is now, and what the
    merge will do with each valid row (``summary``'s counts); returns the register's generation they saw
    and what they found: (kind, line, column, rule), column None for a row rejected with its household."""
    kinds = {source.kind for source in sources}
    with conn.begin():  # a reader: on SQLite, no write lock
        generation = staged.register_generation(conn)
        if Kind.RESIDENTS in kinds:
            staged.check_residents(conn, today)
        if Kind.TAX in kinds:
            staged.check_tax(conn)
        if Kind.ACCOUNTS in kinds:
            staged.check_accounts(conn)
        for source in sources:
            counts: Counts = getattr(summary, source.kind.value)
            fates = staged.classify(conn, source.kind)
            counts.new, counts.updated = fates.get(staged.NEW, 0), fates.get(staged.CHANGED, 0)
            counts.unchanged = fates.get(staged.UNCHANGED, 0)
        return generation, list(staged.faults(conn))


# ---------------------------------------------------------------------------------------------- rejects


# The encodings a rejects file is written in: UTF-8 with a BOM (without one, Japanese Excel shows it
# garbled) or CP932 for older spreadsheets.
class RejectsEncoding(StrEnum):
    UTF8 = "utf-8"
    CP932 = "cp932"


CODECS = {RejectsEncoding.UTF8: "utf-8-sig", RejectsEncoding.CP932: "cp932"}


def _write_rejects(
    path: Path, sources: list[_Source], problems: list[Problem], cascaded: dict, encoding: RejectsEncoding
) -> None:
    """Rejected rows go aside with the rules they broke, in a private file, to be fixed and re-imported."""
    rules: dict[tuple[str, int], list[str]] = defaultdict(list)
    for problem in problems:
        if problem.line > 0:
            rules[(problem.file, problem.line)].append(f"{problem.column}: {problem.rule}")
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\r\n")
    writer.writerow(["file", "line", "rules", "raw_line"])
    for source in sources:
        name = source.path.name
        wanted = sorted({line for file, line in [*rules, *cascaded] if file == name})
        if not wanted:
            continue
        raw: dict[int, str] = {}
        for first, lines in line_batches(source.path, source.encoding):
            raw |= {line: lines[line - first] for line in wanted if first <= line < first + len(lines)}
        for line in wanted:
            found = rules.get((name, line)) or [cascaded.get((name, line), "rejected")]
            writer.writerow([name, line, "; ".join(found), raw[line]])
    try:
        data = text.getvalue().encode(CODECS[encoding])
    except UnicodeEncodeError:
        raise RegisterError(
            f"rejects: a rejected line holds a character {encoding} cannot carry; nothing was imported;"
            " write the rejects as UTF-8 (--rejects-encoding utf-8)"
        ) from None
    write_private(path, data)


# ---------------------------------------------------------------------------------------------- import


def _no_progress(stage: str, done: int, total: int) -> None:
    return None


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
    """Import any subset of the three files atomically; see the module docstring for the rules."""
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
    """A first import on PostgreSQL straight into the register (:func:`_load_first`) when it breaks no rule;
    else every row staged, the rules run over the staging area and the store, and what they let through merged.
    An import with rejects is staged at once: whoever asks for them expects rows to break rules, and a load
    straight into the register would be undone for the first of them."""
    today = tokyo_today(now)
    sources = _sources([Path(p) for p in files], today)
    if rejects is None and _first_on_postgresql(engine, sources):
        try:
            return _load_first(engine, cipher, sources, today, now=now, actor=actor, progress=progress)
        except _Staged:
            progress = _again(progress)
    problems: list[Problem] = []
    notes: list[Note] = []
    summary = ImportSummary()
    engine.dispose()  # no pooled connection may cross the fork of the parsing workers
    with ExitStack() as stack:
        workers = ExitStack()
        parse = workers.enter_context(_parsers(cipher, sources))
        stack.push(workers)
        conn = stack.enter_context(staging_area(engine))
        with conn.begin():
            staged.create(conn)

        def write(kind: Kind, records: list[list[object]] | bytes) -> None:
            with conn.begin():
                _send(conn, staged.STAGED[kind], staged.staged_columns(kind), records)

        batches = parse(sources, staging_file(conn), False)
        summary.rows_read = sum(_stage(batches, write, sources, problems, notes, progress).values())
        workers.close()  # their memory is not held through the checks and the merge
        with conn.begin():
            staged.index(conn)
        generation, found = _check(conn, sources, today, summary)
        names = {source.kind: source.path.name for source in sources}
        cascaded: dict[tuple[str, int], str] = {}
        for kind, line, column, rule in found:
            if column is None:
                cascaded[(names[kind], line)] = rule
            else:
                problems.append(Problem(names[kind], line, column, rule))
        if problems and rejects is None:
            raise ImportRefused(problems)
        if summary.rows_read == 0:
            return summary
        rejected = {(p.file, p.line) for p in problems} | set(cascaded)
        summary.rejected = len(rejected)
        summary.problems = sorted(problems, key=Problem.order)
        summary.notes = sorted((n for n in notes if (n.file, n.line) not in rejected), key=Problem.order)
        if rejects is not None and (problems or cascaded):
            _write_rejects(rejects, sources, problems, cascaded, rejects_encoding)
        progress("writing", 0, len(sources))
        with writing(conn):
            staged.lock_register(conn)
            if staged.register_generation(conn) != generation:
                raise RegisterError("another register import landed while this one was checked; run it again")
            for done, source in enumerate(sources, 1):
                counts: Counts = getattr(summary, source.kind.value)
                staged.merge(conn, source.kind, new=counts.new, changed=counts.updated)
                progress("writing", done, len(sources))
            _audit(conn, summary, len(sources), actor, now)
        written = [staged.TABLES[s.kind][0] for s in sources if _written(getattr(summary, s.kind.value))]
        if written:
            with reading(conn):  # PostgreSQL plans the programme run from these; after the commit, outside its lock
                analyze(conn, *written)
    return summary


def _written(counts: Counts) -> bool:
    """Whether the merge wrote any row of a file: a table it left as it was keeps its statistics (a city's
    register imported again unchanged, 0.6 s of ANALYZE on PostgreSQL)."""
    return counts.new + counts.updated > 0


def _audit(conn: Connection, summary: ImportSummary, files: int, actor: str | None, now: datetime) -> None:
    details: dict[str, int | str | None] = {**summary.as_dict(), "files": files}
    audit.append(conn, "register.import", "register", "register", details, actor=actor, now=now)


# ---------------------------------------------------------------------------------------------- first import


class _Staged(Exception):
    """A first import loaded straight into the register broke a rule: it is undone, and run the staged way,
    whose rules name each broken rule's line."""


def _first_on_postgresql(engine: Engine, sources: list[_Source]) -> bool:
    """A residents file into an empty register on PostgreSQL: every row is new, and staging them first would
    write each twice. (On SQLite the staging keeps the store's one write lock free while the files are read.)"""
    if is_sqlite(engine) or Kind.RESIDENTS not in {source.kind for source in sources}:
        return False
    with engine.connect() as conn:
        return staged.register_empty(conn)


def _load_first(
    engine: Engine,
    cipher: FieldCipher,
    sources: list[_Source],
    today: date,
    *,
    now: datetime,
    actor: str | None,
    progress: ProgressFn,
) -> ImportSummary:
    """The files straight into the register's tables, in one transaction that holds them alone, their keys
    built after the load; the rules that span rows run over them afterwards. A row that breaks a rule, or
    another import that filled the register first, raises :class:`_Staged` with everything undone."""
    problems: list[Problem] = []
    notes: list[Note] = []
    summary = ImportSummary()
    kinds = [source.kind for source in sources]
    tables = [staged.TABLES[kind][0] for kind in kinds]
    engine.dispose()  # no pooled connection may cross the fork of the parsing workers
    with _parsers(cipher, sources) as parse, engine.connect() as conn, writing(conn):
        if not staged.claim_empty_register(conn):
            raise _Staged

        def write(kind: Kind, records: list[list[object]] | bytes) -> None:
            if problems:  # a row broke a rule: the staged import names them all
                raise _Staged
            table, names, _ = staged.TABLES[kind]
            data = records if isinstance(records, bytes) else copy_text(records)  # a worker's, or parsed here
            copy_in(conn, table, names, data, frozen=True)

        try:
            with keys_built_after(conn, tables):
                rows = _stage(parse(sources, None, True), write, sources, problems, notes, progress)
                progress("checking", 0, 1)
                if problems:
                    raise _Staged
        except KeyHeldTwice:  # "appears twice", "second row", "second account": the staged rules name the lines
            raise _Staged from None
        analyze(conn, *tables)  # the rules' plans, and the programme run's, need them
        if not staged.first_import_sound(conn, kinds, today):
            raise _Staged
        progress("checking", 1, 1)
        for kind, count in rows.items():
            getattr(summary, kind.value).new = count
        summary.rows_read = sum(rows.values())
        summary.notes = sorted(notes, key=Problem.order)
        progress("writing", 1, 1)  # the rows are in: what is left is the audit entry and the commit
        if summary.rows_read:
            _audit(conn, summary, len(sources), actor, now)
    return summary


def _again(progress: ProgressFn) -> ProgressFn:
    """The staged import after a first import that broke a rule reads the files a second time: its bars are
    new ones, not the first ones going back."""
    return lambda stage, done, total: progress(f"{stage} again", done, total)
