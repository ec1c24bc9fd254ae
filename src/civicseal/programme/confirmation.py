"""Returned forms and officers' corrections: confirm (with the account the household gave), decline, withdraw.

Every status change goes through `entitlements.change_status` / `change_many`. An account given on a form is
validated exactly as the register's accounts are (the register's own column parsers and the Zengin data) and
stored in `entitlement_accounts`, its number encrypted; it wins over the household's account in the register.
A file of returned forms is read with the register import's own CSV reading and refused as a whole, with
``file:line: column: rule``, when any row breaks a rule. A canary's reference number in it is not an error:
someone used leaked data, so it raises the canary alert (an audit entry, kept even when the file is refused),
is skipped and counted.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import Connection, Engine, bindparam, delete, insert, select, text

from civicseal.audit import log as audit
from civicseal.clock import as_utc, utcnow
from civicseal.programme import entitlements
from civicseal.programme.defaults import FORM_REASON
from civicseal.programme.errors import ProgrammeError
from civicseal.programme.lifecycle import TRANSITIONS, Status
from civicseal.programme.models import Entitlement, EntitlementAccount, EntitlementMember, Programme, ReferenceNumber
from civicseal.programme.reference import parse_printed
from civicseal.programme.service import get_programme
from civicseal.register import normalize as n
from civicseal.register.banks import zengin_problem
from civicseal.register.columns import COLUMNS, Column, Kind
from civicseal.register.errors import InvalidValue
from civicseal.register.importer import (
    ImportRefused,
    Problem,
    header_cells,
    locate_columns,
    open_csv,
    parse_rows,
    unheaded,
)
from civicseal.store.engine import transaction
from civicseal.store.fieldcrypt import FieldCipher

ACCOUNT_NUMBER_COLUMN = "entitlement_accounts.account_number"
REGISTER_ACCOUNT_NUMBER_COLUMN = "bank_accounts.account_number"
ACCOUNT_FIELDS = ("bank_code", "branch_code", "account_type", "account_number", "holder_kana")
_REGISTER_ACCOUNT: dict[str, Column] = {c.name: c for c in COLUMNS[Kind.ACCOUNTS] if c.name in ACCOUNT_FIELDS}
CANARY_KIND = "canary"  # reference_numbers.kind of a canary household's number

# Who a canary was given to, when the caller knows how to find out (the seal package does): reference number →
# details for the alert (package, recipient). The programme package itself knows nothing of packages.
CanaryHolder = Callable[[Connection, str], Mapping[str, str]]


@dataclass(frozen=True)
class Account:
    """A bank account to pay into, as stored: codes zero-padded, holder kana in the Zengin set."""

    bank_code: str
    branch_code: str
    account_type: int
    account_number: str
    holder_kana: str
    source: str = "confirmation"  # or "register": where payable_account found it

    def masked_number(self) -> str:
        """Enough for a person to recognize the account on the phone, not enough to use it."""
        return "****" + self.account_number[-3:]


def read_account(raw: Mapping[str, str]) -> Account:
    """Validate an account as typed by an officer: every field, by the register's rules; all or none given."""
    values: dict[str, object] = {}
    for name in ACCOUNT_FIELDS:
        try:
            values[name] = _REGISTER_ACCOUNT[name].read(raw.get(name) or "")
        except InvalidValue as exc:
            raise ProgrammeError(f"{name}: {exc.rule}; an account needs all of {', '.join(ACCOUNT_FIELDS)}") from None
    zengin = zengin_problem(str(values["bank_code"]), str(values["branch_code"]))
    if zengin:
        raise ProgrammeError(f"{zengin[0]}: {zengin[1]}; check the code on the form")
    return Account(**values)  # type: ignore[arg-type]


# The account each entitlement is paid into, defined once for payments and sealing: the one given at
# confirmation, else the household's in the register; entitlements with neither have no row. ``encrypted_under``
# names the column the number was encrypted under (field ciphertexts are bound to their column).
PAYABLE_ACCOUNTS_SQL = (
    "SELECT pe.id AS entitlement_id,"
    " COALESCE(ea.bank_code, ba.bank_code) AS bank_code, COALESCE(ea.branch_code, ba.branch_code) AS branch_code,"
    " COALESCE(ea.account_type, ba.account_type) AS account_type,"
    " COALESCE(ea.account_number_enc, ba.account_number_enc) AS account_number_enc,"
    " COALESCE(ea.holder_kana, ba.holder_kana) AS holder_kana,"
    f" CASE WHEN ea.entitlement_id IS NULL THEN '{REGISTER_ACCOUNT_NUMBER_COLUMN}'"
    f" ELSE '{ACCOUNT_NUMBER_COLUMN}' END AS encrypted_under,"
    " CASE WHEN ea.entitlement_id IS NULL THEN ba.household_code ELSE CAST(pe.id AS VARCHAR(20)) END"
    " AS encrypted_row_key,"
    " CASE WHEN ea.entitlement_id IS NULL THEN 'register' ELSE 'confirmation' END AS source"
    " FROM entitlements pe LEFT JOIN entitlement_accounts ea ON ea.entitlement_id = pe.id"
    " LEFT JOIN bank_accounts ba ON ba.household_code = pe.household_code"
    " WHERE ea.entitlement_id IS NOT NULL OR ba.household_code IS NOT NULL"
)


def payable_account(conn: Connection, cipher: FieldCipher, entitlement_id: int) -> Account | None:
    """The account to pay an entitlement into: the one given at confirmation, else the household's in the
    register; None when there is neither."""
    row = (
        conn.execute(
            text(f"SELECT * FROM ({PAYABLE_ACCOUNTS_SQL}) a WHERE a.entitlement_id = :id"), {"id": entitlement_id}
        )
        .mappings()
        .first()
    )
    if row is None:
        return None
    return Account(
        bank_code=row["bank_code"],
        branch_code=row["branch_code"],
        account_type=int(row["account_type"]),
        account_number=cipher.decrypt(row["account_number_enc"], row["encrypted_under"], row["encrypted_row_key"]),
        holder_kana=row["holder_kana"],
        source=row["source"],
    )


def store_accounts(conn: Connection, cipher: FieldCipher, accounts: dict[int, Account], now: datetime) -> None:
    """A later form replaces an earlier one's account."""
    if not accounts:
        return
    ids = list(accounts)
    conn.execute(
        delete(EntitlementAccount).where(EntitlementAccount.entitlement_id.in_(bindparam("ids", expanding=True))),
        {"ids": ids},
    )
    numbers = cipher.encrypt_many([a.account_number for a in accounts.values()], ACCOUNT_NUMBER_COLUMN, ids)
    conn.execute(
        insert(EntitlementAccount),
        [
            {
                "entitlement_id": i,
                "bank_code": a.bank_code,
                "branch_code": a.branch_code,
                "account_type": a.account_type,
                "account_number_enc": number,
                "holder_kana": a.holder_kana,
                "given_at": now,
            }
            for (i, a), number in zip(accounts.items(), numbers, strict=True)
        ],
    )


# ------------------------------------------------------------------------------------- one entitlement


def confirm(
    engine: Engine,
    cipher: FieldCipher,
    reference_number: str,
    account: Account | None = None,
    *,
    reason: str = FORM_REASON,
    now: datetime | None = None,
    actor: str | None = None,
) -> entitlements.Change:
    """Confirm one entitlement (notified or returned), storing the account the household gave, if any."""
    now = now or utcnow()
    with transaction(engine) as conn:
        change = entitlements.change_status(
            conn, reference_number, Status.CONFIRMED, reason=reason, now=now, actor=actor
        )
        if account is not None:
            store_accounts(conn, cipher, {entitlements.find(conn, change.reference_number)["id"]: account}, now)
    return change


def _set_status(
    engine: Engine, reference_number: str, status: Status, reason: str, now: datetime | None, actor: str | None
) -> entitlements.Change:
    with transaction(engine) as conn:
        return entitlements.change_status(
            conn, reference_number, status, reason=reason, now=now or utcnow(), actor=actor
        )


def decline(
    engine: Engine, reference_number: str, *, reason: str, now: datetime | None = None, actor: str | None = None
) -> entitlements.Change:
    """The household declines the benefit (final)."""
    return _set_status(engine, reference_number, Status.DECLINED, reason, now, actor)


def withdraw(
    engine: Engine, reference_number: str, *, reason: str, now: datetime | None = None, actor: str | None = None
) -> entitlements.Change:
    """The household no longer qualifies (final; before payment only, as the life cycle says)."""
    return _set_status(engine, reference_number, Status.WITHDRAWN, reason, now, actor)


def show(engine: Engine, cipher: FieldCipher, reference_number: str) -> dict[str, object]:
    """One entitlement as an officer sees it: programme, status, members, the account it would be paid into
    (number masked) and its history, oldest first."""
    with engine.connect() as conn:
        row = entitlements.find(conn, reference_number)
        programme = conn.execute(select(Programme.name).where(Programme.id == row["programme_id"])).scalar_one()
        members = conn.execute(
            select(EntitlementMember.resident_code).where(EntitlementMember.entitlement_id == row["id"])
        ).all()
        account = payable_account(conn, cipher, row["id"])
        steps = entitlements.history(conn, row["id"])
    return {
        "reference_number": row["reference_number"],
        "programme": programme,
        "status": row["status"],
        "amount": row["amount"],
        "household_code": row["household_code"],
        "members": len(members),
        "account": None
        if account is None
        else {
            "source": account.source,
            "bank_code": account.bank_code,
            "branch_code": account.branch_code,
            "account_type": account.account_type,
            "account_number": account.masked_number(),
        },
        "history": [
            {
                "at": as_utc(s["at"]),
                "from": s["from_status"],
                "to": s["to_status"],
                "actor": s["actor"],
                "reason": s["reason"],
            }
            for s in steps
        ],
    }


# ------------------------------------------------------------------------------------- a file of forms


def _parse_reference_cell(text: str) -> str:
    number = parse_printed(text)
    if number is None:
        raise n.spreadsheet_mistake(text) or InvalidValue("not 12 digits with a valid check digit")
    return number


# A form's 辞退 box as clerks fill it in: 1, a circle (○ or ◯) or the word itself. Not 〇, the kanji zero an IME
# also offers for まる: a refusal to be paid is not read from a mark that may mean 0.
_DECLINED = {"1": True, "○": True, "◯": True, "辞退": True, "0": False}


def _parse_declined(raw: str) -> bool:
    flag = _DECLINED.get(raw)
    if flag is None:
        raise InvalidValue("not 1, ○ or 辞退 (declines), or 0")
    return flag


FORM_COLUMNS: tuple[Column, ...] = (
    Column("reference_number", ("整理番号", "参照番号"), _parse_reference_cell),  # the letters print 参照番号
    *(dataclasses.replace(_REGISTER_ACCOUNT[name], required=False) for name in ACCOUNT_FIELDS),
    Column("declined", ("辞退",), _parse_declined, required=False),
)
_FORM_INDEX = {column.name: i for i, column in enumerate(FORM_COLUMNS)}


@dataclass(frozen=True)
class ConfirmSummary:
    rows: int
    confirmed: int
    declined: int
    accounts_given: int
    canaries: int  # canary reference numbers found, alerted and skipped

    def as_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


@dataclass
class _Form:
    line: int
    reference_number: str
    declined: bool
    account: Account | None


def _read_forms(path: Path, problems: list[Problem]) -> list[_Form]:
    """Each valid row as a form; rows breaking a column's rule or the account's all-or-none rule are problems."""
    lines, header = open_csv(path)
    cells = header_cells(path, header)
    positions = locate_columns(path, cells, FORM_COLUMNS, "a confirmations file")
    rows = parse_rows(path.name, lines[1:], 2, len(header), FORM_COLUMNS, positions, problems, blank=unheaded(cells))
    forms = []
    for i, line in enumerate(rows.line_numbers):
        if not rows.valid[i]:
            continue
        cell = {name: rows.columns[index][i] for name, index in _FORM_INDEX.items()}
        given = [name for name in ACCOUNT_FIELDS if cell[name] is not None]
        declined = bool(cell["declined"])
        account = None
        if given and declined:
            problems.append(Problem(path.name, line, "declined", "declines but gives an account; keep one of them"))
            continue
        if given and len(given) < len(ACCOUNT_FIELDS):
            for name in ACCOUNT_FIELDS:
                if cell[name] is None:
                    problems.append(Problem(path.name, line, name, "required when an account is given"))
            continue
        if given:
            zengin = zengin_problem(str(cell["bank_code"]), str(cell["branch_code"]))
            if zengin:
                problems.append(Problem(path.name, line, *zengin))
                continue
            account = Account(**{name: cell[name] for name in ACCOUNT_FIELDS})  # type: ignore[arg-type]
        forms.append(_Form(line, str(cell["reference_number"]), declined, account))
    return forms


def _chunks(items: list[str], size: int = 500) -> list[list[str]]:
    return [items[start : start + size] for start in range(0, len(items), size)]


def _alert_canaries(
    engine: Engine, path: Path, forms: list[_Form], holder: CanaryHolder | None, now: datetime, actor: str
) -> set[str]:
    """Record a canary alert for each canary reference number in the file, in a transaction of its own so the
    evidence stays even if the file is refused; return those numbers."""
    numbers = sorted({f.reference_number for f in forms})
    with transaction(engine) as conn:
        canaries: set[str] = set()
        for chunk in _chunks(numbers):
            found = conn.execute(
                select(ReferenceNumber.number).where(
                    ReferenceNumber.number.in_(chunk), ReferenceNumber.kind == CANARY_KIND
                )
            )
            canaries.update(found.scalars())
        for form in forms:
            if form.reference_number in canaries:
                details: dict[str, object] = {"source": "programme confirm", "file": path.name, "line": form.line}
                if holder is not None:
                    details |= dict(holder(conn, form.reference_number))
                audit.append(
                    conn, "canary.alert", "reference_number", form.reference_number, details, actor=actor, now=now
                )
    return canaries


def confirm_file(
    engine: Engine,
    cipher: FieldCipher,
    programme_name: str,
    path: Path,
    *,
    canary_holder: CanaryHolder | None = None,
    now: datetime | None = None,
    actor: str | None = None,
) -> ConfirmSummary:
    """Apply a file of returned forms to a programme: all of it, or nothing (``ImportRefused`` lists why)."""
    now = now or utcnow()
    actor = actor or audit.current_actor()
    problems: list[Problem] = []
    with engine.connect() as conn:
        programme = get_programme(conn, programme_name)
    forms = _read_forms(path, problems)
    canaries = _alert_canaries(engine, path, forms, canary_holder, now, actor)
    real = [f for f in forms if f.reference_number not in canaries]
    with transaction(engine) as conn:
        found: dict[str, Mapping] = {}
        for chunk in _chunks([f.reference_number for f in real]):
            query = select(Entitlement.id, Entitlement.reference_number, Entitlement.programme_id, Entitlement.status)
            rows = conn.execute(query.where(Entitlement.reference_number.in_(chunk))).mappings()
            found.update({r["reference_number"]: r for r in rows})
        groups: dict[tuple[Status, Status], list[int]] = {}
        accounts: dict[int, Account] = {}
        first_line: dict[str, int] = {}
        for form in real:
            row = found.get(form.reference_number)
            new = Status.DECLINED if form.declined else Status.CONFIRMED
            rule = None
            if form.reference_number in first_line:
                rule = f"appears twice (first on line {first_line[form.reference_number]})"
            elif row is None:
                rule = "no entitlement has this reference number"
            elif row["programme_id"] != programme.id:
                rule = "belongs to another programme"
            elif new not in TRANSITIONS[Status(row["status"])]:
                rule = f"the entitlement is {row['status']} and cannot become {new}"
            first_line.setdefault(form.reference_number, form.line)
            if rule:
                problems.append(Problem(path.name, form.line, "reference_number", rule))
                continue
            groups.setdefault((Status(row["status"]), new), []).append(row["id"])
            if form.account is not None:
                accounts[row["id"]] = form.account
        if problems:
            raise ImportRefused(problems)
        for (old, new), ids in sorted(groups.items()):
            entitlements.change_many(
                conn,
                ids,
                old,
                new,
                reason=f"{FORM_REASON} ({path.name})",
                now=now,
                actor=actor,
                object_type="programme",
                object_id=str(programme.id),
            )
        store_accounts(conn, cipher, accounts, now)
    return ConfirmSummary(
        rows=len(forms),
        confirmed=sum(len(ids) for (_, new), ids in groups.items() if new is Status.CONFIRMED),
        declined=sum(len(ids) for (_, new), ids in groups.items() if new is Status.DECLINED),
        accounts_given=len(accounts),
        canaries=sum(1 for f in forms if f.reference_number in canaries),
    )
