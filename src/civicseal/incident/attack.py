"""Brute-force economics: what it would cost an attacker to open a lost package offline.

Only a passphrase package can be attacked offline: every guess costs one age scrypt derivation, whose
cost doubles with each step of the work factor (log N). The reference figures sit in one table,
:data:`REFERENCE`, so they can be updated when faster hardware or cheaper rental appears; every other
figure in a report is computed from it.

A tethered package cannot be attacked offline at all (its key never left the key service), and a
recipient-mode package only by breaking X25519, which offers about 2^128 security.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True)
class Reference:
    """One measured attack rate and the price of the hardware that achieves it."""

    source: str
    rate_at_reference: float  # guesses per second per GPU at log N = reference_log_n
    reference_log_n: int
    usd_per_gpu_hour: float
    cost_source: str
    jpy_per_usd: float
    as_of: str


REFERENCE: Final = Reference(
    source="hashcat -m 8900 (scrypt, r=8, p=1) on one NVIDIA RTX 4090",
    rate_at_reference=7126.0,
    reference_log_n=14,
    usd_per_gpu_hour=0.40,
    cost_source="GPU marketplace rental of an RTX 4090 (community cloud list price)",
    jpy_per_usd=150.0,
    as_of="2025",
)

ATTACK_GPUS: Final = (1, 1000)  # the attackers a report prices: one rented GPU, and a thousand
X25519_SECURITY_BITS: Final = 128
SECONDS_PER_YEAR: Final = 365.25 * 24 * 3600
AGE_OF_UNIVERSE_YEARS: Final = 1.4e10


def guesses_per_second(log_n: int, gpus: int = 1, reference: Reference = REFERENCE) -> float:
    """Guesses per second of ``gpus`` GPUs against age scrypt at work factor ``log_n``.

    scrypt's time is linear in N = 2^log_n, so the rate halves with each step above the reference.
    """
    if not 1 <= log_n <= 64 or gpus < 1:
        raise ValueError("log N between 1 and 64 and at least one GPU")
    return reference.rate_at_reference * 2.0 ** (reference.reference_log_n - log_n) * gpus


def exhaust_seconds(guesses: float, log_n: int, gpus: int = 1, reference: Reference = REFERENCE) -> float:
    """Seconds to try ``guesses`` passphrases: the worst case when ``guesses`` is the whole search space."""
    return float(guesses) / guesses_per_second(log_n, gpus, reference)


def expected_seconds(guesses: float, log_n: int, gpus: int = 1, reference: Reference = REFERENCE) -> float:
    """Seconds to find a passphrase drawn uniformly from ``guesses``: half the space on average."""
    return exhaust_seconds(guesses, log_n, gpus, reference) / 2


def attack_cost(seconds: float, gpus: int = 1, reference: Reference = REFERENCE) -> float:
    """US dollars of GPU rental for ``gpus`` GPUs running ``seconds``: the same for any number of GPUs."""
    return seconds / 3600 * gpus * reference.usd_per_gpu_hour


def format_duration(seconds: float) -> str:
    """A duration a reader grasps at once: seconds to days, then years with thousands separators."""
    years = seconds / SECONDS_PER_YEAR
    if years > AGE_OF_UNIVERSE_YEARS:
        return f"{years:.1e} years (longer than the age of the universe)"
    if years >= 1:
        return f"{years:,.0f} years"
    for unit, size in (("days", 86400), ("hours", 3600), ("minutes", 60)):
        if seconds >= size:
            return f"{seconds / size:,.1f} {unit}"
    return f"{seconds:,.1f} seconds"


def format_duration_ja(seconds: float) -> str:
    """The same, in Japanese."""
    years = seconds / SECONDS_PER_YEAR
    if years > AGE_OF_UNIVERSE_YEARS:
        return f"{years:.1e}年（宇宙の年齢より長い）"
    if years >= 1:
        return f"{years:,.0f}年"
    for unit, size in (("日", 86400), ("時間", 3600), ("分", 60)):
        if seconds >= size:
            return f"{seconds / size:,.1f}{unit}"
    return f"{seconds:,.1f}秒"


def format_money(usd: float, reference: Reference = REFERENCE) -> str:
    """Dollars and yen at the reference exchange rate, in a form that stays readable for huge sums."""
    yen = usd * reference.jpy_per_usd
    if usd >= 1e15:
        return f"USD {usd:.1e} (JPY {yen:.1e})"
    return f"USD {usd:,.0f} (JPY {yen:,.0f})"


def format_guesses(guesses: float) -> str:
    """A guess count as a power of two and of ten."""
    if guesses <= 0:
        return "0"
    return f"2^{math.log2(guesses):.1f} (about 10^{math.log10(guesses):.1f})"
