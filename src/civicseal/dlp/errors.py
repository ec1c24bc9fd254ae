"""Exceptions of the DLP scanner. Messages name files, options and rules, never a value read from a file."""

from civicseal.errors import CivicsealError


class DlpError(CivicsealError):
    """The scanner or the index builder refused; the message is one safe line."""


class FindingsOverThreshold(DlpError):
    """A scan found data of at least ``--fail-at`` residents: a finding (exit code 3), not a failure."""

    exit_code = 3

    def __init__(self, residents: int, threshold: int) -> None:
        super().__init__(f"data of {residents:,} residents found in plaintext (threshold {threshold:,}): do not copy")
        self.residents, self.threshold = residents, threshold
