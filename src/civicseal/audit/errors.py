"""Errors of the audit log."""

from civicseal.errors import CivicsealError


class AuditError(CivicsealError):
    """The audit chain is broken or cannot be appended to."""
