"""Passphrases, pseudonyms and package ids: the randomness and keyed digests a package is built from."""

from __future__ import annotations

import base64
import math
import secrets
from collections.abc import Sequence
from functools import cache
from pathlib import Path

import numpy as np
from zxcvbn import zxcvbn

from civicseal.cseal.errors import SealError
from civicseal.store.fieldcrypt import KeyedSha256

PASSPHRASE_MIN_BITS = 77
TYPED_MIN_GUESSES = 10**16  # what the incident model needs of a passphrase a person chose
PSEUDONYM_BYTES = 10  # 80 bits, so two households never share one within a package
PSEUDONYM_CHARS = PSEUDONYM_BYTES * 8 // 5  # in base32
_BASE32 = np.frombuffer(b"abcdefghijklmnopqrstuvwxyz234567", dtype=np.uint8)  # RFC 4648's, lower case
_FIVE_BITS = np.array([16, 8, 4, 2, 1], dtype=np.uint8)


@cache
def _eff_words() -> tuple[str, ...]:
    import diceware

    path = Path(diceware.__file__).with_name("wordlists") / "wordlist_en_eff.txt"
    words = tuple(line.split("\t")[1].strip() for line in path.read_text(encoding="utf-8").splitlines() if line)
    if len(set(words)) != 7776:
        raise SealError("the EFF word list is not the expected 7,776 words")
    return words


def generate_passphrase(min_bits: int = PASSPHRASE_MIN_BITS) -> tuple[str, int]:
    """Diceware over the EFF long list (12.9 bits a word): six words give 77.5 bits. Returns (passphrase, bits)."""
    words = _eff_words()
    count = math.ceil(min_bits / math.log2(len(words)))
    phrase = "-".join(secrets.choice(words) for _ in range(count))
    return phrase, math.floor(count * math.log2(len(words)))


def check_typed_passphrase(passphrase: str) -> None:
    """A passphrase a person chose is refused below 10^16 estimated guesses (zxcvbn)."""
    if len(passphrase) > 200:
        raise SealError("passphrase longer than 200 characters")
    guesses = int(zxcvbn(passphrase)["guesses"])
    if guesses < TYPED_MIN_GUESSES:
        raise SealError(
            f"passphrase too weak: about 10^{math.log10(max(guesses, 1)):.0f} guesses, at least 10^16 needed"
            " (leave it out and civicseal generates one)"
        )


def new_package_id() -> str:
    return "pkg_" + base64.b32encode(secrets.token_bytes(15)).decode().lower()


def pseudonym(key: bytes, household_code: str) -> str:
    """Per-package pseudonym: two packages' holders cannot join their rows; the city, holding the key, can."""
    return pseudonyms(key, [household_code])[0]


def pseudonyms(key: bytes, household_codes: Sequence[str]) -> list[str]:
    """:func:`pseudonym` of each code, for a batch of rows: the 10-byte digests (a whole number of base32's
    5-byte groups) are cut into 5-bit groups and spelled at once (``base64.b32encode`` is a Python loop),
    16 characters each, the same text as one by one."""
    digests = KeyedSha256(key, b"household\0").digests((code.encode() for code in household_codes), PSEUDONYM_BYTES)
    groups = np.unpackbits(np.frombuffer(digests, dtype=np.uint8)).reshape(-1, 5) @ _FIVE_BITS
    text = _BASE32[groups].tobytes().decode()
    return [text[i : i + PSEUDONYM_CHARS] for i in range(0, len(text), PSEUDONYM_CHARS)]
