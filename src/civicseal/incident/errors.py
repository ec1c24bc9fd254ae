"""Errors of incident response."""

from civicseal.errors import CivicsealError


class IncidentError(CivicsealError):
    """An incident cannot be opened, closed or reported as asked."""
