"""Letters to affected households: written when the assessment requires it (or forced), never otherwise."""

from __future__ import annotations

import csv
import dataclasses
import itertools
import json
import random
import re
import stat
from datetime import timedelta
from pathlib import Path

import budoux
import pypdf
import pytest
from sqlalchemy import text

from civicseal import cseal as fmt
from civicseal.custody.service import Event, record_event
from civicseal.incident import glyphs
from civicseal.incident.errors import IncidentError
from civicseal.incident.letter import phrases, wareki
from civicseal.incident.notify import addressees, letter_context, notify
from civicseal.incident.service import open_incident
from civicseal.keys.city import load_unlock_key
from civicseal.keys.unlock import unlock
from civicseal.programme.reference import printed
from civicseal.seal.service import SealRequest, seal
from civicseal.store.home import CONTACT_KEYS, EXAMPLE_CONTACT, Contact, Home
from tests.cities import NOW, PROGRAMME, contractor, entitled_city

LONG_ADDRESS = "兵庫県尼崎市東七松町1丁目23番1号 尼崎シティハイツ東七松グランドレジデンス弐番館1203号室"


def _with_contact(home: Home, contact: Contact = EXAMPLE_CONTACT) -> Home:
    """The city's config with its contact block filled in, as an officer would after `init`."""
    home.write_config(dataclasses.replace(home.config, issuer_name="尼崎市", contact=contact))
    return Home(home.path)


def _lost_package(home: Home, tmp_path: Path, mode: fmt.Mode) -> tuple[int, str]:
    entitled_city(home, tmp_path, residents=1500)
    _, token = contractor(home, tmp_path)
    return _lose(home, tmp_path, mode, token)


def _lose(
    home: Home, tmp_path: Path, mode: fmt.Mode, token: str, *, opened_after_loss: bool = False
) -> tuple[int, str]:
    """Seal the mailing package in ``mode``, hand it over and lose it; returns the incident and package."""
    out = tmp_path / f"{mode}-{opened_after_loss}.cseal"
    request = SealRequest(PROGRAMME, "confirmation-mailing", "printshop", out, mode=mode)
    sealed = seal(home, request, now=NOW, rng=random.Random(3))
    record_event(home.engine, sealed.package_id, Event.HANDED_OVER, holder="printshop", at=NOW, now=NOW)
    lost = NOW + timedelta(hours=2)
    if opened_after_loss:  # whoever found it had the token too, before the city learnt of the loss
        at = lost + timedelta(minutes=30)
        unlock(
            home.engine,
            load_unlock_key(home.keys),
            package_id=sealed.package_id,
            token=token,
            source="198.51.100.7",
            now=at,
        )
    incident = open_incident(
        home, package_id=sealed.package_id, lost_at=lost, reported_at=lost + timedelta(hours=1),
        reported_by="printshop", circumstances="bag left on a train", now=lost + timedelta(hours=2),
    )  # fmt: skip
    return incident, sealed.package_id


def test_no_letters_when_no_notification_is_due(home: Home, tmp_path: Path) -> None:
    home = _with_contact(home)
    incident, _ = _lost_package(home, tmp_path, fmt.Mode.TETHERED)
    out = tmp_path / "letters"
    summary = notify(home, incident, out, now=NOW + timedelta(hours=5))
    assert not summary.due and summary.letters == 0 and summary.reasons
    assert not out.exists()


def test_letters_for_every_affected_household_and_no_canary(home: Home, tmp_path: Path) -> None:
    home = _with_contact(home)
    incident, package_id = _lost_package(home, tmp_path, fmt.Mode.TETHERED)
    with home.engine.begin() as conn:  # the first letter's addressee lives in a building with a long name
        conn.execute(
            text(
                "UPDATE residents SET address = :a WHERE resident_code = (SELECT e.head_resident_code"
                " FROM entitlements e JOIN residents r ON r.resident_code = e.head_resident_code"
                " ORDER BY r.postcode, e.household_code LIMIT 1)"
            ),
            {"a": LONG_ADDRESS},
        )
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
        canaries = set(conn.execute(text("SELECT reference_number FROM canary_households")).scalars())
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
    assert "鍵は一度も渡されていません" in page_one  # tethered, and no unlock since the loss
    assert _squashed(LONG_ADDRESS) in _squashed(page_one)  # broken between phrases, not cut off
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

    home = _with_contact(home)
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


def _squashed(text: str) -> str:
    """Without spaces or line breaks: a phrase reads the same wherever the page broke its line."""
    return "".join(text.split())


def _page_text(out: Path, summary_files: list[str]) -> str:
    return _squashed(pypdf.PdfReader(out / summary_files[0]).pages[0].extract_text())


# What each mode must tell the resident about whether the data can be read, and what the city did.
SAYS = {
    "tethered": (
        "鍵は一度も渡されていません",
        "読まれたおそれはないと考えています",
        "鍵を止めました（令和8年11月22日 16時00分）",
    ),
    "opened": (
        "紛失の後にこのデータを開く鍵が渡されていました",
        "読まれたおそれがあります",
        "個人情報保護委員会に報告しました",
    ),
    "recipient": ("printshopだけが持つ鍵でしか開けない", "媒体とは別に保管されており", "極めて低い"),
    "passphrase": ("パスフレーズ", "完全に防ぐことはできません", "個人情報保護委員会に報告しました"),
}


def test_a_letter_tells_the_resident_what_happened_and_whom_to_call(home: Home, tmp_path: Path) -> None:
    home = _with_contact(home)
    entitled_city(home, tmp_path, residents=1500)
    _, token = contractor(home, tmp_path)
    for case, says in SAYS.items():
        mode = fmt.Mode.TETHERED if case == "opened" else fmt.Mode(case)
        incident, _ = _lose(home, tmp_path, mode, token, opened_after_loss=case == "opened")
        out = tmp_path / f"letters-{case}"
        summary = notify(home, incident, out, force=True, now=NOW + timedelta(hours=5))
        _check_letter(out, summary.files[0], summary.mailing_list, summary.letters, says)


def _check_letter(out: Path, pdf: str, mailing_list: str, letters: int, says: tuple[str, ...]) -> None:
    reader = pypdf.PdfReader(out / pdf)
    assert len(reader.pages) == letters  # one page each: the letter fits
    page = _page_text(out, [pdf])
    for said in says:
        assert _squashed(said) in page, said
    # What happened and when: the lost and reported days (NOW + 2 h and + 3 h are 22 November in Tokyo).
    assert "令和8年11月22日に媒体が紛失し" in page and "尼崎市へ報告がありました" in page
    # By category, and named as people know them: the purpose's Japanese description, the city's name.
    for category in ("世帯主の氏名", "住所・郵便番号", "給付金の参照番号", "世帯全員が住民税非課税"):
        assert category in page
    assert "給付金の確認書の郵送" in page and "confirmation-mailing" not in page
    assert "口座情報が含まれていた" not in page  # no account in a mailing package
    assert "暗証番号をお尋ねしたり" in page
    for value in dataclasses.astuple(EXAMPLE_CONTACT):
        assert _squashed(value) in page
    with (out / mailing_list).open(encoding="utf-8", newline="") as f:
        first = next(csv.DictReader(f))
    assert _squashed(f"参照番号 {first['reference_number']}") in page


# A head of household as a real register may name them: 𠮷 (beyond JIS X 0208, in IPAmj Mincho), 辻 with a
# variation selector (an MJ variant), and a city's 外字 (a private-use character: CP932's user-defined row F0 40).
REGISTER_NAME = "𠮷田 辻\U000e0100" + b"\xf0\x40".decode("cp932") + "子"


def _letter_to_a_head(home: Home, tmp_path: Path, **register: str) -> tuple[dict[str, str], pypdf.PageObject]:
    """The letters of a lost package once the first addressee's head holds these register values: that
    household's row of the mailing list, and its page."""
    home = _with_contact(home)
    incident, package = _lost_package(home, tmp_path, fmt.Mode.PASSPHRASE)
    with home.engine.begin() as conn:
        first = next(addressees(conn, package))
        values = ", ".join(f"{column} = :{column}" for column in register)
        conn.execute(
            text(
                f"UPDATE residents SET {values} WHERE resident_code ="
                " (SELECT head_resident_code FROM entitlements WHERE reference_number = :number)"
            ),
            {**register, "number": first.reference_number},
        )
    out = tmp_path / "letters"
    summary = notify(home, incident, out, force=True, now=NOW + timedelta(hours=5))
    with (out / summary.mailing_list).open(encoding="utf-8", newline="") as f:
        listed = next(row for row in csv.DictReader(f) if row["reference_number"] == printed(first.reference_number))
    return listed, pypdf.PdfReader(out / listed["file"]).pages[int(listed["page"]) - 1]


def test_a_name_beyond_the_letter_font_prints_from_the_register_font_and_gaiji_as_geta(
    home: Home, tmp_path: Path
) -> None:
    listed, page = _letter_to_a_head(home, tmp_path, name=REGISTER_NAME, address="兵庫県尼崎市𠮷町1丁目2-3")
    assert listed["name"] == REGISTER_NAME  # the print shop's list keeps every character as the register has it
    printed_text = _squashed(page.extract_text())
    # reportlab's text layer maps no character beyond the BMP (pypdf reads 𠮷 as nothing): the drawn page has it.
    assert "田辻〓子様" in printed_text and "兵庫県尼崎市町1丁目2-3" in printed_text
    assert "\ue000" not in printed_text and "\U000e0100" not in printed_text
    fonts = {str(font.get_object()["/BaseFont"]) for font in page["/Resources"]["/Font"].values()}
    assert any("IPAmjMincho" in font for font in fonts) and any("IPAexMincho" in font for font in fonts)


def test_the_building_and_room_print_on_the_line_below_the_address(home: Home, tmp_path: Path) -> None:
    """方書 below 住所, as Japanese mail is addressed (the register holds them joined by a space)."""
    _, page = _letter_to_a_head(home, tmp_path, address="兵庫県尼崎市昭和通2丁目1番1号 コーポ昭和101号")
    lines = [_squashed(line) for line in page.extract_text().splitlines()]
    at = lines.index("兵庫県尼崎市昭和通2丁目1番1号")
    assert lines[at + 1] == "コーポ昭和101号"


def test_each_character_is_drawn_in_the_first_font_that_has_it() -> None:
    assert glyphs.runs(REGISTER_NAME + " 様") == [
        ("IPAmjMincho", "𠮷"),
        ("IPAexMincho", "田 辻〓子 様"),
    ]
    assert glyphs.width("𠮷田", 10) > glyphs.width("田", 10) > 0


def test_a_missing_letter_font_names_the_debian_package_to_install() -> None:
    missing = dataclasses.replace(glyphs.REGISTER, hints=("No Such Font",), markers=("nosuchfont",), paths=())
    with pytest.raises(IncidentError, match="apt-get install fonts-ipamj-mincho"):
        glyphs.font_path(missing)


def test_notify_refuses_while_the_contact_block_is_empty(home: Home, tmp_path: Path) -> None:
    incident, _ = _lost_package(home, tmp_path, fmt.Mode.PASSPHRASE)
    home = _with_contact(home, dataclasses.replace(EXAMPLE_CONTACT, telephone="", hours=" "))
    out = tmp_path / "letters"
    with pytest.raises(IncidentError) as refused:
        notify(home, incident, out, force=True, now=NOW + timedelta(hours=5))
    message = str(refused.value)
    assert "[contact] telephone, hours empty" in message and "fill them in" in message
    assert "\n" not in message and not out.exists()
    fresh = _with_contact(home, Contact())  # as `init` writes it
    with pytest.raises(IncidentError, match=", ".join(CONTACT_KEYS)):
        notify(fresh, incident, out, force=True, now=NOW + timedelta(hours=5))


def test_no_line_of_a_letter_ends_inside_a_phrase(home: Home, tmp_path: Path) -> None:
    home = _with_contact(home)
    incident, _ = _lost_package(home, tmp_path, fmt.Mode.TETHERED)
    summary = notify(home, incident, tmp_path / "letters", force=True, now=NOW + timedelta(hours=5))
    with home.engine.connect() as conn:
        context, _ = letter_context(conn, home, incident, NOW + timedelta(hours=5))
    page = pypdf.PdfReader(tmp_path / "letters" / summary.files[0]).pages[0].extract_text()
    assert all(line.text.strip() in page for line in context.body)  # what was laid out is what is printed
    paragraphs: dict[int, list[str]] = {}
    for line in context.body:
        paragraphs.setdefault(line.block, []).append(line.text)
    wrapped = [lines for lines in paragraphs.values() if len(lines) > 1]
    assert len(wrapped) >= 3  # the letter has paragraphs that needed breaking
    parser = budoux.load_default_japanese_parser()
    for lines in wrapped:
        paragraph = "".join(lines)
        ends = set(itertools.accumulate(len(p) for p in parser.parse(paragraph)))
        breaks = set(itertools.accumulate(len(line) for line in lines[:-1]))
        assert breaks <= ends, f"a line ends inside a phrase of {paragraph!r}"
        for date in re.finditer(r"令和\d+年\d+月\d+日(?: \d+時\d+分)?", paragraph):  # era dates whole
            assert not any(date.start() < b < date.end() for b in breaks), date.group()
    assert phrases("令和8年11月22日 14時00分に鍵を止めました")[0] == "令和8年11月22日 14時00分に"


def test_the_japanese_report_names_the_city_and_purpose_as_people_do(home: Home, tmp_path: Path) -> None:
    from civicseal.incident import render
    from civicseal.incident.report import build_report

    home = _with_contact(home)
    incident, _ = _lost_package(home, tmp_path, fmt.Mode.RECIPIENT)
    report = build_report(home, incident, now=NOW + timedelta(hours=5))
    summary_ja = report.items[0].text_ja
    assert "尼崎市がprintshopに交付した" in summary_ja and "目的「給付金の確認書の郵送」" in summary_ja
    assert not [item.key for item in report.items if "confirmation-mailing" in item.text_ja]
    markdown = render.to_markdown(report)
    assert markdown.startswith("# 尼崎市 個人データ漏えい等事案報告") and "| issuer / 機関 | 尼崎市 |" in markdown
    assert json.loads(render.to_json(report))["content"]["purpose_description_ja"] == "給付金の確認書の郵送"
