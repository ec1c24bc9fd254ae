"""Errors of the chain of custody."""

from civicseal.errors import CivicsealError


class CustodyError(CivicsealError):
    """A custody event was refused: an impossible sequence, an impossible time or an unknown package.

    Messages name the package, the events and the rule; holders, locations and notes are never quoted.
    """


class OverdueFound(CustodyError):
    """Packages are still out after their expiry: a finding over the threshold (exit code 3), not a failure."""

    exit_code = 3

    def __init__(self, overdue: int, lost: int) -> None:
        packages = "1 package" if overdue == 1 else f"{overdue} packages"
        super().__init__(f"{packages} overdue after expiry, {lost} of them lost")
        self.overdue, self.lost = overdue, lost
