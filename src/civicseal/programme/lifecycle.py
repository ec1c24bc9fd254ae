"""The life of an entitlement, defined once: which status may follow which."""

from __future__ import annotations

from enum import StrEnum

from civicseal.programme.errors import ProgrammeError


class Status(StrEnum):
    ELIGIBLE = "eligible"
    NOTIFIED = "notified"
    CONFIRMED = "confirmed"
    PAID = "paid"
    RETURNED = "returned"
    DECLINED = "declined"


TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.ELIGIBLE: frozenset({Status.NOTIFIED, Status.DECLINED}),
    Status.NOTIFIED: frozenset({Status.CONFIRMED, Status.DECLINED}),
    Status.CONFIRMED: frozenset({Status.PAID, Status.DECLINED}),  # paid when its transfer batch is sent
    Status.PAID: frozenset({Status.RETURNED}),
    Status.RETURNED: frozenset({Status.CONFIRMED}),  # corrected account, paid again in a later batch
    Status.DECLINED: frozenset(),
}


def check_transition(current: Status, new: Status) -> None:
    if new not in TRANSITIONS[current]:
        raise ProgrammeError(f"an entitlement cannot go from {current} to {new}")
