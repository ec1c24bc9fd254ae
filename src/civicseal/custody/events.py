"""The custody chain's events and which may follow which, defined once and free of the store (commands name
them in their help)."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum


class Event(StrEnum):
    CREATED = "created"
    HANDED_OVER = "handed-over"
    RECEIVED = "received"
    RETURNED = "returned"
    DESTROYED = "destroyed"
    LOST = "lost"
    FOUND = "found"


# Each event as the city's staff write it (the incident report prints these), and the other spellings they type.
JAPANESE: Mapping[Event, str] = {
    Event.CREATED: "作成（封緘）",
    Event.HANDED_OVER: "引渡し",
    Event.RECEIVED: "受領",
    Event.RETURNED: "返却",
    Event.DESTROYED: "廃棄",
    Event.LOST: "紛失",
    Event.FOUND: "発見",
}
TYPED: Mapping[str, Event] = {
    **{word: event for event, word in JAPANESE.items()},
    "引き渡し": Event.HANDED_OVER,
    "引渡": Event.HANDED_OVER,
    "受取": Event.RECEIVED,
    "受け取り": Event.RECEIVED,
    "消去": Event.DESTROYED,  # a stick wiped: what the Amagasaki contractor did not do
}


# Which event may follow the current state (the latest event). None: nothing recorded yet.
TRANSITIONS: Mapping[Event | None, frozenset[Event]] = {
    None: frozenset({Event.CREATED}),  # a chain starts when the package is sealed, and only then
    Event.CREATED: frozenset({Event.HANDED_OVER, Event.LOST, Event.DESTROYED}),
    Event.HANDED_OVER: frozenset({Event.RECEIVED, Event.LOST, Event.RETURNED}),  # returned: refused at the door
    # handed-over again: passed on, e.g. to another site of the same contractor
    Event.RECEIVED: frozenset({Event.HANDED_OVER, Event.RETURNED, Event.DESTROYED, Event.LOST}),
    Event.RETURNED: frozenset({Event.HANDED_OVER, Event.DESTROYED, Event.LOST}),
    Event.LOST: frozenset({Event.FOUND}),
    # A found package stays revoked: it goes back to the city or is destroyed (or is lost once more).
    Event.FOUND: frozenset({Event.RETURNED, Event.DESTROYED, Event.LOST}),
    Event.DESTROYED: frozenset(),
}

UNLOCKABLE = frozenset({Event.CREATED, Event.HANDED_OVER, Event.RECEIVED})
"""States in which the key service may release a tethered package's identity (DESIGN: rules decided)."""

ACCOUNTED_FOR = frozenset({Event.RETURNED, Event.DESTROYED})
"""States in which a package is no longer out: back with the city, or no longer existing. Others are overdue."""

MANUAL_EVENTS = frozenset(Event) - {Event.CREATED}
"""Events a person records; ``created`` is recorded by sealing, in the sealing transaction, and never by hand."""
