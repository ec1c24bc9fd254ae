"""Errors of the resident register."""

from civicseal.errors import CivicsealError


class RegisterError(CivicsealError):
    """The register refused an input."""


class InvalidValue(RegisterError):
    """A field broke a rule; ``rule`` says which, and the value itself is never kept."""

    def __init__(self, rule: str) -> None:
        super().__init__(rule)
        self.rule = rule
