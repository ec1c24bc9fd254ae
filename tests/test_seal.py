"""Sealing, verifying, opening and tracing packages, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import itertools
import json
import random
from datetime import timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from sqlalchemy import text

from civicseal import cseal as fmt
from civicseal.cli import run
from civicseal.cseal.errors import PackageRefused, SealError
from civicseal.custody.service import current_state
from civicseal.ledger.purposes import get_purpose
from civicseal.seal.canaries import canary_count
from civicseal.seal.open import open_sealed
from civicseal.seal.service import SealRequest, check_key_service_url, parse_duration, seal
from civicseal.seal.trace import trace
from civicseal.store.home import Home
from tests.cities import NOW, PROGRAMME, contractor, entitled_city

SEEDS = itertools.count(11)  # each package its own randomness, yet every run the same


def _seal(home: Home, tmp_path: Path, purpose: str = "confirmation-mailing", **options: object) -> object:
    request = SealRequest(
        programme=PROGRAMME,
        purpose=purpose,
        recipient="printshop",
        out=tmp_path / f"{purpose}-{random.random()}.cseal",
        **options,
    )  # type: ignore[arg-type]
    return seal(home, request, now=NOW, rng=random.Random(next(SEEDS)))


@pytest.fixture
def city(home: Home, tmp_path: Path) -> tuple[Home, Path, str]:
    entitled_city(home, tmp_path)
    identity, token = contractor(home, tmp_path)
    return home, identity, token


def _entitled(home: Home) -> int:
    with home.engine.connect() as conn:
        return conn.execute(text("SELECT COUNT(*) FROM entitlements WHERE status <> 'declined'")).scalar_one()


def test_a_package_carries_only_its_purpose_and_opens_for_its_recipient(city, tmp_path: Path) -> None:
    home, identity, _ = city
    summary = _seal(home, tmp_path, "contact-centre-offline", mode=fmt.Mode.RECIPIENT)
    out = tmp_path / "opened.parquet"
    pkg = open_sealed(Path(summary.out), trust_home=home.path, out=out, identity_file=identity, now=NOW)
    table = pq.read_table(out)
    assert table.column_names == list(get_purpose("contact-centre-offline").fields)
    assert table.num_rows == summary.records + summary.canaries == pkg.manifest["payload"]["rows"]
    assert summary.records == _entitled(home)
    assert summary.canaries == canary_count(summary.records) >= 3
    # pseudonyms replace codes: no household or resident code appears anywhere in the payload
    with home.engine.connect() as conn:
        codes = set(conn.execute(text("SELECT household_code FROM entitlements")).scalars())
    cells = {str(v) for column in table.columns for v in column.to_pylist()}
    assert not codes & cells
    # the references are the programme's, same in every package; canaries carry reserved ones
    with home.engine.connect() as conn:
        canary_refs = set(conn.execute(text("SELECT reference_number FROM canary_households")).scalars())
        kinds = dict(conn.execute(text("SELECT number, kind FROM reference_numbers")).all())
    assert {kinds[r] for r in canary_refs} == {"canary"}
    assert canary_refs <= set(table.column("reference_number").to_pylist())


def test_pseudonyms_differ_between_packages_but_references_and_canaries_do_not(city, tmp_path: Path) -> None:
    home, identity, _ = city
    first = _seal(home, tmp_path, mode=fmt.Mode.RECIPIENT)
    second = _seal(home, tmp_path, mode=fmt.Mode.RECIPIENT)
    tables = []
    for n, summary in enumerate((first, second)):
        out = tmp_path / f"o{n}.parquet"
        open_sealed(Path(summary.out), trust_home=home.path, out=out, identity_file=identity, now=NOW)
        tables.append(pq.read_table(out).to_pylist())
    pseudonyms = [{r["pseudonym"] for r in t} for t in tables]
    references = [{r["reference_number"] for r in t} for t in tables]
    assert not pseudonyms[0] & pseudonyms[1]
    assert references[0] == references[1]  # the recipient's canaries are in both, as its households are
    assert len(references[0]) == first.records + first.canaries and first.canaries == second.canaries


def test_members_custody_and_audit_are_recorded(city, tmp_path: Path) -> None:
    home, _, _ = city
    summary = _seal(home, tmp_path)
    with home.engine.connect() as conn:
        members = conn.execute(
            text("SELECT COUNT(*), COUNT(DISTINCT household_code) FROM package_members WHERE package_id = :p"),
            {"p": summary.package_id},
        ).one()
        expected = conn.execute(
            text(
                "SELECT COUNT(*) FROM entitlement_members m JOIN entitlements e ON e.id = m.entitlement_id"
                " WHERE e.status <> 'declined'"
            )
        ).scalar_one()
        state = current_state(conn, summary.package_id)
        actions = list(conn.execute(text("SELECT action FROM audit_log ORDER BY seq")).scalars())
    assert tuple(members) == (expected, summary.records) == (summary.residents_carried, summary.records)
    assert state == "created"
    assert actions[-1] == "package.seal"
    if home.engine.dialect.name == "postgresql":  # the planner knows the package's size (it guessed 136 rows)
        with home.engine.connect() as conn:
            known = conn.execute(text("SELECT reltuples FROM pg_class WHERE relname = 'package_members'")).scalar_one()
        assert known == summary.residents_carried


def test_a_field_outside_the_purpose_cannot_be_asked_for(city, tmp_path: Path) -> None:
    home, _, _ = city
    with pytest.raises(SealError, match="does not allow the field"):
        _seal(home, tmp_path, "confirmation-mailing", fields=("head_name", "account_number"))
    summary = _seal(home, tmp_path, "confirmation-mailing", fields=("postcode",))
    assert summary.fields == ("pseudonym", "postcode")


def test_validity_url_and_output_rules(city, tmp_path: Path) -> None:
    home, _, _ = city
    with pytest.raises(SealError, match="at most 30 days"):
        _seal(home, tmp_path, expires_in=timedelta(days=31))
    with pytest.raises(SealError, match="key service URL"):
        _seal(home, tmp_path, key_service_url="http://keys.example.org")
    assert check_key_service_url("https://keys.example.org/") == "https://keys.example.org"
    assert check_key_service_url("http://[::1]:8470") == "http://[::1]:8470"
    assert parse_duration("2w") == timedelta(days=14)
    assert parse_duration("１４日") == parse_duration("2週間") == timedelta(days=14)  # as a clerk types them
    assert parse_duration("12時間") == timedelta(hours=12)
    for bad in ("14x", "0d", "14", "14日後"):
        with pytest.raises(SealError, match="a whole number followed by h, d or w"):
            parse_duration(bad)
    existing = tmp_path / "exists.cseal"
    existing.write_bytes(b"keep")
    with pytest.raises(SealError, match="never overwritten"):
        seal(home, SealRequest(PROGRAMME, "confirmation-mailing", "printshop", existing), now=NOW)
    assert existing.read_bytes() == b"keep"


def test_a_failed_seal_leaves_no_file_and_no_record(city, tmp_path: Path) -> None:
    home, _, _ = city
    out = tmp_path / "nobody.cseal"
    with pytest.raises(SealError, match="no recipient"):
        seal(home, SealRequest(PROGRAMME, "confirmation-mailing", "nobody", out), now=NOW)
    assert not out.exists()
    with home.engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM packages")).scalar_one() == 0
        assert conn.execute(text("SELECT COUNT(*) FROM reference_numbers WHERE kind = 'canary'")).scalar_one() == 0
    assert not list(home.path.glob(".seal-*"))  # no plaintext left in the home


def test_expired_and_untrusted_packages_are_refused_with_nothing_written(city, tmp_path: Path) -> None:
    home, identity, _ = city
    summary = _seal(home, tmp_path, mode=fmt.Mode.RECIPIENT, expires_in=timedelta(days=1))
    out = tmp_path / "plain.parquet"
    with pytest.raises(PackageRefused, match="expired"):
        open_sealed(
            Path(summary.out),
            trust_home=home.path,
            out=out,
            identity_file=identity,
            now=NOW + timedelta(days=1, minutes=6),
        )
    stranger = tmp_path / "stranger-home"
    stranger.mkdir()
    with pytest.raises(PackageRefused, match=r"trusted|unknown issuer"):
        open_sealed(Path(summary.out), trust_home=stranger, out=out, identity_file=identity, now=NOW)
    assert not out.exists()


def test_csv_payload_has_a_bom_for_spreadsheets(city, tmp_path: Path) -> None:
    home, identity, _ = city
    summary = _seal(home, tmp_path, "confirmation-mailing", mode=fmt.Mode.RECIPIENT, payload_format="csv")
    out = tmp_path / "plain.csv"
    open_sealed(Path(summary.out), trust_home=home.path, out=out, identity_file=identity, now=NOW)
    raw = out.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    assert rows[0] == list(get_purpose("confirmation-mailing").fields)
    assert len(rows) == 1 + summary.records + summary.canaries


def test_trace_names_the_recipient_then_the_package_also_without_the_identifier_column(city, tmp_path: Path) -> None:
    home, identity, _ = city
    mailing = _seal(home, tmp_path, "confirmation-mailing", mode=fmt.Mode.RECIPIENT)
    contact = _seal(home, tmp_path, "contact-centre-offline", mode=fmt.Mode.RECIPIENT)
    out = tmp_path / "contact.parquet"
    open_sealed(Path(contact.out), trust_home=home.path, out=out, identity_file=identity, now=NOW)
    found = trace(home.engine, [out])
    [printshop] = found.recipients
    assert printshop.recipient == "printshop" and printshop.verdict == "came from this recipient"
    assert printshop.canaries == contact.canaries == mailing.canaries
    assert found.packages[0].package_id == contact.package_id
    assert found.packages[0].canaries == contact.canaries
    assert found.packages[0].pseudonyms == contact.records
    assert found.packages[0].verdict == "came from this package"
    mailing_evidence = next(e for e in found.packages if e.package_id == mailing.package_id)
    assert mailing_evidence.pseudonyms == 0  # the same households and canaries, but not this copy
    assert mailing_evidence.verdict == "carried the canaries found"
    # stripped of pseudonyms, as text: the canaries' reference numbers and kana still name the recipient
    rows = pq.read_table(out).to_pylist()
    stripped = tmp_path / "leak.txt"
    stripped.write_text("\n".join(f"{r['head_name_kana']} {r['reference_number']}" for r in rows), encoding="utf-8")
    found = trace(home.engine, [stripped])
    assert [r.recipient for r in found.recipients] == ["printshop"]
    assert found.recipients[0].fields == ("name_kana", "reference_number")
    assert {e.package_id for e in found.packages} == {contact.package_id, mailing.package_id}
    assert all(e.canaries == contact.canaries and e.pseudonyms == 0 for e in found.packages)


def test_cli_seal_verify_list_and_show(city, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    home, _, _ = city
    out = tmp_path / "cli.cseal"
    args = ["--home", str(home.path)]
    code = run(
        [
            "seal",
            "--programme",
            PROGRAMME,
            "--purpose",
            "confirmation-mailing",
            "--to",
            "printshop",
            "--out",
            str(out),
            "--json",
            *args,
        ]
    )
    sealed = json.loads(capsys.readouterr().out)
    assert code == 0 and sealed["records"] == _entitled(home)
    assert run(["verify", str(out), "--json", *args]) == 0
    assert json.loads(capsys.readouterr().out)["package_id"] == sealed["package_id"]
    assert run(["package", "list", "--json", *args]) == 0
    assert [p["package_id"] for p in json.loads(capsys.readouterr().out)["packages"]] == [sealed["package_id"]]
    assert run(["package", "show", sealed["package_id"], "--json", *args]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["households_affected"] == sealed["records"]
    assert shown["custody"][0]["event"] == "created"
    flipped = bytearray(out.read_bytes())
    flipped[len(flipped) // 2] ^= 1
    bad = tmp_path / "bad.cseal"
    bad.write_bytes(bytes(flipped))
    assert run(["verify", str(bad), *args]) == 1
    assert "package refused" in capsys.readouterr().err
    assert run(["purpose", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)["purposes"]
    assert {p["name"] for p in listed} >= {"confirmation-mailing", "contact-centre-offline", "bank-transfer"}


def test_handing_over_the_mailing_package_notifies_its_households(city, tmp_path: Path) -> None:
    from civicseal.custody.service import Event, record_event

    home, _, _ = city
    contact = _seal(home, tmp_path, "contact-centre-offline")
    record_event(home.engine, contact.package_id, Event.HANDED_OVER, holder="call centre", at=NOW, now=NOW)
    mailing = _seal(home, tmp_path, "confirmation-mailing", fields=("postcode",))
    with home.engine.connect() as conn:
        before = conn.execute(text("SELECT COUNT(*) FROM entitlements WHERE status = 'notified'")).scalar_one()
    record_event(home.engine, mailing.package_id, Event.HANDED_OVER, holder="print shop", at=NOW, now=NOW)
    with home.engine.connect() as conn:
        statuses = dict(conn.execute(text("SELECT status, COUNT(*) FROM entitlements GROUP BY status")).all())
    assert before == 0  # the contact centre's package notifies nobody
    assert statuses == {"notified": mailing.records}


def test_passphrase_mode_generates_a_strong_passphrase_and_refuses_a_weak_one(city, tmp_path: Path) -> None:
    home, _, _ = city
    with pytest.raises(SealError, match="too weak"):
        _seal(home, tmp_path, mode=fmt.Mode.PASSPHRASE, passphrase="amagasaki2022")
    summary = _seal(home, tmp_path, "confirmation-mailing", mode=fmt.Mode.PASSPHRASE, fields=("postcode",))
    assert summary.passphrase is not None and summary.passphrase_bits >= 77
    assert len(summary.passphrase.split("-")) == 6
    assert summary.scrypt_log_n is not None and summary.scrypt_log_n <= fmt.MAX_LOG_N
    out = tmp_path / "plain.parquet"
    with pytest.raises(PackageRefused):
        open_sealed(Path(summary.out), trust_home=home.path, out=out, passphrase="wrong-horse", now=NOW)
    assert not out.exists()
    open_sealed(Path(summary.out), trust_home=home.path, out=out, passphrase=summary.passphrase, now=NOW)
    assert pq.read_table(out).num_rows == summary.records + summary.canaries
    with home.engine.connect() as conn:  # the passphrase itself is never stored
        stored = conn.execute(text("SELECT passphrase_bits, identity_enc FROM packages")).one()
    assert stored == (summary.passphrase_bits, None)


def test_trace_reads_a_spreadsheet_someone_made_of_the_copy(city, tmp_path: Path) -> None:
    from openpyxl import Workbook

    home, identity, _ = city
    contact = _seal(home, tmp_path, "contact-centre-offline", mode=fmt.Mode.RECIPIENT)
    out = tmp_path / "contact.parquet"
    open_sealed(Path(contact.out), trust_home=home.path, out=out, identity_file=identity, now=NOW)
    book = Workbook()
    sheet = book.active
    pasted = pq.read_table(out).to_pylist()[:50]  # someone pasted part of it into Excel
    with home.engine.connect() as conn:
        canary_refs = set(conn.execute(text("SELECT reference_number FROM canary_households")).scalars())
    real = [row for row in pasted if row["reference_number"] not in canary_refs]
    for row in pasted:
        sheet.append([row["head_name_kana"], row["head_birth_date"], row["reference_number"], row["pseudonym"]])
    sheet.append(["", "", "", ""])
    leaked = tmp_path / "list.xlsx"
    book.save(leaked)
    found = trace(home.engine, [leaked])
    assert found.packages[0].package_id == contact.package_id
    assert found.packages[0].pseudonyms == len(real)
    assert found.packages[0].canaries == len(pasted) - len(real)
    with home.engine.connect() as conn:
        actions = list(conn.execute(text("SELECT action FROM audit_log ORDER BY seq DESC")).scalars())
    assert actions[0] == "package.trace"


def test_a_purpose_may_be_named_as_the_commands_print_it() -> None:
    assert get_purpose("給付金の確認書の郵送").name == "confirmation-mailing"
    assert get_purpose(" 給付金の口座振込 ").name == "bank-transfer"
    with pytest.raises(SealError, match="no purpose named '確認書の郵送'"):
        get_purpose("確認書の郵送")
