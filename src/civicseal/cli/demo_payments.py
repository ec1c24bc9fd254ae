"""The demo's payment scene: confirmed households paid by a Zengin file sealed for the bank, returns reconciled."""

from __future__ import annotations

import time
from datetime import date
from pathlib import Path

from sqlalchemy import text

from civicseal.cli.output import console
from civicseal.clock import utcnow
from civicseal.keys.city import load_city_keys
from civicseal.keys.recipients import add_recipient, keygen
from civicseal.keys.trust import add_trusted, format_public_key
from civicseal.payments import zengin
from civicseal.payments.service import BatchRequest, make_batch, mark_sent, reconcile
from civicseal.programme import entitlements
from civicseal.programme.defaults import FORM_REASON
from civicseal.programme.lifecycle import Status
from civicseal.programme.reference import printed
from civicseal.seal.open import open_sealed
from civicseal.store.engine import transaction
from civicseal.store.home import Home

CONFIRMED = 300  # a few hundred confirmation forms came back: enough to show, quick to confirm
PAY_DATE = date(2022, 8, 1)


def _confirm(city: Home, programme: str) -> list[str]:
    """The households whose forms came back, confirmed through the life cycle's door in two set-based
    changes (eligible → notified for any whose letter is not recorded as sent, then notified → confirmed)."""
    now = utcnow()
    with transaction(city.engine) as conn:
        rows = conn.execute(
            text(
                "SELECT e.id, e.reference_number, e.status FROM entitlements e"
                " JOIN programmes p ON p.id = e.programme_id"
                " JOIN bank_accounts a ON a.household_code = e.household_code"
                " WHERE p.name = :name AND e.status IN ('eligible', 'notified') ORDER BY e.reference_number LIMIT :n"
            ),
            {"name": programme, "n": CONFIRMED},
        ).all()
        batch = {"now": now, "object_type": "programme", "object_id": programme}
        unsent = [i for i, _, status in rows if status == Status.ELIGIBLE]
        if unsent:
            entitlements.change_many(conn, unsent, Status.ELIGIBLE, Status.NOTIFIED, reason="letter posted", **batch)
        entitlements.change_many(
            conn, [i for i, _, _ in rows], Status.NOTIFIED, Status.CONFIRMED, reason=FORM_REASON, **batch
        )
    return [reference for _, reference, _ in rows]


def pay_confirmed_households(city: Home, workdir: Path, programme: str) -> None:
    console.rule("paying the confirmed households: a Zengin file sealed for the bank")
    started = time.perf_counter()
    confirmed = _confirm(city, programme)
    bank = workdir / "bank"
    bank.mkdir()
    add_recipient(city.engine, "bank", keygen(bank / "bank.key"), now=utcnow(), actor="os:demo")
    add_trusted(bank, city.config.issuer, format_public_key(load_city_keys(city.keys).signing.public_key()))
    package = workdir / "furikomi.cseal"
    request = BatchRequest(
        programme=programme, pay_date=PAY_DATE, payer_code="2820200001", payer_name="アマガサキシ",
        payer_bank="0001", payer_branch="001", payer_account="1234567", out=package, seal_to="bank",
    )  # fmt: skip
    batch = make_batch(city, request)
    console.print(
        f"  {len(confirmed)} households confirmed; batch {batch.batch_id}: {batch.records:,} transfers,"
        f" {batch.total_amount:,} yen, {len(batch.held)} held as possible double payments;"
        f" sealed to the bank ({batch.mode} mode), no plaintext written",
        markup=False,
    )
    opened = bank / "furikomi.txt"
    open_sealed(package, trust_home=bank, out=opened, identity_file=bank / "bank.key")
    checked = zengin.check(opened.read_bytes())
    console.print(
        f"  the bank opened it: {checked.records} records of 120 bytes, {checked.count} transfers,"
        f" {'checks clean' if checked.ok else 'PROBLEMS'}",
        markup=False,
    )
    sent = mark_sent(city.engine, batch.batch_id)
    returns = bank / "henkyaku.csv"
    bounced = confirmed[:2]
    returns.write_text(
        "reference_number,reason_code\r\n" + "".join(f"{printed(r)},1\r\n" for r in bounced), encoding="cp932"
    )
    back = reconcile(city, batch.batch_id, returns)
    console.print(
        f"  marked sent: {sent.records} entitlements paid; the bank returned {back.returned}"
        f" ({back.returned_amount:,} yen), now 'returned' until their accounts are corrected"
        f" [{time.perf_counter() - started:.1f} s]",
        markup=False,
    )
