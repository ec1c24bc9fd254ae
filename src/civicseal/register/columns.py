"""The three register files, their columns (English and Japanese headers) and each column's parser.

One place per fact: the importer, the synthetic city's tests and the README all read these lists.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from civicseal.register import normalize as n
from civicseal.register.errors import InvalidValue

CODE = re.compile(r"[0-9A-Za-z][0-9A-Za-z-]*")
CODE_LIMIT = 50
NAME_LIMIT = 100
ADDRESS_LIMIT = 200


def parse_code(text: str) -> str:
    """Resident and household codes: letters, digits and hyphens, as registers issue them."""
    code = n.normalize_hyphens(text)
    if not CODE.fullmatch(code):
        raise n.spreadsheet_mistake(code) or InvalidValue("not a code of letters, digits and hyphens")
    return code


def parse_name(text: str) -> str:
    return text


def parse_address(text: str) -> str:
    return n.normalize_hyphens(text)


def plain_iso_date(raw: str) -> str | None:
    """The common case: already ``YYYY-MM-DD``, a real day."""
    if len(raw) != 10 or raw[4] != "-" or raw[7] != "-" or not raw.isascii():
        return None
    try:
        return date.fromisoformat(raw).isoformat()
    except ValueError:
        return None  # the full parser names the rule


def parse_iso_date(text: str) -> str:
    """Dates travel through import as ISO text: it compares in order and both databases take it."""
    return n.parse_date(text).isoformat()


def parse_bank_code(text: str) -> str:
    return n.parse_digits(text, min_len=1, max_len=4, pad_to=4)


def parse_branch_code(text: str) -> str:
    return n.parse_digits(text, min_len=1, max_len=3, pad_to=3)


def parse_account_number(text: str) -> str:
    return n.parse_digits(text, min_len=1, max_len=7, pad_to=7)


def plain_code(raw: str) -> str | None:
    """The common case needs no normalization: ASCII letters and digits only."""
    return raw if raw.isascii() and raw.isalnum() and len(raw) <= CODE_LIMIT else None


def plain_yen(raw: str) -> int | None:
    return int(raw) if raw.isascii() and raw.isdigit() and len(raw) < 15 else None


def all_plain_addresses(raw: Sequence[str], required: bool) -> list[object] | None:
    """A column of addresses none of which needs normalizing (the common export), kept as it is."""
    return list(raw) if required and n.needs_no_normalization(raw, ADDRESS_LIMIT) else None


def all_valid_my_numbers(raw: Sequence[str], required: bool) -> list[object] | None:
    return [v or None for v in raw] if not required and n.all_valid_my_numbers(raw) else None


PLAIN_CODES = re.compile(r"[0-9A-Za-z]{1,50}(?:\n[0-9A-Za-z]{1,50})*")
PLAIN_CODES_OR_EMPTY = re.compile(r"[0-9A-Za-z]{0,50}(?:\n[0-9A-Za-z]{0,50})*")
PLAIN_YEN_OR_EMPTY = re.compile(r"(?:-?[0-9]{1,14})?(?:\n(?:-?[0-9]{1,14})?)*")
PLAIN_ACCOUNT_NUMBERS = re.compile(r"[0-9]{7}(?:\n[0-9]{7})*")


def all_plain_codes(raw: Sequence[str], required: bool) -> list[object] | None:
    """A whole column of ASCII letters and digits (codes, as registers export them), checked by one regex."""
    if required:
        return list(raw) if PLAIN_CODES.fullmatch("\n".join(raw)) else None
    return [v or None for v in raw] if PLAIN_CODES_OR_EMPTY.fullmatch("\n".join(raw)) else None


def all_plain_account_numbers(raw: Sequence[str], required: bool) -> list[object] | None:
    """A whole column of seven ASCII digits each, as a bank file holds them: every one differs, so the cache
    would parse each on its own (5 µs a value)."""
    return list(raw) if required and PLAIN_ACCOUNT_NUMBERS.fullmatch("\n".join(raw)) else None


def all_plain_yen(raw: Sequence[str], required: bool) -> list[object] | None:
    if required or not PLAIN_YEN_OR_EMPTY.fullmatch("\n".join(raw)):
        return None
    return [int(v) if v else None for v in raw]


@dataclass(frozen=True)
class Column:
    name: str
    japanese: tuple[str, ...]
    parse: Callable[[str], object]
    required: bool = True
    limit: int = CODE_LIMIT
    fast: Callable[[str], object | None] | None = None  # the value when raw needs no normalization, else None
    # A whole column at once when every value is plain (the value, or None where optional and empty), else None.
    bulk: Callable[[Sequence[str], bool], list[object] | None] | None = None
    # The column this one's value is appended to, after a space, rather than stored on its own: 方書 (the
    # building and room) to 住所, as registers export them apart and a letter needs both.
    joins: str | None = None

    def read(self, raw: str) -> object:
        """One raw cell to its value (None where optional and empty), or InvalidValue naming the rule.

        The length is measured on the value as stored, after every normalization (ｶﾞ is one character); a
        cell the parser refuses that is also over the limit is reported as too long, the likelier cause.
        """
        text = n.normalize_text(raw)
        if not text:
            if self.required:
                raise InvalidValue("required")
            return None
        try:
            value = self.parse(text)
        except InvalidValue:
            if len(text) > self.limit:
                raise InvalidValue(f"longer than {self.limit} characters") from None
            raise
        if isinstance(value, str):
            n.check_length(value, self.limit)
        return value


class Kind(StrEnum):
    RESIDENTS = "residents"
    TAX = "tax"
    ACCOUNTS = "accounts"


# The headers municipal systems export under, first the one civicseal writes. A header is matched after
# NFKC (half-width kana, full-width letters and brackets folded), without spaces and case: ｶﾅ氏名,
# 氏名（カナ） and "Resident_Code" are found. 宛名番号 is the code most tax and benefit systems key a person by.
RESIDENT_CODE = ("住民コード", "宛名番号", "宛名コード", "住民番号", "個人コード")
HOUSEHOLD_CODE = ("世帯番号", "世帯コード")
COLUMNS: dict[Kind, tuple[Column, ...]] = {
    Kind.RESIDENTS: (
        Column("resident_code", RESIDENT_CODE, parse_code, fast=plain_code, bulk=all_plain_codes),
        Column("household_code", HOUSEHOLD_CODE, parse_code, fast=plain_code, bulk=all_plain_codes),
        Column("relationship", ("続柄", "世帯主との続柄", "続き柄"), n.parse_relationship, limit=n.RELATIONSHIP_LIMIT),
        Column("name", ("氏名", "漢字氏名", "氏名(漢字)"), parse_name, limit=NAME_LIMIT),
        Column(
            "name_kana",
            ("氏名カナ", "カナ氏名", "氏名(カナ)", "フリガナ", "ふりがな", "氏名フリガナ", "氏名(フリガナ)"),
            n.normalize_kana,
            limit=NAME_LIMIT,
        ),
        Column("sex", ("性別",), n.parse_sex),
        Column("birth_date", ("生年月日",), parse_iso_date, fast=plain_iso_date),
        Column("postcode", ("郵便番号", "〒"), n.parse_postcode),
        Column("address", ("住所", "現住所"), parse_address, limit=ADDRESS_LIMIT, bulk=all_plain_addresses),
        Column(
            "address_detail",
            ("方書", "方書き", "住所方書"),
            parse_address,
            required=False,
            limit=ADDRESS_LIMIT,
            joins="address",
        ),
        # 住民となった日 is the day the person became a resident of the city: the day of a 転入 (empty for one
        # born in the city, who was a resident from birth). A register whose 住定日 changes on moves within
        # the city must export 住民となった日 instead.
        Column(
            "moved_in",
            ("住民となった日", "住民となった年月日", "転入日", "転入年月日", "住定日"),
            parse_iso_date,
            required=False,
            fast=plain_iso_date,
        ),
        Column("moved_out", ("転出日", "転出年月日"), parse_iso_date, required=False, fast=plain_iso_date),
        Column("deceased", ("死亡日", "死亡年月日"), parse_iso_date, required=False, fast=plain_iso_date),
        Column("my_number", ("個人番号", "マイナンバー"), n.parse_my_number, required=False, bulk=all_valid_my_numbers),
    ),
    Kind.TAX: (
        Column("resident_code", RESIDENT_CODE, parse_code, fast=plain_code, bulk=all_plain_codes),
        Column("fiscal_year", ("年度", "課税年度"), n.parse_fiscal_year),
        Column("per_capita_levy", ("均等割", "均等割課税区分"), n.parse_levy),
        Column(
            "income", ("所得金額", "合計所得金額"), n.parse_income, required=False, fast=plain_yen, bulk=all_plain_yen
        ),
        Column(
            "dependent_of",
            ("扶養者住民コード", "扶養者宛名番号"),
            parse_code,
            required=False,
            fast=plain_code,
            bulk=all_plain_codes,
        ),
    ),
    Kind.ACCOUNTS: (
        Column("household_code", HOUSEHOLD_CODE, parse_code, fast=plain_code, bulk=all_plain_codes),
        Column("bank_code", ("金融機関コード", "銀行コード"), parse_bank_code),
        Column("branch_code", ("支店コード", "店舗コード"), parse_branch_code),
        Column("account_type", ("預金種目", "預金種別", "口座種別"), n.parse_account_type),
        Column("account_number", ("口座番号",), parse_account_number, bulk=all_plain_account_numbers),
        Column("holder_kana", ("口座名義カナ", "口座名義人カナ", "口座名義"), n.parse_zengin_kana, limit=NAME_LIMIT),
    ),
}


def _own_columns() -> dict[Kind, frozenset[str]]:
    names = {kind: {c.name for c in columns} for kind, columns in COLUMNS.items()}
    return {
        kind: frozenset(mine - set().union(*(names[k] for k in Kind if k is not kind))) for kind, mine in names.items()
    }


# The columns only one kind of file has: a header is recognized by them, so a file missing a column is still
# recognized and told which column it misses.
OWN_COLUMNS = _own_columns()


def recognize(names: Iterable[str | None]) -> Kind | None:
    """The kind whose own columns the header (English column names) holds most of; None when none or a tie."""
    present = set(names)
    scores = sorted(((len(OWN_COLUMNS[kind] & present), kind) for kind in Kind), reverse=True)
    (best, kind), (second, _) = scores[0], scores[1]
    return kind if best > second else None


def english_header(kind: Kind) -> list[str]:
    """The header a file of this kind is written with (synthetic city, rejects, tests): a column joined to
    another is left out, its value written in that column."""
    return [column.name for column in COLUMNS[kind] if column.joins is None]


def header_key(cell: str) -> str:
    """A header cell as it is matched: NFKC, no spaces, lower case."""
    return "".join(unicodedata.normalize("NFKC", cell).split()).lower()


def header_names(kind: Kind) -> dict[str, str]:
    """Every accepted spelling of a header (lower-cased) → the column's English name."""
    return spellings(COLUMNS[kind])


def spellings(columns: Sequence[Column]) -> dict[str, str]:
    """Every accepted spelling of these columns' headers (as ``header_key`` folds it) → the column's English name."""
    return {header_key(spelling): column.name for column in columns for spelling in (column.name, *column.japanese)}
