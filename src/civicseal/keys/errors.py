"""Errors of the key material and the key service."""

from civicseal.errors import CivicsealError


class KeyMaterialError(CivicsealError):
    """Key material is missing, unreadable or not what was expected."""
