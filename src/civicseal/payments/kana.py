"""Names in a Zengin file: half-width katakana under the one Zengin character rule of ``register.normalize``.

Nothing is defined here but the bridge: the rule, its table and its character set live in
:mod:`civicseal.register.normalize`, so the register refuses at import exactly what a file could not carry.
"""

from __future__ import annotations

from civicseal.register.banks import banks
from civicseal.register.errors import InvalidValue
from civicseal.register.normalize import ZENGIN_HALFWIDTH, parse_zengin_kana, to_zengin_halfwidth

ZENGIN_BYTES: frozenset[int] = frozenset(c.encode("cp932")[0] for c in ZENGIN_HALFWIDTH)
"""The bytes a name field may hold: each allowed character is one byte in JIS X 0201 / Shift_JIS."""


def zengin_name(text: str) -> str | None:
    """The half-width Zengin spelling of a name in any kana spelling, or None when it cannot be written.

    Small kana are enlarged and the long vowel mark becomes ``-``, as :func:`parse_zengin_kana` does.
    """
    try:
        return to_zengin_halfwidth(text)  # most names are stored in the canonical form already
    except InvalidValue:
        pass
    try:
        return to_zengin_halfwidth(parse_zengin_kana(text))
    except InvalidValue:
        return None


__all__ = ["ZENGIN_BYTES", "zengin_name"]


def kana_names(bank_code: str, branch_code: str) -> tuple[str, str]:
    """The bank's and branch's names as a Zengin record spells them (half-width kana); blank where the
    data has none a file can carry, as the name fields are informational and banks route by code."""
    bank = banks().get(bank_code)
    branch = bank.branches.get(branch_code) if bank is not None else None
    return (
        (zengin_name(bank.kana) or "") if bank is not None else "",
        (zengin_name(branch.kana) or "") if branch is not None else "",
    )
