"""Benchmark of issue 13 (payments): a Zengin batch for every entitled household, and `check` on it.

For the synthetic city (460,517 residents, seed 7, on the embedded SQLite store) every entitlement is
confirmed (set-based, through the life cycle's door) and the households without an account in the
register are given one as at confirmation. It then prints:

* seconds to make the batch — select, decrypt, hold double payees, write and check the file, record the
  batch and its items — budget ≤ 3 s for 74,767 households;
* seconds for `payments check` on that file;
* for reference, in the same run: writing as many 120-byte records with plain ``bytes`` joins (no store,
  no checks), the floor of any Zengin writer in Python.

    python bench/payments.py [--residents 460517] [--seed 7]
"""

from __future__ import annotations

import random
from datetime import date

from sqlalchemy import text

from civicseal.clock import utcnow
from civicseal.keys.city import load_city_keys
from civicseal.payments import zengin
from civicseal.payments.service import BatchRequest, make_batch
from civicseal.programme import entitlements
from civicseal.programme.lifecycle import Status
from civicseal.programme.models import EntitlementAccount
from civicseal.register.errors import InvalidValue
from civicseal.register.normalize import parse_zengin_kana
from civicseal.store.engine import transaction
from common import PROGRAMME, build_city, city_arguments, timed

BUDGET_S = 3.0
BRANCHES = (("0001", "004"), ("0005", "001"), ("0009", "001"), ("0010", "100"))


def confirm_all(city) -> int:  # type: ignore[no-untyped-def]
    home = city.home
    cipher = load_city_keys(home.keys).field_cipher()
    now = utcnow()
    with transaction(home.engine) as conn:
        ids = list(conn.execute(text("SELECT id FROM entitlements ORDER BY id")).scalars())
        for old, new in ((Status.ELIGIBLE, Status.NOTIFIED), (Status.NOTIFIED, Status.CONFIRMED)):
            entitlements.change_many(conn, ids, old, new, reason="bench", now=now, actor="os:bench")
        missing = conn.execute(
            text(
                "SELECT e.id, r.name_kana FROM entitlements e"
                " JOIN residents r ON r.resident_code = e.head_resident_code"
                " LEFT JOIN bank_accounts a ON a.household_code = e.household_code WHERE a.household_code IS NULL"
            )
        ).all()
        rng = random.Random(13)
        numbers = [f"{n:07d}" for n in rng.sample(range(10**7), len(missing))]
        encrypted = cipher.encrypt_many(numbers, "entitlement_accounts.account_number", [m[0] for m in missing])
        rows = []
        for (entitlement_id, kana), number_enc in zip(missing, encrypted, strict=True):
            bank, branch = BRANCHES[entitlement_id % len(BRANCHES)]
            try:
                holder = parse_zengin_kana(kana)
            except InvalidValue:
                holder = "シミン"
            rows.append(
                dict(
                    entitlement_id=entitlement_id,
                    bank_code=bank,
                    branch_code=branch,
                    account_type=1,
                    account_number_enc=number_enc,
                    holder_kana=holder,
                    given_at=now,
                )
            )
        conn.execute(EntitlementAccount.__table__.insert(), rows)
    return len(ids)


def plain_records(count: int) -> bytes:
    """The reference: the same number of 120-byte records joined from constant fields, nothing checked."""
    body = b"00050001" + b" " * 30 + b"1"
    return b"".join(
        b"2" + body + str(n).zfill(7).encode() + b"X" * 30 + b"0000100000" + b" " * 43 for n in range(count)
    )


def main() -> None:
    args = city_arguments(__doc__.splitlines()[0])
    city = build_city(args.residents, args.seed)
    confirmed = confirm_all(city)
    out = city.work / "furikomi.txt"
    request = BatchRequest(
        programme=PROGRAMME, pay_date=date(2022, 8, 1), payer_code="1234567890", payer_name="アマガサキシ",
        payer_bank="0001", payer_branch="001", payer_account="1234567", out=out,
    )  # fmt: skip
    made = []
    batch_s = timed(lambda: made.append(make_batch(city.home, request)))
    summary = made[0]
    data = out.read_bytes()
    checked = []
    check_s = timed(lambda: checked.append(zengin.check(data)))
    reference_s = timed(lambda: plain_records(summary.records + 3))
    print(f"entitled households: {city.run.entitled:,}; confirmed: {confirmed:,}")
    print(f"batch: {summary.records:,} transfers, {len(summary.held):,} held, {summary.bytes:,} bytes")
    print(f"batch made in {batch_s:.2f} s (budget {BUDGET_S:.0f} s): {'within' if batch_s <= BUDGET_S else 'OVER'}")
    print(f"check: {checked[0].records:,} records in {check_s:.2f} s, ok: {'yes' if checked[0].ok else 'no'}")
    print(f"reference: {summary.records + 3:,} records by plain bytes joins in {reference_s:.3f} s")
    print(f"ratio batch / reference: {batch_s / reference_s:.1f}; check / reference: {check_s / reference_s:.1f}")


if __name__ == "__main__":
    main()
