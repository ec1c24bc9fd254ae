"""Running, correcting and confirming a programme (issue 8), from the library and the CLI, on both stores:
missing tax data as a decision, dry runs, programme list/show, nearest names, decline/withdraw/confirm,
returned forms in bulk with canary alerts, and what sealing selects afterwards."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from sqlalchemy import text

from civicseal.audit import log as audit
from civicseal.cli import run
from civicseal.programme import confirmation, entitlements
from civicseal.programme.lifecycle import Status
from civicseal.programme.reference import printed
from civicseal.programme.service import MissingTaxData, run_programme
from civicseal.register.importer import ImportRefused, header_cells, locate_columns, unheaded
from civicseal.seal.service import SealRequest, SealSummary, seal
from civicseal.store.engine import transaction
from civicseal.store.fieldcrypt import FieldCipher
from civicseal.store.home import Home
from tests.cities import contractor
from tests.registers import resident, tax
from tests.test_import import account_row, accounts_csv, do_import, residents_csv, tax_csv
from tests.test_programme import NOW, benefit

HOUSEHOLDS = ["H1", "H2", "H3", "H4"]


def cli(home: Home, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = run([*args, "--home", str(home.path)])
    out, err = capsys.readouterr()
    return code, out, err


def _city(home: Home, cipher: FieldCipher, tmp_path: Path, *, taxes: bool = True) -> None:
    """Four exempt households of two members (head and a 子の妻); H1 and H2 have accounts in the register."""
    people = []
    for h in HOUSEHOLDS:
        people += [resident(f"{h}a", h, relationship="世帯主"), resident(f"{h}b", h, relationship="子の妻")]
    files = [residents_csv(tmp_path, people), accounts_csv(tmp_path, [account_row("H1"), account_row("H2")])]
    if taxes:
        files.append(tax_csv(tmp_path, [tax(p["resident_code"]) for p in people]))
    do_import(home, cipher, *files)


def _references(home: Home) -> dict[str, str]:
    with home.engine.connect() as conn:
        return dict(conn.execute(text("SELECT household_code, reference_number FROM entitlements")).all())


def _mailing(home: Home, programme: str, out: Path, seed: int) -> SealSummary:
    request = SealRequest(programme=programme, purpose="confirmation-mailing", recipient="printshop", out=out)
    return seal(home, request, now=NOW, rng=random.Random(seed))


def _last_seq(home: Home) -> int:
    with home.engine.connect() as conn:
        return audit.entries(conn, last=1)[0]["seq"]


def _notify_all(home: Home) -> None:
    with home.engine.connect() as conn:
        ids = list(conn.execute(text("SELECT id FROM entitlements")).scalars())
    with transaction(home.engine) as conn:
        entitlements.change_many(conn, ids, Status.ELIGIBLE, Status.NOTIFIED, reason="letters posted", now=NOW)


# ------------------------------------------------------------------------------------------- missing tax


def test_missing_tax_data_is_refused_unless_accepted(home: Home, cipher: FieldCipher, tmp_path: Path, capsys) -> None:
    _city(home, cipher, tmp_path, taxes=False)
    name = benefit(home)
    with pytest.raises(MissingTaxData, match="no tax row for fiscal year 2022"):
        run_programme(home.engine, name, now=NOW)
    code, out, err = cli(home, capsys, "programme", "run", name)
    assert (code, out) == (1, "")
    assert len(err.strip().splitlines()) == 1 and "--accept-missing-tax" in err

    # one member of eight has a row: 7 of 8 lack one, over any threshold below 88 %
    do_import(home, cipher, tax_csv(tmp_path, [tax("H1a")], name="tax1.csv"))
    with pytest.raises(MissingTaxData, match=r"7 of 8 members .* \(88%\) .* more than 25%"):
        run_programme(home.engine, name, now=NOW)
    before = _last_seq(home)
    code, out, _ = cli(home, capsys, "programme", "run", name, "--dry-run", "--accept-missing-tax", "--json")
    dry = json.loads(out)
    assert (code, dry["dry_run"], dry["missing_tax_accepted"], dry["new_entitlements"]) == (0, True, True, 4)
    assert _references(home) == {}  # a dry run writes nothing
    assert _last_seq(home) == before

    code, out, _ = cli(home, capsys, "programme", "run", name, "--max-missing-tax", "90", "--json")
    assert (code, json.loads(out)["missing_tax_accepted"], json.loads(out)["entitled"]) == (0, False, 4)


# ------------------------------------------------------------------------------------------- programmes


def test_programme_list_show_and_nearest_names(home: Home, cipher: FieldCipher, tmp_path: Path, capsys) -> None:
    code, out, _ = cli(home, capsys, "programme", "list", "--json")
    assert (code, json.loads(out)) == (0, {"programmes": []})
    _city(home, cipher, tmp_path)
    name = benefit(home, "2022 臨時特別給付金")
    code, out, _ = cli(home, capsys, "programme", "show", name, "--json")
    assert json.loads(out)["last_run"] is None
    run_programme(home.engine, name, rng=random.Random(1), now=NOW)
    h4 = _references(home)["H4"]
    with transaction(home.engine) as conn:
        entitlements.change_status(conn, h4, Status.DECLINED, reason="電話で辞退", now=NOW)

    code, out, _ = cli(home, capsys, "programme", "list", "--json")
    (listed,) = json.loads(out)["programmes"]
    assert (code, listed["name"], listed["entitlements"]) == (0, name, 4)
    assert (listed["statuses"]["eligible"], listed["statuses"]["declined"]) == (3, 1)
    code, out, _ = cli(home, capsys, "programme", "list")
    assert code == 0 and "eligible 3, declined 1" in out

    code, out, _ = cli(home, capsys, "programme", "show", name, "--json")
    shown = json.loads(out)
    assert (shown["statuses"]["eligible"], shown["last_run"]["entitled"]) == (3, 4)
    assert shown["last_run"]["at"] == "2026-11-22T03:00:00Z"
    code, out, _ = cli(home, capsys, "programme", "show", name)
    assert code == 0 and "2026-11-22 12:00 JST" in out and "eligibility funnel" in out

    for command in (["programme", "run", "2022 臨時特別給付"], ["programme", "show", "2022 臨時特別給付"]):
        code, out, err = cli(home, capsys, *command)
        assert (code, out) == (1, "")
        assert "did you mean '2022 臨時特別給付金'?" in err and len(err.strip().splitlines()) == 1
    code, _, err = cli(home, capsys, "seal", "--programme", "2022 rinji", "--purpose", "confirmation-mailing",
                       "--to", "x", "--out", str(tmp_path / "x.cseal"))  # fmt: skip
    assert code == 1 and "programme list" in err


# ------------------------------------------------------------------------------------------- one entitlement


def test_decline_withdraw_and_confirm_from_the_cli(home: Home, cipher: FieldCipher, tmp_path: Path, capsys) -> None:
    _city(home, cipher, tmp_path)
    name = benefit(home)
    run_programme(home.engine, name, rng=random.Random(2), now=NOW)
    refs = _references(home)
    code, out, _ = cli(home, capsys, "entitlement", "confirm", refs["H1"])
    assert code == 1  # eligible cannot be confirmed before its letter went out
    _notify_all(home)

    code, out, _ = cli(home, capsys, "entitlement", "decline", printed(refs["H1"]), "--reason", "本人より辞退の申出")
    assert (code, out.strip()) == (0, f"{printed(refs['H1'])}: notified → declined")
    code, out, _ = cli(home, capsys, "entitlement", "withdraw", refs["H2"], "--reason", "転出", "--json")
    assert json.loads(out) == {"reference_number": refs["H2"], "from": "notified", "to": "withdrawn"}
    code, _, err = cli(home, capsys, "entitlement", "withdraw", refs["H2"], "--reason", "again")
    assert code == 1 and "final" in err

    bad = ["--bank", "9998", "--branch", "001", "--type", "普通", "--account", "1234567", "--holder-kana", "ﾀﾅｶ ﾊﾅｺ"]
    code, _, err = cli(home, capsys, "entitlement", "confirm", refs["H3"], *bad)
    assert code == 1 and err.strip().startswith("error: bank_code: not a bank in the Zengin data")
    assert "1234567" not in err
    partial = ["--bank", "0005", "--branch", "001"]
    code, _, err = cli(home, capsys, "entitlement", "confirm", refs["H3"], *partial)
    assert (code == 1 and "type" in err) or "account_type: required" in err
    good = ["--bank", "5", "--branch", "1", "--type", "普通", "--account", "42", "--holder-kana", "ﾀﾅｶ ﾊﾅｺ"]
    code, out, _ = cli(home, capsys, "entitlement", "confirm", refs["H3"], *good)
    assert code == 0 and "notified → confirmed" in out

    with home.engine.connect() as conn:
        ids = {h: entitlements.find(conn, r)["id"] for h, r in refs.items()}
        given = confirmation.payable_account(conn, cipher, ids["H3"])
        register = confirmation.payable_account(conn, cipher, ids["H2"])
        none = confirmation.payable_account(conn, cipher, ids["H4"])
    assert given == confirmation.Account("0005", "001", 1, "0000042", "タナカ ハナコ", "confirmation")
    assert register is not None and (register.source, register.account_number) == ("register", "1234567")
    assert none is None

    code, out, _ = cli(home, capsys, "entitlement", "show", refs["H3"], "--json")
    shown = json.loads(out)
    assert shown["status"] == "confirmed" and shown["account"]["account_number"] == "****042"
    assert [(s["from"], s["to"]) for s in shown["history"]] == [("eligible", "notified"), ("notified", "confirmed")]
    code, out, _ = cli(home, capsys, "entitlement", "show", refs["H1"])
    assert code == 0 and "本人より辞退の申出" in out and "JST" in out


# ------------------------------------------------------------------------------------------- returned forms


FORM_HEADER = "整理番号,金融機関コード,支店コード,預金種目,口座番号,口座名義カナ,辞退"


def _forms(path: Path, lines: list[str]) -> Path:
    path.write_bytes(("\r\n".join([FORM_HEADER, *lines]) + "\r\n").encode("cp932"))
    return path


def test_returned_forms_are_read_under_the_letters_and_the_registers_words() -> None:
    """A data-entry contractor heads the reference column as the letter prints it (参照番号), and the account
    columns as a bank or the register's system names them."""
    path = Path("返送分.csv")
    header = ["参照番号", "銀行コード", "店舗コード", "預金種別", "口座番号", "口座名義", "辞退"]
    columns = confirmation.FORM_COLUMNS
    assert locate_columns(path, header_cells(path, header), columns, "a confirmations file") == list(range(7))
    saved_by_excel = header_cells(path, [*header, "", ""])  # columns formatted beyond the data
    assert locate_columns(path, saved_by_excel, columns, "a confirmations file") == list(range(7))
    assert unheaded(saved_by_excel) == range(7, 9)


def test_returned_forms_in_bulk_and_what_sealing_selects(
    home: Home, cipher: FieldCipher, tmp_path: Path, capsys
) -> None:
    _city(home, cipher, tmp_path)
    name = benefit(home)
    run_programme(home.engine, name, rng=random.Random(3), now=NOW)
    contractor(home, tmp_path)
    mailing = _mailing(home, name, tmp_path / "m.cseal", 4)
    with home.engine.connect() as conn:
        canary = conn.execute(text("SELECT number FROM reference_numbers WHERE kind = 'canary'")).scalars().first()
    _notify_all(home)
    refs = _references(home)

    bad = _forms(
        tmp_path / "bad.csv",
        [
            f"{printed(refs['H1'])},1,1,普通,1234567,ﾔﾏﾀﾞ ﾀﾛｳ,",
            f"{refs['H2']},9998,001,1,7654321,タナカ,",
            f"{refs['H3']},0005,001,,7654321,タナカ,",
            f"{refs['H4']},0005,001,1,7654321,タナカ,1",
            f"{refs['H1']},,,,,,",
            "1234 5678 9012,,,,,,",
            f"{canary},,,,,,",
            "1.23457E+11,,,,,,",  # a reference number a spreadsheet turned into a number
        ],
    )
    before = _references(home), _last_seq(home)
    with pytest.raises(ImportRefused) as refused:
        confirmation.confirm_file(home.engine, cipher, name, bad, now=NOW)
    assert [str(p) for p in refused.value.problems] == [
        "bad.csv:3: bank_code: not a bank in the Zengin data",
        "bad.csv:4: account_type: required when an account is given",
        "bad.csv:5: declined: declines but gives an account; keep one of them",
        "bad.csv:6: reference_number: appears twice (first on line 2)",
        "bad.csv:7: reference_number: not 12 digits with a valid check digit",
        "bad.csv:9: reference_number: in scientific notation (like 1.23457E+11): the spreadsheet rounded the"
        " number; format the column as text and export again",
    ]
    assert "7654321" not in str(refused.value)
    with home.engine.connect() as conn:
        statuses = set(conn.execute(text("SELECT status FROM entitlements")).scalars())
        alerts = [e for e in audit.entries(conn, last=5) if e["action"] == "canary.alert"]
    assert statuses == {"notified"}  # nothing applied
    assert len(alerts) == 1 and alerts[0]["object_id"] == canary  # but the alert stays
    assert json.loads(alerts[0]["details"])["line"] == 8

    good = _forms(
        tmp_path / "forms.csv",
        [
            f"{printed(refs['H1'])},1,1,普通,1234567,ﾔﾏﾀﾞ ﾀﾛｳ,",  # an account given: wins over the register's
            f"{refs['H2']},,,,,,",  # no account given: the register's
            f"{refs['H3']},,,,,,",  # confirmed, but no account anywhere
            f"{refs['H4']},,,,,,○",  # the 辞退 box circled
            f"{canary},,,,,,",
        ],
    )
    circled_zero = _forms(tmp_path / "zero.csv", [f"{refs['H4']},,,,,,〇"])  # the kanji zero: not read as a circle
    with pytest.raises(ImportRefused) as refused:
        confirmation.confirm_file(home.engine, cipher, name, circled_zero, now=NOW)
    assert [str(p) for p in refused.value.problems] == ["zero.csv:2: declined: not 1, ○ or 辞退 (declines), or 0"]
    code, out, err = cli(home, capsys, "programme", "confirm", name, str(good), "--json")
    assert code == 0, err
    assert json.loads(out) == {"rows": 5, "confirmed": 3, "declined": 1, "accounts_given": 1, "canaries": 1}
    with home.engine.connect() as conn:
        alert = [e for e in audit.entries(conn, last=5) if e["action"] == "canary.alert"][-1]
    details = json.loads(alert["details"])
    assert (details["package"], details["recipient"], details["file"]) == (mailing.package_id, "printshop", "forms.csv")
    assert before[1] < alert["seq"]

    # the account to pay: the form's for H1, the register's for H2; H3 has none
    with home.engine.connect() as conn:
        ids = {h: entitlements.find(conn, refs[h])["id"] for h in ("H1", "H2", "H3")}
        paying = {h: confirmation.payable_account(conn, cipher, i) for h, i in ids.items()}
    assert paying["H3"] is None
    assert (paying["H1"].account_number, paying["H1"].holder_kana) == ("1234567", "ヤマダ タロウ")
    assert (paying["H2"].bank_code, paying["H2"].holder_kana) == ("0001", "アマガサキ タロウ")

    # withdrawn and declined are never selected again
    with transaction(home.engine) as conn:
        entitlements.change_status(conn, refs["H3"], Status.WITHDRAWN, reason="転出", now=NOW)
    again = _mailing(home, name, tmp_path / "m2.cseal", 6)
    assert again.records == 2


def test_no_longer_qualifying_are_listed_withdrawn_and_never_sealed(
    home: Home, cipher: FieldCipher, tmp_path: Path, capsys
) -> None:
    _city(home, cipher, tmp_path, taxes=False)
    name = benefit(home)
    code, out, _ = cli(home, capsys, "programme", "run", name, "--accept-missing-tax")
    assert code == 0 and "missing tax rows accepted" in out
    # the tax file arrives: H1 and H2 have a taxed member and no longer qualify
    taxed = [tax("H1a", levy="taxed"), tax("H2b", levy="課税")]
    do_import(home, cipher, tax_csv(tmp_path, taxed + [tax(f"{h}{m}") for h in ("H3", "H4") for m in "ab"]))
    refs = _references(home)
    code, out, _ = cli(home, capsys, "programme", "run", name, "--json")
    result = json.loads(out)
    assert (result["no_longer_qualifying"], result["missing_tax_accepted"]) == (2, False)
    assert result["no_longer_qualifying_references"] == sorted([refs["H1"], refs["H2"]])
    code, out, _ = cli(home, capsys, "programme", "run", name)
    assert printed(refs["H1"]) in out and "civicseal entitlement withdraw" in out
    assert cli(home, capsys, "entitlement", "withdraw", refs["H1"], "--reason", "課税判明")[0] == 0
    code, out, _ = cli(home, capsys, "programme", "withdraw", name, "--reason", "課税判明", "--json")
    assert (code, json.loads(out)) == (0, {"withdrawn": 1, "reference_numbers": [refs["H2"]]})
    with home.engine.connect() as conn:
        assert [s["reason"] for s in entitlements.history(conn, entitlements.find(conn, refs["H2"])["id"])] == [
            "課税判明"
        ]
    code, out, _ = cli(home, capsys, "programme", "run", name, "--json")
    assert json.loads(out)["no_longer_qualifying"] == 0
    contractor(home, tmp_path)
    mailing = _mailing(home, name, tmp_path / "m.cseal", 7)
    assert mailing.records == 2


@pytest.mark.parametrize(("cell", "declines"), [("1", True), ("○", True), ("◯", True), ("辞退", True), ("0", False)])
def test_the_declined_box_is_read_as_clerks_fill_it_in(cell: str, declines: bool) -> None:
    column = next(c for c in confirmation.FORM_COLUMNS if c.name == "declined")
    assert column.read(cell) is declines
    assert column.read("") is None  # left empty: not declined
