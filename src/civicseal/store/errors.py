"""Errors of the store."""

from civicseal.errors import CivicsealError


class StoreError(CivicsealError):
    """The store or the home cannot be used as asked."""
