"""Errors of the store."""

from civicseal.errors import CivicsealError


class StoreError(CivicsealError):
    """The store or the home cannot be used as asked."""


class StoreBusy(StoreError):
    """A write could not get the store's write lock in time; nothing was written and it may be retried."""


class KeyHeldTwice(StoreError):
    """A bulk load put one key on two rows; the transaction that loaded them can only be undone."""
