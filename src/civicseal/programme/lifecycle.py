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
    WITHDRAWN = "withdrawn"  # the household no longer qualifies; final


TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.ELIGIBLE: frozenset({Status.NOTIFIED, Status.DECLINED, Status.WITHDRAWN}),
    Status.NOTIFIED: frozenset({Status.CONFIRMED, Status.DECLINED, Status.WITHDRAWN}),
    Status.CONFIRMED: frozenset({Status.PAID, Status.DECLINED, Status.WITHDRAWN}),  # paid when its batch is sent
    Status.PAID: frozenset({Status.RETURNED}),
    Status.RETURNED: frozenset({Status.CONFIRMED}),  # corrected account, paid again in a later batch
    Status.DECLINED: frozenset(),
    Status.WITHDRAWN: frozenset(),
}

FINAL: frozenset[Status] = frozenset(s for s, nxt in TRANSITIONS.items() if not nxt)


def check_transition(current: Status, new: Status) -> None:
    if new not in TRANSITIONS[current]:
        allowed = ", ".join(sorted(TRANSITIONS[current])) or "nothing (final)"
        raise ProgrammeError(f"an entitlement cannot go from {current} to {new}; from {current} it may go to {allowed}")
