"""Errors of the key material and the key service."""

from civicseal.errors import CivicsealError


class KeyMaterialError(CivicsealError):
    """Key material is missing, unreadable or not what was expected."""


class KeyServiceError(CivicsealError):
    """The key service, the recipient registry or revocation refused an operation; the message is safe."""


class UnlockRefused(KeyServiceError):
    """The key service refused to release a package identity.

    The message (``refused: <reason>``) is exactly what the client is told, so it never says more than
    the caller is entitled to know: an unknown token id and a wrong secret are both ``refused: bad token``.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(f"refused: {reason}")
        self.reason = reason
