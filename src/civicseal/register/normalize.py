"""Field normalizers of register import.

Every parser takes one raw CSV field and returns the normalized value, or raises
:class:`~civicseal.register.errors.InvalidValue` naming a fixed rule. A rule never contains the value:
import errors are printed and logged, and the register is personal data.

The functions are pure and cheap: import calls each one once per distinct value, so every table and
regular expression is built once, when this module is imported. The rules they implement are the ones
decided in DESIGN.md ("Register and programme: rules decided" → Import).
"""

from __future__ import annotations

import datetime as dt
import operator
import re
import unicodedata
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, NamedTuple

from civicseal.register.errors import InvalidValue

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "ERAS",
    "RELATIONSHIPS",
    "ZENGIN_HALFWIDTH",
    "Era",
    "check_length",
    "fold_for_matching",
    "head_flags",
    "my_number_check_digit",
    "my_number_valid",
    "normalize_hyphens",
    "normalize_kana",
    "normalize_text",
    "parse_account_type",
    "parse_date",
    "parse_digits",
    "parse_fiscal_year",
    "parse_income",
    "parse_levy",
    "parse_my_number",
    "parse_postcode",
    "parse_relationship",
    "parse_sex",
    "parse_zengin_kana",
    "relationship_category",
    "to_zengin_halfwidth",
]

# --------------------------------------------------------------------------------------------------
# Text
# --------------------------------------------------------------------------------------------------

# Unicode category Cc is exactly U+0000-U+001F and U+007F-U+009F; tab (U+0009) is let through and
# becomes a space. CR and LF are control characters: a line break inside a quoted field is an error.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")
_TEXT_TABLE: dict[int, int] = {cp: cp - 0xFEE0 for cp in range(0xFF01, 0xFF5F)}  # full-width ASCII
_TEXT_TABLE[0x3000] = 0x20  # ideographic space
_TEXT_TABLE[0x09] = 0x20  # tab
_SPACE_RUN = re.compile(r" {2,}")
# What normalize_text or normalize_hyphens would change or refuse, checked over a whole column joined by
# newlines (a newline inside a value is caught by counting them): a character class scans fast, and the
# rarer patterns are looked for as plain substrings first.
_NEEDS_WORK = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f\u2010-\u2015\u2212\u3000\ufe63\uff01-\uff5e]")
_LONG_VOWEL_AS_HYPHEN = re.compile(r"(?<=[0-9０-９])[ーｰ](?=[0-9０-９])")
_EDGE_OR_DOUBLE_SPACE_OR_EMPTY = ("  ", "\n ", " \n", "\n\n")


def needs_no_normalization(values: Sequence[str], limit: int) -> bool:
    """True when normalize_text and normalize_hyphens would return every value unchanged and none is empty,
    and no value is longer than ``limit``: a few scans of the whole column instead of a call per value."""
    joined = "\n".join(values)
    if not joined or joined[0] in " \n" or joined[-1] in " \n" or joined.count("\n") != len(values) - 1:
        return False
    if max(map(len, values)) > limit or any(part in joined for part in _EDGE_OR_DOUBLE_SPACE_OR_EMPTY):
        return False
    if _NEEDS_WORK.search(joined):
        return False
    return not (("ー" in joined or "ｰ" in joined) and _LONG_VOWEL_AS_HYPHEN.search(joined))


def normalize_text(raw: str) -> str:
    """Fold full-width ASCII and spaces so that equal values typed on different keyboards compare equal.

    Control characters (tab aside, which counts as a space) are refused: they hide in spreadsheets and
    break the CSV files and letters the register feeds.
    """
    if _CONTROL.search(raw):
        raise InvalidValue("contains a control character")
    text = raw.translate(_TEXT_TABLE)
    if "  " in text:
        text = _SPACE_RUN.sub(" ", text)
    return text.strip(" ")


_HYPHEN_TABLE: dict[int, str] = {cp: "-" for cp in (*range(0x2010, 0x2016), 0x2212, 0xFF0D, 0xFE63)}
# The long-vowel mark ー (and its half-width form ｰ) is a hyphen only between two digits ("1ー2"), where
# an IME put it for a hyphen; elsewhere in an address it is part of a katakana word.
_CHOON_BETWEEN_DIGITS = re.compile(r"(?<=[0-9０-９])[ーｰ](?=[0-9０-９])")


# Where a 方書 (building and room) begins: the first space after a house number (a digit, or 番地/番/号 after
# one), as the import joins 住所 and 方書. An address spaced elsewhere (兵庫県 尼崎市…, 2丁目 1-1) has none.
_KATAGAKI = re.compile(r"(.*?[0-9〇一二三四五六七八九十](?:番地|番|号)?) (\S.*)")


def split_katagaki(address: str) -> tuple[str, str] | None:
    """The address as 住所 and 方書, or None when no building and room follow its house number."""
    parts = _KATAGAKI.fullmatch(address)
    return (parts[1], parts[2]) if parts else None


def normalize_hyphens(text: str) -> str:
    """Turn the many hyphen look-alikes into '-', for codes, postcodes, dates, numbers and addresses.

    Never used on names or kana, where ー is a letter.
    """
    text = text.translate(_HYPHEN_TABLE)
    if "ー" in text or "ｰ" in text:
        text = _CHOON_BETWEEN_DIGITS.sub("-", text)
    return text


def fold_for_matching(text: str) -> str:
    """Every fold of the import that makes two spellings of one value equal, on text of any length.

    Full-width ASCII and spaces to ASCII, half-width kana and hiragana to full-width katakana, hyphen
    look-alikes to '-'. Unlike the import's parsers it refuses nothing and keeps line breaks, so the DLP
    scanner can fold a whole column of values joined into one string in a few C calls.
    """
    return normalize_hyphens(to_fullwidth_katakana(text.translate(_TEXT_TABLE)))


def check_length(text: str, limit: int) -> str:
    """Refuse a field longer than its limit (counted after normalization); return it unchanged."""
    if len(text) > limit:
        raise InvalidValue(f"longer than {limit} characters")
    return text


# --------------------------------------------------------------------------------------------------
# Kana
# --------------------------------------------------------------------------------------------------

_VOICED_MARK = "\u3099"  # combining katakana-hiragana voiced sound mark
_SEMI_VOICED_MARK = "\u309a"


def _build_kana_table() -> dict[int, str]:
    table: dict[int, str] = {}
    # Half-width katakana and punctuation (U+FF61-U+FF9F) to full width; NFKC gives the right letter
    # for each, and turns ﾞ/ﾟ into the combining marks, which _compose_voiced folds into the letter.
    for cp in range(0xFF61, 0xFFA0):
        table[cp] = unicodedata.normalize("NFKC", chr(cp))
    # Hiragana to katakana: the blocks are parallel (ぁ..ゖ → ァ..ヶ, ゝゞ → ヽヾ).
    for cp in (*range(0x3041, 0x3097), 0x309D, 0x309E):
        table[cp] = chr(cp + 0x60)
    # Spacing voiced marks typed after a letter (カ゛) behave like the combining ones.
    table[0x309B] = _VOICED_MARK
    table[0x309C] = _SEMI_VOICED_MARK
    return table


_KANA_TABLE = _build_kana_table()
_COMPOSED: dict[str, str] = {}
for _cp in range(0x30A1, 0x30FB):
    for _mark in (_VOICED_MARK, _SEMI_VOICED_MARK):
        _pair = chr(_cp) + _mark
        _nfc = unicodedata.normalize("NFC", _pair)
        if len(_nfc) == 1:
            _COMPOSED[_pair] = _nfc
_LETTER_AND_MARK = re.compile(r"[\u30a1-\u30fa][\u3099\u309a]")
# Katakana letters incl. small ones and ヴ, ・ (U+30FB), ー (U+30FC), iteration marks ヽヾ, and space.
_KATAKANA_FIELD = re.compile(r"[\u30a1-\u30fe ]*")


def to_fullwidth_katakana(text: str) -> str:
    text = text.translate(_KANA_TABLE)
    if _VOICED_MARK in text or _SEMI_VOICED_MARK in text:
        text = _LETTER_AND_MARK.sub(lambda m: _COMPOSED.get(m.group(), m.group()), text)
    return text


def normalize_kana(raw: str) -> str:
    """Bring a kana field to full-width katakana, so hiragana, half-width and full-width spellings match."""
    text = to_fullwidth_katakana(normalize_text(raw))
    if not _KATAKANA_FIELD.fullmatch(text):
        raise InvalidValue("not katakana")
    return text


# --------------------------------------------------------------------------------------------------
# Zengin holder kana
# --------------------------------------------------------------------------------------------------
#
# What a Zengin transfer file can carry in a payee name (JIS X 0201, as the payments issue fixes the
# standard's set): half-width katakana ｱ..ﾝ and ｦ, without small kana, ﾞ and ﾟ after the letters that take
# them, A-Z, 0-9, space and ( ) - .   This is the one definition: import checks holder kana with it and
# payments writes and checks Zengin files with it.
#
# The canonical stored form is the full-width spelling of that set: full-width large katakana (with
# ガ..ボ, パ..ポ, ヴ, ヲ), A-Z, 0-9, space and ( ) - .   On the way in, as banks do:
#   * hiragana and half-width kana become full-width katakana;
#   * small kana are written large (キュウ → キユウ, ッ → ツ, ヵ/ヶ → カ/ケ, ヮ → ワ);
#   * the long-vowel mark ー/ｰ and every hyphen look-alike become '-';
#   * a-z become A-Z.
# Refused: the comma (several banks and payroll systems reject or pass it through into the file),
# the middle dot ・ (banks want a space or a period; which one is the holder's choice, not ours),
# the slash, ヰ ヱ ヷ ヸ ヹ ヺ, kanji and everything else.

_ZENGIN_FOLD: dict[int, str] = {
    ord(s): b for s, b in zip("ァィゥェォッャュョヮヵヶー", "アイウエオツヤユヨワカケ-", strict=True)
}
_ZENGIN_FOLD.update({cp: chr(cp - 0x20) for cp in range(ord("a"), ord("z") + 1)})

_ZENGIN_PLAIN = "アイウエオカキクケコサシスセソタチツテトナニヌネノハヒフヘホマミムメモヤユヨラリルレロワヲン"
_ZENGIN_VOICED = "ガギグゲゴザジズゼゾダヂヅデドバビブベボパピプペポヴ"
_ZENGIN_ASCII = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ()-."
_ZENGIN_STORED = re.compile("[" + re.escape(_ZENGIN_PLAIN + _ZENGIN_VOICED + _ZENGIN_ASCII) + "]*")


def _build_halfwidth_table() -> dict[int, str]:
    full_to_half: dict[str, str] = {}
    for cp in range(0xFF66, 0xFF9E):  # ｦ, small kana, ｰ, ｱ..ﾝ (only the letters of _ZENGIN_PLAIN are used)
        full_to_half[unicodedata.normalize("NFKC", chr(cp))] = chr(cp)
    table: dict[int, str] = {ord(k): full_to_half[k] for k in _ZENGIN_PLAIN}
    for kana in _ZENGIN_VOICED:
        base, mark = unicodedata.normalize("NFD", kana)
        table[ord(kana)] = full_to_half[base] + ("ﾞ" if mark == _VOICED_MARK else "ﾟ")
    return table


_HALFWIDTH_TABLE = _build_halfwidth_table()
ZENGIN_HALFWIDTH: frozenset[str] = frozenset("".join(_HALFWIDTH_TABLE.values()) + _ZENGIN_ASCII)
"""Every character a Zengin file may carry in a name field, in its half-width (one-byte) form."""


def parse_zengin_kana(raw: str) -> str:
    """Normalize account-holder kana to the stored form a Zengin file can carry, or refuse it at import.

    A holder name the bank cannot read makes the transfer bounce weeks later; refusing it at import
    puts the error in front of the clerk who can fix it.
    """
    text = to_fullwidth_katakana(normalize_hyphens(normalize_text(raw))).translate(_ZENGIN_FOLD)
    if not _ZENGIN_STORED.fullmatch(text):
        raise InvalidValue("not characters a Zengin file can carry")
    return text


def to_zengin_halfwidth(kana: str) -> str:
    """Write a stored holder kana (see :func:`parse_zengin_kana`) as the half-width text of a Zengin file.

    Voiced letters take two half-width characters (ガ → ｶﾞ), as the file counts them.
    """
    if not _ZENGIN_STORED.fullmatch(kana):
        raise InvalidValue("not characters a Zengin file can carry")
    return kana.translate(_HALFWIDTH_TABLE)


# --------------------------------------------------------------------------------------------------
# Dates
# --------------------------------------------------------------------------------------------------


class Era(NamedTuple):
    """A Japanese era: its name, its letter, and its first and last day (None while it lasts)."""

    name: str
    letter: str
    first: dt.date
    last: dt.date | None


# Meiji is counted from 1868-10-23, the day the era name was proclaimed; the Gregorian calendar came
# in 1873, so no register holds a Meiji date that early anyway.
ERAS: tuple[Era, ...] = (
    Era("明治", "M", dt.date(1868, 10, 23), dt.date(1912, 7, 29)),
    Era("大正", "T", dt.date(1912, 7, 30), dt.date(1926, 12, 24)),
    Era("昭和", "S", dt.date(1926, 12, 25), dt.date(1989, 1, 7)),
    Era("平成", "H", dt.date(1989, 1, 8), dt.date(2019, 4, 30)),
    Era("令和", "R", dt.date(2019, 5, 1), None),
)
# Each era by its name, its first kanji (昭33.3.2, as forms abbreviate it), its letter in either case, and
# its number in the seven-digit dates municipal systems store (GYYMMDD: 3330302 is 昭和33年3月2日).
ERA_TOKENS: dict[str, Era] = {}
for _number, _era in enumerate(ERAS, 1):
    for _token in (_era.name, _era.name[0], _era.letter, _era.letter.lower(), str(_number)):
        ERA_TOKENS[_token] = _era

_ERA = r"(明治|大正|昭和|平成|令和|[明大昭平令]|[MTSHRmtshr]) ?(元|[0-9]{1,3})"
_WESTERN_SEP = re.compile(r"([0-9]{4})([-/.])([0-9]{1,2})\2([0-9]{1,2})")
_WESTERN_KANJI = re.compile(r"([0-9]{4}) ?年 ?([0-9]{1,2}) ?月 ?([0-9]{1,2}) ?日")
_WESTERN_DIGITS = re.compile(r"(1[89][0-9]{2}|2[01][0-9]{2})([0-9]{2})([0-9]{2})")  # 19580302
_ERA_DIGITS = re.compile(r"([1-5MTSHRmtshr])([0-9]{2})([0-9]{2})([0-9]{2})")  # 3330302, S330302
# A spreadsheet writes a date cell formatted with a time as 1958/3/2 0:00: midnight is the date alone.
_MIDNIGHT = re.compile(r"(.+?) 0?0:00(?::00)?")
# An era date takes either a separator (. / -, the same one twice) or 年月日; the era is written out
# or as its letter in both shapes (R4.6.1, 令和4.6.1, R4年6月1日, 令和4年6月1日).
_ERA_SEP = re.compile(_ERA + r"([-./])([0-9]{1,2})\3([0-9]{1,2})")
_ERA_KANJI = re.compile(_ERA + r" ?年 ?([0-9]{1,2}) ?月 ?([0-9]{1,2}) ?日")


def _era_year(era: Era, year: str) -> int:
    """The Gregorian year of era year ``year`` (元 is 1; year 0 does not exist)."""
    n = 1 if year == "元" else int(year)
    if n == 0:
        raise InvalidValue("not a valid date")
    return era.first.year + n - 1


def _make_date(year: int, month: str, day: str) -> dt.date:
    try:
        return dt.date(year, int(month), int(day))
    except ValueError:
        raise InvalidValue("not a valid date") from None


def parse_date(raw: str) -> dt.date:
    """Read the date spellings found in municipal exports: ISO, Y/M/D, Y.M.D, Y年M月D日, YYYYMMDD, the five
    eras (written out, as a kanji or a letter, or as GYYMMDD's digit), and any of these at midnight (0:00).

    An era date is checked against the era's first and last day, so a mistyped era is caught rather
    than silently moved decades.
    """
    text = normalize_hyphens(normalize_text(raw))
    if midnight := _MIDNIGHT.fullmatch(text):
        text = midnight[1]
    if m := _ERA_DIGITS.fullmatch(text):
        era, year, month, day = ERA_TOKENS[m[1]], m[2], m[3], m[4]
    elif text[:1].isdigit():
        if m := _WESTERN_SEP.fullmatch(text):
            return _make_date(int(m[1]), m[3], m[4])
        if m := _WESTERN_KANJI.fullmatch(text) or _WESTERN_DIGITS.fullmatch(text):
            return _make_date(int(m[1]), m[2], m[3])
        raise InvalidValue("not a valid date")
    elif m := _ERA_SEP.fullmatch(text):
        era, year, month, day = ERA_TOKENS[m[1]], m[2], m[4], m[5]
    elif m := _ERA_KANJI.fullmatch(text):
        era, year, month, day = ERA_TOKENS[m[1]], m[2], m[3], m[4]
    else:
        raise InvalidValue("not a valid date")
    date = _make_date(_era_year(era, year), month, day)
    if date < era.first:
        raise InvalidValue("date before the era began")
    if era.last is not None and date > era.last:
        raise InvalidValue("date after the era ended")
    return date


_FY_WESTERN = re.compile(r"([0-9]{4})(?: ?年度)?")
_FY_ERA = re.compile(_ERA + r"(?: ?年度)?")
_FY_MIN, _FY_MAX = 1868, 2200


def parse_fiscal_year(raw: str) -> int:
    """Read a fiscal year (April to March) as the Gregorian year it starts in: 令和4年度, R04 → 2022.

    An era fiscal year must start before its era ended: 平成31年度 (April 2019) is 2019 and so is
    令和元年度, but 平成32年度 and 昭和64年度 never existed.
    """
    text = normalize_text(raw)
    m = _FY_WESTERN.fullmatch(text)
    if m:
        year = int(m[1])
    else:
        m = _FY_ERA.fullmatch(text)
        if not m:
            raise InvalidValue("not a valid fiscal year")
        era = ERA_TOKENS[m[1]]
        n = 1 if m[2] == "元" else int(m[2])
        if n == 0:
            raise InvalidValue("not a valid fiscal year")
        year = era.first.year + n - 1
        if era.last is not None and dt.date(year, 4, 1) > era.last:
            raise InvalidValue("fiscal year after the era ended")
    if not _FY_MIN <= year <= _FY_MAX:
        raise InvalidValue("fiscal year out of range")
    return year


# --------------------------------------------------------------------------------------------------
# Codes
# --------------------------------------------------------------------------------------------------

# ISO 5218: 0 not known, 1 male, 2 female, 9 not applicable; "other" is stored as 9.
_SEX: dict[str, int] = {
    "男": 1, "男性": 1, "m": 1, "male": 1, "1": 1,
    "女": 2, "女性": 2, "f": 2, "female": 2, "2": 2,
    "0": 0,
    "other": 9, "9": 9,
}  # fmt: skip


def parse_sex(raw: str) -> int:
    """Map the sex spellings of municipal exports to one ISO 5218 code."""
    code = _SEX.get(normalize_text(raw).casefold())
    if code is None:
        raise InvalidValue("not a known sex code")
    return code


_LEVY: dict[str, bool] = {
    "課税": True,
    "taxed": True,
    "1": True,
    "非課税": False,
    "exempt": False,
    "0": False,
}


def parse_levy(raw: str) -> bool:
    """Read residence-tax levy status; True means taxed (the relief goes to exempt households)."""
    levy = _LEVY.get(normalize_text(raw).casefold())
    if levy is None:
        raise InvalidValue("not a known levy code")
    return levy


# The relationship to the head of household (続柄). A real register writes dozens of words (子の妻, 妻の父,
# 妻（未届）, 縁故者…): every non-empty word is accepted and kept as written; only 世帯主 (or ``head``) means
# something to the import, and the known words fall into the few categories eligibility and letters need.
RELATIONSHIP_LIMIT = 50
HEAD = "head"
RELATIONSHIPS: Mapping[str, tuple[str, ...]] = {
    HEAD: ("世帯主",),
    "spouse": ("妻", "夫", "配偶者", "妻（未届）", "夫（未届）"),
    "child": ("子", "長男", "長女", "次男", "次女", "三男", "三女", "四男", "四女", "五男", "五女",
              "養子", "養女", "養父の子", "妻の子", "夫の子"),
    "parent": ("父", "母", "親", "養父", "養母"),
    "grandchild": ("孫", "曾孫", "子の子", "玄孫"),
    "sibling": ("兄", "弟", "姉", "妹", "兄弟姉妹", "兄弟", "姉妹"),
    "relative": ("親族", "その他親族", "子の妻", "子の夫", "孫の妻", "孫の夫", "妻の父", "妻の母", "夫の父",
                 "夫の母", "祖父", "祖母", "曾祖父", "曾祖母", "叔父", "叔母", "伯父", "伯母", "甥", "姪",
                 "兄の妻", "弟の妻", "姉の夫", "妹の夫", "いとこ", "従兄弟", "従姉妹"),
    "other": ("同居人", "縁故者", "その他", "使用人"),
}  # fmt: skip
_RELATIONSHIP_CATEGORY: dict[str, str] = {}
for _category, _words in RELATIONSHIPS.items():
    _RELATIONSHIP_CATEGORY[_category] = _category
    for _word in _words:
        _RELATIONSHIP_CATEGORY[normalize_text(_word)] = _category  # as import stores it: （未届） → (未届)
_UNREGISTERED = "(未届)"  # 妻（未届）: a partner not (yet) married; the word before it says which category


def parse_relationship(raw: str) -> str:
    """Any non-empty word of at most RELATIONSHIP_LIMIT characters, kept as written (after the common folding)."""
    word = normalize_text(raw)
    if not word:
        raise InvalidValue("required")
    return check_length(word, RELATIONSHIP_LIMIT)


def relationship_category(word: str) -> str:
    """The category of a 続柄 word: head, spouse, child, parent, grandchild, sibling, relative or other.

    A word not in the list is "relative" when it names a relation of a relation (子の妻の父), else "other":
    nothing but the head depends on the category, so an unlisted word never refuses a register.
    """
    key = normalize_text(word).casefold()
    category = _RELATIONSHIP_CATEGORY.get(key) or _RELATIONSHIP_CATEGORY.get(key.removesuffix(_UNREGISTERED))
    if category is not None:
        return category
    return "relative" if "の" in key else "other"


def head_flags(words: Sequence[object]) -> list[bool]:
    """Which rows mark the head (世帯主 or head in any case), for a whole column: each distinct word looked at once.

    A row whose word broke a rule holds its InvalidValue here, and marks no head.
    """
    flags = {word: isinstance(word, str) and relationship_category(word) == HEAD for word in set(words)}
    return list(map(flags.__getitem__, words))


_ACCOUNT_TYPES: dict[str, int] = {
    "1": 1, "普通": 1, "普通預金": 1,
    "2": 2, "当座": 2, "当座預金": 2,
    "4": 4, "貯蓄": 4, "貯蓄預金": 4,
    "9": 9, "その他": 9,
}  # fmt: skip


def parse_account_type(raw: str) -> int:
    """Map an account type to its Zengin code: 1 普通, 2 当座, 4 貯蓄, 9 その他."""
    code = _ACCOUNT_TYPES.get(normalize_text(raw))
    if code is None:
        raise InvalidValue("not a known account type")
    return code


# --------------------------------------------------------------------------------------------------
# Numbers
# --------------------------------------------------------------------------------------------------

# A sign (- or ▲/△, as Japanese accounts mark a loss) before or after a yen sign: ¥, ￥, or a backslash, which
# is what ¥ becomes when a CP932 export (Excel's currency format) is read, since the two share one byte.
_INCOME = re.compile(r"([-▲△]?)[¥￥\\]?([-▲△]?)([0-9]{1,3}(?:,[0-9]{3})+|[0-9]+) ?円?")
_INCOME_MAX_DIGITS = 15  # below 10**15 yen: fits any integer column, and no income comes near


_SCIENTIFIC = re.compile(r"-?[0-9](?:\.[0-9]+)?E[+-]?[0-9]+", re.IGNORECASE)


def spreadsheet_mistake(text: str) -> InvalidValue | None:
    """A number a spreadsheet wrote in scientific notation (a 12-digit My Number shows as 1.23457E+11): its
    digits are lost, so the rule to tell is how to export it again, not what the value should look like."""
    if _SCIENTIFIC.fullmatch(text) is None:
        return None
    return InvalidValue(
        "in scientific notation (like 1.23457E+11): the spreadsheet rounded the number;"
        " format the column as text and export again"
    )


def parse_income(raw: str) -> int:
    """Read an income in whole yen as spreadsheets write it: 1,234,567, -50,000 or ▲50,000 (a loss), 300000円,
    ¥1,234,567."""
    text = normalize_hyphens(normalize_text(raw))
    m = _INCOME.fullmatch(text)
    if not m or (m[1] and m[2]):
        raise spreadsheet_mistake(text) or InvalidValue("not a whole number of yen")
    digits = m[3].replace(",", "")
    if len(digits.lstrip("0")) > _INCOME_MAX_DIGITS:
        raise InvalidValue("income out of range")
    value = int(digits)
    return -value if m[1] or m[2] else value


def parse_digits(raw: str, *, min_len: int, max_len: int, pad_to: int | None = None) -> str:
    """Read a numeric code (bank, branch, account number) and zero-pad it back to its width.

    Spreadsheets drop leading zeros, hence the padding; a hyphen or any other character is an error,
    since a code with one is not the code it looks like.
    """
    text = normalize_text(raw)
    if not (min_len <= len(text) <= max_len and text.isascii() and text.isdigit()):
        if mistake := spreadsheet_mistake(text):
            raise mistake
        if min_len == max_len:
            raise InvalidValue(f"not {min_len} digits")
        raise InvalidValue(f"not {min_len} to {max_len} digits")
    return text.zfill(pad_to) if pad_to else text


_POSTCODE = re.compile(r"〒? ?([0-9]{3})-?([0-9]{4})")


def parse_postcode(raw: str) -> str:
    """Read a Japanese postcode with or without its hyphen and 〒 mark; return it as 660-0881."""
    text = normalize_hyphens(normalize_text(raw))
    m = _POSTCODE.fullmatch(text)
    if not m:
        if len(text) == 6 and text.isascii() and text.isdigit():
            raise InvalidValue(
                "6 digits, not 7: a spreadsheet drops a postcode's leading 0 (060-0001 becomes 600001);"
                " format the column as text and export again"
            )
        raise InvalidValue("not a 7-digit postcode")
    return f"{m[1]}-{m[2]}"


# --------------------------------------------------------------------------------------------------
# My Number
# --------------------------------------------------------------------------------------------------

# Weight Qn of the n-th digit counted from the right of the first 11: n+1 for n = 1..6, n-5 for
# n = 7..11. Listed here from the left, the order the digits are read in.
_MY_NUMBER_WEIGHTS = tuple((n + 1 if n <= 6 else n - 5) for n in range(11, 0, -1))
_MY_NUMBER = re.compile(r"([0-9]{4})([ -]?)([0-9]{4})\2([0-9]{4})")


def my_number_check_digit(first11: str) -> int:
    """The check digit of an individual number: 11 - (Σ Pn·Qn mod 11), or 0 when the remainder is ≤ 1."""
    if not (len(first11) == 11 and first11.isascii() and first11.isdigit()):
        raise InvalidValue("not a valid My Number")
    remainder = sum(map(operator.mul, map(int, first11), _MY_NUMBER_WEIGHTS)) % 11
    return 0 if remainder <= 1 else 11 - remainder


def parse_my_number(raw: str) -> str:
    """Read an individual number (12 digits, optionally grouped 4-4-4 by spaces or hyphens) and check it.

    The check digit catches most typing errors before a number is stored encrypted and out of sight.
    """
    text = normalize_hyphens(normalize_text(raw))
    m = _MY_NUMBER.fullmatch(text)
    if not m:
        raise spreadsheet_mistake(text) or InvalidValue("not a valid My Number")
    number = m[1] + m[3] + m[4]
    if my_number_check_digit(number[:11]) != int(number[11]):
        raise InvalidValue("not a valid My Number")
    return number


_MY_NUMBERS = re.compile(r"(?:[0-9]{12})?(?:\n(?:[0-9]{12})?)*")


def my_number_valid(numbers: Sequence[str]) -> np.ndarray:
    """For 12-digit ASCII strings, whether each carries a valid check digit: one matrix product for all.

    NumPy is imported here, not with the module: the commands that only fold text (a programme run issuing
    reference numbers) start 0.07–0.14 s sooner without it."""
    import numpy as np

    if not numbers:
        return np.zeros(0, dtype=bool)
    digits = np.frombuffer("".join(numbers).encode("ascii"), dtype=np.uint8).reshape(-1, 12).astype(np.int64) - 48
    remainder = (digits[:, :11] @ np.array(_MY_NUMBER_WEIGHTS, dtype=np.int64)) % 11
    check = np.where(remainder <= 1, 0, 11 - remainder)
    return check == digits[:, 11]


def all_valid_my_numbers(values: Sequence[str]) -> bool:
    """Every value empty or a 12-digit My Number with its check digit, checked for the column at once."""
    if not _MY_NUMBERS.fullmatch("\n".join(values)):
        return False
    return bool(my_number_valid([v for v in values if v]).all())
