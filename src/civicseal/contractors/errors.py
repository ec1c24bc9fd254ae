"""Errors of the contractor register and of the authority rule."""

from civicseal.errors import CivicsealError


class ContractorError(CivicsealError):
    """The contractor register refused an operation; the message names the organization and the rule."""


class AuthorityRefused(ContractorError):
    """An organization's chain does not authorize a purpose on a date.

    ``rule`` is a stable slug (``contract-ended``, ``approval-withdrawn``, …) that the key service writes
    to its unlock log and a ``--json`` error carries; ``contractor`` is the link of the chain that failed,
    which may be a parent of the organization asked about.
    """

    def __init__(self, rule: str, contractor: str, message: str) -> None:
        super().__init__(message)
        self.rule = rule
        self.contractor = contractor
