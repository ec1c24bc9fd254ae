"""Look-ups: one household at a time, only what the call needs, every one on record, extraction stopped.

A look-up is one short transaction: lock the operator's row (so two workers count one operator's
look-ups in turn), check the limits, read the household, record the look-up, raise any alert, and append
the audit row last, so the chain head is locked only for the final insert and the commit.

A reference number without the matching birth date answers exactly as an unknown number: the same
``None``, after the same queries.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import Final

from sqlalchemy import Connection, Engine, Row, func, insert, select, update
from sqlalchemy.orm import aliased

from civicseal.audit import log as audit
from civicseal.clock import as_utc
from civicseal.contact.canaries import is_canary
from civicseal.contact.errors import AccountLocked, ContactError
from civicseal.contact.models import Alert, ContactUser, Lookup
from civicseal.contact.organizations import approved_for_contact_centre
from civicseal.contact.users import Principal, Role
from civicseal.programme.entitlements import UnknownReference, parse_reference
from civicseal.programme.lifecycle import Status
from civicseal.programme.models import Entitlement, EntitlementAccount, EntitlementMember, Programme
from civicseal.register import normalize
from civicseal.register.errors import InvalidValue
from civicseal.register.models import BankAccount, Resident
from civicseal.store.engine import transaction
from civicseal.store.fieldcrypt import FieldCipher

CALL_REFERENCE_RE: Final = re.compile(r"[A-Za-z0-9-]{1,32}")
MISS_WINDOW: Final = 20  # "30 % misses in any 20 look-ups"
HOUR: Final = timedelta(hours=1)
ACTION_WINDOW: Final = timedelta(minutes=30)  # an action needs a hit by the same user this recently
LOOKUP_ROLES: Final = (Role.OPERATOR, Role.SUPERVISOR)
MAX_ID: Final = 2**31 - 1  # an INTEGER key on PostgreSQL


@dataclass(frozen=True)
class Household:
    """What an operator sees of one household: no member list, no codes, the account masked."""

    lookup_id: int
    reference_number: str
    programme: str
    status: Status
    amount: int
    created_at: datetime
    status_since: datetime
    head_name: str
    head_name_kana: str
    bank_code: str | None
    branch_code: str | None
    account_masked: str | None  # "****123"

    def as_dict(self) -> dict[str, object]:
        return {
            "lookup_id": self.lookup_id,
            "reference_number": self.reference_number,
            "programme": self.programme,
            "status": self.status.value,
            "amount": self.amount,
            "created_at": as_utc(self.created_at).isoformat(),
            "status_since": as_utc(self.status_since).isoformat(),
            "head_name": self.head_name,
            "head_name_kana": self.head_name_kana,
            "bank_code": self.bank_code,
            "branch_code": self.branch_code,
            "account_masked": self.account_masked,
        }


def check_call_reference(text: str) -> str:
    """The centre's own call id: letters, digits and '-', so it can never carry a caller's details."""
    text = (text or "").strip()
    if not CALL_REFERENCE_RE.fullmatch(text):
        raise ContactError("call reference: 1-32 letters, digits or '-' (the id your telephone system gives)")
    return text


def parse_field(field: str, parser: object, text: str) -> object:
    """Run a register parser on one form field; the error names the field and the rule, never the value."""
    try:
        return parser(text or "")  # type: ignore[operator]
    except InvalidValue as exc:
        raise ContactError(f"{field}: {exc.rule}") from None


def _masked(number: str) -> str:
    return "****" + number[-3:]


Member = aliased(Resident, name="member")
Head = aliased(Resident, name="head")


def _household_rows():  # type: ignore[no-untyped-def]
    """One row per recorded member of an entitlement, with all the look-up shows: one round trip, not five."""
    return (
        select(
            Entitlement.id,
            Entitlement.reference_number,
            Entitlement.household_code,
            Entitlement.status,
            Entitlement.amount,
            Entitlement.created_at,
            Entitlement.updated_at,
            Programme.name.label("programme"),
            Head.name.label("head_name"),
            Head.name_kana.label("head_name_kana"),
            Member.birth_date.label("member_birth_date"),
            EntitlementAccount.bank_code.label("given_bank"),
            EntitlementAccount.branch_code.label("given_branch"),
            EntitlementAccount.account_number_enc.label("given_number"),
            BankAccount.bank_code.label("reg_bank"),
            BankAccount.branch_code.label("reg_branch"),
            BankAccount.account_number_enc.label("reg_number"),
        )
        .join(Programme, Programme.id == Entitlement.programme_id)
        .join(Head, Head.resident_code == Entitlement.head_resident_code)
        .join(EntitlementMember, EntitlementMember.entitlement_id == Entitlement.id)
        .join(Member, Member.resident_code == EntitlementMember.resident_code)
        .outerjoin(EntitlementAccount, EntitlementAccount.entitlement_id == Entitlement.id)
        .outerjoin(BankAccount, BankAccount.household_code == Entitlement.household_code)
    )


def _household(cipher: FieldCipher, row: Row) -> Household:
    """What the operator sees; the account given on the form wins over the register's, masked to 3 digits."""
    if row.given_number is not None:
        bank, branch = row.given_bank, row.given_branch
        masked = _masked(cipher.decrypt(row.given_number, "entitlement_accounts.account_number", row.id))
    elif row.reg_number is not None:
        bank, branch = row.reg_bank, row.reg_branch
        masked = _masked(cipher.decrypt(row.reg_number, "bank_accounts.account_number", row.household_code))
    else:
        bank = branch = masked = None
    return Household(
        0,
        row.reference_number,
        row.programme,
        Status(row.status),
        row.amount,
        row.created_at,
        row.updated_at,
        row.head_name,
        row.head_name_kana,
        bank,
        branch,
        masked,
    )


def _lock_operator(conn: Connection, principal: Principal, now: datetime) -> Row:
    """The operator's row, locked for this transaction: look-ups of one operator are counted one at a time."""
    user = conn.execute(
        select(ContactUser.__table__).where(ContactUser.id == principal.user_id).with_for_update()
    ).one()
    if user.locked_at is not None:
        raise AccountLocked("your account is locked; a supervisor must unlock it")
    if not approved_for_contact_centre(conn, user.organization, now=now):
        raise AccountLocked("your organization is not approved for the contact centre")
    return user


def _lock(conn: Connection, user: Row, kind: str, now: datetime) -> None:
    conn.execute(update(ContactUser).where(ContactUser.id == user.id).values(locked_at=now, locked_reason=kind))
    conn.execute(insert(Alert).values(at=now, kind=kind, user_id=user.id))
    audit.append(
        conn, "contact.user-locked", "contact-user", user.username, {"why": kind}, actor="contact:guard", now=now
    )


def _over_hourly_limit(conn: Connection, user: Row, now: datetime) -> bool:
    count = conn.execute(
        select(func.count()).where(Lookup.user_id == user.id, Lookup.at > now - HOUR, Lookup.outcome != "refused")
    ).scalar_one()
    return count >= user.hourly_limit


def _over_miss_limit(conn: Connection, user: Row) -> bool:
    """Misses among the last 20 look-ups reach the limit (30 %: 6): fewer look-ups than 20 count too."""
    recent = conn.execute(
        select(Lookup.outcome)
        .where(Lookup.user_id == user.id, Lookup.outcome.in_(("hit", "miss")))
        .order_by(Lookup.id.desc())
        .limit(MISS_WINDOW)
    ).scalars()
    misses = sum(1 for outcome in recent if outcome == "miss")
    return misses * 100 >= user.miss_limit_percent * MISS_WINDOW


def _record(
    conn: Connection,
    user: Row,
    call: str,
    outcome: str,
    entitlement_id: int | None,
    reference_number: str | None,
    how: str,
    now: datetime,
) -> int:
    """The look-up's row: durable with the transaction, chained into the audit log by :func:`chain_lookups`."""
    lookup_id = conn.execute(
        insert(Lookup)
        .values(
            user_id=user.id,
            at=now,
            call_reference=call,
            outcome=outcome,
            entitlement_id=entitlement_id,
            reference_number=reference_number,
            method=how,
        )
        .returning(Lookup.id)
    ).scalar_one()
    if outcome == "miss" and _over_miss_limit(conn, user):
        _lock(conn, user, "miss-rate", now)
    return lookup_id


def chain_lookups(engine: Engine, *, limit: int = 1000) -> int:
    """Append every look-up not yet in the audit chain, in one transaction: one head lock and one commit for
    all of them, so the chain's single head is taken once per batch, not once per look-up.

    Rows another worker is chaining are skipped (SKIP LOCKED), never waited for. Returns how many were chained.
    """
    with transaction(engine) as conn:
        pending = conn.execute(
            select(
                Lookup.id,
                Lookup.at,
                Lookup.call_reference,
                Lookup.outcome,
                Lookup.reference_number,
                Lookup.method,
                ContactUser.username,
                ContactUser.organization,
            )
            .join(ContactUser, ContactUser.id == Lookup.user_id)
            .where(Lookup.audit_seq.is_(None))
            .order_by(Lookup.id)
            .limit(limit)
            .with_for_update(skip_locked=True, of=Lookup)
        ).all()
        for row in pending:
            details = {
                "operator": row.username,
                "organization": row.organization,
                "call": row.call_reference,
                "outcome": row.outcome,
                "by": row.method,
                "lookup": row.id,
            }
            seq = audit.append(
                conn,
                "contact.lookup",
                "entitlement",
                row.reference_number or "",
                details,
                actor=f"contact:{row.username}",
                now=as_utc(row.at),
            )
            conn.execute(update(Lookup).where(Lookup.id == row.id).values(audit_seq=seq))
    return len(pending)


def _guard(
    conn: Connection, principal: Principal, call: str, how: str, now: datetime
) -> tuple[Row, ContactError | None]:
    """Lock the operator's row and apply the hourly limit: crossing it locks the account and records a refusal."""
    user = _lock_operator(conn, principal, now)
    if not _over_hourly_limit(conn, user, now):
        return user, None
    _lock(conn, user, "hourly-limit", now)
    _record(conn, user, call, "refused", None, None, how, now)
    return user, AccountLocked("look-up limit for this hour reached: your account is locked; call a supervisor")


def _hit_or_miss(
    conn: Connection,
    cipher: FieldCipher,
    user: Row,
    call: str,
    ent: Row | None,
    reference: str | None,
    how: str,
    now: datetime,
) -> Household | None:
    shown = _household(cipher, ent) if ent else None
    lookup_id = _record(conn, user, call, "hit" if ent else "miss", ent.id if ent else None, reference, how, now)
    return replace(shown, lookup_id=lookup_id) if shown else None


def _finish(engine: Engine, chain: bool, refusal: ContactError | None, found: Household | None) -> Household | None:
    """After the commit: chain the look-up into the audit log (unless the caller will), then answer."""
    if chain:
        chain_lookups(engine)
    if refusal is not None:
        raise refusal
    return found


def _find_by_reference(conn: Connection, number: str, born: date) -> Row | None:
    """The same query whether the number is unknown, a canary's, or known with another birth date."""
    rows = conn.execute(_household_rows().where(Entitlement.reference_number == number)).all()
    return next((row for row in rows if row.member_birth_date == born), None)


def lookup_by_reference(
    engine: Engine,
    cipher: FieldCipher,
    principal: Principal,
    reference: str,
    birth_date: str,
    call_reference: str,
    *,
    now: datetime,
    chain: bool = True,
) -> Household | None:
    """The household behind the reference number on its letter, if the caller's birth date is a member's.

    None for an unknown number, a canary's, or a number without a matching birth date, alike. A number
    whose check digit fails is refused before any query (and counts towards the hourly limit, not as a miss).
    A canary's number raises an alert naming the operator: someone is using leaked data. ``chain=False``
    leaves the audit append to a later :func:`chain_lookups` (the web edge runs it after answering).
    """
    principal.require(*LOOKUP_ROLES)
    call = check_call_reference(call_reference)
    born = parse_field("birth date", normalize.parse_date, birth_date)
    try:
        number = parse_reference(reference or "")
    except UnknownReference:
        number = None
    found: Household | None = None
    with transaction(engine) as conn:
        user, refusal = _guard(conn, principal, call, "reference", now)
        if refusal is not None:
            pass
        elif number is None:
            _record(conn, user, call, "invalid", None, None, "reference", now)
            refusal = ContactError(
                "reference number: 12 digits with a valid check digit; read it again from the letter"
            )
        else:
            ent = _find_by_reference(conn, number, born)
            if is_canary(conn, number):
                conn.execute(insert(Alert).values(at=now, kind="canary", user_id=user.id, reference_number=number))
                audit.append(
                    conn,
                    "contact.canary-alert",
                    "reference",
                    number,
                    {"operator": user.username, "organization": user.organization, "call": call},
                    actor="contact:guard",
                    now=now,
                )
            found = _hit_or_miss(conn, cipher, user, call, ent, number, "reference", now)
    return _finish(engine, chain, refusal, found)


def lookup_by_name(
    engine: Engine,
    cipher: FieldCipher,
    principal: Principal,
    name_kana: str,
    birth_date: str,
    postcode: str,
    call_reference: str,
    *,
    now: datetime,
    chain: bool = True,
) -> Household | None:
    """Supervisors only: the one household whose recorded member has this kana name, birth date and postcode.

    Exact match on all three after normalization; two households matching is a miss too (no list is shown).
    """
    principal.require(Role.SUPERVISOR)
    call = check_call_reference(call_reference)
    kana = parse_field("name kana", normalize.normalize_kana, name_kana)
    born = parse_field("birth date", normalize.parse_date, birth_date)
    post = parse_field("postcode", normalize.parse_postcode, postcode)
    found: Household | None = None
    with transaction(engine) as conn:
        user, refusal = _guard(conn, principal, call, "name", now)
        if refusal is None:
            ents = conn.execute(
                _household_rows()
                .where(Member.name_kana == kana, Member.birth_date == born, Member.postcode == post)
                .limit(2)
            ).all()
            ent = ents[0] if len(ents) == 1 else None
            reference = ent.reference_number if ent else None
            found = _hit_or_miss(conn, cipher, user, call, ent, reference, "name", now)
    return _finish(engine, chain, refusal, found)


def looked_up(conn: Connection, principal: Principal, lookup_id: int, *, now: datetime) -> Row:
    """The entitlement this user found in a recent hit; actions go through it, so no action is an oracle."""
    if not 0 < lookup_id <= MAX_ID:
        raise ContactError("look-up id: not one of yours; look the household up again")
    ent = conn.execute(
        select(Entitlement.__table__)
        .join(Lookup, Lookup.entitlement_id == Entitlement.id)
        .where(
            Lookup.id == lookup_id,
            Lookup.user_id == principal.user_id,
            Lookup.outcome == "hit",
            Lookup.at > now - ACTION_WINDOW,
        )
    ).first()
    if ent is None:
        raise ContactError("look the household up again first (a look-up is good for 30 minutes, for you alone)")
    return ent
