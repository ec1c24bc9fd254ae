"""Paying confirmed entitlements: a batch (a Zengin file, sealed or not), marked sent, returns reconciled.

The selection is set-based SQL: confirmed entitlements of the programme with a known account (the one
given at confirmation, else the household's account in the register) and not in a batch still waiting to
be sent. Possible double payments are held out and listed for a supervisor; entitlements move to `paid`
only when the batch is marked sent, and to `returned` when the bank sends them back, always through the
entitlement life cycle's one door.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import tempfile
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

from sqlalchemy import Connection, Engine, insert, select, text, update

from civicseal import cseal as fmt
from civicseal.audit import log as audit
from civicseal.clock import utcnow
from civicseal.keys.city import load_city_keys
from civicseal.payments import zengin
from civicseal.payments.calendar import check_pay_date
from civicseal.payments.errors import PaymentsError
from civicseal.payments.kana import kana_names, zengin_name
from civicseal.payments.models import PaymentBatch, PaymentHold, PaymentItem
from civicseal.payments.sealing import customer_code, sealed_transfer_file
from civicseal.programme import entitlements
from civicseal.programme.confirmation import PAYABLE_ACCOUNTS_SQL
from civicseal.programme.lifecycle import Status
from civicseal.programme.reference import printed
from civicseal.programme.service import get_programme
from civicseal.register.banks import branch_exists
from civicseal.register.columns import header_key
from civicseal.register.errors import InvalidValue
from civicseal.register.importer import paused_gc
from civicseal.register.normalize import parse_digits
from civicseal.seal.service import _place
from civicseal.store.bulk import insert_rows
from civicseal.store.engine import transaction
from civicseal.store.fieldcrypt import FieldCipher
from civicseal.store.home import Home

ACCOUNT_INDEX = "payment_items.account"  # blind-index column name of (bank, branch, number)
SHOWN_PROBLEMS = 10


class Rule:
    """Why an entitlement is held out of a batch (each a way a relief programme pays twice)."""

    SHARED_ACCOUNT = "shared-account"  # the account is given for another household too, or already paid
    PAID_BEFORE = "paid-before"  # a member's household was already paid under this programme
    ACCOUNT_RETURNED = "account-returned"  # the same account bounced before and was not corrected


# ------------------------------------------------------------------------------------------ selection

_CANDIDATES = f"""
SELECT e.id, e.reference_number, e.household_code, e.amount, a.encrypted_under, a.encrypted_row_key,
  a.bank_code, a.branch_code,
  a.account_type, a.account_number_enc AS number_enc, a.holder_kana
FROM entitlements e
JOIN ({PAYABLE_ACCOUNTS_SQL}) a ON a.entitlement_id = e.id
WHERE e.programme_id = :programme AND e.status = 'confirmed'
  AND NOT EXISTS (SELECT 1 FROM payment_items i JOIN payment_batches b ON b.id = i.batch_id
                  WHERE i.entitlement_id = e.id AND b.status = 'made')
ORDER BY e.reference_number
"""

# Confirmed entitlements of the programme that share a member with one already paid, or waiting in a
# batch not yet sent: the same person's household paid twice (a move between household codes). Driven
# from the settled entitlements, few at the first batch, through the member index.
_PAID_BEFORE = """
WITH settled AS (
  SELECT id FROM entitlements WHERE programme_id = :programme AND status = 'paid'
  UNION
  SELECT i.entitlement_id FROM payment_items i JOIN payment_batches b ON b.id = i.batch_id
  WHERE b.programme_id = :programme AND b.status = 'made'
)
SELECT DISTINCT m.entitlement_id FROM settled s
JOIN entitlement_members o ON o.entitlement_id = s.id
JOIN entitlement_members m ON m.resident_code = o.resident_code AND m.entitlement_id <> o.entitlement_id
JOIN entitlements e ON e.id = m.entitlement_id
WHERE e.programme_id = :programme AND e.status = 'confirmed'
"""

# Accounts of this programme paid (or waiting to be): the entitlement each went to.
_ACCOUNTS_IN_USE = """
SELECT i.account_bidx, i.entitlement_id FROM payment_items i
JOIN payment_batches b ON b.id = i.batch_id
WHERE b.programme_id = :programme AND (i.status = 'paid' OR (i.status = 'pending' AND b.status = 'made'))
"""

_RETURNED_ACCOUNTS = """
SELECT i.entitlement_id, i.account_bidx FROM payment_items i
JOIN payment_batches b ON b.id = i.batch_id
WHERE b.programme_id = :programme AND i.status = 'returned'
"""

_CLEARED = """
SELECT h.entitlement_id, h.rule FROM payment_holds h JOIN entitlements e ON e.id = h.entitlement_id
WHERE e.programme_id = :programme AND h.cleared_at IS NOT NULL
"""


def account_key(cipher: FieldCipher, bank_code: str, branch_code: str, number: str) -> bytes:
    """The blind index of an account: equal for equal accounts however the number was padded."""
    return cipher.blind_index(f"{bank_code}{branch_code}{number.zfill(7)}", ACCOUNT_INDEX)


@dataclass
class _Payee:
    entitlement_id: int
    reference_number: str
    household_code: str
    amount: int
    bank_code: str
    branch_code: str
    account_type: int
    account_number: str
    name: str | None
    account_key: bytes


def _payees(conn: Connection, programme_id: int, cipher: FieldCipher) -> list[_Payee]:
    rows = conn.execute(text(_CANDIDATES), {"programme": programme_id}).all()
    out = []
    for r in rows:
        number = cipher.decrypt(r.number_enc, r.encrypted_under, r.encrypted_row_key)
        out.append(
            _Payee(
                entitlement_id=r.id,
                reference_number=r.reference_number,
                household_code=r.household_code,
                amount=int(r.amount),
                bank_code=r.bank_code,
                branch_code=r.branch_code,
                account_type=int(r.account_type),
                account_number=number,
                name=zengin_name(r.holder_kana),
                account_key=account_key(cipher, r.bank_code, r.branch_code, number),
            )
        )
    return out


def _payee_problems(payees: list[_Payee]) -> list[str]:
    """What would make a bank refuse a record, named by reference number and field, never by value."""
    problems = []
    for p in payees:
        broken = []
        if p.name is None or not p.name.strip():
            broken.append("payee name: not characters a Zengin file can carry")
        if not branch_exists(p.bank_code, p.branch_code):
            broken.append("bank and branch code pair is not in the Zengin data")
        if str(p.account_type) not in zengin.ACCOUNT_TYPES:
            broken.append("account type: not 1, 2, 4 or 9")
        if not (p.account_number.isascii() and p.account_number.isdigit() and len(p.account_number) <= 7):
            broken.append("account number: not 1 to 7 digits")
        if not 0 < p.amount <= zengin.MAX_AMOUNT:
            broken.append(f"amount: not between 1 and {zengin.MAX_AMOUNT} yen")
        problems.extend(f"entitlement {printed(p.reference_number)}: {rule}" for rule in broken)
    return problems


def _holds(conn: Connection, programme_id: int, payees: list[_Payee]) -> dict[int, str]:
    """Entitlement id → the first rule that holds it out, cleared holds aside."""
    params = {"programme": programme_id}
    cleared = {(r[0], r[1]) for r in conn.execute(text(_CLEARED), params)}
    in_use: dict[bytes, set[int]] = defaultdict(set)
    for key, entitlement_id in conn.execute(text(_ACCOUNTS_IN_USE), params):
        in_use[bytes(key)].add(entitlement_id)
    uses = Counter(p.account_key for p in payees)
    households: dict[bytes, set[str]] = defaultdict(set)
    for p in payees:
        if uses[p.account_key] > 1:
            households[p.account_key].add(p.household_code)
    shared = {key for key, codes in households.items() if len(codes) > 1}
    paid_before = set(conn.execute(text(_PAID_BEFORE), params).scalars())
    returned = {(e, bytes(key)) for e, key in conn.execute(text(_RETURNED_ACCOUNTS), params)}

    held: dict[int, str] = {}
    for p in payees:
        others = in_use.get(p.account_key)
        checks = (
            (Rule.SHARED_ACCOUNT, p.account_key in shared or bool(others and others - {p.entitlement_id})),
            (Rule.PAID_BEFORE, p.entitlement_id in paid_before),
            (Rule.ACCOUNT_RETURNED, (p.entitlement_id, p.account_key) in returned),
        )
        for rule, applies in checks:
            if applies and (p.entitlement_id, rule) not in cleared:
                held[p.entitlement_id] = rule
                break
    return held


# ------------------------------------------------------------------------------------------ the batch


@dataclass(frozen=True)
class BatchRequest:
    programme: str
    pay_date: date
    payer_code: str
    payer_name: str  # kana in any spelling; written half-width
    payer_bank: str
    payer_branch: str
    payer_account: str
    out: Path
    payer_account_type: int = 1
    crlf: bool = False
    seal_to: str | None = None  # a recipient: write a bank-transfer package instead of the plain file
    mode: fmt.Mode | None = None  # tethered or recipient (the purpose's default: recipient)
    key_service_url: str | None = None
    force: bool = False  # replace an existing plain file (a package is never replaced)


@dataclass(frozen=True)
class Held:
    reference_number: str
    rule: str


@dataclass
class BatchSummary:
    batch_id: int
    programme: str
    pay_date: str
    records: int
    total_amount: int
    held: list[Held]
    in_unsent_batch: int
    out: str
    bytes: int
    line_end: str
    file_sha256: str
    package_id: str | None = None
    recipient: str | None = None
    mode: str | None = None
    expires: str | None = None
    created: str = ""

    def as_dict(self) -> dict[str, object]:
        data = dict(self.__dict__)
        data["held"] = [{"reference_number": printed(h.reference_number), "rule": h.rule} for h in self.held]
        data["sealed"] = self.package_id is not None
        return data


def _digits(raw: str, option: str, width: int, *, min_len: int = 1) -> str:
    try:
        return parse_digits(raw, min_len=min_len, max_len=width, pad_to=width)
    except InvalidValue as exc:
        raise PaymentsError(f"{option}: {exc}") from None


def _payer(request: BatchRequest) -> zengin.Payer:
    name = zengin_name(request.payer_name)
    if not name:
        raise PaymentsError("--payer-name: not characters a Zengin file can carry (katakana, A-Z, 0-9, space ( ) - .)")
    bank = _digits(request.payer_bank, "--payer-bank", 4)
    branch = _digits(request.payer_branch, "--payer-branch", 3)
    if not branch_exists(bank, branch):
        raise PaymentsError("--payer-bank/--payer-branch: the code pair is not in the Zengin data; check the codes")
    if str(request.payer_account_type) not in zengin.ACCOUNT_TYPES:
        raise PaymentsError("--payer-account-type: 1 普通, 2 当座, 4 貯蓄 or 9 その他")
    bank_name, branch_name = kana_names(bank, branch)
    return zengin.Payer(
        code=_digits(request.payer_code, "--payer-code", 10),
        name=name,
        bank_code=bank,
        bank_name=bank_name,
        branch_code=branch,
        branch_name=branch_name,
        account_type=request.payer_account_type,
        account_number=_digits(request.payer_account, "--payer-account", 7),
        pay_date=check_pay_date(request.pay_date),
    )


def _transfer(item_no: int, p: _Payee) -> zengin.Transfer:
    bank_name, branch_name = kana_names(p.bank_code, p.branch_code)
    return zengin.Transfer(
        bank_code=p.bank_code,
        bank_name=bank_name,
        branch_code=p.branch_code,
        branch_name=branch_name,
        account_type=p.account_type,
        account_number=p.account_number.zfill(7),
        payee_name=p.name or "",
        amount=p.amount,
        customer_code=customer_code(item_no),
    )


def _count_in_unsent_batch(conn: Connection, programme_id: int) -> int:
    return conn.execute(
        text(
            "SELECT COUNT(*) FROM payment_items i JOIN payment_batches b ON b.id = i.batch_id"
            " WHERE b.programme_id = :programme AND b.status = 'made'"
        ),
        {"programme": programme_id},
    ).scalar_one()


ITEM_COLUMNS = (
    "batch_id", "item_no", "entitlement_id", "bank_code", "branch_code", "account_type", "account_bidx", "amount",
    "status",
)  # fmt: skip


def _insert_items(conn: Connection, batch_id: int, paying: list[_Payee]) -> None:
    """Straight to the driver (COPY on PostgreSQL): a city's items are 75,000 rows, and SQLAlchemy's per-row
    work would double the batch's time."""
    insert_rows(
        conn,
        "payment_items",
        ITEM_COLUMNS,
        (
            (
                batch_id,
                n,
                p.entitlement_id,
                p.bank_code,
                p.branch_code,
                p.account_type,
                p.account_key,
                p.amount,
                "pending",
            )
            for n, p in enumerate(paying, 1)
        ),
    )


def _write_plain(out: Path, data: bytes, force: bool) -> None:
    """A private (0600) file written beside ``out`` and moved in whole; never replacing one without force."""
    fd, name = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if force:
            os.replace(tmp, out)
        else:
            _place(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)


def _refuse_problems(problems: list[str]) -> None:
    if problems:
        shown = "; ".join(problems[:SHOWN_PROBLEMS])
        more = f"; and {len(problems) - SHOWN_PROBLEMS} more" if len(problems) > SHOWN_PROBLEMS else ""
        raise PaymentsError(
            f"{len(problems)} payees cannot be written, nothing was made: {shown}{more};"
            " correct the accounts (entitlement confirmation or register import) and run the batch again"
        )


def make_batch(
    home: Home, request: BatchRequest, *, now: datetime | None = None, actor: str | None = None
) -> BatchSummary:
    """Write the transfer file of every payable entitlement (plain, or sealed for the bank) and record the
    batch, its items and the payees held out, in one transaction; nothing changes status until `sent`."""
    now = (now or utcnow()).replace(microsecond=0)
    actor = actor or audit.current_actor()
    payer = _payer(request)
    out = request.out
    if out.exists() and (request.seal_to or not request.force):
        again = "choose another file" if request.seal_to else "choose another file or add --force"
        raise PaymentsError(f"{out}: exists; {again}")
    cipher = load_city_keys(home.keys).field_cipher()
    placed = False
    try:
        with paused_gc(), transaction(home.engine) as conn:
            programme = get_programme(conn, request.programme)
            payees = _payees(conn, programme.id, cipher)
            held = _holds(conn, programme.id, payees)
            paying = [p for p in payees if p.entitlement_id not in held]
            _refuse_problems(_payee_problems(paying))
            if not paying:
                also = f" ({len(held)} would be held as possible double payments)" if held else ""
                raise PaymentsError(
                    f"no confirmed entitlement with a known account is waiting to be paid{also};"
                    " confirm entitlements, or clear held payees with `civicseal payments clear`"
                )
            data = zengin.write_transfer_file(
                payer, [_transfer(n, p) for n, p in enumerate(paying, 1)], crlf=request.crlf
            )
            summary = BatchSummary(
                batch_id=0,
                programme=programme.name,
                pay_date=request.pay_date.isoformat(),
                records=len(paying),
                total_amount=sum(p.amount for p in paying),
                held=[Held(p.reference_number, held[p.entitlement_id]) for p in payees if p.entitlement_id in held],
                in_unsent_batch=_count_in_unsent_batch(conn, programme.id),
                out=str(out),
                bytes=len(data),
                line_end="CRLF" if request.crlf else "none",
                file_sha256=hashlib.sha256(data).hexdigest(),
                created=fmt.rfc3339(now),
            )
            summary.batch_id = conn.execute(
                insert(PaymentBatch).values(
                    programme_id=programme.id,
                    status="made",
                    pay_date=request.pay_date,
                    payer_code=payer.code,
                    payer_bank=payer.bank_code,
                    payer_branch=payer.branch_code,
                    records=summary.records,
                    total_amount=summary.total_amount,
                    held=len(summary.held),
                    file_sha256=summary.file_sha256,
                    created_at=now,
                    created_by=actor,
                )
            ).inserted_primary_key[0]
            _insert_items(conn, summary.batch_id, paying)
            if held:
                conn.execute(
                    insert(PaymentHold),
                    [dict(batch_id=summary.batch_id, entitlement_id=i, rule=rule) for i, rule in held.items()],
                )
            details: dict[str, str | int] = {
                "pay_date": summary.pay_date,
                "records": summary.records,
                "total_amount": summary.total_amount,
                "held": len(held),
            }
            if request.seal_to:
                with sealed_transfer_file(
                    conn,
                    home,
                    data=data,
                    transfers=summary.records,
                    programme_id=programme.id,
                    batch_id=summary.batch_id,
                    recipient=request.seal_to,
                    mode=request.mode,
                    key_service=request.key_service_url,
                    now=now,
                    actor=actor,
                ) as package:
                    conn.execute(
                        update(PaymentBatch)
                        .where(PaymentBatch.id == summary.batch_id)
                        .values(package_id=package.package_id)
                    )
                    summary.package_id, summary.recipient = package.package_id, package.recipient
                    summary.mode, summary.expires = package.mode, package.expires
                    details["package"] = package.package_id
                    audit.append(
                        conn, "payments.batch", "payment-batch", summary.batch_id, details, actor=actor, now=now
                    )
                    _place(package.staged, out)
                    placed = True
            else:
                details["package"] = "plaintext"
                audit.append(conn, "payments.batch", "payment-batch", summary.batch_id, details, actor=actor, now=now)
                _write_plain(out, data, request.force)
                placed = True
        return summary
    except BaseException:
        if placed:
            out.unlink(missing_ok=True)
        raise


# ------------------------------------------------------------------------------------------ sent


def _locked_batch(conn: Connection, batch_id: int) -> PaymentBatch:
    row = (
        conn.execute(select(PaymentBatch.__table__).where(PaymentBatch.id == batch_id).with_for_update())
        .mappings()
        .first()
    )
    if row is None:
        raise PaymentsError(f"no payment batch {batch_id}; see the number `payments batch` printed")
    return PaymentBatch(**row)


@dataclass(frozen=True)
class SentSummary:
    batch_id: int
    records: int
    total_amount: int
    sent_at: str


def mark_sent(engine: Engine, batch_id: int, *, now: datetime | None = None, actor: str | None = None) -> SentSummary:
    """The file went to the bank: its entitlements become `paid`, all or none (one audit row)."""
    now = (now or utcnow()).replace(microsecond=0)
    actor = actor or audit.current_actor()
    with transaction(engine) as conn:
        batch = _locked_batch(conn, batch_id)
        if batch.status != "made":
            raise PaymentsError(f"batch {batch_id} was already marked sent; nothing to do")
        ids = list(conn.execute(select(PaymentItem.entitlement_id).where(PaymentItem.batch_id == batch_id)).scalars())
        entitlements.change_many(
            conn,
            ids,
            Status.CONFIRMED,
            Status.PAID,
            reason=f"payment batch {batch_id} sent to the bank",
            now=now,
            actor=actor,
            object_type="payment-batch",
            object_id=str(batch_id),
        )
        conn.execute(update(PaymentItem).where(PaymentItem.batch_id == batch_id).values(status="paid"))
        conn.execute(
            update(PaymentBatch).where(PaymentBatch.id == batch_id).values(status="sent", sent_at=now, sent_by=actor)
        )
        audit.append(
            conn,
            "payments.sent",
            "payment-batch",
            batch_id,
            {"records": batch.records, "total_amount": batch.total_amount},
            actor=actor,
            now=now,
        )
    return SentSummary(batch_id, batch.records, batch.total_amount, fmt.rfc3339(now))


# ------------------------------------------------------------------------------------------ returns


@dataclass(frozen=True)
class _Return:
    item_no: int
    code: str
    where: str  # "returns.csv:3" or "record 2", for errors


ZENGIN_RETURN_CODE = "zengin"  # a return given as a Zengin file carries no reason of its own
_REASON_CODE_LIMIT = 10


def _decode_csv(data: bytes, name: str) -> str:
    for encoding in ("utf-8-sig", "cp932"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise PaymentsError(f"{name}: neither UTF-8 nor CP932 text; save the return list as CSV")


# The return list's two columns under the words a clerk heads them with (matched as the register's headers).
RETURN_HEADERS = {
    "reference_number": ("reference_number", "整理番号", "参照番号"),
    "reason_code": ("reason_code", "不能事由コード", "不能事由", "事由コード", "理由コード"),
}
_RETURN_COLUMN = {header_key(word): column for column, words in RETURN_HEADERS.items() for word in words}


def _csv_returns(conn: Connection, batch_id: int, data: bytes, name: str) -> Iterator[_Return]:
    rows = csv.reader(io.StringIO(_decode_csv(data, name), newline=""))
    header = [_RETURN_COLUMN.get(header_key(h)) for h in next(rows, [])]
    if "reference_number" not in header or "reason_code" not in header:
        needs = " and ".join(f"{column} ({', '.join(words[1:])})" for column, words in RETURN_HEADERS.items())
        raise PaymentsError(f"{name}:1: header: needs the columns {needs}")
    ref_at, code_at = header.index("reference_number"), header.index("reason_code")
    items = dict(
        conn.execute(
            select(PaymentItem.entitlement_id, PaymentItem.item_no).where(PaymentItem.batch_id == batch_id)
        ).all()
    )
    for row in rows:
        if not any(cell.strip() for cell in row):
            continue
        where = f"{name}:{rows.line_num}"
        if len(row) != len(header):
            raise PaymentsError(f"{where}: {len(row)} fields where the header has {len(header)}")
        code = row[code_at].strip()
        if not (code.isascii() and code.isalnum() and len(code) <= _REASON_CODE_LIMIT):
            raise PaymentsError(f"{where}: reason_code: not 1 to {_REASON_CODE_LIMIT} letters or digits")
        try:
            entitlement = entitlements.find(conn, row[ref_at].strip())
        except entitlements.UnknownReference as exc:
            raise PaymentsError(f"{where}: {exc}") from None
        if entitlement["id"] not in items:
            raise PaymentsError(f"{where}: reference_number: not paid in batch {batch_id}; check the batch number")
        yield _Return(items[entitlement["id"]], code, where)


def _zengin_returns(conn: Connection, batch_id: int, data: bytes, name: str, cipher: FieldCipher) -> Iterator[_Return]:
    """A bank's return file repeats the failed data records; each must be exactly the one we sent."""
    items = {
        row.item_no: row for row in conn.execute(select(PaymentItem.__table__).where(PaymentItem.batch_id == batch_id))
    }
    for t in zengin.read_transfer_file(data, name=name).transfers:
        where = f"{name}: record {t.record}"
        item = items.get(int(t.customer_code)) if t.customer_code.isdigit() else None
        if item is None:
            raise PaymentsError(f"{where}: customer_code_1: names no transfer of batch {batch_id}")
        sent = (item.bank_code, item.branch_code, item.account_type, item.amount, bytes(item.account_bidx))
        came = (t.bank_code, t.branch_code, t.account_type, t.amount)
        if (*came, account_key(cipher, t.bank_code, t.branch_code, t.account_number)) != sent:
            raise PaymentsError(f"{where}: does not match transfer {item.item_no} of batch {batch_id} as sent")
        yield _Return(item.item_no, ZENGIN_RETURN_CODE, where)


@dataclass(frozen=True)
class ReconcileSummary:
    batch_id: int
    returned: int
    returned_amount: int
    still_paid: int


def reconcile(
    home: Home, batch_id: int, returns: Path, *, now: datetime | None = None, actor: str | None = None
) -> ReconcileSummary:
    """Move what the bank sent back to `returned`, with its reason; all lines are checked before any moves.

    The return list is a Zengin file of the failed records or a CSV with reference_number and reason_code.
    Once its account is corrected and it is confirmed again, a returned entitlement goes into a later batch.
    """
    now = (now or utcnow()).replace(microsecond=0)
    actor = actor or audit.current_actor()
    try:
        data = returns.read_bytes()
    except OSError as exc:
        raise PaymentsError(f"cannot read {returns}: {exc.strerror or type(exc).__name__}") from None
    cipher = load_city_keys(home.keys).field_cipher()
    with transaction(home.engine) as conn:
        batch = _locked_batch(conn, batch_id)
        if batch.status != "sent":
            raise PaymentsError(f"batch {batch_id} is not marked sent; returns come after `payments sent {batch_id}`")
        looks_zengin = data[:1] == b"1" and data[zengin.RECORD : zengin.RECORD + 1] in (b"", b"\r", b"\n", b"2", b"8")
        found = list(
            _zengin_returns(conn, batch_id, data, returns.name, cipher)
            if looks_zengin
            else _csv_returns(conn, batch_id, data, returns.name)
        )
        seen: dict[int, str] = {}
        for r in found:
            if r.item_no in seen:
                raise PaymentsError(f"{r.where}: the same transfer is listed again (first at {seen[r.item_no]})")
            seen[r.item_no] = r.where
        items = {
            row.item_no: row
            for row in conn.execute(select(PaymentItem.__table__).where(PaymentItem.batch_id == batch_id))
        }
        for r in found:
            if items[r.item_no].status != "paid":
                raise PaymentsError(f"{r.where}: this transfer was already reconciled as returned")
        amount = 0
        for r in found:
            item = items[r.item_no]
            conn.execute(
                update(PaymentItem)
                .where(PaymentItem.batch_id == batch_id, PaymentItem.item_no == r.item_no)
                .values(status="returned", return_code=r.code, returned_at=now)
            )
            reference = conn.execute(
                text("SELECT reference_number FROM entitlements WHERE id = :i"), {"i": item.entitlement_id}
            ).scalar_one()
            entitlements.change_status(
                conn,
                reference,
                Status.RETURNED,
                reason=f"returned by the bank from batch {batch_id}, code {r.code}",
                now=now,
                actor=actor,
            )
            amount += item.amount
        audit.append(
            conn,
            "payments.reconcile",
            "payment-batch",
            batch_id,
            {"returned": len(found), "returned_amount": amount},
            actor=actor,
            now=now,
        )
    still = sum(1 for i in items.values() if i.status == "paid") - len(found)
    return ReconcileSummary(batch_id, len(found), amount, still)


# ------------------------------------------------------------------------------------------ holds


def clear_hold(
    engine: Engine, reference_number: str, *, reason: str, now: datetime | None = None, actor: str | None = None
) -> int:
    """A supervisor has checked a held payee (the shared account is a couple's, say): later batches pay it."""
    now = (now or utcnow()).replace(microsecond=0)
    actor = actor or audit.current_actor()
    reason = reason.strip()
    if not reason or len(reason) > 500:
        raise PaymentsError("--reason: required, at most 500 characters; say what was checked")
    with transaction(engine) as conn:
        entitlement = entitlements.find(conn, reference_number)
        cleared = conn.execute(
            update(PaymentHold)
            .where(PaymentHold.entitlement_id == entitlement["id"], PaymentHold.cleared_at.is_(None))
            .values(cleared_at=now, cleared_by=actor, cleared_reason=reason)
        ).rowcount
        if not cleared:
            raise PaymentsError("this entitlement has no open hold; nothing to clear")
        audit.append(
            conn,
            "payments.hold-cleared",
            "entitlement",
            entitlement["reference_number"],
            {"holds": cleared},
            actor=actor,
            now=now,
        )
    return cleared
