"""Letters to affected households: written when the assessment requires it (or forced), never otherwise."""

from __future__ import annotations

import csv
import json
import random
import stat
from datetime import timedelta
from pathlib import Path

import pypdf
import pytest
from sqlalchemy import text

from civicseal import cseal as fmt
from civicseal.custody.service import Event, record_event
from civicseal.incident.notify import notify, wareki
from civicseal.incident.service import open_incident
from civicseal.programme.reference import printed
from civicseal.seal.service import SealRequest, seal
from civicseal.store.home import Home
from tests.cities import NOW, PROGRAMME, contractor, entitled_city


def _lost_package(home: Home, tmp_path: Path, mode: fmt.Mode) -> tuple[int, str]:
    entitled_city(home, tmp_path)
    contractor(home, tmp_path)
    request = SealRequest(PROGRAMME, "confirmation-mailing", "printshop", tmp_path / "p.cseal", mode=mode)
    sealed = seal(home, request, now=NOW, rng=random.Random(3))
    record_event(home.engine, sealed.package_id, Event.HANDED_OVER, holder="printshop", at=NOW, now=NOW)
    lost = NOW + timedelta(hours=2)
    incident = open_incident(
        home, package_id=sealed.package_id, lost_at=lost, reported_at=lost + timedelta(hours=1),
        reported_by="printshop", circumstances="bag left on a train", now=lost + timedelta(hours=2),
    )  # fmt: skip
    return incident, sealed.package_id


def test_no_letters_when_no_notification_is_due(home: Home, tmp_path: Path) -> None:
    incident, _ = _lost_package(home, tmp_path, fmt.Mode.TETHERED)
    out = tmp_path / "letters"
    summary = notify(home, incident, out, now=NOW + timedelta(hours=5))
    assert not summary.due and summary.letters == 0 and summary.reasons
    assert not out.exists()


def test_letters_for_every_affected_household_and_no_canary(home: Home, tmp_path: Path) -> None:
    incident, package_id = _lost_package(home, tmp_path, fmt.Mode.TETHERED)
    out = tmp_path / "letters"
    summary = notify(home, incident, out, force=True, now=NOW + timedelta(hours=5))
    with home.engine.connect() as conn:
        households = conn.execute(
            text("SELECT COUNT(DISTINCT household_code) FROM package_members WHERE package_id = :p"), {"p": package_id}
        ).scalar_one()
        first = conn.execute(
            text(
                "SELECT r.name, e.reference_number FROM entitlements e JOIN residents r"
                " ON r.resident_code = e.head_resident_code ORDER BY r.postcode, e.household_code"
            )
        ).first()
        canaries = set(conn.execute(text("SELECT reference_number FROM canaries")).scalars())
    assert summary.letters == households > 0
    pages = sum(len(pypdf.PdfReader(out / name).pages) for name in summary.files)
    assert pages == households
    with (out / summary.mailing_list).open(encoding="utf-8", newline="") as f:
        mailing = list(csv.DictReader(f))
    assert len(mailing) == households
    assert not {row["reference_number"].replace(" ", "") for row in mailing} & canaries
    page_one = pypdf.PdfReader(out / summary.files[0]).pages[0].extract_text()
    assert first.name in page_one
    assert printed(first.reference_number) in page_one
    assert "個人情報の漏えいのおそれに関するお詫びとお知らせ" in page_one
    assert "鍵は一度も発行されていません" in page_one  # tethered, and no unlock since the loss
    for name in [*summary.files, summary.mailing_list]:
        assert stat.S_IMODE((out / name).stat().st_mode) == 0o600


@pytest.mark.parametrize(
    "day, expected",
    [
        ("2019-05-01", "令和元年5月1日"),
        ("2026-11-23", "令和8年11月23日"),
        ("2019-04-30", "平成31年4月30日"),
        ("1989-01-07", "昭和64年1月7日"),
    ],
)
def test_letters_are_dated_in_the_japanese_era(day: str, expected: str) -> None:
    from datetime import date

    assert wareki(date.fromisoformat(day)) == expected


def test_cli_says_why_nothing_was_written(home: Home, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from civicseal.cli import run

    incident, _ = _lost_package(home, tmp_path, fmt.Mode.TETHERED)
    out = tmp_path / "letters"
    assert run(["incident", "notify", str(incident), "--out", str(out), "--home", str(home.path)]) == 0
    said = capsys.readouterr().out
    assert "no notification is due" in said and "not reportable all the same" in said.lower()
    assert not out.exists()
    args = ["incident", "notify", str(incident), "--out", str(out), "--force", "--json", "--home", str(home.path)]
    assert run(args) == 0
    written = json.loads(capsys.readouterr().out)
    assert written["letters"] == written["pages"] > 0 and not written["due"] and written["forced"]
