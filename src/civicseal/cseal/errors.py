"""Exceptions of the sealed-package layer.

Two classes are enough for every caller: :class:`SealError` for anything the seal layer cannot do
(a payload too large, a trust store that does not parse, an output that already exists), and
:class:`PackageRefused` for the one outcome a reader must treat specially — a package failed a check
and nothing was written. Messages are a single line naming the check, never a value from the payload,
so the CLI can print them as they are.
"""

from civicseal.errors import CivicsealError


class SealError(CivicsealError):
    """The seal layer refused an operation; the message is one safe line."""


class PackageRefused(SealError):
    """A package failed a check; nothing was written. The message starts with ``package refused:``."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"package refused: {reason}")
        self.reason = reason
