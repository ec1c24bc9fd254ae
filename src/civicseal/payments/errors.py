"""Errors of payments: batches, Zengin files and returns."""

from civicseal.errors import CivicsealError


class PaymentsError(CivicsealError):
    """A payment batch, a Zengin file or a return list was refused."""
