"""One canonical spelling per value, so a value in any spelling the import accepts gives one fingerprint.

The folds are the register's own (:func:`civicseal.register.normalize.fold_for_matching` for width, kana
and hyphens, :func:`~civicseal.register.normalize.parse_date` for dates); on top of them every space and
line break is dropped, because a copied name or address keeps its characters but rarely its spacing or
its line breaks. The index builder and the scanner both call :func:`canonical_joined`, so the two sides
cannot drift apart.

Values travel joined by NUL into one string: a handful of C calls (``str.replace``, ``re.sub``, ``split``)
then fold a whole column of distinct values at once, and the per-value Python work is left to the few
values that need a fold or a date parse. That is what lets a scan keep up with the disk.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

import numpy as np

from civicseal.register.errors import InvalidValue
from civicseal.register.normalize import ERAS, fold_for_matching, my_number_valid, parse_date
from civicseal.store.fieldcrypt import KeyedSha256

SEP = "\x00"
BSEP = b"\x00"


def _changed_by_fold() -> str:
    """A character class of every BMP character :func:`fold_for_matching` changes on its own.

    Derived from the fold itself, so a new rule in the register's normalizer is picked up here too.
    """
    ranges: list[tuple[int, int]] = []
    for cp in range(0x20, 0x10000):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        if fold_for_matching(chr(cp)) != chr(cp):
            if ranges and ranges[-1][1] == cp - 1:
                ranges[-1] = (ranges[-1][0], cp)
            else:
                ranges.append((cp, cp))
    return "".join(re.escape(chr(a)) if a == b else f"{re.escape(chr(a))}-{re.escape(chr(b))}" for a, b in ranges)


# Characters the fold changes, the combining voiced marks it composes, and ー between digits (a hyphen).
_NEEDS_FOLD = re.compile(f"[{_changed_by_fold()}\u3099\u309a]|[0-9][ーｰ][0-9]")
_WHITESPACE = re.compile(r"\s+")
_ERA_TOKENS = "|".join([t for e in ERAS for t in (e.name, e.name[0], e.letter, e.letter.lower())])
# Dates in a spelling other than the canonical YYYY-MM-DD, each a whole value (between NULs). Dates of digits
# alone (19580302, 3330302) are left out: the import knows a column holds dates, a scanned cell may be a code.
# A spreadsheet's midnight (1958/3/2 0:00, its space dropped by then) is matched and left out of the date.
_OTHER_DATE = re.compile(
    r"(?<![^\x00])("
    r"[0-9]{4}/[0-9]{1,2}/[0-9]{1,2}"
    r"|[0-9]{4}\.[0-9]{1,2}\.[0-9]{1,2}"
    r"|[0-9]{4}-(?:[0-9]-[0-9]{1,2}|[0-9]{2}-[0-9])"
    r"|[0-9]{4}年[0-9]{1,2}月[0-9]{1,2}日"
    rf"|(?:{_ERA_TOKENS})(?:元|[0-9]{{1,3}})(?:年[0-9]{{1,2}}月[0-9]{{1,2}}日|([-./])[0-9]{{1,2}}\2[0-9]{{1,2}})"
    r")(?:0?0:00(?::00)?)?(?![^\x00])"
)
_GROUPED_MY_NUMBER = re.compile(r"(?<![^\x00])([0-9]{4})-([0-9]{4})-([0-9]{4})(?![^\x00])")


def _fold_where_needed(joined: str) -> str:
    """Fold only the values that hold a character the fold changes; the rest are copied as they are."""
    parts: list[str] = []
    last = 0
    for m in _NEEDS_FOLD.finditer(joined):
        if m.start() < last:
            continue
        start = joined.rfind(SEP, 0, m.start()) + 1
        end = joined.find(SEP, m.end())
        end = len(joined) if end < 0 else end
        parts.append(joined[last:start])
        parts.append(fold_for_matching(joined[start:end]).replace(" ", ""))
        last = end
    if not parts:
        return joined
    parts.append(joined[last:])
    return "".join(parts)


def _iso_date(m: re.Match[str]) -> str:
    try:
        return parse_date(m[1]).isoformat()
    except InvalidValue:
        return m[1]


def canonical_joined(joined: str) -> bytes:
    """The canonical spellings of NUL-joined values, NUL-joined and UTF-8 encoded, in the same order."""
    joined = joined.replace(" ", "").replace("\u3000", "")
    if _WHITESPACE.search(joined):
        joined = _WHITESPACE.sub("", joined)
    joined = _fold_where_needed(joined)
    if "-" in joined:
        joined = _GROUPED_MY_NUMBER.sub(r"\1\2\3", joined)
    joined = _OTHER_DATE.sub(_iso_date, joined)
    return joined.encode("utf-8", "surrogatepass")


def join_values(values: Sequence[str]) -> str:
    """NUL-join values, dropping any NUL inside one (it would shift every later value)."""
    joined = SEP.join(values)
    if joined.count(SEP) != max(len(values) - 1, 0):
        joined = SEP.join(v.replace(SEP, "") for v in values)
    return joined


def canonical(values: Sequence[str]) -> list[bytes]:
    if not values:
        return []
    return canonical_joined(join_values(values)).split(BSEP)


class Fingerprinter:
    """HMAC-SHA-256 under the index key, truncated to 64 bits, as an unsigned integer per value."""

    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ValueError("the fingerprint key is 32 bytes")
        self._mac = KeyedSha256(key)

    def __call__(self, values: Sequence[bytes]) -> np.ndarray:
        return np.frombuffer(self._mac.digests(values, 8), dtype=">u8").astype(np.uint64)


def key_id(key: bytes) -> str:
    """Names a fingerprint key without revealing it, so a scan refuses an index made under another key."""
    return hashlib.sha256(b"civicseal/dlp-key-id" + key).hexdigest()[:16]


# ------------------------------------------------------------------------------------------ patterns

PATTERNS = ("my_number", "phone", "postcode", "era_date")
# Found anywhere in text (Python re; \d is any digit, full-width too).
TEXT_PATTERNS: dict[str, re.Pattern[str]] = {
    "my_number": re.compile(r"(?<![\d-])(\d{4})[- ]?(\d{4})[- ]?(\d{4})(?![\d-])"),
    "phone": re.compile(r"(?<![\d-])(?:0\d{1,4}[-(（]\d{1,4}[-)）]\d{3,4}|0[5789]0\d{8}|0\d{9})(?![\d-])"),
    "postcode": re.compile(r"〒\s?\d{3}[-ー－]?\d{4}(?!\d)|(?<![\d-])\d{3}[-－]\d{4}(?![\d-])"),
    "era_date": re.compile(
        rf"(?:{_ERA_TOKENS})\s?(?:元|\d{{1,2}})\s?"
        r"(?:年\s?\d{1,2}\s?月\s?\d{1,2}\s?日|([-./])\d{1,2}\1\d{1,2})"
    ),
}
# Whole cells of a table (RE2 syntax for pyarrow: no look-behind, ASCII digits).
CELL_PATTERNS: dict[str, str] = {
    "my_number": r"^[0-9]{4}[- ]?[0-9]{4}[- ]?[0-9]{4}$",
    "phone": r"^(?:0[0-9]{1,4}[-(][0-9]{1,4}[-)][0-9]{3,4}|0[5789]0[0-9]{8}|0[0-9]{9})$",
    "postcode": r"^(?:〒 ?[0-9]{3}-?[0-9]{4}|[0-9]{3}-[0-9]{4})$",
    "era_date": rf"^(?:{_ERA_TOKENS}) ?(?:元|[0-9]{{1,2}}) ?"
    r"(?:年 ?[0-9]{1,2} ?月 ?[0-9]{1,2} ?日|[-./][0-9]{1,2}[-./][0-9]{1,2})$",
}


def valid_my_numbers(candidates: Sequence[str]) -> np.ndarray:
    """Which 12-digit candidates (separators allowed) carry a valid check digit."""
    joined = "\n".join(candidates)
    if not joined.isascii():
        joined = fold_for_matching(joined)
    digits = joined.replace("-", "").replace(" ", "").split("\n")
    numbers = [d if len(d) == 12 and d.isascii() and d.isdigit() else "000000000001" for d in digits]
    return my_number_valid(numbers)
