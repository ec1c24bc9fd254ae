"""Names in a Zengin file: half-width katakana under the one Zengin character rule of ``register.normalize``.

Nothing is defined here but the bridge: the rule, its table and its character set live in
:mod:`civicseal.register.normalize`, so the register refuses at import exactly what a file could not carry.
"""

from __future__ import annotations

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
