"""Bank and branch codes as the Zengin system publishes them (the `zengin-code` package's data)."""

from __future__ import annotations

from functools import cache


@cache
def banks() -> dict:
    """Every bank of the Zengin data by code, each with its branches."""
    import zengin_code  # loads every bank and branch once; kept out of start-up

    return zengin_code.Bank.all


@cache
def _branch_codes() -> frozenset[tuple[str, str]]:
    return frozenset((bank.code, branch) for bank in banks().values() for branch in bank.branches)


def branch_exists(bank_code: str, branch_code: str) -> bool:
    """A transfer to a code pair the Zengin data does not know would come back as a return."""
    return (bank_code, branch_code) in _branch_codes()


@cache
def _bank_codes() -> frozenset[str]:
    return frozenset(bank for bank, _ in _branch_codes())


def bank_exists(bank_code: str) -> bool:
    """Told apart from an unknown branch so that the clerk checks the right code."""
    return bank_code in _bank_codes()


def zengin_problem(bank_code: str, branch_code: str) -> tuple[str, str] | None:
    """The column at fault and its rule when the Zengin data lacks the bank or its branch, else None."""
    if not bank_exists(bank_code):
        return "bank_code", "not a bank in the Zengin data"
    if not branch_exists(bank_code, branch_code):
        return "branch_code", "not a branch of this bank in the Zengin data"
    return None
