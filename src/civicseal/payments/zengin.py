"""Zengin 総合振込 files (type code 21): record layouts, a writer and a checker for files made by anyone.

A file is records of exactly 120 bytes (122 when each ends with CR LF): one header (data type 1), the
transfers (data type 2), a trailer (8) with their count and total, and an end record (9); several
header-data-trailer groups may precede the end record. Numeric fields are right-aligned and zero-filled,
text fields left-aligned and space-filled, in JIS X 0201 (one byte a character, read as Shift_JIS).

Each record is checked first with one compiled pattern of its whole layout; only a record that fails is
walked field by field to name the byte that is wrong, so a city-sized file checks in C, not per field.
Problems name the record number, the byte position inside the record (1-based, as the layout tables in
bank manuals count) and the field, never the value: a payee name is personal data.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from typing import Final, NamedTuple

from civicseal.payments.errors import PaymentsError
from civicseal.payments.kana import ZENGIN_BYTES
from civicseal.register.banks import branch_exists

RECORD: Final = 120
TYPE_CODE: Final = "21"  # 総合振込
CODE_CLASS_JIS: Final = "0"  # JIS / Shift_JIS; 1 would be EBCDIC
TELE_TRANSFER: Final = "7"  # 振込指定区分: テレ振込
ACCOUNT_TYPES: Final = ("1", "2", "4", "9")  # 普通, 当座, 貯蓄, その他
MAX_AMOUNT: Final = 10**10 - 1  # the amount field holds 10 digits
MAX_COUNT: Final = 10**6 - 1  # the trailer counts in 6 digits


class Kind(StrEnum):
    NUMBER = "N"  # ASCII digits, right-aligned, zero-filled
    TEXT = "C"  # Zengin characters, left-aligned, space-filled
    DUMMY = "X"  # spaces


@dataclass(frozen=True)
class Field:
    name: str
    length: int
    kind: Kind
    blank_ok: bool = False  # a numeric field that may be left all spaces
    choices: tuple[str, ...] = ()  # the only values a numeric or one-byte field may take


@dataclass(frozen=True)
class Layout:
    """One record type: its data type digit and fields, in order, summing to 120 bytes."""

    name: str
    data_type: str
    fields: tuple[Field, ...]
    slices: dict[str, slice] = field(init=False, repr=False)  # where each field lies in a record
    pattern: re.Pattern[bytes] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if sum(f.length for f in self.fields) != RECORD:
            raise AssertionError(f"{self.name} layout is not {RECORD} bytes")
        slices, offset = {}, 0
        for f in self.fields:
            slices[f.name] = slice(offset, offset + f.length)
            offset += f.length
        object.__setattr__(self, "slices", slices)
        object.__setattr__(self, "pattern", re.compile(b"".join(_field_pattern(f) for f in self.fields), re.DOTALL))

    def position(self, name: str) -> int:
        """The 1-based byte where a field starts, as bank manuals count."""
        return self.slices[name].start + 1


_TEXT_CLASS = b"[" + b"".join(re.escape(bytes([b])) for b in sorted(ZENGIN_BYTES)) + b"]"
_NOT_TEXT = bytes(sorted(ZENGIN_BYTES))  # deleted by translate: what is left is not allowed


def _field_pattern(f: Field) -> bytes:
    n = str(f.length).encode()
    if f.kind is Kind.DUMMY:
        return b" {" + n + b"}"
    if f.kind is Kind.TEXT:
        return _TEXT_CLASS + b"{" + n + b"}"
    body = b"(?:" + b"|".join(c.encode() for c in f.choices) + b")" if f.choices else b"[0-9]{" + n + b"}"
    return b"(?:" + body + b"| {" + n + b"})" if f.blank_ok else body


def _data_type(code: str) -> Field:
    return Field("data_type", 1, Kind.NUMBER, choices=(code,))


HEADER = Layout(
    "header",
    "1",
    (
        _data_type("1"),
        Field("type_code", 2, Kind.NUMBER, choices=(TYPE_CODE,)),
        Field("code_class", 1, Kind.NUMBER, choices=(CODE_CLASS_JIS,)),
        Field("payer_code", 10, Kind.NUMBER),
        Field("payer_name", 40, Kind.TEXT),
        Field("pay_date", 4, Kind.NUMBER),  # MMDD
        Field("payer_bank", 4, Kind.NUMBER),
        Field("payer_bank_name", 15, Kind.TEXT),
        Field("payer_branch", 3, Kind.NUMBER),
        Field("payer_branch_name", 15, Kind.TEXT),
        Field("payer_account_type", 1, Kind.NUMBER, choices=ACCOUNT_TYPES),
        Field("payer_account", 7, Kind.NUMBER),
        Field("dummy", 17, Kind.DUMMY),
    ),
)
DATA = Layout(
    "data",
    "2",
    (
        _data_type("2"),
        Field("bank_code", 4, Kind.NUMBER),
        Field("bank_name", 15, Kind.TEXT),
        Field("branch_code", 3, Kind.NUMBER),
        Field("branch_name", 15, Kind.TEXT),
        Field("clearing_house", 4, Kind.NUMBER, blank_ok=True),
        Field("account_type", 1, Kind.NUMBER, choices=ACCOUNT_TYPES),
        Field("account_number", 7, Kind.NUMBER),
        Field("payee_name", 30, Kind.TEXT),
        Field("amount", 10, Kind.NUMBER),
        Field("new_code", 1, Kind.NUMBER, choices=("0", "1", "2")),
        Field("customer_code_1", 10, Kind.TEXT),
        Field("customer_code_2", 10, Kind.TEXT),
        Field("transfer_type", 1, Kind.NUMBER, blank_ok=True, choices=("7", "8")),
        Field("edi_flag", 1, Kind.TEXT),  # 識別表示: Y when the customer codes carry EDI information
        Field("dummy", 7, Kind.DUMMY),
    ),
)
TRAILER = Layout(
    "trailer",
    "8",
    (_data_type("8"), Field("count", 6, Kind.NUMBER), Field("total", 12, Kind.NUMBER), Field("dummy", 101, Kind.DUMMY)),
)
END = Layout("end", "9", (_data_type("9"), Field("dummy", 119, Kind.DUMMY)))
LAYOUTS: Final = {layout.data_type.encode(): layout for layout in (HEADER, DATA, TRAILER, END)}
# Which record may follow which (None: the start of the file).
_FOLLOWS: Final = {None: b"1", b"1": b"28", b"2": b"28", b"8": b"19", b"9": b""}


# --------------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------------


Value = str | int | None


def _encode_column(f: Field, values: Sequence[Value]) -> list[bytes]:
    """One field of many records at once: encoded and checked as one joined string, in C."""
    if f.kind is Kind.DUMMY or all(v is None for v in values):
        return [b" " * f.length] * len(values)
    texts = ["" if v is None else str(v) for v in values]
    if f.kind is Kind.NUMBER:
        width = f.length
        if not ("".join(texts).isdigit() and "".join(texts).isascii() and min(map(len, texts)) > 0):
            raise PaymentsError(f"{f.name}: not a number of at most {width} digits")
        if max(map(len, texts)) > width:
            raise PaymentsError(f"{f.name}: not a number of at most {width} digits")
        return "\n".join([t.zfill(width) for t in texts]).encode("ascii").split(b"\n")
    try:
        joined = "\n".join(texts).encode("cp932")
    except UnicodeEncodeError:
        raise PaymentsError(f"{f.name}: holds characters a Zengin file cannot carry") from None
    if joined.translate(None, _NOT_TEXT + b"\n") or joined.count(b"\n") != len(texts) - 1:
        raise PaymentsError(f"{f.name}: holds characters a Zengin file cannot carry")
    width = f.length
    return [r[:width].ljust(width, b" ") for r in joined.split(b"\n")]  # byte-exact: one byte a character


def encode_records(layout: Layout, columns: Mapping[str, Sequence[Value] | Value], count: int) -> list[bytes]:
    """``count`` records of one layout from columns (a sequence each, or one value for every record);
    fields not given are blank (spaces)."""
    parts = []
    for f in layout.fields:
        given = layout.data_type if f.name == "data_type" else columns.get(f.name)
        if isinstance(given, Sequence) and not isinstance(given, str):
            parts.append(_encode_column(f, given))
        else:
            parts.append(_encode_column(f, [given]) * count)
    return list(map(b"".join, zip(*parts, strict=True)))


def encode_record(layout: Layout, values: Mapping[str, Value]) -> bytes:
    """One 120-byte record; fields missing from ``values`` are blank (spaces)."""
    return encode_records(layout, values, 1)[0]


@dataclass(frozen=True)
class Payer:
    """The city's side of a transfer: who pays, from which account, on which day."""

    code: str  # 振込依頼人コード, given by the bank
    name: str  # half-width kana
    bank_code: str
    bank_name: str
    branch_code: str
    branch_name: str
    account_type: int
    account_number: str
    pay_date: date


class Transfer(NamedTuple):
    """One payee record; ``customer_code`` lets a bank's return point back at it without personal data."""

    bank_code: str
    bank_name: str
    branch_code: str
    branch_name: str
    account_type: int
    account_number: str
    payee_name: str  # half-width kana, already converted
    amount: int
    customer_code: str


def _data_records(transfers: Sequence[Transfer]) -> list[bytes]:
    columns: dict[str, Sequence[Value] | Value] = dict(zip(Transfer._fields, zip(*transfers, strict=True), strict=True))
    columns["customer_code_1"] = columns.pop("customer_code")
    columns |= {"new_code": 0, "transfer_type": TELE_TRANSFER, "edi_flag": " "}
    return encode_records(DATA, columns, len(transfers))


def write_transfer_file(payer: Payer, transfers: Sequence[Transfer], *, crlf: bool = False) -> bytes:
    """The bytes of a one-group transfer file; checked in full (trailer count and total included) before
    they are handed back, so a file that a bank would refuse is never written."""
    total = sum(t.amount for t in transfers)
    if len(transfers) > MAX_COUNT:
        raise PaymentsError(f"a file holds at most {MAX_COUNT} transfers; split the batch")
    records = [
        encode_record(
            HEADER,
            {
                "type_code": TYPE_CODE,
                "code_class": CODE_CLASS_JIS,
                "payer_code": payer.code,
                "payer_name": payer.name,
                "pay_date": payer.pay_date.strftime("%m%d"),
                "payer_bank": payer.bank_code,
                "payer_bank_name": payer.bank_name,
                "payer_branch": payer.branch_code,
                "payer_branch_name": payer.branch_name,
                "payer_account_type": payer.account_type,
                "payer_account": payer.account_number,
            },
        ),
        *_data_records(transfers),
        encode_record(TRAILER, {"count": len(transfers), "total": total}),
        encode_record(END, {}),
    ]
    data = (b"\r\n" if crlf else b"").join(records) + (b"\r\n" if crlf else b"")
    checked = check(data)
    if checked.problems or (checked.count, checked.total) != (len(transfers), total):
        raise PaymentsError(f"the file did not check ({checked.problems[:1]}); nothing was written")
    return data


# --------------------------------------------------------------------------------------------------
# Checking
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    record: int  # 1-based; 0 for the file as a whole
    position: int  # 1-based byte inside the record; 0 when the record as a whole is wrong
    field: str
    rule: str

    def __str__(self) -> str:
        if not self.record:
            return f"the file: {self.rule}"
        at = f", byte {self.position}" if self.position else ""
        return f"record {self.record}{at} ({self.field}): {self.rule}"

    def as_dict(self) -> dict[str, object]:
        return {"record": self.record, "position": self.position, "field": self.field, "rule": self.rule}


@dataclass(frozen=True)
class DataRecord:
    """A transfer as a file carries it (the parsed form of a data record)."""

    record: int
    bank_code: str
    branch_code: str
    account_type: int
    account_number: str
    payee_name: str
    amount: int
    customer_code: str


def _digits_or_zero(value: bytes) -> int:
    return int(value) if value.isdigit() else 0


def _parse_transfer(number: int, record: bytes) -> DataRecord:
    f = DATA.slices
    return DataRecord(
        record=number,
        bank_code=record[f["bank_code"]].decode("ascii", "replace"),
        branch_code=record[f["branch_code"]].decode("ascii", "replace"),
        account_type=_digits_or_zero(record[f["account_type"]]),
        account_number=record[f["account_number"]].decode("ascii", "replace"),
        payee_name=record[f["payee_name"]].decode("cp932", "replace").rstrip(" "),
        amount=_digits_or_zero(record[f["amount"]]),
        customer_code=record[f["customer_code_1"]].decode("cp932", "replace").strip(" "),
    )


@dataclass
class CheckResult:
    size: int
    line_end: str  # "none", "CRLF" or "LF"
    records: int = 0
    groups: int = 0
    count: int = 0  # data records
    total: int = 0  # their amounts
    problems: list[Problem] = field(default_factory=list)
    data_records: list[tuple[int, bytes]] = field(default_factory=list, repr=False)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def transfers(self) -> list[DataRecord]:
        """The data records parsed (on demand: checking a city's file does not need them as objects)."""
        return [_parse_transfer(number, record) for number, record in self.data_records]


def _field_problems(number: int, layout: Layout, record: bytes) -> Iterator[Problem]:
    for f in layout.fields:
        where = layout.slices[f.name]
        value, start = record[where], where.start
        if f.kind is Kind.DUMMY:
            if value.strip(b" "):
                bad = len(value) - len(value.lstrip(b" "))
                yield Problem(number, start + bad + 1, f.name, "dummy field is not spaces")
        elif f.kind is Kind.TEXT:
            bad = next((i for i, b in enumerate(value) if b not in ZENGIN_BYTES), None)
            if bad is not None:
                yield Problem(number, start + bad + 1, f.name, "character outside the Zengin set")
        elif f.blank_ok and value == b" " * f.length:
            continue
        elif not (value.isdigit() and value.isascii()):
            bad = next(i for i, b in enumerate(value) if not 0x30 <= b <= 0x39)
            yield Problem(number, start + bad + 1, f.name, "not digits")
        elif f.choices and value.decode() not in f.choices:
            yield Problem(number, start + 1, f.name, f"not one of {', '.join(f.choices)}")


def _split(data: bytes, result: CheckResult) -> list[bytes]:
    """The records; a wrong length or line end is a problem, and the rest is still checked."""
    ending = b"\r\n" if data[RECORD : RECORD + 2] == b"\r\n" else b"\n" if data[RECORD : RECORD + 1] == b"\n" else b""
    result.line_end = {b"\r\n": "CRLF", b"\n": "LF", b"": "none"}[ending]
    stride = RECORD + len(ending)
    chunks = [data[start : start + stride] for start in range(0, len(data), stride)]
    if chunks and len(chunks[-1]) < stride:
        short = chunks.pop()
        result.problems.append(
            Problem(len(chunks) + 1, 0, "record", f"record is {len(short)} bytes, not {stride}; the file is cut short")
        )
    if not ending:
        return chunks
    for number, chunk in enumerate(chunks, 1):
        if not chunk.endswith(ending):
            result.problems.append(
                Problem(number, RECORD + 1, "line end", f"record does not end with {result.line_end}")
            )
    return [chunk[:RECORD] for chunk in chunks]


def _check_header(number: int, record: bytes, problems: list[Problem]) -> None:
    mmdd = record[HEADER.slices["pay_date"]]
    if mmdd.isdigit():
        try:
            date(2024, int(mmdd[:2]), int(mmdd[2:]))  # a leap year: 0229 is a day
        except ValueError:
            problems.append(Problem(number, HEADER.position("pay_date"), "pay_date", "not a month and day (MMDD)"))


def _check_trailer(number: int, record: bytes, count: int, total: int | None, problems: list[Problem]) -> None:
    given_count, given_total = record[TRAILER.slices["count"]], record[TRAILER.slices["total"]]
    if given_count.isdigit() and int(given_count) != count:
        problems.append(
            Problem(number, TRAILER.position("count"), "count", f"trailer count is not the {count} data records")
        )
    if total is not None and given_total.isdigit() and int(given_total) != total:
        problems.append(
            Problem(number, TRAILER.position("total"), "total", "trailer total is not the sum of the amounts")
        )


def _check_codes(result: CheckResult) -> None:
    """Bank and branch code pairs, looked up once per distinct pair."""
    bank, branch = DATA.slices["bank_code"], DATA.slices["branch_code"]
    records: dict[tuple[bytes, bytes], list[int]] = {}
    for number, record in result.data_records:
        records.setdefault((record[bank], record[branch]), []).append(number)
    for (b, br), numbers in records.items():
        if b.isdigit() and br.isdigit() and not branch_exists(b.decode(), br.decode()):
            rule = "bank and branch code pair is not in the Zengin data"
            result.problems.extend(Problem(n, DATA.position("bank_code"), "bank_code", rule) for n in numbers)


def _is_utf8(data: bytes) -> bool:
    """Half-width kana in Shift_JIS are lone bytes above 0x80, which UTF-8 never allows in a whole file."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _a(noun: str) -> str:
    return f"{'an' if noun[0] in 'aeiou' else 'a'} {noun}"


def check(data: bytes) -> CheckResult:
    """Check a 総合振込 file made by anyone: lengths, line ends, record order, field types, characters,
    dates, bank and branch codes, and each trailer's count and total against its data records."""
    result = CheckResult(size=len(data), line_end="none")
    if not data:
        result.problems.append(Problem(0, 0, "file", "the file is empty"))
        return result
    if not data.isascii() and _is_utf8(data):
        result.problems.append(
            Problem(0, 0, "file", "UTF-8 text, not JIS X 0201: save it as Shift_JIS, kana half-width")
        )
        return result
    records = _split(data, result)
    result.records = len(records)
    previous: bytes | None = None
    group_count, group_total = 0, 0  # the total is None once an amount of the group is unreadable
    amount = DATA.slices["amount"]
    for number, record in enumerate(records, 1):
        kind = record[:1]
        layout = LAYOUTS.get(kind)
        if layout is None:
            result.problems.append(Problem(number, 1, "data_type", "not 1, 2, 8 or 9"))
            continue
        if kind not in _FOLLOWS[previous]:
            after = "the start of the file" if previous is None else f"{_a(LAYOUTS[previous].name)} record"
            result.problems.append(Problem(number, 1, "data_type", f"{_a(layout.name)} record cannot follow {after}"))
        previous = kind
        if not layout.pattern.fullmatch(record):
            result.problems.extend(_field_problems(number, layout, record))
        if kind == b"2":
            result.data_records.append((number, record))
            group_count += 1
            value = record[amount]
            group_total = group_total + int(value) if group_total is not None and value.isdigit() else None
        elif kind == b"1":
            result.groups += 1
            group_count, group_total = 0, 0
            _check_header(number, record, result.problems)
        elif kind == b"8":
            _check_trailer(number, record, group_count, group_total, result.problems)
            result.count += group_count
            result.total += group_total or 0
    _check_codes(result)
    cut_short = any(p.field == "record" for p in result.problems)
    if previous != b"9" and records and not cut_short:
        result.problems.append(Problem(len(records), 1, "data_type", "the file does not close with an end record (9)"))
    result.problems.sort(key=lambda p: (p.record, p.position))
    return result


def read_transfer_file(data: bytes, *, name: str) -> CheckResult:
    """A file that must check clean (a bank's return list, say): refused at its first problem."""
    result = check(data)
    if result.problems:
        raise PaymentsError(f"{name}: {result.problems[0]} ({len(result.problems)} problems; run `payments check`)")
    return result
