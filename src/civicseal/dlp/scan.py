"""Scanning files, folders and archives for resident data, by fingerprint and by pattern.

Tables (CSV/TSV, Parquet, XLSX and XLS, JSON records) are scanned a block at a time, set-based: each column of
a block is dictionary-encoded, only its distinct values are folded and fingerprinted (and a value seen
in an earlier block is remembered, not hashed again), and corroboration is array arithmetic over the
block. A resident counts as matched when two elements of theirs (name or kana, birth date, address,
My Number, bank account) stand in one row. Free text (plain text, PDF, DOCX) is cut into candidate
values at delimiters, spaces and line ends, and two elements count when they stand within
:data:`WINDOW` characters. A large CSV/TSV file is cut into pieces of whole records, scanned by one worker
process per core and added up in file order.

A report names files, lines, columns and cells, never a value.
"""

from __future__ import annotations

import codecs
import csv
import gc
import html
import io
import json
import multiprocessing
import multiprocessing.pool
import os
import re
import shutil
import struct
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from xml.etree import ElementTree

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from civicseal.dlp import odf, ole2, rtf
from civicseal.dlp.errors import DlpError
from civicseal.dlp.index import SLOT_ELEMENT, Element, FingerprintIndex, account_text
from civicseal.dlp.normalize import (
    CELL_PATTERNS,
    TEXT_PATTERNS,
    Fingerprinter,
    canonical,
    valid_my_numbers,
)
from civicseal.dlp.report import MAX_POSITIONS, FileReport, ScanReport
from civicseal.register.normalize import my_number_valid
from civicseal.workers import as_pool_worker

BLOCK_BYTES = 8 << 20
WINDOW = 120  # characters: a name and a birth date on one line or on the next
TEXT_CHUNK_LINES = 20_000
MEMO_LIMIT = 2_000_000
MAX_DEPTH = 4  # archives inside archives
MAX_WORDS = 4  # a candidate value in free text spans at most this many space-separated words
PIECE_BYTES = 32 << 20  # a CSV/TSV file larger than this is scanned in pieces of about this size, in parallel
MAX_WORKERS = 4  # worker processes at most: each holds its own memory of values
AGE_MAGIC = (b"age-encryption.org/v1\n", b"-----BEGIN AGE ENCRYPTED FILE-----")
TEXT_SUFFIXES = {".csv": "csv", ".tsv": "csv", ".json": "json", ".jsonl": "jsonl", ".parquet": "parquet"}
ZIP_FORMATS = {".xlsx": "xlsx", ".xlsm": "xlsx", ".docx": "docx"}
OLE2_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # Office 97–2003 files, and any Office file with a password
# What an Office file in an OLE2 container is, by the stream it holds, when the scanner cannot read it.
OFFICE_PROTECTED = "Office password (only as strong as the password chosen)"  # an EncryptedPackage stream
XLS_PROTECTED = "Excel 97–2003 password (weak: RC4, broken without the password)"
WORD_PROTECTED = "Word 97–2003 password (weak: RC4 or XOR, broken without the password)"
ODF_PROTECTED = "OpenDocument password (only as strong as the password chosen)"
SLIDES_PROTECTED = "PowerPoint 97–2003 password (weak: RC4, broken without the password)"
OLE2_UNREAD = {
    # Windows writes one beside pictures; a scanned form's picture shows a resident: not read, not clean
    "Catalog": "Windows thumbnail cache (Thumbs.db): small copies of pictures, not read",
}
# Formats the scanner cannot read, named by their suffix with what to do: a Japanese office keeps many.
UNREAD_SUFFIXES = {
    ".jtd": "一太郎 document (.jtd), not read: save it as .docx or .odt and scan it again",
    ".jtdc": "一太郎 document (.jtdc), not read: save it as .docx or .odt and scan it again",
    ".jtt": "一太郎 template (.jtt), not read: save it as .docx or .odt and scan it again",
}
# An Excel binary workbook (.xlsb: a ZIP of BIFF12 records), which Excel offers for large sheets: named as
# one file, not as its parts, each "a binary file of a format the scanner does not read".
XLSB_UNREAD = "Excel binary workbook (.xlsb), not read: save it as .xlsx and scan it again"
MAIL_SUFFIXES = (".eml",)
DAMAGED = "damaged file of its format"
XLS_ROWS = 10_000  # rows of a sheet scanned at a time
# The only ASCII cells that can hold an indexed value: a date, a My Number, an account (bank|branch|number,
# as the scanner joins three columns) or a name in Latin script (letters, no digits). Codes, counts,
# postcodes and phone numbers are never looked up (they are counted by pattern).
_ASCII_VALUE = (
    r"^(?:[0-9]{4}[-/.][0-9]{1,2}[-/.][0-9]{1,2}(?: 0?0:00(?::00)?)?"
    r"|[MTSHRmtshr][0-9]{1,2}[-/.][0-9]{1,2}[-/.][0-9]{1,2}"
    r"|[0-9]{4}[- ]?[0-9]{4}[- ]?[0-9]{4}|[0-9]{4}\|[0-9]{3}\|[0-9]{7}|[^0-9]*[A-Za-z][^0-9]*)$"
)
_DELIMITERS = str.maketrans(dict.fromkeys(",\t、。:：;；|「」『』()（）[]【】<>＜＞\"'=＝", "\x01"))


# ---------------------------------------------------------------------------------------- matching


class _Memory:
    """Fingerprint numbers of values already seen, in an open-addressing table of numpy arrays keyed by the
    values' Python hashes (SipHash under the interpreter's random key).

    A look-up is a few vectorized gathers for a whole column instead of a dict probe per value: on a table
    of a million values each probe waits on memory, while a gather keeps many loads in flight. Two values
    with one 64-bit hash would share a number; among the at most ``limit`` values held that chance is below
    one in ten million per scan, the same order as two values sharing a truncated 64-bit fingerprint.
    """

    EMPTY = -1  # hash() never returns -1
    MISSING = -2

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.clear()

    def clear(self) -> None:
        self.count = 0
        self._keys = np.full(1 << 12, self.EMPTY, dtype=np.int64)
        self._numbers = np.zeros(1 << 12, dtype=np.int32)

    def find(self, hashes: np.ndarray) -> np.ndarray:
        """The number of each hash, or MISSING."""
        mask = len(self._keys) - 1
        out = np.full(len(hashes), self.MISSING, dtype=np.int32)
        pending = np.arange(len(hashes))
        slot = self._slots(hashes) & mask
        while pending.size:
            key = self._keys[slot]
            hit = key == hashes[pending]
            out[pending[hit]] = self._numbers[slot[hit]]
            more = ~hit & (key != self.EMPTY)
            pending, slot = pending[more], (slot[more] + 1) & mask
        return out

    def add(self, hashes: np.ndarray, numbers: np.ndarray) -> None:
        """Remember hashes not held yet (distinct); emptied first when the limit would be passed."""
        if self.count + len(hashes) > self.limit:
            self.clear()
        if (self.count + len(hashes)) * 2 > len(self._keys):
            keys, held = self._keys, self._numbers
            kept = keys != self.EMPTY
            size = len(keys)
            while (self.count + len(hashes)) * 2 > size:
                size *= 2
            self.count = 0
            self._keys = np.full(size, self.EMPTY, dtype=np.int64)
            self._numbers = np.zeros(size, dtype=np.int32)
            self._insert(keys[kept], held[kept])
        self._insert(hashes, numbers)

    def _slots(self, hashes: np.ndarray) -> np.ndarray:
        return hashes

    def _insert(self, hashes: np.ndarray, numbers: np.ndarray) -> None:
        mask = len(self._keys) - 1
        pending = np.arange(len(hashes))
        slot = self._slots(hashes) & mask
        while pending.size:
            free = np.flatnonzero(self._keys[slot] == self.EMPTY)
            # Of new values aiming at one free slot the last written stays (hashes are distinct); the rest
            # probe on, as do those whose slot was taken.
            self._keys[slot[free]] = hashes[pending[free]]
            won = free[self._keys[slot[free]] == hashes[pending[free]]]
            self._numbers[slot[won]] = numbers[pending[won]]
            rest = np.ones(len(pending), dtype=bool)
            rest[won] = False
            pending, slot = pending[rest], (slot[rest] + 1) & mask
        self.count += len(hashes)


class _DigitMemory(_Memory):
    """Twelve-digit values (My Numbers) keyed by their integer, exact and with no Python string made for
    one seen before. Slots come from the integer times a random odd number, high bits: a file of numbers
    crafted to share low bits does not pile up on one slot."""

    def __init__(self, limit: int) -> None:
        super().__init__(limit)
        self._spread = np.uint64(int.from_bytes(os.urandom(8), "little") | 1)

    def _slots(self, hashes: np.ndarray) -> np.ndarray:
        return ((hashes.view(np.uint64) * self._spread) >> np.uint64(32)).view(np.int64)


class Matcher:
    """Turns values into fingerprint numbers of the index (-1: not a register value), remembering values.

    The memory maps values as read (before folding) to their numbers, up to ``memo_limit`` values (and as
    many twelve-digit ones), and is emptied when full: a file of a repeated register folds and hashes each
    distinct value once, and memory stays bounded however large the drive. It lives as long as one scan, in memory only.
    """

    def __init__(self, index: FingerprintIndex, memo_limit: int = MEMO_LIMIT) -> None:
        self.index = index
        self._fingerprint = Fingerprinter(index.key)
        self._memo = _Memory(memo_limit)
        self._digits = _DigitMemory(memo_limit)

    def strings(self, values: Sequence[str]) -> np.ndarray:
        if not values:
            return np.zeros(0, dtype=np.int32)
        hashes = np.fromiter(map(hash, values), dtype=np.int64, count=len(values))
        return self._remembered(self._memo, hashes, lambda at: [values[i] for i in at.tolist()])

    def digits(self, values: pa.Array) -> np.ndarray:
        """Numbers for values of twelve ASCII digits: a large file holds a My Number in nearly every row."""
        keys = pc.cast(values, pa.int64()).to_numpy(zero_copy_only=False)
        return self._remembered(self._digits, keys, lambda at: values.take(pa.array(at)).to_pylist())

    def _remembered(self, memo: _Memory, keys: np.ndarray, raw: Callable[[np.ndarray], list[str]]) -> np.ndarray:
        """Numbers for keys; the values not remembered (``raw``: them, by position) are folded and hashed."""
        found = memo.find(keys)
        missing = np.flatnonzero(found == _Memory.MISSING)
        if missing.size:
            new, first = np.unique(keys[missing], return_index=True)
            numbers = self.index.find(self._fingerprint(canonical(raw(missing[first]))))
            memo.add(new, numbers)
            found[missing] = numbers[np.searchsorted(new, keys[missing])]
        return found

    def dictionary(self, values: pa.Array, keep: np.ndarray) -> np.ndarray:
        """Numbers for the distinct values of a column (``keep``: the ones that could be a register value)."""
        out = np.full(len(values), -1, dtype=np.int32)
        keep = np.flatnonzero(keep)
        if not keep.size:
            return out
        out[keep] = self.strings(values.take(pa.array(keep)).to_pylist())
        return out


# ------------------------------------------------------------------------------------------ tables


def _as_strings(column: pa.ChunkedArray | pa.Array) -> pa.Array | None:
    """A column as strings (empty for null); None for a column of nested values, which holds no cell text."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if pa.types.is_nested(array.type):
        return None
    if pa.types.is_dictionary(array.type):
        array = array.dictionary_decode()
    if not (pa.types.is_string(array.type) or pa.types.is_large_string(array.type)):
        try:
            array = pc.cast(array, pa.string())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return None
    return pc.fill_null(array, "")


@dataclass
class _Column:
    numbers: np.ndarray  # per row: fingerprint number or -1
    dictionary: pa.Array  # the distinct values, and per distinct value:
    occurrences: np.ndarray  # how many rows hold it
    lengths: np.ndarray  # its length in characters
    decimal: np.ndarray  # whether it is ASCII digits only


def _encode(array: pa.Array, matcher: Matcher) -> _Column:
    """Dictionary-encode a column; fingerprint the distinct values that could be a register value.

    A column of digits alone none of which is twelve long (a resident or household code) holds no
    register value: it is not encoded, its cells stand for themselves. Such codes are nearly all distinct,
    so encoding them would only build a hash table as large as the column."""
    if len(array) and pc.all(pc.ascii_is_decimal(array.slice(0, 16))).as_py():
        lengths = pc.utf8_length(array).to_numpy(zero_copy_only=False)
        if not (lengths == 12).any() and pc.all(pc.ascii_is_decimal(array)).as_py():
            rows = len(array)
            return _Column(np.full(rows, -1, np.int32), array, np.ones(rows, np.int64), lengths, np.ones(rows, bool))
    encoded = pc.dictionary_encode(array)
    dictionary = encoded.dictionary
    dictionary.validate(full=True)  # UTF-8 is checked here, once per distinct value, not by the CSV reader
    indices = encoded.indices.to_numpy(zero_copy_only=False)
    lengths = pc.utf8_length(dictionary).to_numpy(zero_copy_only=False)
    decimal = pc.ascii_is_decimal(dictionary).to_numpy(zero_copy_only=False)
    ascii_ = pc.string_is_ascii(dictionary).to_numpy(zero_copy_only=False)
    lookup = (lengths > 0) & ~ascii_
    # Of digits alone only twelve (a My Number) can be a value, looked up by its integer; codes and counts
    # skip the pattern below.
    twelve = decimal & (lengths == 12)
    if ascii_.any():
        where = np.flatnonzero(ascii_ & (lengths > 0) & ~decimal)
        shaped = pc.match_substring_regex(dictionary.take(pa.array(where)), _ASCII_VALUE)
        lookup[where] = shaped.to_numpy(zero_copy_only=False)
    numbers = matcher.dictionary(dictionary, lookup)
    if twelve.any():
        numbers[twelve] = matcher.digits(dictionary.filter(pa.array(twelve)))
    occurrences = np.bincount(indices, minlength=len(dictionary))
    return _Column(numbers[indices], dictionary, occurrences, lengths, decimal)


PATTERN_MAX_CHARS = 20  # no pattern value is longer: longer cells are not tried
_ANY_CELL_PATTERN = "|".join(f"(?:{pattern})" for pattern in CELL_PATTERNS.values())


def _count_patterns(column: _Column, report: FileReport) -> None:
    # Of digits alone only ten to twelve (a phone number, a My Number) can match a pattern.
    lengths = column.lengths
    tried = (lengths > 0) & (lengths <= PATTERN_MAX_CHARS) & (~column.decimal | ((lengths >= 10) & (lengths <= 12)))
    short = np.flatnonzero(tried)
    if not short.size:
        return
    values = column.dictionary.take(pa.array(short))
    # One pass of all patterns at once leaves the few cells that match any; each pattern then tries only those.
    some = pc.match_substring_regex(values, _ANY_CELL_PATTERN).to_numpy(zero_copy_only=False)
    if not some.any():
        return
    short, values = short[some], values.filter(pa.array(some))
    for name, pattern in CELL_PATTERNS.items():
        mask = pc.match_substring_regex(values, pattern).to_numpy(zero_copy_only=False)
        if name == "my_number" and mask.any():
            # The cell pattern admits ASCII digits and separators only: twelve digits once they are dropped.
            digits = pc.replace_substring_regex(values.filter(pa.array(mask)), "[- ]", "")
            mask[mask] = my_number_valid(digits.to_pylist())
        report.patterns[name] += int(column.occurrences[short[mask]].sum())


def _account_columns(
    arrays: list[pa.Array | None], encoded: list[_Column | None], matcher: Matcher
) -> list[np.ndarray]:
    """Bank, branch and number stand in three columns: each ordered triple of columns holding at least
    half short digit strings (a header row or a few typos aside) is tried as one account value."""
    digits = []
    for i, column in enumerate(encoded):
        if column is None:
            continue
        short = column.decimal & (column.lengths >= 1) & (column.lengths <= 7)
        filled = column.occurrences[column.lengths > 0].sum()
        if filled and column.occurrences[short].sum() * 2 >= filled:
            digits.append((i, int(column.lengths[short].max())))
    found = []
    for a, (ia, la) in enumerate(digits):
        for b, (ib, lb) in enumerate(digits[a + 1 :], a + 1):
            for ic, _ in digits[b + 1 :]:
                if la > 4 or lb > 3:
                    continue
                joined = pc.binary_join_element_wise(
                    pc.utf8_lpad(arrays[ia], 4, "0"),
                    pc.utf8_lpad(arrays[ib], 3, "0"),
                    pc.utf8_lpad(arrays[ic], 7, "0"),
                    "|",
                )
                found.append(_encode(joined, matcher).numbers)
    return found


def _corroborate(index: FingerprintIndex, hits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Residents with two elements in one row, and the cells that are theirs.

    For a pair of matched cells of a row in different elements, the index's pair table says whose two
    values they are; every cell of the row holding a value of that resident is then explained. Later
    pairs are looked up only in rows where one of their cells is not explained yet, and not when that
    one is a date beside an explained cell (a moving-in date is some other resident's birthday), so a
    row of one resident costs about one look-up however many columns it has, and a row of two
    residents, even of one household sharing an address cell, still finds both.
    """
    explained_all = np.zeros(hits.shape, dtype=bool)
    found = [np.zeros(0, np.int64)]
    present = np.flatnonzero((hits >= 0).any(axis=0))
    any_hit = np.flatnonzero((hits[:, present] >= 0).sum(axis=1) >= 2)  # rows with two matched cells
    if not any_hit.size:
        return found[0], explained_all
    # Column by column in memory (columns x rows): each step below reads whole columns.
    cells = np.ascontiguousarray(hits[np.ix_(any_hit, present)].T)
    valid = cells >= 0
    kinds = np.where(valid, index.element[np.maximum(cells, 0)], 255)
    date = kinds == Element.BIRTH_DATE
    explained = np.zeros(cells.shape, dtype=bool)
    unexplained = valid.any(axis=1)  # per column: a matched cell not explained yet
    for a in range(len(present)):
        for b in range(a + 1, len(present)):
            if not (unexplained[a] or unexplained[b]):
                continue
            ea, eb = explained[a], explained[b]
            date_beside = (ea & date[b]) | (eb & date[a])
            rows = np.flatnonzero(valid[a] & valid[b] & (kinds[a] != kinds[b]) & ~(ea & eb) & ~date_beside)
            if not rows.size:
                continue
            which, residents = index.residents_of_pairs(index.pair_key(cells[a, rows], cells[b, rows]))
            if not which.size:
                continue
            rows = rows[which]
            row_cells = cells[:, rows]
            own = index.own[residents]
            mine = np.zeros(row_cells.shape, dtype=bool)  # a cell is the resident's when its value is theirs
            for slot in range(own.shape[1]):
                mine |= row_cells == own[:, slot]
            c, r = np.nonzero(mine & valid[:, rows])
            explained[c, rows[r]] = True
            unexplained = (valid & ~explained).any(axis=1)
            found.append(residents)
    explained_all[np.ix_(any_hit, present)] = explained.T
    return np.concatenate(found), explained_all


Position = Callable[[int, int], dict[str, Any]]


def _scan_table(
    columns: Sequence[pa.ChunkedArray | pa.Array], matcher: Matcher, report: FileReport, position: Position
) -> None:
    """One block of rows; ``position(row, column)`` names a cell for the report."""
    arrays = [_as_strings(c) for c in columns]
    encoded = [_encode(a, matcher) if a is not None else None for a in arrays]
    for column in encoded:
        if column is not None:
            _count_patterns(column, report)
    numbers = [c.numbers for c in encoded if c is not None]
    places = [i for i, c in enumerate(encoded) if c is not None]
    accounts = _account_columns(arrays, encoded, matcher)
    if accounts:  # one account per row, however many triples of columns spell it
        numbers.append(np.max(accounts, axis=0))
        places.append(-1)
    if not numbers:
        return
    hits = np.column_stack(numbers)
    if not (hits >= 0).any():
        return
    index = matcher.index
    residents, corroborating = _corroborate(index, hits)
    report.matched[residents] = True
    _tally(index, hits, corroborating, report, lambda r, c: position(r, places[c]))


def _tally(
    index: FingerprintIndex, hits: np.ndarray, corroborating: np.ndarray, report: FileReport, position: Position
) -> None:
    """Count matched cells by element, corroborated apart from single ones, and keep the first positions.

    A date alone is not a single finding: nearly every date of the last century is some resident's
    birthday, so a column of moving-in dates would otherwise read as thousands of findings.
    """
    matched = hits >= 0
    kinds = index.element[np.maximum(hits, 0)]
    for flag, counts in ((True, report.elements), (False, report.uncorroborated)):
        mask = matched & (corroborating if flag else ~corroborating)
        if not flag:
            mask &= kinds != Element.BIRTH_DATE
        elements = np.bincount(kinds[mask], minlength=len(Element))
        for e in Element:
            counts[e.label] += int(elements[e])
        kept = report.positions if flag else report.single_positions
        if len(kept) >= MAX_POSITIONS:
            continue  # the first positions are kept already: no need to find these
        for r, c in zip(*np.nonzero(mask), strict=True):
            if len(kept) >= MAX_POSITIONS:
                break
            place = position(int(r), int(c)) | {"element": Element(int(index.element[hits[r, c]])).label}
            report.add_position(place, corroborated=flag)


# -------------------------------------------------------------------------------------------- text


def _candidates(lines: Sequence[str], starts: Sequence[int]) -> tuple[list[str], list[int]]:
    """Candidate values of free text and their character offsets: runs of up to MAX_WORDS words within a
    field, the same across a line break (a value wrapped onto the next line), and dates, numbers and
    accounts found by pattern wherever they stand."""
    values: list[str] = []
    offsets: list[int] = []
    previous: tuple[list[str], int] | None = None
    for line, start in zip(lines, starts, strict=True):
        fields = line.translate(_DELIMITERS).split("\x01")
        at = start
        first_words: list[str] = []
        words: list[str] = []
        for number, part in enumerate(fields):
            words = part.split()
            for i in range(len(words)):
                for j in range(i + 1, min(i + MAX_WORDS, len(words)) + 1):
                    values.append(" ".join(words[i:j]))
                    offsets.append(at)
            if number == 0:
                first_words = words
            at += len(part) + 1
        if previous is not None and first_words:
            tail, tail_at = previous
            for k in range(1, min(3, len(tail)) + 1):
                for m in range(1, min(3, len(first_words)) + 1):
                    values.append(" ".join(tail[-k:] + first_words[:m]))
                    offsets.append(tail_at)
        previous = (words, start) if words else None
        for m in TEXT_PATTERNS["era_date"].finditer(line):
            values.append(m[0])
            offsets.append(start + m.start())
        for m in _TEXT_VALUES.finditer(line):
            values.append(account_text(m[1], m[2], m[3]) if m[3] else m[0])
            offsets.append(start + m.start())
    return values, offsets


_TEXT_VALUES = re.compile(
    r"(?<![\d-])(\d{4})[-\s](\d{3})[-\s](\d{1,7})(?![\d-])"  # bank-branch-number
    r"|(?<!\d)\d{4}[-/年]\d{1,2}[-/月]\d{1,2}日?(?!\d)"  # western dates
    r"|(?<![\d-])\d{4}[- ]?\d{4}[- ]?\d{4}(?![\d-])"  # twelve digits
)


def _scan_text(lines: Sequence[str], matcher: Matcher, report: FileReport, place: Callable[[int], dict]) -> None:
    """Free text in chunks of lines; ``place(line number)`` names a line for the report (0-based in)."""
    for first in range(0, max(len(lines), 1), TEXT_CHUNK_LINES):
        chunk = lines[first : first + TEXT_CHUNK_LINES]
        starts = np.r_[0, np.cumsum([len(line) + 1 for line in chunk])[:-1]].astype(np.int64).tolist()
        for name, pattern in TEXT_PATTERNS.items():
            for line in chunk:
                found = [m[0] for m in pattern.finditer(line)]
                if name == "my_number" and found:
                    report.patterns[name] += int(valid_my_numbers(found).sum())
                else:
                    report.patterns[name] += len(found)
        values, offsets = _candidates(chunk, starts)
        numbers = matcher.strings(values)
        hit_at = np.flatnonzero(numbers >= 0)
        if not hit_at.size:
            continue
        where = np.asarray(offsets, dtype=np.int64)[hit_at]
        numbers = numbers[hit_at]
        # One hit per element and place, the longest value: a value found as a word run and again as a pattern
        # counts once, and so does an address whose street alone (without its 方書) matches too.
        lengths = np.fromiter((len(values[i]) for i in hit_at), dtype=np.int64, count=len(hit_at))
        elements = matcher.index.element[numbers].astype(np.int64)
        order = np.lexsort((-lengths, elements, where))
        spot = where[order] * len(Element) + elements[order]
        unique = order[np.r_[True, spot[1:] != spot[:-1]]]
        where, numbers = where[unique], numbers[unique]
        _window(
            matcher.index,
            where,
            numbers,
            report,
            lambda hit, w=where, s=starts, f=first: _text_place(hit, w, s, f, place),
        )


def _text_place(hit: int, where: np.ndarray, starts: list[int], first: int, place: Callable[[int], dict]) -> dict:
    line = int(np.searchsorted(starts, where[hit], side="right")) - 1
    return place(first + line) | {"column": int(where[hit] - starts[line]) + 1}


def _window(
    index: FingerprintIndex, where: np.ndarray, numbers: np.ndarray, report: FileReport, position: Callable
) -> None:
    """Two elements of one resident within WINDOW characters corroborate each other.

    A resident's hits in text order fall in runs of one element; the nearest hit of another element is the
    last of the run before or the first of the run after, so each hit is compared with those two."""
    hit, posting = index.postings(numbers)
    resident = index.residents[posting].astype(np.int64)
    element = SLOT_ELEMENT[index.slots[posting]]
    at = where[hit]
    order = np.lexsort((at, resident))
    resident, element, at, hit = resident[order], element[order], at[order], hit[order]
    new_run = np.r_[True, (resident[1:] != resident[:-1]) | (element[1:] != element[:-1])]
    run = np.cumsum(new_run) - 1
    firsts = np.flatnonzero(new_run)
    lasts = np.r_[firsts[1:] - 1, len(run) - 1]
    before, after = run - 1, run + 1
    has_before = (before >= 0) & (resident[lasts[np.maximum(before, 0)]] == resident)
    has_after = (after < len(firsts)) & (resident[firsts[np.minimum(after, len(firsts) - 1)]] == resident)
    good = has_before & (at - at[lasts[np.maximum(before, 0)]] <= WINDOW)
    good |= has_after & (at[firsts[np.minimum(after, len(firsts) - 1)]] - at <= WINDOW)
    report.matched[resident[good]] = True
    corroborating = np.zeros(len(numbers), dtype=bool)
    corroborating[hit[good]] = True
    _tally(index, numbers[:, None], corroborating[:, None], report, lambda r, _c: position(r))


# ------------------------------------------------------------------------------------------ sources


@dataclass
class _Source:
    name: str
    open: Callable[[], IO[bytes]]
    depth: int = 0
    path: str | None = None  # a file on disk (not an archive member): worker processes may read it too


def _sniff_encoding(head: bytes) -> str:
    """UTF-8 when the sample decodes as UTF-8, UTF-16 by BOM or by its zero bytes, else CP932 (as the import)."""
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    sample = head[:4096]
    if len(sample) >= 4 and sample[1::2].count(0) > len(sample) // 4:
        return "utf-16-le"
    if len(sample) >= 4 and sample[0::2].count(0) > len(sample) // 4:
        return "utf-16-be"
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
        return "utf-8"
    except UnicodeDecodeError:
        return "cp932"


def _decode(data: bytes) -> tuple[str, str]:
    encoding = _sniff_encoding(data[: 1 << 16])
    try:
        return data.decode(encoding), encoding
    except UnicodeDecodeError:
        fallback = "cp932" if encoding == "utf-8" else encoding
        return data.decode(fallback, errors="replace"), fallback


def _line_place(line: int) -> dict[str, Any]:
    return {"line": line + 1}


@dataclass(frozen=True)
class _CsvPlan:
    """How to read one CSV/TSV file, decided once from its head (and, for a large file, one pass over it)."""

    encoding: str
    delimiter: str
    columns: int | None  # fields of the first record, when its first line says so plainly
    quoted: bool  # whether a value may span lines: only a file with a quote character can hold one


def _csv_plan(source: _Source) -> _CsvPlan:
    with source.open() as f:
        head = f.read(1 << 16)
    encoding = _sniff_encoding(head)
    wide = "16" in encoding
    first_line = head.split(b"\n", 1)[0].decode(encoding if not wide else "latin-1", errors="replace")
    delimiter = "\t" if source.name.lower().endswith(".tsv") or first_line.count("\t") > first_line.count(",") else ","
    columns = None if wide else _first_record_fields(head, encoding, delimiter, whole=len(head) < 1 << 16)
    # A quote byte is a quote character in UTF-8 and CP932 alike (never part of another character).
    quoted = wide or _holds_quote(source)
    return _CsvPlan(encoding, delimiter, columns, quoted)


def _first_record_fields(head: bytes, encoding: str, delimiter: str, *, whole: bool) -> int | None:
    """Fields of the first record (blank lines skipped, as the reader skips them); None unless the head
    holds all of it. The reader is then told the columns, so a piece that starts with a ragged row is
    read with the file's columns, as the whole file would be."""
    text = head.decode(encoding, errors="replace")
    if not whole:
        text = text[: text.rfind("\n") + 1]
    try:
        records = (fields for fields in csv.reader(io.StringIO(text, newline=""), delimiter=delimiter) if fields)
        first = next(records, None)
        if first is None or (next(records, None) is None and not whole):
            return None  # the first record may go on past the head
    except csv.Error:
        return None
    return len(first)


def _holds_quote(source: _Source) -> bool:
    with source.open() as f:
        while piece := f.read(BLOCK_BYTES):
            if b'"' in piece:
                return True
    return False


def _read_csv(f: IO[bytes], plan: _CsvPlan, matcher: Matcher, report: FileReport) -> tuple[int, list[tuple[int, str]]]:
    """Scan the table of one stream of whole records; returns its rows and its ragged rows (number, text).

    Values are read unchecked and their UTF-8 checked once per distinct value (in :func:`_encode`), and a
    file without quotes is split at line ends without tracking quotes: together that halves the reading.
    Raises ``pa.ArrowInvalid`` for a stream that is not a table (the caller scans it as text).
    """
    names = [f"f{i}" for i in range(plan.columns or 4096)]
    read = pacsv.ReadOptions(
        block_size=BLOCK_BYTES,
        column_names=names if plan.columns else None,
        autogenerate_column_names=not plan.columns,
        use_threads=False,
        encoding="utf8" if plan.encoding in ("utf-8", "utf-8-sig") else plan.encoding,
    )
    ragged: list[tuple[int, str]] = []

    def keep_aside(row: pacsv.InvalidRow) -> str:
        """A row with too many or too few fields is still read, as text, after the table."""
        ragged.append((row.number or 0, row.text))
        return "skip"

    parse = pacsv.ParseOptions(delimiter=plan.delimiter, newlines_in_values=plan.quoted, invalid_row_handler=keep_aside)
    convert = pacsv.ConvertOptions(column_types=dict.fromkeys(names, pa.string()), check_utf8=False)
    row = 0
    reader = pacsv.open_csv(f, read_options=read, parse_options=parse, convert_options=convert)
    for batch in reader:
        base = row
        _scan_table(batch.columns, matcher, report, lambda r, c, base=base: _cell(base + r, c))
        row += batch.num_rows
    return row, ragged


def _scan_csv(source: _Source, matcher: Matcher, report: FileReport, pool: _Pool) -> None:
    plan = _csv_plan(source)
    report.encoding = plan.encoding
    try:
        if source.path is not None and pool.splits(source.path, plan):
            ragged = pool.scan_csv(source.path, plan, report)
        else:
            with source.open() as f:
                _, ragged = _read_csv(f, plan, matcher, report)
        if ragged:
            numbers = [n for n, _ in ragged]
            _scan_text([t for _, t in ragged], matcher, report, lambda i: {"line": numbers[i]})
    except (pa.ArrowInvalid, UnicodeDecodeError):
        # A ragged or damaged table is still text: scan what it says, line by line.
        fresh = FileReport(report.path, "text", report.matched)
        with source.open() as f:
            text, fresh.encoding = _decode(f.read())
        _scan_text(text.splitlines(), matcher, fresh, _line_place)
        report.__dict__.update(fresh.__dict__)


def _cell(row: int, column: int) -> dict[str, Any]:
    return {"line": row + 1} if column < 0 else {"line": row + 1, "column": column + 1}


# ------------------------------------------------------------------------------- large files, in parallel


def _pieces(path: str, quoted: bool, piece_bytes: int) -> list[tuple[int, int]]:
    """Byte ranges of whole records, about ``piece_bytes`` each. A range ends after a line end outside
    quotes: one with an even number of quote characters before it (RFC 4180 doubles a quote inside a
    value), counted in one pass over the file; a file without quotes is cut at the next line end."""
    size = os.path.getsize(path)
    cuts = [0]
    pos = quotes = 0  # offset of the next block read; quote characters before it
    step = min(1 << 20, piece_bytes)
    with open(path, "rb") as f:
        while cuts[-1] + piece_bytes < size:
            target = cuts[-1] + piece_bytes
            if not quoted and pos < target:
                pos = f.seek(target)
            block = f.read(step)
            if not block:
                break
            i = max(target - pos, 0)
            before = quotes + block.count(b'"', 0, i) if quoted else 0
            while (j := block.find(b"\n", i)) >= 0:
                before += block.count(b'"', i, j) if quoted else 0
                i = j + 1
                if before % 2 == 0:
                    cuts.append(pos + i)
                    break
            quotes += block.count(b'"') if quoted else 0
            pos += len(block)
    ends = [*cuts[1:], size]
    return [(a, b) for a, b in zip(cuts, ends, strict=True) if b > a]


_WORKER: dict[str, Matcher] = {}  # in a worker process: its own matcher, with its own memory of values


def _start_worker(index: FingerprintIndex, memo_limit: int) -> None:
    as_pool_worker()
    _WORKER["matcher"] = Matcher(index, memo_limit)


@dataclass
class _Piece:
    """What a worker found in one piece: rows and ragged rows are numbered from the piece's start."""

    report: FileReport | None  # None: the piece is not a table of the plan's encoding
    rows: int
    ragged: list[tuple[int, str]]


def _scan_piece(path: str, start: int, end: int, plan: _CsvPlan) -> _Piece:
    matcher = _WORKER["matcher"]
    report = FileReport(path, "csv", np.zeros(matcher.index.resident_count, dtype=bool))
    with open(path, "rb") as f:
        try:
            rows, ragged = _read_csv(_Range(f, start, end), plan, matcher, report)
        except (pa.ArrowInvalid, UnicodeDecodeError):
            return _Piece(None, 0, [])
    return _Piece(report, rows, ragged)


class _Range(io.RawIOBase):
    """Bytes ``start:end`` of a file, read as the CSV reader asks (a piece is never held whole)."""

    def __init__(self, f: IO[bytes], start: int, end: int) -> None:
        f.seek(start)
        self._f = f
        self._left = end - start

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        data = self._f.read(self._left if size < 0 else min(size, self._left))
        self._left -= len(data)
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def _shifted(position: dict[str, Any], rows: int) -> dict[str, Any]:
    return position | {"line": position["line"] + rows}


class _Pool:
    """Worker processes for large CSV/TSV files: a file is cut into pieces of whole records and each
    worker scans a piece with its own matcher, so a scan uses every core. Started (by fork, sharing the
    loaded index) on the first large file and kept until the scan ends."""

    def __init__(self, index: FingerprintIndex, memo_limit: int, piece_bytes: int) -> None:
        self.index = index
        self.memo_limit = memo_limit
        self.piece_bytes = piece_bytes
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        forks = sys.platform == "linux"  # Windows has no fork, and macOS frameworks are not safe across one
        self.workers = min(cores, MAX_WORKERS) if forks else 1
        self._pool: multiprocessing.pool.Pool | None = None

    def splits(self, path: str, plan: _CsvPlan) -> bool:
        """Whether a file is scanned in pieces: large, on disk, with its columns known from its first
        record, and in an encoding where a line-end byte is always a line end (UTF-16 is not)."""
        return (
            self.workers > 1
            and plan.columns is not None
            and "16" not in plan.encoding
            and os.path.getsize(path) > self.piece_bytes
        )

    def scan_csv(self, path: str, plan: _CsvPlan, report: FileReport) -> list[tuple[int, str]]:
        """Scan the pieces and add them up in file order; returns the ragged rows, numbered in the file.

        Raises ``pa.ArrowInvalid`` when a piece is not a table, as reading the file in one go would."""
        if self._pool is None:
            context = multiprocessing.get_context("fork")
            gc.freeze()  # a worker's collector then leaves the objects it inherits untouched, and so shared
            try:
                self._pool = context.Pool(self.workers, _start_worker, (self.index, self.memo_limit))
            finally:
                gc.unfreeze()
        # Four pieces per worker at least (a worker that drew a slow piece does not hold up the end), but not
        # smaller than a block of the reader.
        each = min(self.piece_bytes, max(os.path.getsize(path) // (4 * self.workers), BLOCK_BYTES))
        tasks = [(path, a, b, plan) for a, b in _pieces(path, plan.quoted, each)]
        rows = records = 0
        ragged: list[tuple[int, str]] = []
        for piece in self._pool.starmap(_scan_piece, tasks, chunksize=1):
            if piece.report is None:
                raise pa.ArrowInvalid(f"{path}: a piece of the file is not a table")
            part = piece.report
            report.matched |= part.matched
            for mine, theirs in (
                (report.elements, part.elements),
                (report.uncorroborated, part.uncorroborated),
                (report.patterns, part.patterns),
            ):
                for key, count in theirs.items():
                    mine[key] += count
            for position in part.positions:
                report.add_position(_shifted(position, rows), corroborated=True)
            for position in part.single_positions:
                report.add_position(_shifted(position, rows), corroborated=False)
            ragged += [(number + records, text) for number, text in piece.ragged]
            rows += piece.rows
            records += piece.rows + len(piece.ragged)
        return ragged

    def close(self, *, finished: bool) -> None:
        """Let the workers end; stop them at once when the scan did not finish (an error, Ctrl-C)."""
        if self._pool is not None:
            if finished:
                self._pool.close()
            else:
                self._pool.terminate()
            self._pool.join()


def _scan_parquet(source: _Source, matcher: Matcher, report: FileReport) -> None:
    with source.open() as f:
        parquet = pq.ParquetFile(f)
        names = parquet.schema_arrow.names
        row = 0
        for batch in parquet.iter_batches(batch_size=65_536):
            base = row
            _scan_table(
                batch.columns,
                matcher,
                report,
                lambda r, c, base=base: {"row": base + r + 1} | ({"column": names[c]} if c >= 0 else {}),
            )
            row += batch.num_rows


def _xlsx_value(value: object) -> str:
    if value is None:
        return ""
    if hasattr(value, "isoformat"):
        text = value.isoformat()  # type: ignore[union-attr]
        return text[:10] if text.endswith("T00:00:00") else text
    return str(value)


def _scan_xlsx(source: _Source, matcher: Matcher, report: FileReport) -> None:
    from openpyxl import load_workbook

    with source.open() as f:
        book = load_workbook(f, read_only=True, data_only=True)
        try:
            for sheet in book.worksheets:
                rows: list[list[str]] = []
                first = 1
                for values in sheet.iter_rows(values_only=True):
                    rows.append([_xlsx_value(v) for v in values])
                    if len(rows) == 10_000:
                        _scan_rows(rows, first, sheet.title, matcher, report)
                        first += len(rows)
                        rows = []
                _scan_rows(rows, first, sheet.title, matcher, report)
        finally:
            book.close()


def _xls_value(cell: Any, datemode: int) -> str:
    """A cell as its text: a whole number without ``.0`` (a My Number typed as a number), a date as ISO."""
    import xlrd

    if cell.ctype == xlrd.XL_CELL_DATE:
        try:
            return _xlsx_value(xlrd.xldate_as_datetime(cell.value, datemode))
        except (xlrd.xldate.XLDateError, OverflowError):
            return ""
    if cell.ctype == xlrd.XL_CELL_NUMBER and float(cell.value).is_integer():
        return str(int(cell.value))
    if cell.ctype in (xlrd.XL_CELL_EMPTY, xlrd.XL_CELL_BLANK, xlrd.XL_CELL_ERROR, xlrd.XL_CELL_BOOLEAN):
        return ""
    return str(cell.value)


def _scan_xls(source: _Source, matcher: Matcher, report: FileReport) -> None:
    """An Excel 97–2003 workbook (at most 65,536 rows a sheet), read whole as xlrd does, a sheet at a time."""
    import xlrd

    with source.open() as f:
        data = f.read()
    try:
        book = xlrd.open_workbook(file_contents=data, on_demand=True)
    except (xlrd.XLRDError, xlrd.compdoc.CompDocError) as exc:
        if "encrypted" in str(exc):
            report.format, report.protected = "office", XLS_PROTECTED
        else:
            report.format, report.skipped = "damaged", DAMAGED
        return
    try:
        for index in range(book.nsheets):
            sheet = book.sheet_by_index(index)
            for first in range(0, sheet.nrows, XLS_ROWS):
                rows = [
                    [_xls_value(cell, book.datemode) for cell in sheet.row(r)]
                    for r in range(first, min(first + XLS_ROWS, sheet.nrows))
                ]
                _scan_rows(rows, first + 1, sheet.name, matcher, report)
            book.unload_sheet(index)
    finally:
        book.release_resources()


def _scan_rows(
    rows: list[list[str]],
    first: int,
    sheet: str,
    matcher: Matcher,
    report: FileReport,
) -> None:
    from openpyxl.utils import get_column_letter as letter

    if not rows:
        return
    width = max(len(r) for r in rows)
    columns = [pa.array([r[i] if i < len(r) else "" for r in rows], pa.string()) for i in range(width)]

    def position(r: int, c: int) -> dict[str, Any]:
        return {"cell": f"{sheet}!{letter(c + 1)}{first + r}"} if c >= 0 else {"cell": f"{sheet}!{first + r}"}

    _scan_table(columns, matcher, report, position)


def _json_rows(value: object, path: str, out: list[tuple[str, list[str], list[str]]]) -> None:
    """Each object (or array) with scalar members becomes a row: its members are the cells, named by path."""
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    keys, cells = [], []
    for key, member in items:
        child = f"{path}.{key}" if isinstance(key, str) else f"{path}[{key}]"
        if isinstance(member, dict | list):
            _json_rows(member, child, out)
        elif member is not None:
            keys.append(child)
            cells.append(str(member))
    if cells:
        out.append((path, keys, cells))


def _scan_json(source: _Source, matcher: Matcher, report: FileReport, *, lines: bool) -> None:
    with source.open() as f:
        text, report.encoding = _decode(f.read())
    try:
        documents = [json.loads(x) for x in text.splitlines() if x.strip()] if lines else [json.loads(text)]
    except ValueError:
        report.format = "text"
        _scan_text(text.splitlines(), matcher, report, _line_place)
        return
    rows: list[tuple[str, list[str], list[str]]] = []
    for number, document in enumerate(documents):
        _json_rows(document, f"$[{number}]" if lines else "$", rows)
    if not rows:
        return
    width = max(len(cells) for _, _, cells in rows)
    columns = [pa.array([c[i] if i < len(c) else "" for _, _, c in rows], pa.string()) for i in range(width)]

    def position(r: int, c: int) -> dict[str, Any]:
        path, keys, _ = rows[r]
        return {"path": keys[c] if 0 <= c < len(keys) else path}

    _scan_table(columns, matcher, report, position)


_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"


def _docx_paragraphs(f: IO[bytes]) -> list[str]:
    """Paragraph texts of word/document.xml; runs joined, tabs and breaks kept as spaces and lines."""
    with zipfile.ZipFile(f) as z, z.open("word/document.xml") as xml:
        paragraphs, parts = [], []
        for event, element in ElementTree.iterparse(xml, events=("end",)):
            if element.tag == f"{_W}t":
                parts.append(element.text or "")
            elif element.tag == f"{_W}tab":
                parts.append("\t")
            elif element.tag in (f"{_W}br", f"{_W}cr"):
                parts.append("\n")
            elif element.tag == f"{_W}p":
                paragraphs.append("".join(parts))
                parts = []
                element.clear()
            del event
    return paragraphs


def _scan_docx(source: _Source, matcher: Matcher, report: FileReport) -> None:
    with source.open() as f:
        paragraphs = _docx_paragraphs(f)
    lines, places = [], []
    for number, paragraph in enumerate(paragraphs, 1):
        for line in paragraph.split("\n"):
            lines.append(line)
            places.append(number)
    _scan_text(lines, matcher, report, lambda i: {"paragraph": places[i]})


def _scan_pdf(source: _Source, matcher: Matcher, report: FileReport) -> None:
    from pypdf import PdfReader
    from pypdf.errors import FileNotDecryptedError, PdfReadError

    with source.open() as f:
        try:  # a PDF with only an owner password (no printing, say) opens with the empty password, and is read
            pages = [page.extract_text() or "" for page in PdfReader(f).pages]
        except FileNotDecryptedError:
            report.protected = "PDF password (only as strong as the password chosen)"
            return
        except (PdfReadError, ValueError, KeyError):
            report.skipped = DAMAGED
            return
    lines, places = [], []
    for number, text in enumerate(pages, 1):
        for line_number, line in enumerate(text.splitlines(), 1):
            lines.append(line)
            places.append((number, line_number))
    _scan_text(lines, matcher, report, lambda i: {"page": places[i][0], "line": places[i][1]})


def _unread_by_name(name: str) -> str | None:
    return UNREAD_SUFFIXES.get(Path(name.lower()).suffix)


def _scan_rtf(source: _Source, matcher: Matcher, report: FileReport) -> None:
    """An RTF document (by its first bytes: Word saves them under .doc too), its escapes read."""
    with source.open() as f:
        text = rtf.rtf_text(f.read())
    _scan_text(text.splitlines(), matcher, report, _line_place)


def _scan_plain(source: _Source, matcher: Matcher, report: FileReport) -> None:
    with source.open() as f:
        data = f.read()
    if b"\x00" in data[:8192] and "16" not in _sniff_encoding(data[:8192]):
        report.skipped = _unread_by_name(source.name) or "binary file of a format the scanner does not read"
        return
    text, report.encoding = _decode(data)
    _scan_text(text.splitlines(), matcher, report, _line_place)


def _is_sealed_package(z: zipfile.ZipFile) -> bool:
    names = z.namelist()
    return names[:1] == ["manifest.json"] and "payload.age" in names


@contextmanager
def _spooled(z: zipfile.ZipFile, member: zipfile.ZipInfo) -> Iterator[Callable[[], IO[bytes]]]:
    """A member as a seekable file (pyarrow and zipfile need one): in memory when small, else a private file."""
    with tempfile.SpooledTemporaryFile(max_size=64 << 20) as spool:
        with z.open(member) as src:
            shutil.copyfileobj(src, spool, 1 << 20)

        def reopen() -> IO[bytes]:
            spool.seek(0)
            return _Unclosed(spool)

        yield reopen


class _Unclosed(io.RawIOBase):
    """A view of the spooled member that the readers may close without losing it for the next reader."""

    def __init__(self, f: IO[bytes]) -> None:
        self._f = f

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._f.seek(offset, whence)

    def tell(self) -> int:
        return self._f.tell()

    def readinto(self, buffer: Any) -> int:
        data = self._f.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


class _Scanner:
    def __init__(self, matcher: Matcher, pool: _Pool) -> None:
        self.matcher = matcher
        self.pool = pool
        self.files: list[FileReport] = []

    def report(self, name: str, kind: str) -> FileReport:
        report = FileReport(name, kind, np.zeros(self.matcher.index.resident_count, dtype=bool))
        self.files.append(report)
        return report

    def walk(self, path: Path) -> None:
        if path.is_symlink():
            self.report(str(path), "link").skipped = "symbolic link, not followed"
        elif path.is_dir():
            for folder, dirs, names in os.walk(path):
                dirs.sort()
                for name in sorted(names):
                    self.walk(Path(folder) / name)
        elif path.is_file():
            self.source(_Source(str(path), lambda: open(path, "rb"), path=str(path)))  # noqa: SIM115
        elif not path.exists():
            raise DlpError(f"{path}: no such file or folder")

    def source(self, source: _Source) -> None:
        lower = source.name.lower()
        try:
            with source.open() as f:
                head = f.read(64)
            if head.startswith(AGE_MAGIC):
                self.report(source.name, "age").protected = "age-encrypted"
            elif head.startswith(b"PK\x03\x04"):
                self.zipped(source, lower)
            elif head.startswith(OLE2_MAGIC):
                self.compound(source)
            elif rtf.is_rtf(head):
                _scan_rtf(source, self.matcher, self.report(source.name, "rtf"))
            elif head.startswith(b"%PDF"):
                _scan_pdf(source, self.matcher, self.report(source.name, "pdf"))
            elif head.startswith(b"PAR1") or lower.endswith(".parquet"):
                _scan_parquet(source, self.matcher, self.report(source.name, "parquet"))
            elif lower.endswith(MAIL_SUFFIXES):
                self.mail(source)
            else:
                kind = TEXT_SUFFIXES.get(Path(lower).suffix, "text")
                report = self.report(source.name, kind)
                if kind == "csv":
                    _scan_csv(source, self.matcher, report, self.pool)
                elif kind in ("json", "jsonl"):
                    _scan_json(source, self.matcher, report, lines=kind == "jsonl")
                else:
                    _scan_plain(source, self.matcher, report)
        except OSError as exc:
            self.report(source.name, "unreadable").skipped = f"cannot be read ({exc.strerror or type(exc).__name__})"
        except (zipfile.BadZipFile, pa.ArrowException, ElementTree.ParseError, KeyError, EOFError, RecursionError):
            self.report(source.name, "damaged").skipped = DAMAGED
        except Exception as exc:  # one unreadable file must not end the sweep of a drive; its type is named
            self.report(source.name, "unreadable").skipped = f"could not be read ({type(exc).__name__})"

    def mail(self, source: _Source) -> None:
        """An e-mail (.eml): its body is scanned as text and each attachment as a file of its own, decoded from
        base64 or quoted-printable (a list mailed as an attachment is the commonest leak; an encrypted ZIP
        attached to it is listed as protected). Read as plain text, an attachment is only base64."""
        from email import message_from_binary_file, policy
        from email.message import EmailMessage

        if source.depth >= MAX_DEPTH:
            self.report(source.name, "mail").skipped = f"e-mail nested deeper than {MAX_DEPTH}"
            return
        with source.open() as f:
            message = message_from_binary_file(f, _class=EmailMessage, policy=policy.default)
        body = message.get_body(preferencelist=("plain", "html"))
        text = body.get_content() if body is not None else ""
        if body is not None and body.get_content_subtype() == "html":
            text = _html_text(text)
        if text.strip():
            self.nested(source, "(本文).txt", text.encode("utf-8"))
        for number, part in enumerate(message.iter_attachments(), 1):
            name = part.get_filename() or f"attachment-{number}"
            if part.get_content_maintype() == "message":  # a forwarded message, read as an e-mail of its own
                name += "" if name.lower().endswith(MAIL_SUFFIXES) else ".eml"
                self.nested(source, name, part.get_content().as_bytes())
            else:  # the bytes as they were attached: the scanner tells their encoding, as for any file
                self.nested(source, name, part.get_payload(decode=True) or b"")

    def nested(self, source: _Source, name: str, data: bytes) -> None:
        """A file inside an e-mail (its body, an attachment), read as any file is."""
        self.source(_Source(f"{source.name}!{name}", lambda: io.BytesIO(data), source.depth + 1))

    def compound(self, source: _Source) -> None:
        """An OLE2 file: an Excel, Word or PowerPoint 97–2003 file and an Outlook message are read; a
        password-protected Office file is protected; any other is named as not read, so a drive holding one is
        never called clean."""
        import olefile

        try:
            with source.open() as f, olefile.OleFileIO(f) as ole:
                streams = {"/".join(parts) for parts in ole.listdir()}
                if "EncryptedPackage" not in streams and self.read_compound(source, ole, streams):
                    return
        except (ValueError, IndexError, struct.error):  # olefile's errors on a broken container (OSError too)
            self.report(source.name, "damaged").skipped = DAMAGED
            return
        if "EncryptedPackage" in streams:
            self.report(source.name, "office").protected = OFFICE_PROTECTED
        elif "Workbook" in streams or "Book" in streams:
            _scan_xls(source, self.matcher, self.report(source.name, "xls"))
        else:
            unread = next((OLE2_UNREAD[s] for s in OLE2_UNREAD if s in streams), None) or _unread_by_name(source.name)
            self.report(source.name, "ole2").skipped = unread or "OLE2 file of a format the scanner does not read"

    def read_compound(self, source: _Source, ole: ole2.OleFile, streams: set[str]) -> bool:
        """A Word or PowerPoint 97–2003 file or an Outlook message, read from the open container; False for any
        other OLE2 file."""
        if "WordDocument" in streams:
            self.word(source, ole)
        elif ole2.is_message(streams):
            self.outlook(source, ole, [])
        elif ole2.SLIDES in streams:
            self.slides(source, ole, streams)
        else:
            return False
        return True

    def word(self, source: _Source, ole: ole2.OleFile) -> None:
        """A Word 97–2003 document, its text read line by line as a plain text file's (a table's row on one
        line, its cells apart)."""
        try:
            text = ole2.word_text(ole)
        except ole2.NotRead as exc:
            self.report(source.name, "doc").skipped = exc.reason
            return
        if text is None:  # counted among the files behind a password, as a protected workbook is
            self.report(source.name, "office").protected = WORD_PROTECTED
            return
        report = self.report(source.name, "doc")
        _scan_text(text.splitlines(), self.matcher, report, _line_place)

    def slides(self, source: _Source, ole: ole2.OleFile, streams: set[str]) -> None:
        """A PowerPoint 97–2003 file, its text blocks one after another as lines of text (a table's cells too)."""
        if ole2.SLIDES_ENCRYPTED in streams:
            self.report(source.name, "office").protected = SLIDES_PROTECTED
            return
        lines = [line for block in ole2.slides_text(ole) for line in block.split("\n")]
        _scan_text(lines, self.matcher, self.report(source.name, "ppt"), _line_place)

    def outlook(self, source: _Source, ole: ole2.OleFile, root: list[str]) -> None:
        """An Outlook message (.msg), read as an e-mail is (:meth:`mail`): its body as text, each attachment as a
        file of its own, an attached message as a message."""
        if source.depth >= MAX_DEPTH:
            self.report(source.name, "msg").skipped = f"e-mail nested deeper than {MAX_DEPTH}"
            return
        message = ole2.read_message(ole, root)
        if message.html:
            text, _ = _decode(message.body)
            self.nested(source, "(本文).txt", _html_text(text).encode("utf-8"))
        elif message.body.strip():
            self.nested(source, "(本文).txt", message.body)
        if message.rtf:
            try:
                self.nested(source, "(本文).rtf", rtf.decompress_rtf(message.rtf))
            except (ValueError, IndexError, struct.error):
                self.report(f"{source.name}!(本文).rtf", "rtf").skipped = DAMAGED
        for attached in message.attachments:
            name = f"{source.name}!{attached.name}"
            if attached.not_read is not None:
                self.report(name, "ole2").skipped = attached.not_read
            elif attached.message is not None:
                inner = name if attached.name.lower().endswith(".msg") else f"{name}.msg"
                self.outlook(_Source(inner, source.open, source.depth + 1), ole, attached.message)
            else:
                self.nested(source, attached.name, attached.data)

    def zipped(self, source: _Source, lower: str) -> None:
        with source.open() as f, zipfile.ZipFile(f) as z:
            if _is_sealed_package(z):
                self.report(source.name, "cseal").protected = "sealed package"
                return
            if (document := odf.kind(z)) is not None:
                if odf.encrypted(z):
                    self.report(source.name, "office").protected = ODF_PROTECTED
                else:
                    report = self.report(source.name, document)
                    _scan_text(
                        [t for line in odf.lines(z) for t in line.split("\n")], self.matcher, report, _line_place
                    )
                return
            kind, parts = ZIP_FORMATS.get(Path(lower).suffix), set(z.namelist())
            if kind == "xlsx" or "xl/workbook.xml" in parts:
                _scan_xlsx(source, self.matcher, self.report(source.name, "xlsx"))
                return
            if kind == "docx" or "word/document.xml" in parts:
                _scan_docx(source, self.matcher, self.report(source.name, "docx"))
                return
            if "xl/workbook.bin" in parts:
                self.report(source.name, "xlsb").skipped = XLSB_UNREAD
                return
            if source.depth >= MAX_DEPTH:
                self.report(source.name, "zip").skipped = f"archive nested deeper than {MAX_DEPTH}"
                return
            for member in z.infolist():
                if member.is_dir():
                    continue
                name = f"{source.name}!{_member_name(member)}"
                if member.flag_bits & 0x1:
                    self.report(name, "zip").protected = "ZIP-encrypted (weak: ZipCrypto or a guessable password)"
                    continue
                with _spooled(z, member) as reopen:
                    self.source(_Source(name, reopen, source.depth + 1))


def _html_text(text: str) -> str:
    """An HTML body's text: tags out, entities read."""
    return html.unescape(re.sub(r"<[^>]*>", " ", text))


UTF8_NAME = 0x800  # a ZIP member's flag bit 11: its name is UTF-8


def _member_name(member: zipfile.ZipInfo) -> str:
    """A member's name as its maker wrote it, for the report. A name not flagged UTF-8 has no stated encoding,
    and zipfile reads it as CP437: Explorer on a Japanese Windows writes CP932 (給付金/住民一覧.csv came out as
    ïïòtïα/ÅZû»êΩùù.csv), and some tools write UTF-8 without the flag. Each is tried before CP437 is kept."""
    name = member.filename
    if member.flag_bits & UTF8_NAME or name.isascii():
        return name
    raw = name.encode("cp437")
    for encoding in ("utf-8", "cp932"):
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    return name


def scan(
    paths: Iterable[Path], index: FingerprintIndex, *, memo_limit: int = MEMO_LIMIT, piece_bytes: int = PIECE_BYTES
) -> ScanReport:
    """Scan files and folders (and archives inside them) against the index; nothing is written.

    A CSV/TSV file larger than ``piece_bytes`` is scanned in pieces by worker processes, one per core."""
    paths = [Path(p) for p in paths]
    if not paths:
        raise DlpError("no path to scan; name files or folders")
    pool = _Pool(index, memo_limit, piece_bytes)
    scanner = _Scanner(Matcher(index, memo_limit), pool)
    finished = False
    try:
        for path in paths:
            scanner.walk(path)
        finished = True
    finally:
        pool.close(finished=finished)
    matched = np.zeros(index.resident_count, dtype=bool)
    for report in scanner.files:
        matched |= report.matched
    return ScanReport([str(p) for p in paths], index.created, index.resident_count, scanner.files, matched)
