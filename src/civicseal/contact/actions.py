"""What an operator may do for the household on the line, through the entitlement life cycle's one door.

Every action names a recent look-up of the same operator (``lookup_id``), never a reference number, so
no action can be used to probe numbers. Bank details are checked by the register's own parsers.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Final

from sqlalchemy import Connection, Engine, Row, insert, select, update

from civicseal.audit import log as audit
from civicseal.contact.errors import ContactError
from civicseal.contact.lookup import check_call_reference, looked_up, parse_field, require_approved
from civicseal.contact.models import CallNote, ChangeRequest, ContactUser
from civicseal.contact.users import Principal, Role
from civicseal.programme.confirmation import Account, read_account, store_accounts
from civicseal.programme.entitlements import change_status
from civicseal.programme.errors import ProgrammeError
from civicseal.programme.lifecycle import Status
from civicseal.programme.models import Entitlement
from civicseal.register import columns, normalize
from civicseal.store.engine import transaction
from civicseal.store.fieldcrypt import FieldCipher

NOTE_LIMIT: Final = 1000
NOTE_COLUMN: Final = "contact_notes.note"
REQUEST_COLUMN: Final = "contact_change_requests.details"
ACCOUNT_COLUMN: Final = "entitlement_accounts.account_number"
ACTION_ROLES: Final = (Role.OPERATOR, Role.SUPERVISOR)


@dataclass(frozen=True)
class AccountForm:
    """Bank details as written on a returned form, before checking."""

    bank_code: str
    branch_code: str
    account_type: str
    account_number: str
    holder_kana: str


def check_account(form: AccountForm) -> Account:
    """Validated exactly as the register's accounts and returned forms are (one rule: ``read_account``)."""
    try:
        return read_account(asdict(form))
    except ProgrammeError as exc:
        raise ContactError(str(exc)) from None


def record_note(
    engine: Engine,
    cipher: FieldCipher,
    principal: Principal,
    lookup_id: int,
    text: str,
    call_reference: str,
    *,
    now: datetime,
) -> None:
    """Keep what was said on the call (encrypted: callers say personal things); the audit row has no text."""
    principal.require(*ACTION_ROLES)
    call = check_call_reference(call_reference)
    text = (text or "").strip()
    if not text or len(text) > NOTE_LIMIT:
        raise ContactError(f"note: 1-{NOTE_LIMIT} characters")
    require_approved(engine, principal, "note", call, now=now)
    with transaction(engine) as conn:
        ent = looked_up(conn, principal, lookup_id, now=now)
        conn.execute(
            insert(CallNote).values(
                entitlement_id=ent.id,
                user_id=principal.user_id,
                at=now,
                call_reference=call,
                note_enc=cipher.encrypt(text, NOTE_COLUMN, ent.id),
            )
        )
        audit.append(
            conn, "contact.note", "entitlement", ent.reference_number, {"call": call}, actor=principal.actor, now=now
        )


def confirm(
    engine: Engine,
    cipher: FieldCipher,
    principal: Principal,
    lookup_id: int,
    form: AccountForm,
    call_reference: str,
    *,
    now: datetime,
) -> Status:
    """Record a returned confirmation form with its account: notified (or returned) → confirmed."""
    principal.require(*ACTION_ROLES)
    call = check_call_reference(call_reference)
    account = check_account(form)
    require_approved(engine, principal, "confirm", call, now=now)
    with transaction(engine) as conn:
        reason = f"confirmation form with bank account recorded on call {call}"
        ent = _move(conn, principal, lookup_id, Status.CONFIRMED, reason, now)
        store_accounts(conn, cipher, {ent.id: account}, now)
    return Status.CONFIRMED


def decline(engine: Engine, principal: Principal, lookup_id: int, call_reference: str, *, now: datetime) -> Status:
    """The household declines the benefit on the call: final."""
    principal.require(*ACTION_ROLES)
    call = check_call_reference(call_reference)
    require_approved(engine, principal, "decline", call, now=now)
    with transaction(engine) as conn:
        _move(conn, principal, lookup_id, Status.DECLINED, f"declined by the household on call {call}", now)
    return Status.DECLINED


def _move(conn: Connection, principal: Principal, lookup_id: int, status: Status, reason: str, now: datetime) -> Row:
    """The looked-up entitlement, moved through the life cycle's one door with the operator as actor."""
    ent = looked_up(conn, principal, lookup_id, now=now)
    change_status(conn, ent.reference_number, status, reason=reason, now=now, actor=principal.actor)
    return ent


def request_change(
    engine: Engine,
    cipher: FieldCipher,
    principal: Principal,
    lookup_id: int,
    kind: str,
    values: dict[str, str],
    call_reference: str,
    *,
    now: datetime,
) -> int:
    """Take down a new address or account for a supervisor to approve; checked now, applied on approval."""
    principal.require(*ACTION_ROLES)
    call = check_call_reference(call_reference)
    if kind == "address":
        details = {
            "postcode": parse_field("postcode", normalize.parse_postcode, values.get("postcode", "")),
            "address": parse_field("address", _address, values.get("address", "")),
        }
    elif kind == "account":
        details = asdict(check_account(AccountForm(**{k: values.get(k, "") for k in AccountForm.__dataclass_fields__})))
    else:
        raise ContactError("change: address or account")
    require_approved(engine, principal, "change", call, now=now)
    with transaction(engine) as conn:
        ent = looked_up(conn, principal, lookup_id, now=now)
        request_id = conn.execute(
            insert(ChangeRequest)
            .values(
                entitlement_id=ent.id,
                kind=kind,
                requested_by=principal.user_id,
                requested_at=now,
                details_enc=cipher.encrypt(json.dumps(details, ensure_ascii=False), REQUEST_COLUMN, ent.id),
            )
            .returning(ChangeRequest.id)
        ).scalar_one()
        audit.append(
            conn,
            "contact.change-requested",
            "entitlement",
            ent.reference_number,
            {"kind": kind, "request": request_id, "call": call},
            actor=principal.actor,
            now=now,
        )
    return request_id


def _address(text: str) -> str:
    return normalize.check_length(columns.parse_address(normalize.normalize_text(text)), columns.ADDRESS_LIMIT)


@dataclass(frozen=True)
class PendingChange:
    request_id: int
    reference_number: str
    kind: str
    details: dict[str, object]
    requested_by: str
    requested_at: datetime


def pending_changes(conn: Connection, cipher: FieldCipher, principal: Principal) -> list[PendingChange]:
    """Requests awaiting a decision, oldest first (a supervisor's page; the details are decrypted for them)."""
    principal.require(Role.SUPERVISOR)
    query = (
        select(
            ChangeRequest.id,
            ChangeRequest.kind,
            ChangeRequest.details_enc,
            ChangeRequest.entitlement_id,
            ChangeRequest.requested_at,
            Entitlement.reference_number,
            ContactUser.username,
        )
        .join(Entitlement, Entitlement.id == ChangeRequest.entitlement_id)
        .join(ContactUser, ContactUser.id == ChangeRequest.requested_by)
        .where(ChangeRequest.decision.is_(None))
        .order_by(ChangeRequest.id)
    )
    if principal.organization is not None:
        query = query.where(ContactUser.organization == principal.organization)
    return [
        PendingChange(
            r.id,
            r.reference_number,
            r.kind,
            json.loads(cipher.decrypt(r.details_enc, REQUEST_COLUMN, r.entitlement_id)),
            r.username,
            r.requested_at,
        )
        for r in conn.execute(query).all()
    ]


def decide_change(
    engine: Engine, cipher: FieldCipher, principal: Principal, request_id: int, approve: bool, *, now: datetime
) -> str:
    """A supervisor approves or rejects. An approved account replaces the household's account for the
    payment; an approved address is recorded for the register's keepers (the register is the city's own)."""
    principal.require(Role.SUPERVISOR)
    decision = "approved" if approve else "rejected"
    require_approved(engine, principal, "decide-change", None, now=now)
    with transaction(engine) as conn:
        pending = {p.request_id: p for p in pending_changes(conn, cipher, principal)}
        if request_id not in pending:
            raise ContactError("no such pending request; reload the dashboard")
        request = pending[request_id]
        row = conn.execute(
            select(ChangeRequest.__table__).where(ChangeRequest.id == request_id).with_for_update()
        ).one()
        if row.decision is not None:
            raise ContactError("someone decided this request already; reload the dashboard")
        if approve and request.kind == "account":
            store_accounts(conn, cipher, {row.entitlement_id: Account(**request.details)}, now)  # type: ignore[arg-type]
        conn.execute(
            update(ChangeRequest)
            .where(ChangeRequest.id == request_id)
            .values(decision=decision, decided_by=principal.user_id, decided_at=now)
        )
        audit.append(
            conn,
            f"contact.change-{decision}",
            "entitlement",
            request.reference_number,
            {"kind": request.kind, "request": request_id},
            actor=principal.actor,
            now=now,
        )
    return decision
