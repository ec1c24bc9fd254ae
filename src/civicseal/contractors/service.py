"""The contractor register, the one authority rule, and who holds what.

The city contracts an organization for some purposes over some dates; that organization may pass work to a
subcontractor only once the city approves the link (``approve_subcontractor``), for purposes and dates no
wider than its own, and so on down a chain as deep as the city approves. :func:`check_authority` is the
rule every path that lets data reach an organization applies — sealing, the key service's unlock and the
contact centre's sign-in and look-up — so "may X hold data for purpose P today?" has one answer.

Days are days on the city's calendar (Asia/Tokyo), both ends of a contract inclusive. A withdrawal takes
effect at the moment it is recorded: the next unlock is refused.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from functools import cache
from typing import Any, Final

from sqlalchemy import Connection, Engine, Select, bindparam, func, insert, literal, or_, select, update

from civicseal import cseal as fmt
from civicseal.audit import log as audit
from civicseal.clock import as_utc, tokyo_today
from civicseal.contractors.errors import AuthorityRefused, ContractorError
from civicseal.contractors.models import Contractor
from civicseal.custody import service as custody
from civicseal.ledger.models import NAME_RE, Package, PackageMember, Recipient
from civicseal.ledger.purposes import purposes as package_purposes
from civicseal.register.errors import InvalidValue
from civicseal.register.normalize import normalize_text
from civicseal.store.engine import transaction

# Purposes served online rather than by a package: an organization is approved for them all the same.
# `contact-centre` is the contact centre's look-ups (its package fallback is `contact-centre-offline`).
ONLINE_PURPOSES: Final = {"contact-centre": "お問い合わせ窓口での照会（オンライン）"}
TEXT_LIMITS: Final = {"display name": 200, "contract reference": 100, "approved by": 100, "reason": 500}

# Rules of the chain, as AuthorityRefused.rule and as the key service's unlock-log outcome (`chain-<rule>`).
NOT_APPROVED: Final = "not-approved"
WITHDRAWN: Final = "approval-withdrawn"
WIDER_THAN_PARENT: Final = "wider-than-parent"
NOT_YET_VALID: Final = "not-yet-valid"
ENDED: Final = "ended"
PURPOSE_NOT_APPROVED: Final = "purpose-not-approved"


@dataclass(frozen=True)
class Link:
    """One organization of a chain with its current authority (``purposes`` None: never approved)."""

    name: str
    display_name: str
    parent: str | None
    contract_ref: str | None
    purposes: tuple[str, ...] | None
    valid_from: date | None
    valid_until: date | None
    approved_by: str | None
    approved_at: datetime | None
    withdrawn_at: datetime | None

    @property
    def kind(self) -> str:
        """What grants this link's authority: the city's contract, or the approval of a subcontract."""
        return "contract" if self.parent is None else "approval"

    def as_dict(self) -> dict[str, object]:
        """Stable snake_case keys; dates ISO, times RFC 3339 UTC."""
        return {
            "name": self.name,
            "display_name": self.display_name,
            "parent": self.parent,
            "contract_ref": self.contract_ref,
            "purposes": list(self.purposes) if self.purposes is not None else None,
            "valid_from": self.valid_from.isoformat() if self.valid_from else None,
            "valid_until": self.valid_until.isoformat() if self.valid_until else None,
            "approved_by": self.approved_by,
            "approved_at": fmt.rfc3339(self.approved_at) if self.approved_at else None,
            "withdrawn_at": fmt.rfc3339(self.withdrawn_at) if self.withdrawn_at else None,
        }


Chain = tuple[Link, ...]
"""An organization's chain, the city's direct contractor first and the organization itself last."""


# --------------------------------------------------------------------------------------------------
# Input
# --------------------------------------------------------------------------------------------------


def purpose_label(name: str) -> str:
    """A purpose as people read it: its Japanese description (the name itself when it has none)."""
    found = package_purposes().get(name)
    return found.description_ja if found is not None else ONLINE_PURPOSES.get(name, name)


def known_purposes() -> tuple[str, ...]:
    """Every purpose an organization can be approved for: the package purposes and the online ones."""
    return (*package_purposes(), *ONLINE_PURPOSES)


PURPOSE_SEPARATORS: Final = re.compile("[,、]")  # a list typed in Japanese is separated by 、


def parse_purposes(raw: str | Iterable[str]) -> tuple[str, ...]:
    """``P1,P2`` (or a list) as a tuple without repeats; a purpose may be named as people read it (its
    Japanese description, which the commands print). An unknown or missing purpose is refused."""
    items = PURPOSE_SEPARATORS.split(raw) if isinstance(raw, str) else list(raw)
    by_label = {_folded(purpose_label(name)): name for name in known_purposes()}
    typed = [_folded(p) for p in items]
    chosen = tuple(dict.fromkeys(by_label.get(p, p) for p in typed if p))
    if not chosen:
        raise ContractorError("purposes: name at least one (see `civicseal purpose list`)")
    unknown = [p for p in chosen if p not in known_purposes()]
    if unknown:
        known = ", ".join(f"{name} ({purpose_label(name)})" for name in known_purposes())
        raise ContractorError(f"purposes: unknown purpose(s) {', '.join(unknown)}; known: {known}")
    return chosen


def _folded(typed: str) -> str:
    """A purpose as typed, with full-width letters and spaces folded (a control character is kept, and refused
    as an unknown purpose)."""
    try:
        return normalize_text(typed)
    except InvalidValue:
        return typed.strip()


def check_name(raw: str) -> str:
    """A contractor's machine name (full-width letters typed on a Japanese keyboard are folded first)."""
    try:
        name = normalize_text(raw)
    except InvalidValue:
        name = ""
    if not NAME_RE.fullmatch(name):
        raise ContractorError("a contractor name is 1-64 letters, digits, '-' or '_' (show people --display-name)")
    return name


def clean_text(field: str, raw: str | None, *, required: bool = False) -> str | None:
    """Free text folded as the register folds it, within its limit; the value is never quoted back."""
    try:
        text = normalize_text(raw) if raw is not None else ""
    except InvalidValue as exc:
        raise ContractorError(f"{field}: {exc.rule}") from None
    if not text:
        if required:
            raise ContractorError(f"{field}: must not be empty")
        return None
    if len(text) > TEXT_LIMITS[field]:
        raise ContractorError(f"{field}: at most {TEXT_LIMITS[field]} characters")
    return text


def _check_dates(valid_from: date, valid_until: date) -> None:
    if valid_until < valid_from:
        raise ContractorError(f"dates: the last day {valid_until} is before the first day {valid_from}")


# --------------------------------------------------------------------------------------------------
# The register
# --------------------------------------------------------------------------------------------------


def _row(conn: Connection, name: str, *, lock: bool = False) -> Any:
    query = select(Contractor.__table__).where(Contractor.name == name)
    row = conn.execute(query.with_for_update() if lock else query).first()
    if row is None:
        raise ContractorError(f"no contractor named {name} (see `civicseal contractor add`)")
    return row


def contractor_id(conn: Connection, name: str) -> int:
    """The id of a registered contractor, or ContractorError saying how to register it."""
    return int(_row(conn, check_name(name)).id)


def add_contractor(
    engine: Engine,
    name: str,
    *,
    display_name: str | None = None,
    contract_ref: str | None = None,
    valid_from: date | None = None,
    valid_until: date | None = None,
    purposes: str | Iterable[str] | None = None,
    under: str | None = None,
    now: datetime,
    actor: str,
) -> Link:
    """Register a contractor of the city (with its contract), or a subcontractor ``under`` a parent.

    A subcontractor has no authority of its own until :func:`approve_subcontractor`: purposes and dates
    are refused here, so nothing can reach it by being registered alone.
    """
    name = check_name(name)
    shown = clean_text("display name", display_name) or name
    ref = clean_text("contract reference", contract_ref)
    now = as_utc(now)
    values: dict[str, object] = {"name": name, "display_name": shown, "contract_ref": ref, "created_at": now}
    with transaction(engine) as conn:
        if conn.execute(select(Contractor.id).where(Contractor.name == name)).first() is not None:
            raise ContractorError(f"contractor {name} already exists")
        if under is None:
            if ref is None or valid_from is None or valid_until is None or purposes is None:
                raise ContractorError(
                    "a contractor of the city needs --contract-ref, --valid-from, --valid-until and --purposes"
                    " (a subcontractor: --under PARENT)"
                )
            _check_dates(valid_from, valid_until)
            chosen = parse_purposes(purposes)
            values |= {
                "purposes": ",".join(chosen),
                "valid_from": valid_from,
                "valid_until": valid_until,
                "approved_at": now,
            }
        else:
            if purposes is not None or valid_from is not None or valid_until is not None:
                raise ContractorError(
                    "a subcontractor has no purposes or dates of its own until"
                    " `civicseal contractor approve-subcontractor PARENT CHILD` approves them"
                )
            parent = _row(conn, check_name(under))
            values["parent_id"], under = parent.id, parent.name
        conn.execute(insert(Contractor).values(**values))
        details = {
            "parent": under,
            "contract_ref": ref,
            "purposes": values.get("purposes"),  # type: ignore[dict-item]
            "valid_from": valid_from.isoformat() if valid_from else None,
            "valid_until": valid_until.isoformat() if valid_until else None,
        }
        audit.append(conn, "contractor.added", "contractor", name, details, actor=actor, now=now)
        return chain(conn, name)[-1]


def approve_subcontractor(
    engine: Engine,
    parent: str,
    child: str,
    *,
    purposes: str | Iterable[str],
    approved_by: str,
    valid_until: date,
    valid_from: date | None = None,
    now: datetime,
    actor: str,
) -> Link:
    """Give a subcontractor authority: no wider than its parent's, in purposes and in dates.

    ``valid_from`` defaults to the day of approval (or the parent's first day, if later). Approving again
    replaces the approval (and lifts a withdrawal); every approval is audited.
    """
    now = as_utc(now)
    officer = clean_text("approved by", approved_by, required=True)
    chosen = parse_purposes(purposes)
    with transaction(engine) as conn:
        child_row, parent_link = _child_of(conn, parent, child, lock=True)
        if parent_link.purposes is None or parent_link.withdrawn_at is not None:
            raise ContractorError(
                f"{parent_link.display_name} ({parent_link.name}) has no authority to pass on; approve it first"
            )
        assert parent_link.valid_from is not None and parent_link.valid_until is not None
        start = valid_from or max(tokyo_today(now), parent_link.valid_from)
        _check_dates(start, valid_until)
        who = f"{child_row.display_name} ({child_row.name})"
        wider = [p for p in chosen if p not in parent_link.purposes]
        if wider:
            raise ContractorError(
                f"{who}: purpose(s) {', '.join(wider)} are not approved for its parent {parent_link.name};"
                f" a link is never wider than its parent: choose among {', '.join(parent_link.purposes)}"
            )
        if start < parent_link.valid_from or valid_until > parent_link.valid_until:
            raise ContractorError(
                f"{who}: dates {start} to {valid_until} reach outside its parent's {parent_link.valid_from} to"
                f" {parent_link.valid_until}; a link is never wider than its parent: choose dates within them"
            )
        conn.execute(
            update(Contractor)
            .where(Contractor.id == child_row.id)
            .values(
                purposes=",".join(chosen),
                valid_from=start,
                valid_until=valid_until,
                approved_by=officer,
                approved_at=now,
                withdrawn_at=None,
                withdrawn_reason=None,
            )
        )
        details = {
            "parent": parent_link.name,
            "purposes": ",".join(chosen),
            "valid_from": start.isoformat(),
            "valid_until": valid_until.isoformat(),
        }
        audit.append(
            conn, "contractor.subcontractor-approved", "contractor", child_row.name, details, actor=actor, now=now
        )
        return chain(conn, child_row.name)[-1]


def withdraw_subcontractor(engine: Engine, parent: str, child: str, *, reason: str, now: datetime, actor: str) -> Link:
    """Withdraw a subcontractor's approval at ``now``: its next unlock, and its subcontractors', is refused.

    The reason is kept with the contractor, not in the audit log (it is free text and may name a person).
    """
    now = as_utc(now)
    why = clean_text("reason", reason, required=True)
    with transaction(engine) as conn:
        child_row, parent_link = _child_of(conn, parent, child, lock=True)
        if child_row.purposes is None:
            raise ContractorError(f"{child_row.name} was never approved; there is nothing to withdraw")
        if child_row.withdrawn_at is not None:
            raise ContractorError(f"{child_row.name}'s approval is already withdrawn")
        conn.execute(
            update(Contractor).where(Contractor.id == child_row.id).values(withdrawn_at=now, withdrawn_reason=why)
        )
        details = {"parent": parent_link.name}
        audit.append(
            conn, "contractor.subcontractor-withdrawn", "contractor", child_row.name, details, actor=actor, now=now
        )
        return chain(conn, child_row.name)[-1]


def assign_recipient(engine: Engine, recipient: str, contractor: str, *, now: datetime, actor: str) -> Chain:
    """Record that a registered recipient works for ``contractor`` (one registered after the recipient was).

    From then on its packages are sealed and unlocked only while that contractor's chain holds; returns the
    chain. Audited.
    """
    now = as_utc(now)
    with transaction(engine) as conn:
        organization = _row(conn, check_name(contractor))
        done = conn.execute(
            update(Recipient).where(Recipient.name == recipient).values(contractor_id=organization.id)
        ).rowcount
        if done != 1:
            raise ContractorError(f"no recipient named {recipient} (see `civicseal recipient list`)")
        details = {"contractor": organization.name}
        audit.append(conn, "contractor.recipient-assigned", "recipient", recipient, details, actor=actor, now=now)
        return chain(conn, organization.name)


def _child_of(conn: Connection, parent: str, child: str, *, lock: bool) -> tuple[Any, Link]:
    parent_row = _row(conn, check_name(parent))
    child_row = _row(conn, check_name(child), lock=lock)
    if child_row.parent_id != parent_row.id:
        raise ContractorError(
            f"{child_row.name} is not a subcontractor of {parent_row.name} (register it with --under {parent_row.name})"
        )
    return child_row, chain(conn, parent_row.name)[-1]


def chain(conn: Connection, name: str) -> Chain:
    """The organization's chain up to the city's direct contractor, returned root first."""
    links = _chain_from(conn, "contractor", name)
    if not links:
        raise ContractorError(f"no contractor named {name} (see `civicseal contractor add`)")
    return links


@cache
def _chain_query(start: str) -> Select:
    """The chain, root first, from the contractor that ``:key`` names: a contractor's name, or a recipient's id
    or name. Built once per kind of start (building it cost more CPU than running it)."""
    key = bindparam("key")
    first = {
        "contractor": select(Contractor.id).where(Contractor.name == key),
        "recipient-id": select(Recipient.contractor_id).where(Recipient.id == key),
        "recipient": select(Recipient.contractor_id).where(Recipient.name == key),
    }[start].scalar_subquery()
    table = Contractor.__table__
    up = select(*table.c, literal(0).label("depth")).where(table.c.id == first).cte("up", recursive=True)
    up = up.union_all(select(*table.c, (up.c.depth + 1).label("depth")).join(up, table.c.id == up.c.parent_id))
    return select(up).order_by(up.c.depth.desc())


def _chain_from(conn: Connection, start: str, key: int | str) -> Chain:
    """One query however deep: asked on every unlock and every contact-centre look-up."""
    links: list[Link] = []
    for row in conn.execute(_chain_query(start), {"key": key}).all():
        links.append(_link(row, links[-1].name if links else None))
    return tuple(links)


def _link(row: Any, parent: str | None) -> Link:
    return Link(
        name=row.name,
        display_name=row.display_name,
        parent=parent,
        contract_ref=row.contract_ref,
        purposes=tuple(row.purposes.split(",")) if row.purposes else None,
        valid_from=row.valid_from,
        valid_until=row.valid_until,
        approved_by=row.approved_by,
        approved_at=as_utc(row.approved_at) if row.approved_at else None,
        withdrawn_at=as_utc(row.withdrawn_at) if row.withdrawn_at else None,
    )


# --------------------------------------------------------------------------------------------------
# The rule
# --------------------------------------------------------------------------------------------------


def check_authority(conn: Connection, organization: str, purpose: str, *, on: datetime) -> Chain:
    """The organization's chain when every link of it authorizes ``purpose`` at ``on``, else AuthorityRefused.

    Every caller that lets data reach an organization calls this: sealing, the key service's unlock, the
    contact centre's sign-in and look-up (purpose ``contact-centre``). Links are checked from the city's
    contractor down, so the refusal names the highest link that fails: approved at all, not withdrawn by
    ``on``, no wider than its parent (a parent narrowed after approving), ``on`` within its dates, and
    ``purpose`` among its purposes.
    """
    return _check_links(chain(conn, check_name(organization)), purpose, on)


def _check_links(links: Chain, purpose: str, on: datetime) -> Chain:
    on = as_utc(on)
    day = tokyo_today(on)
    parent: Link | None = None
    for link in links:
        if refusal := _refusal(link, parent, purpose, on, day):
            rule, why = refusal
            who = f"{link.display_name} ({link.name})"
            if link is not links[-1]:
                why += f", a link of the chain of {links[-1].display_name} ({links[-1].name})"
            raise AuthorityRefused(rule, link.name, f"{who}: {why}; {_next_step(rule, link)}")
        parent = link
    return links


def _refusal(link: Link, parent: Link | None, purpose: str, on: datetime, day: date) -> tuple[str, str] | None:
    if link.purposes is None or link.valid_from is None or link.valid_until is None:
        return NOT_APPROVED, "the city never approved this subcontractor"
    if link.withdrawn_at is not None and link.withdrawn_at <= on:
        return WITHDRAWN, f"its approval was withdrawn on {_day(link.withdrawn_at)}"
    if parent is not None:
        assert parent.purposes is not None and parent.valid_from is not None and parent.valid_until is not None
        outside = [p for p in link.purposes if p not in parent.purposes]
        if outside or link.valid_from < parent.valid_from or link.valid_until > parent.valid_until:
            return WIDER_THAN_PARENT, f"its approval is wider than its parent {parent.name}'s"
    if day < link.valid_from:
        return NOT_YET_VALID, f"its {link.kind} is valid only from {link.valid_from}"
    if day > link.valid_until:
        return ENDED, f"its {link.kind} ended on {link.valid_until}"
    if purpose not in link.purposes:
        return PURPOSE_NOT_APPROVED, f"its {link.kind} does not cover the purpose {purpose}"
    return None


def _next_step(rule: str, link: Link) -> str:
    if link.parent is None:
        return "renew or amend the contract with `civicseal contractor add` under a new name, or use another recipient"
    return (
        f"the city may approve it with `civicseal contractor approve-subcontractor {link.parent} {link.name}`"
        if rule != WIDER_THAN_PARENT
        else f"approve it again within its parent's authority (`civicseal contractor approve-subcontractor"
        f" {link.parent} {link.name}`)"
    )


def _day(at: datetime) -> str:
    return tokyo_today(at).isoformat()


def require_authority(engine: Engine, organization: str, purpose: str, *, on: datetime, actor: str) -> Chain:
    """:func:`check_authority` in a transaction of its own that audits a refusal before raising it.

    For callers outside a sealing or unlock transaction, such as the contact centre's sign-in and
    look-up: the refusal (organization, purpose, rule, failing link) is on record even though nothing else
    is written.
    """
    on = as_utc(on)
    with transaction(engine) as conn:
        try:
            return check_authority(conn, organization, purpose, on=on)
        except AuthorityRefused as refused:
            details = {"purpose": purpose, "rule": refused.rule, "link": refused.contractor}
            audit.append(conn, "contractor.authority-refused", "contractor", organization, details, actor=actor, now=on)
            failure = refused
    raise failure


def recipient_authority(conn: Connection, recipient: int | str, purpose: str, *, on: datetime) -> Chain | None:
    """:func:`check_authority` for the recipient's (by id or name) contractor; None when it belongs to no
    registered contractor (or no such recipient exists). One query reads the recipient's whole chain.

    A recipient without a contractor is the city's own staff or a contractor not yet registered: sealing and
    unlocking keep working and say so; the contact centre refuses it.
    """
    links = _chain_from(conn, "recipient-id" if isinstance(recipient, int) else "recipient", recipient)
    return _check_links(links, purpose, on) if links else None


def recipient_contractor(conn: Connection, recipient_id: int) -> str | None:
    """The name of the registered organization a recipient works for, if any."""
    return conn.execute(
        select(Contractor.name)
        .join(Recipient, Recipient.contractor_id == Contractor.id)
        .where(Recipient.id == recipient_id)
    ).scalar_one_or_none()


# --------------------------------------------------------------------------------------------------
# Who holds what
# --------------------------------------------------------------------------------------------------


def open_packages(now: datetime) -> Select:
    """Packages that count as held at ``now``: sealed, not revoked (a loss revokes), not expired, and not
    returned or destroyed. Columns: ``id``, ``recipient_id``."""
    latest = custody.latest_events(Package.revoked_at.is_(None), Package.expires_at > now)
    return (
        select(Package.id, Package.recipient_id)
        .outerjoin(latest, latest.c.package_id == Package.id)
        .where(Package.revoked_at.is_(None), Package.created_at <= now, Package.expires_at > now)
        .where(or_(latest.c.event.is_(None), latest.c.event.not_in([str(e) for e in custody.ACCOUNTED_FOR])))
    )


def _residents(conn: Connection, held: Select, recipient_ids: list[int]) -> int:
    """Distinct residents carried by the held packages of these recipients: a resident in two counts once."""
    if not recipient_ids:
        return 0
    ids = held.where(Package.recipient_id.in_(recipient_ids)).with_only_columns(Package.id)
    query = select(func.count(func.distinct(PackageMember.resident_code))).where(PackageMember.package_id.in_(ids))
    return int(conn.execute(query).scalar_one())


def _tree(conn: Connection) -> tuple[list[Any], dict[int | None, list[Any]], dict[int | None, list[Any]]]:
    """All contractors, their children by parent id, and their recipients by contractor id."""
    rows = conn.execute(select(Contractor.__table__).order_by(Contractor.name)).all()
    children: dict[int | None, list[Any]] = {}
    for row in rows:
        children.setdefault(row.parent_id, []).append(row)
    recipients: dict[int | None, list[Any]] = {}
    for r in conn.execute(
        select(Recipient.id, Recipient.name, Recipient.display_name, Recipient.contractor_id).order_by(Recipient.name)
    ):
        recipients.setdefault(r.contractor_id, []).append(r)
    return rows, children, recipients


def _subtree(contractor: int, children: dict[int | None, list[Any]]) -> list[int]:
    out, todo = [], [contractor]
    while todo:
        current = todo.pop()
        out.append(current)
        todo += [c.id for c in children.get(current, [])]
    return out


def exposure(engine: Engine, *, now: datetime) -> list[dict[str, object]]:
    """For each organization, how many residents' data it can read at ``now``, its subcontractors' included.

    Organizations come in chain order (each contractor of the city, then its subcontractors, depth first);
    recipients that belong to no registered contractor follow, each as an organization of its own, so
    every open package is counted somewhere.
    """
    now = as_utc(now)
    held = open_packages(now)
    with engine.connect() as conn:
        _, children, recipients = _tree(conn)
        held_by = {r.recipient_id for r in conn.execute(held)}
        out: list[dict[str, object]] = []

        def visit(row: Any, level: int, parent: str | None) -> None:
            own = [r.id for r in recipients.get(row.id, [])]
            subtree = [r.id for c in _subtree(row.id, children) for r in recipients.get(c, [])]
            own_residents = _residents(conn, held, own)
            out.append(
                {
                    "organization": row.name,
                    "display_name": row.display_name,
                    "parent": parent,
                    "level": level,
                    "registered": True,
                    "packages": _count_held(conn, held, subtree),
                    "own_residents": own_residents,
                    # Counting distinct residents is the costly query: not twice for one set of recipients.
                    "residents": own_residents if len(subtree) == len(own) else _residents(conn, held, subtree),
                }
            )
            for child in children.get(row.id, []):
                visit(child, level + 1, row.name)

        for top in children.get(None, []):
            visit(top, 0, None)
        for r in recipients.get(None, []):
            if r.id in held_by:
                residents = _residents(conn, held, [r.id])
                out.append(
                    {
                        "organization": r.name,
                        "display_name": r.display_name or r.name,
                        "parent": None,
                        "level": 0,
                        "registered": False,
                        "packages": _count_held(conn, held, [r.id]),
                        "own_residents": residents,
                        "residents": residents,
                    }
                )
    return out


def _count_held(conn: Connection, held: Select, recipient_ids: list[int]) -> int:
    if not recipient_ids:
        return 0
    query = select(func.count()).select_from(held.where(Package.recipient_id.in_(recipient_ids)).subquery())
    return int(conn.execute(query).scalar_one())


@dataclass(frozen=True)
class HeldPackage:
    """A package an organization's recipient holds now, and how many residents it carries."""

    package_id: str
    purpose: str
    recipient: str
    expires_at: datetime
    residents: int

    def as_dict(self) -> dict[str, object]:
        return {
            "package_id": self.package_id,
            "purpose": self.purpose,
            "recipient": self.recipient,
            "expires": fmt.rfc3339(self.expires_at),
            "residents": self.residents,
        }


@dataclass(frozen=True)
class Holdings:
    """One organization as ``contractor show`` presents it."""

    chain: Chain  # root first; the organization is the last link
    withdrawn_reason: str | None
    subcontractors: tuple[Link, ...]
    recipients: tuple[tuple[str, str], ...]  # (name, display name)
    packages: tuple[HeldPackage, ...]
    own_residents: int  # residents its own recipients can read now
    residents: int  # … with its subcontractors' (a resident in two packages counts once)

    def as_dict(self) -> dict[str, object]:
        me = self.chain[-1]
        return {
            "organization": me.name,
            "display_name": me.display_name,
            "chain": [link.as_dict() for link in self.chain],
            "withdrawn_reason": self.withdrawn_reason,
            "subcontractors": [link.as_dict() for link in self.subcontractors],
            "recipients": [{"name": n, "display_name": d} for n, d in self.recipients],
            "packages": [p.as_dict() for p in self.packages],
            "own_residents": self.own_residents,
            "residents": self.residents,
        }


def show(engine: Engine, name: str, *, now: datetime) -> Holdings:
    """One organization: its chain, its subcontractors, its recipients, the packages they hold and the
    residents each can still open, and the residents its whole subtree can read."""
    now = as_utc(now)
    held = open_packages(now)
    with engine.connect() as conn:
        links = chain(conn, check_name(name))
        me = _row(conn, links[-1].name)
        _, children, recipients = _tree(conn)
        own = recipients.get(me.id, [])
        subtree = [r.id for c in _subtree(me.id, children) for r in recipients.get(c, [])]
        carried = func.count(PackageMember.resident_code).label("residents")
        packages = conn.execute(
            select(Package.id, Package.purpose, Package.expires_at, Recipient.name.label("recipient"), carried)
            .join(Recipient, Recipient.id == Package.recipient_id)
            .outerjoin(PackageMember, PackageMember.package_id == Package.id)
            .where(Package.id.in_(held.with_only_columns(Package.id)), Recipient.contractor_id == me.id)
            .group_by(Package.id, Package.purpose, Package.expires_at, Recipient.name)
            .order_by(Package.expires_at, Package.id)
        ).all()
        return Holdings(
            chain=links,
            withdrawn_reason=me.withdrawn_reason,
            subcontractors=tuple(_link(c, me.name) for c in children.get(me.id, [])),
            recipients=tuple((r.name, r.display_name or r.name) for r in own),
            packages=tuple(
                HeldPackage(p.id, p.purpose, p.recipient, as_utc(p.expires_at), int(p.residents)) for p in packages
            ),
            own_residents=_residents(conn, held, [r.id for r in own]),
            residents=_residents(conn, held, subtree),
        )
