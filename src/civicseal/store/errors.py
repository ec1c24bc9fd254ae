"""Errors of the store."""

from civicseal.errors import CivicsealError


class StoreError(CivicsealError):
    """The store or the home cannot be used as asked."""


class StoreBusy(StoreError):
    """A write could not get the store's write lock in time; nothing was written and it may be retried."""
