"""Errors of programmes and entitlements."""

from civicseal.errors import CivicsealError


class ProgrammeError(CivicsealError):
    """A programme or an entitlement refused what was asked."""
