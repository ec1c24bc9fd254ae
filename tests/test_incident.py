"""Incident response, on SQLite and PostgreSQL: opening and closing incidents, the report's figures
(checked against independent SQL and arithmetic), the APPI assessment for each mode, and every format."""

from __future__ import annotations

import itertools
import json
import random
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

import pypdf
import pytest
from sqlalchemy import text
from zxcvbn import zxcvbn

from civicseal import cseal as fmt
from civicseal.cli import run
from civicseal.custody.service import current_state, record_event
from civicseal.incident import appi, attack, render
from civicseal.incident.errors import IncidentError
from civicseal.incident.report import build_report
from civicseal.incident.service import close_incident, describe_opened, get_incident, list_incidents, open_incident
from civicseal.keys.city import load_unlock_key
from civicseal.keys.errors import UnlockRefused
from civicseal.keys.revocation import revoke_package
from civicseal.keys.unlock import unlock
from civicseal.ledger.fields import Category
from civicseal.payments.service import BatchRequest, make_batch
from civicseal.seal.service import SealRequest, SealSummary, seal
from civicseal.store.fieldcrypt import FieldCipher
from civicseal.store.home import Home
from tests.cities import NOW, PROGRAMME, contractor, entitled_city

H = timedelta(hours=1)
SEEDS = itertools.count(101)
NINE_TITLES_JA = [title_ja for _, title_ja, _ in appi.ITEM_TITLES]


@pytest.fixture
def city(home: Home, tmp_path: Path) -> tuple[Home, str]:
    entitled_city(home, tmp_path)
    _, token = contractor(home, tmp_path)
    return home, token


def _seal(home: Home, tmp_path: Path, purpose: str = "confirmation-mailing", **options: object) -> SealSummary:
    out = tmp_path / f"{purpose}-{next(SEEDS)}.cseal"
    request = SealRequest(programme=PROGRAMME, purpose=purpose, recipient="printshop", out=out, **options)  # type: ignore[arg-type]
    return seal(home, request, now=NOW, rng=random.Random(next(SEEDS)))


def _hand_over(home: Home, package_id: str) -> None:
    record_event(home.engine, package_id, "handed-over", holder="printshop", at=NOW + H, now=NOW + H)


def _open(home: Home, package_id: str, *, lost: timedelta = 3 * H, **options: object) -> int:
    return open_incident(
        home,
        package_id=package_id,
        lost_at=NOW + lost,
        reported_at=NOW + 4 * H,
        reported_by="総務課 山田",
        circumstances="The contractor's employee lost the bag holding the USB stick.",
        now=NOW + 5 * H,
        actor="os:test",
        **options,
    )  # type: ignore[arg-type]


def _members(home: Home, package_id: str) -> tuple[int, int]:
    with home.engine.connect() as conn:
        row = conn.execute(
            text("SELECT COUNT(*), COUNT(DISTINCT household_code) FROM package_members WHERE package_id = :p"),
            {"p": package_id},
        ).one()
    return int(row[0]), int(row[1])


def _try_unlock(home: Home, cipher: FieldCipher, token: str, package_id: str, at: timedelta, source: str) -> bool:
    try:
        unlock(home.engine, load_unlock_key(home.keys), package_id=package_id, token=token, source=source, now=NOW + at)
    except UnlockRefused:
        return False
    return True


# --------------------------------------------------------------------------------------------------
# Tethered: revoked at once, every attempt on record, exempt when nothing was granted after the loss
# --------------------------------------------------------------------------------------------------


def test_tethered_incident_revokes_at_once_and_reports_every_attempt(city, cipher: FieldCipher, tmp_path: Path) -> None:
    home, token = city
    summary = _seal(home, tmp_path)
    _hand_over(home, summary.package_id)
    assert _try_unlock(home, cipher, token, summary.package_id, 2 * H, "192.0.2.10")  # the contractor, before

    incident_id = _open(home, summary.package_id)

    incident = get_incident(home.engine, incident_id)
    assert incident.revoked_at == NOW + 5 * H and incident.is_open
    with home.engine.connect() as conn:
        assert current_state(conn, summary.package_id) == "lost"
        revoked_at = conn.execute(text("SELECT revoked_at FROM packages")).scalar_one()
        actions = list(conn.execute(text("SELECT action, details FROM audit_log ORDER BY seq")).all())
    assert revoked_at is not None
    assert [a for a, _ in actions[-3:]] == ["keys.package-revoked", "custody.lost", "incident.open"]  # lost: revoked
    assert "山田" not in actions[-1][1] and "bag" not in actions[-1][1]  # no free text in the audit log
    assert describe_opened(home.engine, incident_id).revoked_now
    assert not _try_unlock(home, cipher, token, summary.package_id, 6 * H, "198.51.100.7")  # whoever, after

    report = build_report(home, incident_id, now=NOW + 7 * H, package_file=Path(summary.out))
    assert report.anchor is not None and report.anchor["seq"] == len(actions)  # opening anchored the chain

    residents, households = _members(home, summary.package_id)
    assert (report.content.residents_affected, report.content.households_affected) == (residents, households)
    assert report.content.records == households == summary.records and residents > appi.PUBLIC_BODY_THRESHOLD
    p = report.protection
    assert [(a.at, a.outcome, a.source) for a in p.unlocks_before] == [(NOW + 2 * H, "granted", "192.0.2.10")]
    assert [(a.at, a.outcome, a.source) for a in p.unlocks_after] == [(NOW + 6 * H, "revoked", "198.51.100.7")]
    assert p.granted_after == 0 and not p.offline_attack and p.passphrase is None
    assert p.header_stanzas is not None and "X25519" in p.header_stanzas
    assert report.durations.time_to_report == H.total_seconds()
    assert report.durations.time_to_revoke == H.total_seconds()
    assert report.durations.lost_to_revoked == 2 * H.total_seconds()
    assert [e.event for e in report.timeline] == [
        "created",
        "handed-over",
        "lost",
        "reported",
        "incident-opened",
        "revoked",
    ]
    # tethered, nothing granted after the loss: exempt, although more than 100 persons are affected
    a = report.assessment
    assert not a.reportable and not a.notify_individuals and a.exemption is not None
    assert any("more than the 100" in r for r in a.reasons) and len(a.reasons) == len(a.reasons_ja)
    assert appi.assess_incident(home.engine, incident_id, now=NOW + 7 * H) == a
    # the counterfactual: the whole register, counted independently
    with home.engine.connect() as conn:
        register = conn.execute(text("SELECT COUNT(*), COUNT(DISTINCT household_code) FROM residents")).one()
        accounts = conn.execute(text("SELECT COUNT(*) FROM bank_accounts")).scalar_one()
        tax = conn.execute(text("SELECT COUNT(*) FROM tax_assessments WHERE fiscal_year = 2022")).scalar_one()
    cf = report.counterfactual
    assert (cf.residents, cf.households, cf.bank_accounts, cf.tax_rows) == (*register, accounts, tax)
    assert cf.reportable and str(Category.FINANCIAL) in cf.categories
    _check_renderings(report, tmp_path, residents)
    _check_no_personal_values(home, summary.package_id, report)


def _check_no_personal_values(home: Home, package_id: str, report) -> None:  # type: ignore[no-untyped-def]
    """The report has counts, categories and times: no affected resident's name, kana or address."""
    with home.engine.connect() as conn:
        values = conn.execute(
            text(
                "SELECT r.name, r.name_kana, r.address FROM residents r"
                " JOIN package_members m ON m.resident_code = r.resident_code WHERE m.package_id = :p"
            ),
            {"p": package_id},
        ).all()
    rendered = render.to_markdown(report) + render.to_html(report) + render.to_json(report)
    assert values and not [v for row in values for v in row if v in rendered]


def _check_renderings(report, tmp_path: Path, residents: int) -> None:  # type: ignore[no-untyped-def]
    markdown = render.to_markdown(report)
    page = render.to_html(report)
    for title in NINE_TITLES_JA:
        assert title in markdown and title in page
    assert '<html lang="ja">' in page and "IPAexGothic" in page
    assert f"{residents:,}" in markdown and "【要記入】" in markdown
    data = json.loads(render.to_json(report))
    assert {"incident", "content", "protection", "counterfactual", "assessment", "items", "timeline"} <= set(data)
    assert data["content"]["residents_affected"] == residents and len(data["items"]) == 9
    assert data["incident"]["lost_at"].endswith("Z")
    # no personal value of any resident: no name or address from the register appears
    out = tmp_path / "report.pdf"
    render.to_pdf(report, out)
    assert out.stat().st_mode & 0o777 == 0o600
    pdf_text = "".join(page.extract_text() for page in pypdf.PdfReader(out).pages).replace("\n", "")
    assert "本人の数" in pdf_text and "再発防止のための措置" in pdf_text
    assert f"{residents:,}" in pdf_text and report.package_id in pdf_text


def test_a_grant_after_the_loss_voids_the_exemption(city, cipher: FieldCipher, tmp_path: Path) -> None:
    home, token = city
    summary = _seal(home, tmp_path)
    _hand_over(home, summary.package_id)
    # lost at 2 h, but until the incident is opened the key service still grants: at 2.5 h it did
    assert _try_unlock(home, cipher, token, summary.package_id, 2.5 * H, "203.0.113.9")
    incident_id = _open(home, summary.package_id, lost=2 * H)
    report = build_report(home, incident_id, now=NOW + 6 * H)
    assert report.protection.granted_after == 1 and not report.protection.unlocks_before
    assessment = report.assessment
    assert assessment.reportable and assessment.notify_individuals and assessment.exemption is None
    damage = next(i for i in report.items if i.key == "secondary_damage")
    assert damage.needs_person and "203.0.113.9" in damage.text_en


def test_canaries_are_never_counted_as_persons(city, tmp_path: Path) -> None:
    """Canaries are never persons: the affected count is exactly the package's members, never records+canaries."""
    home, _ = city
    summary = _seal(home, tmp_path)
    incident_id = _open(home, summary.package_id)
    report = build_report(home, incident_id, now=NOW + 6 * H)
    residents, _ = _members(home, summary.package_id)
    assert summary.canaries > 0 and report.content.canaries == summary.canaries
    persons = next(i for i in report.items if i.key == "persons")
    assert f"{residents:,}人" in persons.text_ja and not persons.needs_person


# --------------------------------------------------------------------------------------------------
# Recipient: a bank transfer for a few households — financial data, exempt while the identity is safe
# --------------------------------------------------------------------------------------------------


def test_recipient_bank_transfer_is_financial_but_exempt_on_the_identity_assumption(city, tmp_path: Path) -> None:
    home, _ = city
    with home.engine.begin() as conn:  # confirm five entitlements whose household has an account
        ids = conn.execute(
            text(
                "SELECT e.id FROM entitlements e JOIN bank_accounts a ON a.household_code = e.household_code"
                " ORDER BY e.id LIMIT 5"
            )
        ).scalars()
        for entitlement_id in list(ids):
            conn.execute(text("UPDATE entitlements SET status = 'confirmed' WHERE id = :i"), {"i": entitlement_id})
    request = BatchRequest(
        PROGRAMME, date(2022, 8, 1), "1", "アマガサキシ", "0001", "001", "1", tmp_path / "bank.cseal"
    )
    summary = make_batch(home, replace(request, seal_to="printshop"), now=NOW)
    assert summary.mode == "recipient" and summary.records == 5
    _hand_over(home, summary.package_id)
    incident_id = _open(home, summary.package_id)
    assert get_incident(home.engine, incident_id).revoked_at is None  # nothing to revoke offline
    opened = describe_opened(home.engine, incident_id)
    assert not opened.revoked and not opened.revoked_now

    report = build_report(home, incident_id, now=NOW + 6 * H)
    residents, households = _members(home, summary.package_id)
    assert households == 5 and residents <= appi.PUBLIC_BODY_THRESHOLD
    assert report.content.bank_accounts and report.protection.security_bits == 128
    a = report.assessment
    assert any("financial loss" in r for r in a.reasons)
    assert not a.reportable and a.exemption is not None and appi.TO_CONFIRM_EN in a.exemption
    assert next(i for i in report.items if i.key == "secondary_damage").needs_person


# --------------------------------------------------------------------------------------------------
# Passphrase: never exempt; the attack economics against independent arithmetic
# --------------------------------------------------------------------------------------------------


def test_passphrase_package_is_reportable_with_its_attack_economics(city, tmp_path: Path) -> None:
    home, _ = city
    summary = _seal(home, tmp_path, mode=fmt.Mode.PASSPHRASE)
    _hand_over(home, summary.package_id)
    incident_id = _open(home, summary.package_id)
    assert get_incident(home.engine, incident_id).revoked_at is None

    report = build_report(home, incident_id, now=NOW + 6 * H, package_file=Path(summary.out))
    pa = report.protection.passphrase
    assert pa is not None and report.protection.offline_attack
    assert pa.header_log_n == pa.recorded_log_n == pa.scrypt_log_n == summary.scrypt_log_n
    assert pa.basis == "generated" and pa.guesses == 2.0**summary.passphrase_bits
    log_n = summary.scrypt_log_n
    for row in pa.rows:  # 7,126 H/s at log N 14, halving with each step; USD 0.40 per GPU-hour
        rate = 7126 / 2 ** (log_n - 14) * row.gpus
        exhaust = 2**summary.passphrase_bits / rate
        assert row.guesses_per_second == pytest.approx(rate)
        assert row.exhaust_seconds == pytest.approx(exhaust)
        assert row.expected_seconds == pytest.approx(exhaust / 2)
        assert row.expected_cost_usd == pytest.approx(exhaust / 2 / 3600 * row.gpus * 0.40)
    assert [r.gpus for r in pa.rows] == [1, 1000]
    a = report.assessment
    assert a.reportable and a.notify_individuals and a.exemption is None

    supplied = build_report(home, incident_id, now=NOW + 6 * H, passphrase=summary.passphrase)
    assert supplied.protection.passphrase.basis == "zxcvbn"
    assert supplied.protection.passphrase.guesses == float(zxcvbn(summary.passphrase)["guesses"])
    markdown = render.to_markdown(report)
    assert "7,126 H/s at log N 14" in markdown and "expected time" in markdown


def test_attack_figures_against_independent_arithmetic() -> None:
    rate = 7126 / 16  # log N 18: 2^4 times the work of log N 14
    assert attack.guesses_per_second(18) == pytest.approx(445.375)
    assert attack.guesses_per_second(18, 1000) == pytest.approx(445_375)
    seconds = 2**77 / rate
    assert attack.exhaust_seconds(2**77, 18) == pytest.approx(seconds)
    assert attack.expected_seconds(2**77, 18, 1000) == pytest.approx(seconds / 2 / 1000)
    assert attack.attack_cost(3600, 1) == pytest.approx(0.40)
    assert attack.attack_cost(seconds / 1000, 1000) == pytest.approx(attack.attack_cost(seconds, 1))
    years = seconds / (365.25 * 86400)  # about 1.08e13 years: longer than the age of the universe
    assert "universe" not in attack.format_duration(3600 * 24 * 365.25 * 1e9)
    assert "age of the universe" in attack.format_duration(seconds) and years > 1.4e10
    assert attack.format_duration(90) == "1.5 minutes"
    assert attack.format_duration(3 * 365.25 * 86400 * 1234) == "3,702 years"


# --------------------------------------------------------------------------------------------------
# The rules of APPI, as a table
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "categories", "persons", "granted_after", "reportable", "exempt"),
    [
        ("tethered", (Category.NAME,), 500, 0, False, True),
        ("tethered", (Category.NAME,), 500, 1, True, False),
        ("tethered", (Category.NAME,), 100, 1, False, False),  # 100 is not more than 100
        ("tethered", (Category.NAME,), 101, 1, True, False),
        ("recipient", (Category.FINANCIAL,), 3, 0, False, True),
        ("passphrase", (Category.FINANCIAL,), 3, 0, True, False),
        ("passphrase", (Category.NAME,), 50, 0, False, False),
        ("passphrase", (Category.MY_NUMBER,), 2, 0, True, False),
    ],
)
def test_appi_rules(mode, categories, persons, granted_after, reportable, exempt) -> None:  # type: ignore[no-untyped-def]
    assessment = appi.assess(appi.Facts("pkg_x", mode, categories, persons, NOW, granted_after))
    assert assessment.reportable is reportable
    assert assessment.notify_individuals is reportable
    assert (assessment.exemption is not None) is exempt
    assert assessment.reasons and len(assessment.reasons) == len(assessment.reasons_ja)
    assert "1,000" in assessment.reasons[-1]  # the business threshold, for information


# --------------------------------------------------------------------------------------------------
# Refusals, closing, listing, the found file and the CLI
# --------------------------------------------------------------------------------------------------


def test_open_refuses_bad_input_and_a_package_lost_twice(city, tmp_path: Path) -> None:
    home, _ = city
    summary = _seal(home, tmp_path)
    pid = summary.package_id
    base = {
        "lost_at": NOW + 2 * H,
        "reported_at": NOW + 3 * H,
        "reported_by": "staff",
        "circumstances": "lost",
        "now": NOW + 4 * H,
    }
    cases = [
        ({"package_id": pid, **base, "reported_at": NOW + H}, "reported after"),
        ({"package_id": pid, **base, "reported_at": NOW + 5 * H}, "future"),
        ({"package_id": pid, **base, "circumstances": "a\x07b"}, "control characters"),
        ({"package_id": pid, **base, "reported_by": "x" * 101}, "at most 100"),
        ({"package_id": pid, **base, "circumstances": "x" * 2001}, "at most 2000"),
        ({**base}, "not both and not neither"),
        ({"package_id": "pkg_nosuchpackage", **base}, "no such package"),
        ({"package_id": pid, **base, "lost_at": NOW - H}, "before the latest event"),
    ]
    for options, message in cases:
        with pytest.raises(IncidentError, match=message):
            open_incident(home, **options)  # type: ignore[arg-type]
    assert list_incidents(home.engine) == []  # nothing half-done
    incident_id = open_incident(home, package_id=pid, **base)  # type: ignore[arg-type]
    with pytest.raises(IncidentError, match="already lost"):
        open_incident(home, package_id=pid, **base)  # type: ignore[arg-type]
    assert [i.id for i in list_incidents(home.engine)] == [incident_id]


def test_close_records_found_and_the_package_stays_revoked(city, cipher: FieldCipher, tmp_path: Path) -> None:
    home, token = city
    summary = _seal(home, tmp_path)
    _hand_over(home, summary.package_id)
    incident_id = _open(home, summary.package_id)
    with pytest.raises(IncidentError, match="before the package was lost"):
        close_incident(home, incident_id, found_at=NOW + 2 * H, outcome="found", now=NOW + 9 * H)
    closed = close_incident(
        home, incident_id, found_at=NOW + 8 * H, outcome="Found by the police, unopened.", now=NOW + 9 * H
    )
    assert closed.found_at == NOW + 8 * H and closed.closed_at == NOW + 9 * H and not closed.is_open
    with pytest.raises(IncidentError, match="was closed"):
        close_incident(home, incident_id, found_at=None, outcome="again", now=NOW + 10 * H)
    with home.engine.connect() as conn:
        assert current_state(conn, summary.package_id) == "found"
    assert not _try_unlock(home, cipher, token, summary.package_id, 10 * H, "192.0.2.10")  # still revoked
    report = build_report(home, incident_id, now=NOW + 11 * H)
    assert [e.event for e in report.timeline][-2:] == ["found", "incident-closed"]


def test_an_already_revoked_package_stays_revoked_and_the_report_says_since_when(city, tmp_path: Path) -> None:
    home, _ = city
    summary = _seal(home, tmp_path)
    revoke_package(home.engine, summary.package_id, "expired contract", now=NOW + 2 * H, actor="os:test")
    incident_id = _open(home, summary.package_id)
    assert get_incident(home.engine, incident_id).revoked_at is None
    opened = describe_opened(home.engine, incident_id)
    assert opened.revoked and not opened.revoked_now
    report = build_report(home, incident_id, now=NOW + 6 * H)
    assert report.protection.revoked_at == NOW + 2 * H
    assert report.durations.time_to_revoke == -2 * H.total_seconds()
    assert "before the report" in render.to_markdown(report)
    assert not report.assessment.reportable


def test_open_from_a_found_file(city, tmp_path: Path) -> None:
    home, _ = city
    summary = _seal(home, tmp_path, "contact-centre-offline")
    stray = tmp_path / "not-a-package.cseal"
    stray.write_bytes(b"PK\x05\x06" + bytes(18))
    with pytest.raises(IncidentError, match="not a package this city signed"):
        open_incident(
            home,
            found_file=stray,
            lost_at=NOW + H,
            reported_at=NOW + H,
            reported_by="staff",
            circumstances="found on a file share",
            now=NOW + 2 * H,
        )
    incident_id = open_incident(
        home,
        found_file=Path(summary.out),
        lost_at=NOW + H,
        reported_at=NOW + H,
        reported_by="staff",
        circumstances="found on a public file share",
        now=NOW + 2 * H,
    )
    assert get_incident(home.engine, incident_id).package_id == summary.package_id


def _cli(home: Home, *args: str) -> int:
    return run([*args, "--home", str(home.path)])


def test_cli_open_report_list_close(city, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    home, _ = city
    summary = _seal(home, tmp_path)
    _hand_over(home, summary.package_id)
    capsys.readouterr()
    opened = [
        "incident",
        "open",
        "--package",
        summary.package_id,
        "--lost-at",
        "2026-11-22T15:00",  # Tokyo time: NOW + 3 h
        "--reported-at",
        "2026-11-22T07:00Z",
        "--reported-by",
        "staff",
        "--circumstances",
        "bag lost",
        "--json",
    ]
    assert _cli(home, *opened) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["revoked_now"] and shown["mode"] == "tethered"
    incident_id = shown["incident_id"]
    assert get_incident(home.engine, incident_id).lost_at == NOW + 3 * H
    assert _cli(home, *opened) == 1  # lost twice
    assert "already lost" in json.loads(capsys.readouterr().out)["error"]
    for format_ in render.FORMATS:
        out = tmp_path / f"report.{format_}"
        assert _cli(home, "incident", "report", str(incident_id), "--format", format_, "--out", str(out), "--json") == 0
        figures = json.loads(capsys.readouterr().out)
        assert figures["bytes"] == out.stat().st_size and not figures["reportable"]
    assert json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))["package_id"] == summary.package_id
    assert _cli(home, "incident", "list", "--json") == 0
    assert [i["id"] for i in json.loads(capsys.readouterr().out)["incidents"]] == [incident_id]
    closing = ["incident", "close", str(incident_id), "--found-at", "2026-11-22T20:00", "--outcome", "found"]
    assert _cli(home, *closing) == 0
    assert "closed" in capsys.readouterr().out
