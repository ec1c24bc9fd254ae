"""Moving entitlements through their life: the one door the CLI, the contact centre and payments all use.

Every change is checked against `lifecycle.TRANSITIONS`, written to the entitlement's own history with who
and why, and appended to the audit chain, in the caller's transaction. The audit row carries the reference
number and the statuses, never the reason text (a reason typed by staff may quote a person).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, RowMapping, bindparam, insert, select, update

from civicseal.audit import log as audit
from civicseal.programme.errors import ProgrammeError
from civicseal.programme.lifecycle import Status, check_transition
from civicseal.programme.models import Entitlement, EntitlementEvent
from civicseal.programme.reference import parse_printed

REASON_LIMIT = 500


class UnknownReference(ProgrammeError):
    """No entitlement carries this reference number (or it is not a valid one)."""


@dataclass(frozen=True)
class Change:
    """What one status change did, for the caller to show."""

    reference_number: str
    old: Status
    new: Status


def parse_reference(text: str) -> str:
    """A reference number as people write or type it (:func:`parse_printed`), check digit verified."""
    number = parse_printed(text)
    if number is None:
        raise UnknownReference("reference number: not 12 digits with a valid check digit; check it on the letter")
    return number


def find(conn: Connection, reference_number: str, *, lock: bool = False) -> RowMapping:
    """The entitlement behind a reference number; `lock` holds its row until the transaction ends."""
    query = select(Entitlement.__table__).where(Entitlement.reference_number == parse_reference(reference_number))
    row = conn.execute(query.with_for_update() if lock else query).mappings().first()
    if row is None:
        raise UnknownReference("reference number: no entitlement has it; check the number on the letter")
    return row


def _checked_reason(reason: str) -> str:
    reason = reason.strip()
    if not reason:
        raise ProgrammeError("reason: required; say why the entitlement changes")
    if len(reason) > REASON_LIMIT:
        raise ProgrammeError(f"reason: longer than {REASON_LIMIT} characters")
    return reason


def change_status(
    conn: Connection,
    reference_number: str,
    new: Status,
    *,
    reason: str,
    now: datetime,
    actor: str | None = None,
) -> Change:
    """Move one entitlement to ``new`` if its life cycle allows it; refused otherwise, with nothing written."""
    row = find(conn, reference_number, lock=True)
    old = Status(row["status"])
    check_transition(old, new)
    reason = _checked_reason(reason)
    who = actor or audit.current_actor()
    conn.execute(update(Entitlement).where(Entitlement.id == row["id"]).values(status=new.value, updated_at=now))
    conn.execute(
        insert(EntitlementEvent).values(
            entitlement_id=row["id"], at=now, from_status=old.value, to_status=new.value, reason=reason, actor=who
        )
    )
    audit.append(
        conn,
        f"entitlement.{new.value}",
        "entitlement",
        row["reference_number"],
        {"from": old.value, "to": new.value},
        actor=who,
        now=now,
    )
    return Change(row["reference_number"], old, new)


def change_many(
    conn: Connection,
    entitlement_ids: Sequence[int],
    old: Status,
    new: Status,
    *,
    reason: str,
    now: datetime,
    actor: str | None = None,
    object_type: str = "entitlements",
    object_id: str = "",
) -> int:
    """Move a batch of entitlements that are all in ``old`` to ``new`` set-based, with one audit row.

    Refuses the whole batch if any of them is no longer in ``old`` (someone changed it meanwhile): a
    payment batch must not half-apply.
    """
    check_transition(old, new)
    reason = _checked_reason(reason)
    who = actor or audit.current_actor()
    ids = list(entitlement_ids)
    changed = 0
    for start in range(0, len(ids), 5000):
        chunk = ids[start : start + 5000]
        result = conn.execute(
            update(Entitlement)
            .where(Entitlement.id.in_(bindparam("ids", expanding=True)), Entitlement.status == old.value)
            .values(status=new.value, updated_at=now),
            {"ids": chunk},
        )
        changed += result.rowcount
    if changed != len(ids):
        raise ProgrammeError(
            f"{len(ids) - changed} of {len(ids)} entitlements are no longer {old}; nothing was changed, run it again"
        )
    if ids:
        conn.execute(
            insert(EntitlementEvent),
            [
                dict(entitlement_id=i, at=now, from_status=old.value, to_status=new.value, reason=reason, actor=who)
                for i in ids
            ],
        )
    audit.append(
        conn,
        f"entitlement.{new.value}",
        object_type,
        object_id,
        {"from": old.value, "to": new.value, "count": len(ids)},
        actor=who,
        now=now,
    )
    return changed


def history(conn: Connection, entitlement_id: int) -> list[RowMapping]:
    """The entitlement's changes, oldest first."""
    query = (
        select(EntitlementEvent.__table__)
        .where(EntitlementEvent.entitlement_id == entitlement_id)
        .order_by(EntitlementEvent.id)
    )
    return list(conn.execute(query).mappings())
