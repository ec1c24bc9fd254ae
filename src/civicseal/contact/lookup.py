"""Look-ups: one household at a time, only what the call needs, every one on record, extraction stopped.

A look-up is one short transaction of four statements: lock the operator's row (so two workers count one
operator's look-ups in turn) reading its hourly count and whether the number is a canary's, ask the
organization's contract chain, read the household, record the look-up. Its audit row is appended before the
answer: in the same transaction when the chain's head is free (with every look-up committed before it), else
after the commit by a batch that chains every look-up committed meanwhile (:class:`Chainer`). Either way the
single head is locked once per batch, not once per look-up, and never waited for while the operator's row is.

A reference number without the matching birth date answers exactly as an unknown number: the same
``None``, after the same queries.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import Final
from weakref import WeakKeyDictionary

from sqlalchemy import Connection, Engine, Row, bindparam, func, insert, select, update
from sqlalchemy.orm import aliased

from civicseal.audit import log as audit
from civicseal.audit.log import Detail
from civicseal.clock import as_utc
from civicseal.contact.canaries import is_canary
from civicseal.contact.errors import AccountLocked, ContactError, OrganizationNotApproved
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
DONE_KEPT: Final = 10_000  # chained ids a Chainer remembers before it starts afresh


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
    """The centre's own call id: letters, digits and '-', so it can never carry a caller's details. Typed with
    a Japanese input method on (２０２６－００１), it is folded as the register's codes are."""
    try:
        text = normalize.normalize_hyphens(normalize.normalize_text(text or ""))
    except InvalidValue:
        text = ""  # a control character: refused below, as any other character
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
    """One row per recorded member of an entitlement, with all the look-up shows: one round trip, not five.

    Built once (below, with bound parameters): building this statement cost more CPU than running it.
    """
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


BY_REFERENCE: Final = _household_rows().where(Entitlement.reference_number == bindparam("number"))
BY_NAME: Final = (
    _household_rows()
    .where(Member.name_kana == bindparam("kana"), Member.birth_date == bindparam("born"))
    .where(Member.postcode == bindparam("postcode"))
    .limit(2)
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


OPERATOR: Final = (
    select(
        ContactUser.__table__,
        select(func.count())
        .where(Lookup.user_id == bindparam("user_id"), Lookup.at > bindparam("since"), Lookup.outcome != "refused")
        .scalar_subquery()
        .label("lookups_this_hour"),
        is_canary(bindparam("number")).label("canary"),
    )
    .where(ContactUser.id == bindparam("user_id"))
    .with_for_update(of=ContactUser)
)


def _lock_operator(conn: Connection, principal: Principal, number: str | None, now: datetime) -> Row:
    """The operator's row, locked for this transaction (look-ups of one operator are counted one at a time),
    with its look-ups of the last hour and whether ``number`` is a canary's: one query, whatever the answer."""
    user = conn.execute(OPERATOR, {"user_id": principal.user_id, "since": now - HOUR, "number": number}).one()
    if user.locked_at is not None:
        raise AccountLocked("your account is locked; a supervisor must unlock it")
    return user


def refuse_unapproved(
    conn: Connection, username: str, organization: str | None, what: dict[str, Detail], *, now: datetime
) -> OrganizationNotApproved | None:
    """None when the user's organization may run the centre now; else the refusal, audited in ``conn``.

    Asked on every look-up and action at its own time, so an approval withdrawn a moment ago already holds;
    the caller commits the audit row and raises the refusal, which shows nothing of any household.
    """
    if approved_for_contact_centre(conn, organization, now=now):
        return None
    details = {"why": "organization-not-approved", "organization": organization, **what}
    audit.append(conn, "contact.refused", "contact-user", username, details, actor=f"contact:{username}", now=now)
    return OrganizationNotApproved(
        "your organization is not approved for the contact centre now; the city must approve its contract first"
    )


def require_approved(engine: Engine, principal: Principal, action: str, call: str | None, *, now: datetime) -> None:
    """Before an action: refuse (audited, in a transaction of its own) when the user's organization may not
    run the centre now. A session or API token opened before the approval was withdrawn does not outlive it."""
    with transaction(engine) as conn:
        what: dict[str, Detail] = {"action": action, "call": call}
        refused = refuse_unapproved(conn, principal.username, principal.organization, what, now=now)
    if refused is not None:
        raise refused


def _lock(conn: Connection, user: Row, kind: str, now: datetime) -> None:
    conn.execute(update(ContactUser).where(ContactUser.id == user.id).values(locked_at=now, locked_reason=kind))
    conn.execute(insert(Alert).values(at=now, kind=kind, user_id=user.id))
    audit.append(
        conn, "contact.user-locked", "contact-user", user.username, {"why": kind}, actor="contact:guard", now=now
    )


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


RECORD: Final = insert(Lookup).returning(Lookup.id)


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
    row = {
        "user_id": user.id,
        "at": now,
        "call_reference": call,
        "outcome": outcome,
        "entitlement_id": entitlement_id,
        "reference_number": reference_number,
        "method": how,
    }
    lookup_id = conn.execute(RECORD, row).scalar_one()
    if outcome == "miss" and _over_miss_limit(conn, user):
        _lock(conn, user, "miss-rate", now)
    return lookup_id


PENDING: Final = (
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
)
CHAINED_SEQ: Final = select(Lookup.audit_seq).where(Lookup.id == bindparam("lookup_id"))
CHAINED: Final = update(Lookup).where(Lookup.id == bindparam("lookup_id")).values(audit_seq=bindparam("seq"))


def chain_lookups(engine: Engine, *, limit: int = 1000) -> list[int]:
    """Append every look-up not yet in the audit chain (up to ``limit``) in one transaction with
    :func:`audit.append_many`: one head lock, one insert and one commit for all of them. Returns their ids.

    The head is locked first, so chainers of every worker take turns and each one's batch is every look-up
    committed before its turn, none of them twice: no row locks, no chainer waiting on another's rows.
    """
    with transaction(engine) as conn:
        return _chain_batch(conn, limit)


def _chain_batch(conn: Connection, limit: int = 1000, head: Row | None = None) -> list[int]:
    head = head or audit.lock_head(conn)
    pending = conn.execute(PENDING.limit(limit)).all()
    entries = [
        audit.Entry(
            "contact.lookup",
            "entitlement",
            row.reference_number or "",
            {
                "operator": row.username,
                "organization": row.organization,
                "call": row.call_reference,
                "outcome": row.outcome,
                "by": row.method,
                "lookup": row.id,
            },
            actor=f"contact:{row.username}",
            now=as_utc(row.at),
        )
        for row in pending
    ]
    seqs = audit.append_many(conn, entries, head=head)
    if pending:
        conn.execute(CHAINED, [{"lookup_id": row.id, "seq": seq} for row, seq in zip(pending, seqs, strict=True)])
    return [row.id for row in pending]


class Chainer:
    """One per engine in a process: a look-up's answer leaves only once its row is on the audit chain.

    Group commit. A request that needs its look-up chained takes the process's one chaining lock. If a batch
    run while it waited already chained its row, it is done at once; otherwise it runs one batch, which
    chains every look-up committed so far: its own and those of all the requests queued behind it. So the
    chain's single head is taken once per batch, however many look-ups arrive, and no answer precedes its
    audit row. ``done`` only saves a query: a row chained by another process's batch is found in the store.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine, self.lock, self.done = engine, threading.Lock(), set[int]()

    def chained(self, lookup_id: int) -> None:
        """Return once look-up ``lookup_id`` (committed) is in the audit chain."""
        with self.lock:
            if lookup_id in self.done:
                self.done.discard(lookup_id)
                return
            chained: list[int] = []
            while lookup_id not in chained:
                if len(self.done) > DONE_KEPT:  # ids chained for another process's requests: forget them
                    self.done.clear()
                with transaction(self.engine) as conn:
                    if conn.execute(CHAINED_SEQ, {"lookup_id": lookup_id}).scalar_one() is not None:
                        return  # another worker's batch took it (committed: its audit row is durable)
                    chained = _chain_batch(conn)
                self.done.update(chained)
            self.done.discard(lookup_id)


_chainers: WeakKeyDictionary[Engine, Chainer] = WeakKeyDictionary()
_chainers_lock = threading.Lock()


def chainer(engine: Engine) -> Chainer:
    """This process's chainer for ``engine``."""
    with _chainers_lock:
        return _chainers.setdefault(engine, Chainer(engine))


def _guard(
    conn: Connection, principal: Principal, call: str, how: str, number: str | None, now: datetime
) -> tuple[Row, ContactError | None, int | None]:
    """Lock the operator's row, ask whether its organization may run the centre now, apply the hourly limit
    (crossing it locks the account and records a refusal). Returns the row, any refusal and a look-up to chain.
    """
    user = _lock_operator(conn, principal, number, now)
    refused = refuse_unapproved(conn, user.username, user.organization, {"call": call, "by": how}, now=now)
    if refused is not None:
        return user, refused, None
    if user.lookups_this_hour < user.hourly_limit:
        return user, None, None
    _lock(conn, user, "hourly-limit", now)
    lookup_id = _record(conn, user, call, "refused", None, None, how, now)
    locked = AccountLocked("look-up limit for this hour reached: your account is locked; call a supervisor")
    return user, locked, lookup_id


def _hit_or_miss(
    conn: Connection,
    cipher: FieldCipher,
    user: Row,
    call: str,
    ent: Row | None,
    reference: str | None,
    how: str,
    now: datetime,
) -> tuple[Household | None, int]:
    shown = _household(cipher, ent) if ent else None
    lookup_id = _record(conn, user, call, "hit" if ent else "miss", ent.id if ent else None, reference, how, now)
    return (replace(shown, lookup_id=lookup_id) if shown else None), lookup_id


def _chain_if_free(conn: Connection, lookup_id: int | None) -> int | None:
    """Chain this look-up in its own transaction when the head is free (then None: nothing left to wait for),
    with every look-up committed before it: the quiet hours' path, one transaction and one commit. When
    another transaction holds the head, never wait for it here (the operator's row is locked): the
    :class:`Chainer` sees to it after the commit."""
    if lookup_id is None or (head := audit.try_lock_head(conn)) is None:
        return lookup_id
    _chain_batch(conn, head=head)
    return None


def _finish(
    engine: Engine, lookup_id: int | None, refusal: ContactError | None, found: Household | None
) -> Household | None:
    """After the commit: the look-up is put on the audit chain, then answered."""
    if lookup_id is not None:
        chainer(engine).chained(lookup_id)
    if refusal is not None:
        raise refusal
    return found


def _find_by_reference(conn: Connection, number: str, born: date) -> Row | None:
    """The same query whether the number is unknown, a canary's, or known with another birth date."""
    rows = conn.execute(BY_REFERENCE, {"number": number}).all()
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
) -> Household | None:
    """The household behind the reference number on its letter, if the caller's birth date is a member's.

    None for an unknown number, a canary's, or a number without a matching birth date, alike. A number
    whose check digit fails is refused before any household query (and counts towards the hourly limit, not
    as a miss). A canary's number raises an alert naming the operator: someone is using leaked data. The
    answer is returned only once the look-up is on the audit chain.
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
        user, refusal, lookup_id = _guard(conn, principal, call, "reference", number, now)
        if refusal is not None:
            pass
        elif number is None:
            lookup_id = _record(conn, user, call, "invalid", None, None, "reference", now)
            refusal = ContactError(
                "reference number: 12 digits with a valid check digit; read it again from the letter"
            )
        else:
            ent = _find_by_reference(conn, number, born)
            if user.canary:
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
            found, lookup_id = _hit_or_miss(conn, cipher, user, call, ent, number, "reference", now)
        lookup_id = _chain_if_free(conn, lookup_id)
    return _finish(engine, lookup_id, refusal, found)


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
        user, refusal, lookup_id = _guard(conn, principal, call, "name", None, now)
        if refusal is None:
            ents = conn.execute(BY_NAME, {"kana": kana, "born": born, "postcode": post}).all()
            ent = ents[0] if len(ents) == 1 else None
            reference = ent.reference_number if ent else None
            found, lookup_id = _hit_or_miss(conn, cipher, user, call, ent, reference, "name", now)
        lookup_id = _chain_if_free(conn, lookup_id)
    return _finish(engine, lookup_id, refusal, found)


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
