"""Reference numbers: what a household quotes on the phone and what its letter carries.

Twelve digits printed in groups of four: eleven random digits (the first not 0) and a Damm check digit,
which catches every single-digit error and every swap of adjacent digits an operator might mishear.
Never sequential, so one number does not reveal its neighbours.
"""

from __future__ import annotations

import random
import re
import struct
from functools import cache

from civicseal.register.errors import InvalidValue
from civicseal.register.normalize import normalize_hyphens, normalize_text

DAMM = (
    (0, 3, 1, 7, 5, 9, 8, 6, 4, 2),
    (7, 0, 9, 2, 1, 5, 4, 8, 6, 3),
    (4, 2, 0, 6, 8, 7, 1, 3, 5, 9),
    (1, 7, 5, 0, 9, 8, 3, 4, 2, 6),
    (6, 1, 2, 3, 0, 4, 5, 9, 7, 8),
    (3, 6, 7, 4, 2, 0, 9, 5, 8, 1),
    (5, 8, 6, 9, 7, 2, 0, 1, 3, 4),
    (8, 9, 4, 5, 3, 6, 2, 0, 1, 7),
    (9, 4, 3, 8, 6, 1, 7, 2, 0, 5),
    (2, 5, 8, 1, 4, 3, 6, 7, 9, 0),
)
LENGTH = 12
PRINTED = re.compile(r"[0-9]{4}[ -]?[0-9]{4}[ -]?[0-9]{4}")


def damm_digit(digits: str) -> int:
    interim = 0
    for ch in digits:
        interim = DAMM[interim][ord(ch) - 48]
    return interim


def is_valid(number: str) -> bool:
    return (
        len(number) == LENGTH and number.isascii() and number.isdigit() and number[0] != "0" and damm_digit(number) == 0
    )


FIRST = 10**10
SPAN = 9 * 10**10


@cache
def _after_three_digits() -> tuple[tuple[int, ...], ...]:
    """The Damm interim after three more digits, for each interim and each three-digit group: a number's
    check digit then takes four look-ups (a leading 0 leaves the interim 0 at 0, so eleven digits are read
    as twelve)."""
    return tuple(
        tuple(DAMM[DAMM[DAMM[interim][group // 100]][group // 10 % 10]][group % 10] for group in range(1000))
        for interim in range(10)
    )


def new_references(rng: random.Random, count: int) -> list[str]:
    """``count`` numbers from one draw of 64 random bits each, folded onto the 9×10^10 bodies (bias < 10^-8).

    Plain Python with look-ups by groups of three digits: a programme run numbers tens of thousands of
    households at once, and this takes less time than loading numpy (which it replaced) did.
    """
    if count == 0:
        return []
    after = _after_three_digits()
    start = after[0]
    raw = rng.getrandbits(64 * count).to_bytes(8 * count, "little")
    numbers = []
    for value in struct.unpack(f"<{count}Q", raw):
        body = FIRST + value % SPAN
        high, low = divmod(body, 1_000_000)
        interim = after[after[start[high // 1000]][high % 1000]][low // 1000]
        numbers.append(str(body * 10 + after[interim][low % 1000]))
    return numbers


def printed(number: str) -> str:
    """``1234 5678 9012``: groups of four are what people read out without losing their place."""
    return f"{number[0:4]} {number[4:8]} {number[8:12]}"


def parse_printed(text: str) -> str | None:
    """Accept what a caller reads out, with or without spaces or hyphens; None when it cannot be one. Typed
    with a Japanese input method on, its full-width digits and spaces (and ー for a hyphen) are folded first,
    as the register import folds text."""
    try:
        text = normalize_hyphens(normalize_text(text))
    except InvalidValue:
        return None  # a control character: no reference number
    if not PRINTED.fullmatch(text):
        return None
    number = re.sub(r"[ -]", "", text)
    return number if is_valid(number) else None
