"""Payments: Zengin records byte by byte, the checker's every rule, and batches on both stores."""

from __future__ import annotations

import json
import random
from datetime import date
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select, text

from civicseal import cseal as fmt
from civicseal.audit import log as audit
from civicseal.cli import run
from civicseal.keys.city import load_city_keys
from civicseal.keys.recipients import add_recipient, keygen
from civicseal.keys.trust import add_trusted, format_public_key
from civicseal.payments import zengin
from civicseal.payments.calendar import check_pay_date, is_bank_business_day, next_business_day
from civicseal.payments.errors import PaymentsError
from civicseal.payments.kana import zengin_name
from civicseal.payments.service import BatchRequest, clear_hold, make_batch, mark_sent, reconcile
from civicseal.programme import entitlements
from civicseal.programme.lifecycle import Status
from civicseal.programme.models import Entitlement, EntitlementAccount
from civicseal.programme.reference import printed
from civicseal.programme.service import run_programme
from civicseal.register.columns import Kind
from civicseal.register.importer import import_register
from civicseal.register.normalize import ZENGIN_HALFWIDTH
from civicseal.seal.open import open_sealed
from civicseal.store.engine import transaction
from civicseal.store.fieldcrypt import FieldCipher
from civicseal.store.home import Home
from tests.registers import register_files, resident, tax, write_csv
from tests.test_programme import NOW, benefit

KEY_SERVICE = "http://127.0.0.1:8470"
# Every character the issue allows in a name field, written out by hand.
ALLOWED = "ｱｲｳｴｵｶｷｸｹｺｻｼｽｾｿﾀﾁﾂﾃﾄﾅﾆﾇﾈﾉﾊﾋﾌﾍﾎﾏﾐﾑﾒﾓﾔﾕﾖﾗﾘﾙﾚﾛﾜｦﾝﾞﾟABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ()-."


# ------------------------------------------------------------------------------------------ calendar


@pytest.mark.parametrize(
    ("day", "ok"),
    [
        (date(2022, 8, 1), True),  # a Monday
        (date(2022, 7, 30), False),  # Saturday
        (date(2022, 7, 31), False),  # Sunday
        (date(2022, 9, 19), False),  # 敬老の日
        (date(2022, 12, 30), True),  # the last business day of the year
        (date(2022, 12, 31), False),
        (date(2023, 1, 3), False),  # a Tuesday, but banks are closed until the 3rd
        (date(2023, 1, 4), True),
        (date(2024, 2, 12), False),  # 振替休日 for 建国記念の日 on a Sunday
    ],
)
def test_bank_business_days(day: date, ok: bool) -> None:
    assert is_bank_business_day(day) is ok


def test_a_pay_date_that_is_no_business_day_names_the_next_one() -> None:
    with pytest.raises(PaymentsError, match=r"2022-12-31 is not a bank business day.*next one is 2023-01-04"):
        check_pay_date(date(2022, 12, 31))
    assert next_business_day(date(2022, 7, 30)) == date(2022, 8, 1)
    assert check_pay_date(date(2022, 8, 1)) == date(2022, 8, 1)


# ------------------------------------------------------------------------------------------ kana


def test_one_definition_of_the_zengin_characters() -> None:
    assert set(ALLOWED) == ZENGIN_HALFWIDTH
    assert all(len(c.encode("cp932")) == 1 for c in ALLOWED)


@pytest.mark.parametrize(
    ("kana", "half"),
    [
        ("ヤマダ タロウ", "ﾔﾏﾀﾞ ﾀﾛｳ"),
        ("きょうこ", "ｷﾖｳｺ"),  # hiragana, small ょ enlarged
        ("ジョージ", "ｼﾞﾖ-ｼﾞ"),  # voiced, small kana, long vowel mark as '-'
        ("ハットリ　ペンギン", "ﾊﾂﾄﾘ ﾍﾟﾝｷﾞﾝ"),  # small ッ, semi-voiced, full-width space
        ("ｶﾞｯｺｳ", "ｶﾞﾂｺｳ"),  # half-width input
        ("カヲル", "ｶｦﾙ"),
        ("（カ）ヴィラ", "(ｶ)ｳﾞｲﾗ"),
    ],
)
def test_names_become_zengin_half_width(kana: str, half: str) -> None:
    assert zengin_name(kana) == half


@pytest.mark.parametrize("kana", ["山田", "ヤマダ・タロウ", "ア,イ", "ア/イ", "ヰカ", "ア&イ", "ｱﾞ"])
def test_names_a_file_cannot_carry(kana: str) -> None:
    assert zengin_name(kana) is None


# ------------------------------------------------------------------------------------------ records


PAYER = zengin.Payer(
    code="1234567890",
    name="ｱﾏｶﾞｻｷｼ",
    bank_code="0001",
    bank_name="ﾐｽﾞﾎ",
    branch_code="001",
    branch_name="ﾄｳｷﾖｳ",
    account_type=1,
    account_number="1234567",
    pay_date=date(2022, 8, 1),
)
TRANSFERS = [
    zengin.Transfer("0005", "ﾐﾂﾋﾞｼﾕ-ｴﾌｼﾞｴｲ", "001", "ﾎﾝﾃﾝ", 1, "0012345", "ｷﾖｳﾀﾞ ｼﾞﾖｳｼﾞ", 100000, "0000000001"),
    zengin.Transfer("0001", "ﾐｽﾞﾎ", "001", "ﾄｳｷﾖｳ", 2, "7654321", "ﾊﾟｰｸ", 50000, "0000000002"),
]


def hand_made_file() -> bytes:
    """The same file, field by field, with the padding counted by hand."""
    sp = " "
    header = (
        "1" "21" "0" "1234567890" "ｱﾏｶﾞｻｷｼ" + sp * 33 + "0801" "0001" "ﾐｽﾞﾎ" + sp * 11 + "001" "ﾄｳｷﾖｳ" + sp * 10
        + "1" "1234567" + sp * 17
    )  # fmt: skip
    first = (
        "2" "0005" "ﾐﾂﾋﾞｼﾕ-ｴﾌｼﾞｴｲ" + sp * 2 + "001" "ﾎﾝﾃﾝ" + sp * 11 + sp * 4 + "1" "0012345"
        + "ｷﾖｳﾀﾞ ｼﾞﾖｳｼﾞ" + sp * 18 + "0000100000" "0" "0000000001" + sp * 10 + "7" + sp + sp * 7
    )  # fmt: skip
    second = (
        "2" "0001" "ﾐｽﾞﾎ" + sp * 11 + "001" "ﾄｳｷﾖｳ" + sp * 10 + sp * 4 + "2" "7654321"
        + "ﾊﾟｰｸ" + sp * 26 + "0000050000" "0" "0000000002" + sp * 10 + "7" + sp + sp * 7
    )  # fmt: skip
    trailer = "8000002000000150000" + sp * 101
    end = "9" + sp * 119
    records = [r.encode("cp932") for r in (header, first, second, trailer, end)]
    assert [len(r) for r in records] == [120] * 5
    return b"".join(records)


def test_a_file_byte_by_byte_against_hand_computed_records() -> None:
    # ｰ (the half-width long vowel) is not a Zengin character: the writer refuses it before anything else.
    with pytest.raises(PaymentsError, match="payee_name: holds characters a Zengin file cannot carry"):
        zengin.write_transfer_file(PAYER, TRANSFERS)
    fixed = [TRANSFERS[0], TRANSFERS[1]._replace(payee_name="ﾊﾟ-ｸ")]
    expected = hand_made_file().replace("ﾊﾟｰｸ".encode("cp932"), "ﾊﾟ-ｸ".encode("cp932"))
    assert zengin.write_transfer_file(PAYER, fixed) == expected
    crlf = zengin.write_transfer_file(PAYER, fixed, crlf=True)
    assert crlf == b"".join(expected[i : i + 120] + b"\r\n" for i in range(0, len(expected), 120))
    assert len(crlf) == 5 * 122


def test_round_trip_through_check() -> None:
    for crlf in (False, True):
        data = zengin.write_transfer_file(PAYER, TRANSFERS[:1], crlf=crlf)
        result = zengin.check(data)
        assert result.ok and result.line_end == ("CRLF" if crlf else "none")
        assert (result.records, result.groups, result.count, result.total) == (4, 1, 1, 100000)
        (t,) = result.transfers
        assert (t.record, t.bank_code, t.branch_code, t.account_type, t.account_number) == (
            2,
            "0005",
            "001",
            1,
            "0012345",
        )
        assert (t.payee_name, t.amount, t.customer_code) == ("ｷﾖｳﾀﾞ ｼﾞﾖｳｼﾞ", 100000, "0000000001")


def test_text_is_cut_byte_exact_and_numbers_must_fit() -> None:
    long_name = "ｱ" * 29 + "ｶﾞ"  # 31 bytes: the voiced mark is cut, as a byte-exact truncation does
    record = zengin.encode_record(zengin.DATA, {"payee_name": long_name, "amount": 1})
    assert record[50:80] == ("ｱ" * 29 + "ｶ").encode("cp932") and len(record) == 120
    with pytest.raises(PaymentsError, match="amount: not a number of at most 10 digits"):
        zengin.encode_record(zengin.DATA, {"amount": 10**10})


@settings(max_examples=40, deadline=None)
@given(st.lists(st.sampled_from(sorted(ALLOWED)), min_size=1, max_size=40).map("".join), st.integers(1, 10**9))
def test_any_allowed_name_round_trips(name: str, amount: int) -> None:
    transfer = zengin.Transfer("0001", "", "001", "", 1, "0000001", name, amount, "1")
    result = zengin.check(zengin.write_transfer_file(PAYER, [transfer]))
    assert result.ok
    assert result.transfers[0].payee_name == name.encode("cp932")[:30].decode("cp932").rstrip(" ")
    assert result.total == amount


def problems(data: bytes) -> list[tuple[int, int, str, str]]:
    return [(p.record, p.position, p.field, p.rule) for p in zengin.check(data).problems]


def good() -> bytearray:
    return bytearray(zengin.write_transfer_file(PAYER, TRANSFERS[:1]))


def put(data: bytearray, record: int, position: int, value: bytes) -> bytes:
    start = (record - 1) * 120 + position - 1
    data[start : start + len(value)] = value
    return bytes(data)


@pytest.mark.parametrize(
    ("byte", "what"),
    [
        (b"a", "lower case"),
        (b"/", "slash"),
        (b",", "comma"),
        ("ｧ".encode("cp932"), "small kana"),
        ("ｰ".encode("cp932"), "half-width long vowel"),
        ("･".encode("cp932"), "middle dot"),
        ("｢".encode("cp932"), "bracket"),
        (b"\x00", "NUL"),
        (b"\t", "tab"),
        ("山".encode("cp932"), "kanji (two bytes)"),
    ],
)
def test_every_character_set_violation_is_named_by_record_and_byte(byte: bytes, what: str) -> None:
    assert problems(put(good(), 2, 55, byte))[0] == (2, 55, "payee_name", "character outside the Zengin set"), what


def test_the_checker_names_record_and_byte_of_each_rule() -> None:
    assert problems(put(good(), 2, 85, b"X")) == [(2, 85, "amount", "not digits")]
    assert problems(put(good(), 2, 43, b"3")) == [(2, 43, "account_type", "not one of 1, 2, 4, 9")]
    assert problems(put(good(), 2, 115, b"Z")) == [(2, 115, "dummy", "dummy field is not spaces")]
    assert problems(put(good(), 1, 2, b"11")) == [(1, 2, "type_code", "not one of 21")]
    assert problems(put(good(), 1, 55, b"1332")) == [(1, 55, "pay_date", "not a month and day (MMDD)")]
    assert problems(put(good(), 2, 2, b"9999")) == [
        (2, 2, "bank_code", "bank and branch code pair is not in the Zengin data")
    ]
    assert problems(put(good(), 3, 1, b"7"))[0] == (3, 1, "data_type", "not 1, 2, 8 or 9")


def test_a_wrong_trailer_is_caught() -> None:
    assert problems(put(good(), 3, 2, b"000002")) == [(3, 2, "count", "trailer count is not the 1 data records")]
    assert problems(put(good(), 3, 8, b"000000100001")) == [
        (3, 8, "total", "trailer total is not the sum of the amounts")
    ]


def test_record_order_lengths_and_line_ends() -> None:
    data = bytes(good())
    header, transfer, trailer, end = (data[i : i + 120] for i in range(0, 480, 120))
    assert problems(transfer + header + trailer + end)[0] == (
        1, 1, "data_type", "a data record cannot follow the start of the file",
    )  # fmt: skip
    assert problems(header + transfer + trailer) == [
        (3, 1, "data_type", "the file does not close with an end record (9)")
    ]
    assert problems(header + transfer + trailer + end + transfer)[0] == (
        5, 1, "data_type", "a data record cannot follow an end record",
    )  # fmt: skip
    assert problems(data[:-1]) == [(4, 0, "record", "record is 119 bytes, not 120; the file is cut short")]
    crlf = bytearray(zengin.write_transfer_file(PAYER, TRANSFERS[:1], crlf=True))
    crlf[122 + 120 : 122 + 122] = b"\n "
    assert problems(bytes(crlf))[0] == (2, 121, "line end", "record does not end with CRLF")
    assert problems(b"") == [(0, 0, "file", "the file is empty")]
    utf8 = data.decode("cp932").encode("utf-8")  # saved by an editor that knows no Shift_JIS
    assert problems(utf8) == [(0, 0, "file", "UTF-8 text, not JIS X 0201: save it as Shift_JIS, kana half-width")]


def test_check_command_prints_each_problem_and_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / "furikomi.txt"
    path.write_bytes(put(good(), 2, 55, "山".encode("cp932")))
    assert run(["payments", "check", str(path), "--json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["ok"] is False and out["transfers"] == 1
    assert out["problems"][0] == {
        "record": 2,
        "position": 55,
        "field": "payee_name",
        "rule": "character outside the Zengin set",
    }
    path.write_bytes(bytes(good()))
    assert run(["payments", "check", str(path)]) == 0
    assert "yes" in capsys.readouterr().out


# ------------------------------------------------------------------------------------------ batches

ACCOUNTS = {
    "H1": ("0005", "001", "12345", "キョウダ ジョウジ"),  # small kana and voiced letters
    "H2": ("0001", "004", "7654321", "ヤマダ タロウ"),  # H2 and H3 give one account: held
    "H3": ("0001", "004", "7654321", "ヤマダ ハナコ"),
    "H4": ("0009", "001", "1111111", "ハットリ ヘイジ"),
    "H6": ("0010", "100", "2222222", "ミナミ カヲル"),  # never confirmed: not paid
}


def city(home: Home, cipher: FieldCipher, tmp_path: Path) -> dict[str, str]:
    """Six exempt households, five with an account in the register; household code → reference number."""
    directory = tmp_path / "register"
    directory.mkdir()
    residents = [resident(str(i), f"H{i}") for i in range(1, 7)]
    files = register_files(directory, residents, [tax(str(i)) for i in range(1, 7)])
    accounts = [
        {"household_code": h, "bank_code": b, "branch_code": br, "account_type": "1", "account_number": n,
         "holder_kana": k}
        for h, (b, br, n, k) in ACCOUNTS.items()
    ]  # fmt: skip
    files.append(write_csv(directory / "accounts.csv", Kind.ACCOUNTS, accounts, encoding="cp932"))
    import_register(home.engine, cipher, files, now=NOW)
    run_programme(home.engine, benefit(home), rng=random.Random(13), now=NOW)
    with home.engine.connect() as conn:
        refs = dict(conn.execute(select(Entitlement.household_code, Entitlement.reference_number)).all())
    with transaction(home.engine) as conn:
        for household in ("H1", "H2", "H3", "H4", "H5"):
            for status in (Status.NOTIFIED, Status.CONFIRMED):
                entitlements.change_status(conn, refs[household], status, reason="form returned", now=NOW, actor="t")
        entitlements.change_status(conn, refs["H6"], Status.NOTIFIED, reason="letter posted", now=NOW, actor="t")
    return refs


def give_account(home: Home, cipher: FieldCipher, reference: str, account: tuple[str, str, str, str]) -> None:
    """The account a household writes on its confirmation form (issue 8 records these; here by hand)."""
    bank, branch, number, kana = account
    with transaction(home.engine) as conn:
        entitlement_id = entitlements.find(conn, reference)["id"]
        conn.execute(EntitlementAccount.__table__.delete().where(EntitlementAccount.entitlement_id == entitlement_id))
        conn.execute(
            EntitlementAccount.__table__.insert().values(
                entitlement_id=entitlement_id, bank_code=bank, branch_code=branch, account_type=1,
                account_number_enc=cipher.encrypt(number, "entitlement_accounts.account_number", entitlement_id),
                holder_kana=kana, given_at=NOW,
            )
        )  # fmt: skip


def request(out: Path, **kw: object) -> BatchRequest:
    fields: dict = dict(
        programme="benefit", pay_date=date(2022, 8, 1), payer_code="1234567890", payer_name="アマガサキシ",
        payer_bank="0001", payer_branch="001", payer_account="1234567", out=out,
    )  # fmt: skip
    return BatchRequest(**(fields | kw))


def statuses(home: Home, refs: dict[str, str]) -> dict[str, str]:
    with home.engine.connect() as conn:
        return {h: entitlements.find(conn, r)["status"] for h, r in refs.items()}


def test_a_batch_holds_double_payees_and_pays_on_sent(home: Home, cipher: FieldCipher, tmp_path: Path) -> None:
    refs = city(home, cipher, tmp_path)
    give_account(home, cipher, refs["H5"], ("0005", "002", "3333333", "パーク ハナコ"))  # H5 has none in the register
    out = tmp_path / "furikomi.txt"
    summary = make_batch(home, request(out), now=NOW, actor="officer:tanaka")
    assert (summary.records, summary.total_amount) == (3, 300_000)
    assert sorted((h.reference_number, h.rule) for h in summary.held) == sorted(
        [(refs["H2"], "shared-account"), (refs["H3"], "shared-account")]
    )
    assert out.stat().st_mode & 0o777 == 0o600
    result = zengin.check(out.read_bytes())
    assert result.ok and (result.count, result.total) == (3, 300_000)
    assert {(t.bank_code, t.branch_code, t.account_number, t.payee_name) for t in result.transfers} == {
        ("0005", "001", "0012345", "ｷﾖｳﾀﾞ ｼﾞﾖｳｼﾞ"),
        ("0009", "001", "1111111", "ﾊﾂﾄﾘ ﾍｲｼﾞ"),
        ("0005", "002", "3333333", "ﾊﾟ-ｸ ﾊﾅｺ"),
    }
    assert set(statuses(home, refs).values()) == {"confirmed", "notified"}  # nothing paid before `sent`

    with pytest.raises(PaymentsError, match=r"no confirmed entitlement .* waiting to be paid .2 would be held"):
        make_batch(home, request(tmp_path / "again.txt"), now=NOW)
    with pytest.raises(PaymentsError, match="exists; choose another file or add --force"):
        make_batch(home, request(out), now=NOW)

    sent = mark_sent(home.engine, summary.batch_id, now=NOW, actor="officer:tanaka")
    assert sent.records == 3
    assert statuses(home, refs) == {
        "H1": "paid", "H2": "confirmed", "H3": "confirmed", "H4": "paid", "H5": "paid", "H6": "notified",
    }  # fmt: skip
    with home.engine.connect() as conn:
        steps = entitlements.history(conn, entitlements.find(conn, refs["H1"])["id"])
        actions = [e["action"] for e in audit.entries(conn, last=3)]
    assert (steps[-1]["to_status"], steps[-1]["reason"]) == (
        "paid",
        f"payment batch {summary.batch_id} sent to the bank",
    )
    assert actions == ["payments.batch", "entitlement.paid", "payments.sent"]
    with pytest.raises(PaymentsError, match="already marked sent"):
        mark_sent(home.engine, summary.batch_id, now=NOW)

    # A supervisor clears H2 (the couple's account): the next batch pays it, H3 stays held.
    clear_hold(home.engine, printed(refs["H2"]), reason="spouses; H3 moved in with H2", now=NOW, actor="chief:sato")
    second = make_batch(home, request(tmp_path / "second.txt"), now=NOW)
    assert second.records == 1 and [h.reference_number for h in second.held] == [refs["H3"]]


def test_returns_are_reconciled_and_paid_again_once_corrected(home: Home, cipher: FieldCipher, tmp_path: Path) -> None:
    refs = city(home, cipher, tmp_path)
    out = tmp_path / "furikomi.txt"
    batch = make_batch(home, request(out, crlf=True), now=NOW).batch_id
    with pytest.raises(PaymentsError, match="not marked sent"):
        reconcile(home, batch, out, now=NOW)
    mark_sent(home.engine, batch, now=NOW)

    returns = tmp_path / "返却.csv"
    returns.write_text(f"reference_number,reason_code\r\n{printed(refs['H4'])},1\r\n", encoding="cp932")
    summary = reconcile(home, batch, returns, now=NOW, actor="officer:tanaka")
    assert (summary.returned, summary.returned_amount, summary.still_paid) == (1, 100_000, 1)
    assert statuses(home, refs)["H4"] == "returned"
    with pytest.raises(PaymentsError, match=r"返却.csv:2: this transfer was already reconciled"):
        reconcile(home, batch, returns, now=NOW)
    returns.write_text(f"reference_number,reason_code\n{printed(refs['H6'])},1\n", encoding="utf-8")
    with pytest.raises(PaymentsError, match=f"返却.csv:2: reference_number: not paid in batch {batch}"):
        reconcile(home, batch, returns, now=NOW)

    # The bank's own return file: H1's data record as it was sent, then one that was tampered with.
    sent = out.read_bytes()
    header, h1 = (
        sent[:120],
        next(sent[i : i + 120] for i in range(122, len(sent), 122) if sent[i + 43 : i + 50] == b"0012345"),
    )
    trailer = zengin.encode_record(zengin.TRAILER, {"count": 1, "total": 100_000})
    end = zengin.encode_record(zengin.END, {})
    bank_file = tmp_path / "henkyaku.txt"
    tampered = zengin.encode_record(zengin.TRAILER, {"count": 1, "total": 100_001})
    bank_file.write_bytes(header + h1[:80] + b"0000100001" + h1[90:] + tampered + end)
    with pytest.raises(PaymentsError, match="record 2: does not match transfer"):
        reconcile(home, batch, bank_file, now=NOW)
    bank_file.write_bytes(header + h1 + trailer + end)
    assert reconcile(home, batch, bank_file, now=NOW).returned == 1
    with home.engine.connect() as conn:
        h4 = entitlements.history(conn, entitlements.find(conn, refs["H4"])["id"])[-1]
    assert h4["reason"] == f"returned by the bank from batch {batch}, code 1"

    # Confirmed again without a new account, H4 is held; with a corrected one it is paid in the next batch.
    with transaction(home.engine) as conn:
        entitlements.change_status(conn, refs["H4"], Status.CONFIRMED, reason="called the household", now=NOW)
    with pytest.raises(PaymentsError, match="3 would be held"):
        make_batch(home, request(tmp_path / "b2.txt"), now=NOW)  # H2/H3 share one account, H4 is unchanged
    give_account(home, cipher, refs["H4"], ("0009", "001", "1111112", "ハットリ ヘイジ"))
    again = make_batch(home, request(tmp_path / "b2.txt"), now=NOW)
    assert again.records == 1 and {h.rule for h in again.held} == {"shared-account"}


def test_a_household_paid_under_another_code_is_held(home: Home, cipher: FieldCipher, tmp_path: Path) -> None:
    refs = city(home, cipher, tmp_path)
    mark_sent(home.engine, make_batch(home, request(tmp_path / "a.txt"), now=NOW).batch_id, now=NOW)
    with transaction(home.engine) as conn:  # resident 1 (paid with H1) turns up in H5's household too
        h5 = entitlements.find(conn, refs["H5"])["id"]
        conn.execute(
            text("INSERT INTO entitlement_members (entitlement_id, resident_code) VALUES (:e, '1')"), {"e": h5}
        )
    give_account(home, cipher, refs["H5"], ("0005", "002", "3333333", "イトウ ケン"))
    with pytest.raises(PaymentsError, match="would be held"):
        make_batch(home, request(tmp_path / "b.txt"), now=NOW)
    with home.engine.connect() as conn:
        rules = conn.execute(text("SELECT rule FROM payment_holds WHERE entitlement_id = :e"), {"e": h5}).all()
    assert rules == []  # a refused batch records nothing


def test_payees_a_bank_would_refuse_are_named_by_reference(home: Home, cipher: FieldCipher, tmp_path: Path) -> None:
    refs = city(home, cipher, tmp_path)
    give_account(home, cipher, refs["H5"], ("0005", "002", "3333333", "山田 花子"))
    give_account(home, cipher, refs["H4"], ("0001", "999", "1111111", "ハットリ ヘイジ"))
    with pytest.raises(PaymentsError) as refused:
        make_batch(home, request(tmp_path / "x.txt"), now=NOW)
    message = str(refused.value)
    assert f"entitlement {printed(refs['H5'])}: payee name: not characters a Zengin file can carry" in message
    assert f"entitlement {printed(refs['H4'])}: bank and branch code pair is not in the Zengin data" in message
    assert "山田" not in message and not (tmp_path / "x.txt").exists()


def test_sealed_for_the_bank_without_plaintext_on_disk(home: Home, cipher: FieldCipher, tmp_path: Path) -> None:
    refs = city(home, cipher, tmp_path)
    bank = tmp_path / "bank"
    bank.mkdir()
    add_recipient(home.engine, "mizuho", keygen(bank / "bank.key"), now=NOW, actor="t")
    add_trusted(bank, home.config.issuer, format_public_key(load_city_keys(home.keys).signing.public_key()))
    package = tmp_path / "furikomi.cseal"
    summary = make_batch(home, request(package, seal_to="mizuho"), now=NOW)
    assert (summary.mode, summary.recipient, summary.records) == ("recipient", "mizuho", 2)  # H1 and H4
    name = "ｷﾖｳﾀﾞ".encode("cp932")
    on_disk = [p for p in tmp_path.rglob("*") if p.is_file() and name in p.read_bytes()]
    assert on_disk == [] and not list(home.path.glob(".seal-*"))

    opened = bank / "furikomi.txt"
    pkg = open_sealed(package, trust_home=bank, out=opened, identity_file=bank / "bank.key", now=NOW)
    assert pkg.manifest["purpose"] == "bank-transfer" and pkg.manifest["payload"]["format"] == "zengin"
    result = zengin.check(opened.read_bytes())
    assert result.ok and result.count == pkg.manifest["payload"]["rows"] == 2
    with home.engine.connect() as conn:
        row = conn.execute(text("SELECT canaries, payload_format FROM packages")).one()
        members = conn.execute(text("SELECT COUNT(*) FROM package_members")).scalar_one()
    assert tuple(row) == (0, "zengin") and members == 2
    mark_sent(home.engine, summary.batch_id, now=NOW)
    clear_hold(home.engine, refs["H2"], reason="checked with the household", now=NOW)
    tethered = request(tmp_path / "t.cseal", seal_to="mizuho", mode=fmt.Mode.TETHERED, key_service_url=KEY_SERVICE)
    again = make_batch(home, tethered, now=NOW)
    with home.engine.connect() as conn:
        identity = conn.execute(text("SELECT identity_age FROM packages WHERE id = :p"), {"p": again.package_id})
        assert identity.scalar_one() is not None
    assert (again.mode, again.records) == ("tethered", 1)


def test_the_commands_as_an_officer_uses_them(
    home: Home, cipher: FieldCipher, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    refs = city(home, cipher, tmp_path)
    at = ["--home", str(home.path)]
    batch = ["payments", "batch", *at, "--programme", "benefit", "--payer-code", "2820200001", "--payer-name",
             "アマガサキシ", "--payer-bank", "1", "--payer-branch", "1", "--payer-account", "1234567"]  # fmt: skip
    assert run([*batch, "--pay-date", "2022/7/30", "--out", str(tmp_path / "x.txt")]) == 1
    assert "the next one is 2022-08-01" in capsys.readouterr().err
    out = tmp_path / "furikomi.txt"
    assert run([*batch, "--pay-date", "2022-08-01", "--out", str(out), "--payer-account-type", "普通預金金"]) == 2
    assert "--payer-account-type: not a known account type" in capsys.readouterr().err
    typed = ["--payer-account-type", "当座", "--crlf", "--json"]  # as the bank's papers name it
    assert run([*batch, "--pay-date", "令和4年8月1日", "--out", str(out), *typed]) == 0
    made = json.loads(capsys.readouterr().out)
    assert out.read_bytes()[zengin.HEADER.slices["payer_account_type"]] == b"2"
    assert (made["records"], made["total_amount"], made["sealed"], made["line_end"]) == (2, 200_000, False, "CRLF")
    assert sorted(h["reference_number"] for h in made["held"]) == sorted([printed(refs["H2"]), printed(refs["H3"])])
    assert len(out.read_bytes()) == 5 * 122
    assert run(["payments", "sent", str(made["batch_id"]), *at, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["records"] == 2
    returns = tmp_path / "returns.csv"
    returns.write_text(f"不能事由コード,番号\n3,{refs['H1']}\n", encoding="cp932")
    assert run(["payments", "reconcile", str(made["batch_id"]), "--returns", str(returns), *at]) == 1
    assert "needs the columns reference_number (整理番号, 参照番号) and reason_code" in capsys.readouterr().err
    returns.write_text(f"不能事由コード,参照番号\n3,{refs['H1']}\n", encoding="cp932")  # as a clerk heads them
    assert run(["payments", "reconcile", str(made["batch_id"]), "--returns", str(returns), *at, "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "batch_id": made["batch_id"], "returned": 1, "returned_amount": 100_000, "still_paid": 1,
    }  # fmt: skip
    assert run(["payments", "clear", printed(refs["H3"]), "--reason", "checked", *at]) == 0
    assert "cleared 1 hold" in capsys.readouterr().out


def test_a_total_beyond_32_bits(home: Home, cipher: FieldCipher, tmp_path: Path) -> None:
    """A city pays more than 2**31 yen in one batch (74,767 × 100,000); here three large amounts do."""
    refs = city(home, cipher, tmp_path)
    give_account(home, cipher, refs["H5"], ("0005", "002", "3333333", "イトウ ケン"))
    with transaction(home.engine) as conn:
        conn.execute(text("UPDATE entitlements SET amount = 999999999"))
    summary = make_batch(home, request(tmp_path / "big.txt"), now=NOW)
    assert summary.total_amount == 3 * 999_999_999 > 2**31 - 1  # H1, H4 and H5; H2 and H3 are held
    assert zengin.check((tmp_path / "big.txt").read_bytes()).total == summary.total_amount
    assert mark_sent(home.engine, summary.batch_id, now=NOW).total_amount == summary.total_amount
