"""Contractors and their approved subcontractor chains, on SQLite and PostgreSQL: the register, the one
authority rule as sealing and the key service apply it, exposure figures against counts computed here from
the rows the test wrote, the incident report's chain, and the commands as a city officer types them."""

from __future__ import annotations

import json
import random
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select, update

from civicseal.audit.models import AuditEntry
from civicseal.cli import run
from civicseal.clock import tokyo_today
from civicseal.contractors import service as cs
from civicseal.contractors.errors import AuthorityRefused, ContractorError
from civicseal.contractors.models import Contractor
from civicseal.cseal.payload import generate_identity
from civicseal.custody.service import record_event
from civicseal.incident import render
from civicseal.incident.report import build_report
from civicseal.incident.service import open_incident
from civicseal.keys.city import load_unlock_key
from civicseal.keys.errors import UnlockRefused
from civicseal.keys.models import UnlockAttempt
from civicseal.keys.recipients import add_recipient, keygen
from civicseal.keys.unlock import unlock
from civicseal.ledger.models import Package, PackageMember
from civicseal.seal.service import SealRequest, seal
from civicseal.store.fieldcrypt import FieldCipher
from civicseal.store.home import Home
from tests.cities import NOW, PROGRAMME, entitled_city
from tests.test_keys import add_custody, add_package

ACTOR = "os:test"
TODAY = tokyo_today(NOW)  # 2026-11-22
MAILING = "confirmation-mailing"
DAY = timedelta(days=1)


def _city_contract(engine: Engine, name: str = "printshop", **overrides: object) -> cs.Link:
    options: dict[str, object] = {
        "display_name": "株式会社〇〇印刷",
        "contract_ref": "尼契第2026-001号",
        "valid_from": date(2026, 4, 1),
        "valid_until": date(2027, 3, 31),
        "purposes": f"{MAILING},contact-centre",
        "now": NOW - 30 * DAY,
        "actor": ACTOR,
    }
    return cs.add_contractor(engine, name, **(options | overrides))  # type: ignore[arg-type]


def _sub(engine: Engine, name: str, under: str, display: str) -> cs.Link:
    return cs.add_contractor(engine, name, under=under, display_name=display, now=NOW - 20 * DAY, actor=ACTOR)


def _approve(engine: Engine, parent: str, child: str, purposes: str = MAILING, **kw: object) -> cs.Link:
    options: dict[str, object] = {"approved_by": "市民課 山田", "valid_until": date(2027, 1, 31), "now": NOW - 10 * DAY}
    return cs.approve_subcontractor(engine, parent, child, purposes=purposes, actor=ACTOR, **(options | kw))  # type: ignore[arg-type]


def _refusal(engine: Engine, organization: str, purpose: str = MAILING, on: datetime = NOW) -> str | None:
    with engine.connect() as conn:
        try:
            cs.check_authority(conn, organization, purpose, on=on)
        except AuthorityRefused as refused:
            return f"{refused.rule}@{refused.contractor}"
    return None


# --------------------------------------------------------------------------------------------------
# The register and the rule
# --------------------------------------------------------------------------------------------------


def test_a_purpose_is_read_as_people_read_it() -> None:
    """The commands print a purpose's Japanese description: a clerk may type it back, or copy it, and list
    several with 、 as Japanese lists them."""
    assert cs.parse_purposes("給付金の確認書の郵送、給付金の口座振込") == (MAILING, "bank-transfer")
    copied = "お問い合わせ窓口での照会（オンライン）, confirmation-mailing"
    assert cs.parse_purposes(copied) == ("contact-centre", MAILING)
    with pytest.raises(ContractorError, match="unknown purpose"):
        cs.parse_purposes("確認書の郵送")


def test_approval_narrower_than_parent_is_enforced(home: Home) -> None:
    engine = home.engine
    _city_contract(engine)
    _sub(engine, "logistics", "printshop", "有限会社△△物流")
    _sub(engine, "courier", "logistics", "××運送")
    # A subcontractor may be registered, but holds nothing until approved, and cannot pass on what it lacks.
    assert _refusal(engine, "logistics") == "not-approved@logistics"
    with pytest.raises(ContractorError, match="no authority to pass on"):
        _approve(engine, "logistics", "courier")
    with pytest.raises(ContractorError, match="never wider than its parent: choose among"):
        _approve(engine, "printshop", "logistics", purposes=f"{MAILING},bank-transfer")
    with pytest.raises(ContractorError, match="choose dates within"):
        _approve(engine, "printshop", "logistics", valid_until=date(2027, 4, 1))
    with pytest.raises(ContractorError, match="choose dates within"):
        _approve(engine, "printshop", "logistics", valid_from=date(2026, 3, 31))
    with pytest.raises(ContractorError, match="not a subcontractor of"):
        _approve(engine, "printshop", "courier")
    with pytest.raises(ContractorError, match=r"unknown purpose\(s\) everything; known: confirmation-mailing \(給付金"):
        _approve(engine, "printshop", "logistics", purposes="everything")
    with pytest.raises(ContractorError, match="no purposes or dates of its own"):
        cs.add_contractor(engine, "x", under="printshop", purposes=MAILING, now=NOW, actor=ACTOR)
    link = _approve(engine, "printshop", "logistics")
    assert (link.purposes, link.valid_from, link.valid_until) == (
        (MAILING,),
        tokyo_today(NOW - 10 * DAY),
        date(2027, 1, 31),
    )
    _approve(engine, "logistics", "courier", valid_until=date(2026, 12, 31))
    with engine.connect() as conn:
        links = cs.check_authority(conn, "courier", MAILING, on=NOW)
    assert [x.display_name for x in links] == ["株式会社〇〇印刷", "有限会社△△物流", "××運送"]
    # The contact centre's purpose was the city's to give printshop, not approved down the chain.
    assert _refusal(engine, "printshop", "contact-centre") is None
    assert _refusal(engine, "courier", "contact-centre") == "purpose-not-approved@logistics"


def test_each_rule_of_the_chain(home: Home) -> None:
    engine = home.engine
    _city_contract(engine)
    _sub(engine, "logistics", "printshop", "有限会社△△物流")
    _sub(engine, "courier", "logistics", "××運送")
    _approve(engine, "printshop", "logistics", purposes=f"{MAILING},contact-centre")
    _approve(engine, "logistics", "courier", purposes=f"{MAILING},contact-centre", valid_until=date(2026, 12, 31))
    assert _refusal(engine, "courier") is None
    assert _refusal(engine, "printshop", on=datetime(2026, 3, 31, 14, 59, tzinfo=UTC)) == "not-yet-valid@printshop"
    assert _refusal(engine, "printshop", on=datetime(2026, 3, 31, 15, 0, tzinfo=UTC)) is None  # 1 April in Tokyo
    assert _refusal(engine, "courier", on=datetime(2027, 1, 1, tzinfo=UTC)) == "ended@courier"
    assert _refusal(engine, "courier", on=datetime(2027, 4, 1, tzinfo=UTC)) == "ended@printshop"
    assert _refusal(engine, "courier", "bank-transfer") == "purpose-not-approved@printshop"
    # The parent is narrowed after approving: its subcontractor's wider link no longer holds.
    _approve(engine, "printshop", "logistics", purposes=MAILING, now=NOW)
    assert _refusal(engine, "courier") == "wider-than-parent@courier"
    _approve(engine, "logistics", "courier", purposes=MAILING, valid_until=date(2026, 12, 31), now=NOW)
    assert _refusal(engine, "courier") is None
    # A withdrawal takes effect when recorded, for the subcontractor and everyone under it.
    cs.withdraw_subcontractor(engine, "printshop", "logistics", reason="未承認の再委託が判明", now=NOW, actor=ACTOR)
    assert _refusal(engine, "courier", on=NOW - timedelta(minutes=1)) is None
    assert _refusal(engine, "courier") == "approval-withdrawn@logistics"
    with pytest.raises(ContractorError, match="already withdrawn"):
        cs.withdraw_subcontractor(engine, "printshop", "logistics", reason="again", now=NOW, actor=ACTOR)
    # The contact centre's sign-in and look-up: a refusal is audited although nothing else is written.
    assert [x.name for x in cs.require_authority(engine, "printshop", "contact-centre", on=NOW, actor=ACTOR)] == [
        "printshop"
    ]
    with pytest.raises(AuthorityRefused, match="its approval was withdrawn on 2026-11-22"):
        cs.require_authority(engine, "courier", "contact-centre", on=NOW, actor=ACTOR)
    with home.engine.connect() as conn:
        rows = conn.execute(
            select(AuditEntry.action, AuditEntry.details).where(AuditEntry.object_type == "contractor")
        ).all()
    assert [a for a, _ in rows] == ["contractor.added"] * 3 + ["contractor.subcontractor-approved"] * 4 + [
        "contractor.subcontractor-withdrawn",
        "contractor.authority-refused",
    ]
    assert json.loads(rows[-1].details) == {
        "purpose": "contact-centre",
        "rule": "approval-withdrawn",
        "link": "logistics",
    }


def test_register_input_rules(home: Home) -> None:
    engine = home.engine
    with pytest.raises(ContractorError, match="needs --contract-ref"):
        cs.add_contractor(engine, "printshop", purposes=MAILING, now=NOW, actor=ACTOR)
    with pytest.raises(ContractorError, match="the last day 2027-03-31 is before the first day 2027-04-01"):
        _city_contract(engine, valid_from=date(2027, 4, 1))
    with pytest.raises(ContractorError, match="contractor name"):
        _city_contract(engine, "株式会社")
    with pytest.raises(ContractorError, match="display name: contains a control character"):
        _city_contract(engine, display_name="印刷\n")
    link = _city_contract(engine, "ｐｒｉｎｔｓｈｏｐ", display_name="株式会社　〇〇印刷")  # typed on a Japanese IME
    assert (link.name, link.display_name) == ("printshop", "株式会社 〇〇印刷")
    with pytest.raises(ContractorError, match="already exists"):
        _city_contract(engine)
    with pytest.raises(ContractorError, match="no contractor named nobody"):
        add_recipient(engine, "r", keygen_public(), now=NOW, actor=ACTOR, contractor="nobody")


def keygen_public() -> str:
    return generate_identity()[1]


def _staff(engine: Engine, name: str, contractor: str | None, display_name: str | None = None) -> str:
    """A recipient working for ``contractor``; returns its token."""
    return add_recipient(
        engine, name, keygen_public(), now=NOW, actor=ACTOR, contractor=contractor, display_name=display_name
    )


# --------------------------------------------------------------------------------------------------
# Sealing and the key service apply the rule
# --------------------------------------------------------------------------------------------------


@pytest.fixture
def city(home: Home, tmp_path: Path) -> Home:
    entitled_city(home, tmp_path, residents=1000)
    _city_contract(home.engine, valid_until=TODAY + 5 * DAY)
    _sub(home.engine, "logistics", "printshop", "有限会社△△物流")
    return home


def _seal(home: Home, tmp_path: Path, recipient: str, *, now: datetime = NOW, purpose: str = MAILING) -> str:
    out = tmp_path / f"{recipient}-{random.random()}.cseal"
    request = SealRequest(PROGRAMME, purpose, recipient, out, key_service_url="https://keys.city.example")
    return seal(home, request, now=now, rng=random.Random(3)).package_id


def _unlock(home: Home, cipher: FieldCipher, token: str, package_id: str, at: datetime) -> str:
    try:
        unlock(home.engine, load_unlock_key(home.keys), package_id=package_id, token=token, source="192.0.2.1", now=at)
    except UnlockRefused as refused:
        return refused.reason
    return "granted"


def _last_outcome(engine: Engine) -> str:
    with engine.connect() as conn:
        return conn.execute(select(UnlockAttempt.outcome).order_by(UnlockAttempt.id.desc()).limit(1)).scalar_one()


def test_an_expired_contract_refuses_seal_and_unlock(city: Home, cipher: FieldCipher, tmp_path: Path) -> None:
    token = _staff(city.engine, "printshop-staff", "printshop")
    package = _seal(city, tmp_path, "printshop-staff")
    assert _unlock(city, cipher, token, package, NOW + DAY) == "granted"
    # The package is valid 30 days, the contract 5 more: from the contract's last day on, the chain refuses.
    ended = datetime.combine(TODAY + 6 * DAY, datetime.min.time(), tzinfo=NOW.tzinfo)
    assert _unlock(city, cipher, token, package, ended) == "contractor not authorized (ended)"
    assert _last_outcome(city.engine) == "chain-ended"
    with pytest.raises(AuthorityRefused, match=r"株式会社〇〇印刷 \(printshop\): its contract ended") as refused:
        _seal(city, tmp_path, "printshop-staff", now=ended)
    assert refused.value.rule == "ended"
    with pytest.raises(AuthorityRefused, match="does not cover the purpose contact-centre-offline"):
        _seal(city, tmp_path, "printshop-staff", purpose="contact-centre-offline")
    with city.engine.connect() as conn:
        assert conn.execute(select(Package.id)).scalars().all() == [package]  # refusals left nothing behind


def test_withdrawal_stops_the_next_unlock(city: Home, cipher: FieldCipher, tmp_path: Path) -> None:
    token = _staff(city.engine, "logistics-staff", "logistics", display_name="有限会社△△物流 配送課")
    # Never approved: the city's package cannot reach it.
    with pytest.raises(AuthorityRefused, match="never approved this subcontractor") as refused:
        _seal(city, tmp_path, "logistics-staff")
    assert refused.value.rule == "not-approved"
    _approve(city.engine, "printshop", "logistics", valid_until=TODAY + 5 * DAY)
    package = _seal(city, tmp_path, "logistics-staff")
    assert _unlock(city, cipher, token, package, NOW + timedelta(minutes=1)) == "granted"
    cs.withdraw_subcontractor(
        city.engine, "printshop", "logistics", reason="再委託先の管理不備", now=NOW + timedelta(minutes=2), actor=ACTOR
    )
    assert (
        _unlock(city, cipher, token, package, NOW + timedelta(minutes=3))
        == "contractor not authorized (approval-withdrawn)"
    )
    assert _last_outcome(city.engine) == "chain-approval-withdrawn"
    held = cs.show(city.engine, "logistics", now=NOW + timedelta(minutes=3))
    assert held.withdrawn_reason == "再委託先の管理不備" and held.chain[-1].withdrawn_at is not None
    assert held.recipients == (("logistics-staff", "有限会社△△物流 配送課"),)


# --------------------------------------------------------------------------------------------------
# Who holds what
# --------------------------------------------------------------------------------------------------


def _members(engine: Engine, package_id: str, residents: range) -> set[str]:
    codes = {f"R{n:06d}" for n in residents}
    with engine.begin() as conn:
        conn.execute(
            PackageMember.__table__.insert(),
            [{"package_id": package_id, "resident_code": c, "household_code": c, "pseudonym": c} for c in codes],
        )
    return codes


def test_exposure_against_independent_counts(home: Home, cipher: FieldCipher) -> None:
    engine = home.engine
    _city_contract(engine)
    _sub(engine, "logistics", "printshop", "有限会社△△物流")
    _sub(engine, "courier", "logistics", "××運送")
    _city_contract(engine, "callcentre", display_name="株式会社□□コール", contract_ref="尼契第2026-002号")
    for name, org in (("shop", "printshop"), ("log", "logistics"), ("cour", "courier"), ("call", "callcentre")):
        _staff(engine, name, org)
    _staff(engine, "staff", None)  # the city's own: no contractor
    created = (("created", NOW - 2 * DAY),)
    out = {  # package: (recipient, residents, custody, expires, revoked) — what the test knows it wrote
        "p_shop": ("shop", range(0, 100), created, NOW + DAY, False),
        "p_shop_returned": ("shop", range(500, 600), (*created, ("returned", NOW - DAY)), NOW + DAY, False),
        "p_log": ("log", range(50, 130), (*created, ("handed-over", NOW - DAY)), NOW + DAY, False),
        "p_log_revoked": ("log", range(700, 800), created, NOW + DAY, True),
        "p_cour": (
            "cour",
            range(120, 160),
            (*created, ("handed-over", NOW - DAY), ("received", NOW)),
            NOW + DAY,
            False,
        ),
        "p_cour_expired": ("cour", range(900, 950), created, NOW, False),
        "p_cour_destroyed": ("cour", range(950, 990), (*created, ("destroyed", NOW - DAY)), NOW + DAY, False),
        "p_call": ("call", range(0, 30), created, NOW + DAY, False),
        "p_staff": ("staff", range(1000, 1007), created, NOW + DAY, False),
    }
    held: dict[str, set[str]] = {}
    for package_id, (recipient, residents, custody, expires, revoked) in out.items():
        add_package(home, cipher, recipient, package_id, custody=(), expires_at=expires)
        with engine.begin() as conn:
            for event, at in custody:
                add_custody(conn, package_id, event, at)
            if revoked:
                conn.execute(update(Package).where(Package.id == package_id).values(revoked_at=NOW - DAY))
        codes = _members(engine, package_id, residents)
        counts = not revoked and expires > NOW and custody[-1][0] not in ("returned", "destroyed")
        held[package_id] = codes if counts else set()

    def union(*packages: str) -> int:
        return len(set().union(*(held[p] for p in packages)))

    expected = {
        "printshop": (0, union("p_shop"), union("p_shop", "p_log", "p_cour"), 3),
        "logistics": (1, union("p_log"), union("p_log", "p_cour"), 2),
        "courier": (2, union("p_cour"), union("p_cour"), 1),
        "callcentre": (0, union("p_call"), union("p_call"), 1),
        "staff": (0, union("p_staff"), union("p_staff"), 1),
    }
    assert expected["printshop"][2] == 160  # residents 0..159: overlaps count once
    figures = cs.exposure(engine, now=NOW)
    got = {r["organization"]: (r["level"], r["own_residents"], r["residents"], r["packages"]) for r in figures}
    assert got == expected
    assert [r["organization"] for r in figures] == ["callcentre", "printshop", "logistics", "courier", "staff"]
    assert [r["registered"] for r in figures] == [True, True, True, True, False]
    shown = cs.show(engine, "logistics", now=NOW)
    assert [(p.package_id, p.residents) for p in shown.packages] == [("p_log", 80)]
    assert (shown.own_residents, shown.residents) == (80, union("p_log", "p_cour"))
    # After the packages expire, nobody holds anything.
    assert all(r["residents"] == 0 for r in cs.exposure(engine, now=NOW + 2 * DAY))


# --------------------------------------------------------------------------------------------------
# The incident report names the chain; the commands as a city officer types them
# --------------------------------------------------------------------------------------------------


def test_incident_report_names_the_chain(city: Home, tmp_path: Path) -> None:
    keygen_out = tmp_path / "courier.key"
    _approve(city.engine, "printshop", "logistics", valid_until=TODAY + 5 * DAY)
    add_recipient(city.engine, "log-staff", keygen(keygen_out), now=NOW, actor=ACTOR, contractor="logistics")
    package = _seal(city, tmp_path, "log-staff")
    record_event(city.engine, package, "handed-over", holder="logistics", at=NOW + DAY, now=NOW + DAY)
    incident = open_incident(
        city, package_id=package, lost_at=NOW + 2 * DAY, reported_at=NOW + 2 * DAY, reported_by="有限会社△△物流",
        circumstances="The courier's bag was left behind.", now=NOW + 2 * DAY, actor=ACTOR,
    )  # fmt: skip
    report = build_report(city, incident, now=NOW + 3 * DAY)
    assert report.contract_chain is not None and report.contract_chain.authorized_at_loss
    assert [link.name for link in report.contract_chain.links] == ["printshop", "logistics"]
    markdown = render.to_markdown(report)
    assert "委託関係 Contract chain" in markdown and "有限会社△△物流 (logistics)" in markdown
    assert "approved 承認 市民課 山田" in markdown and "尼契第2026-001号" in markdown
    data = json.loads(render.to_json(report))
    assert data["contract_chain"]["links"][1]["valid_until"] == (TODAY + 5 * DAY).isoformat()
    # Judged as the chain stood at the loss: a withdrawal after it does not change the verdict, one before it does.
    cs.withdraw_subcontractor(city.engine, "printshop", "logistics", reason="事故", now=NOW + 3 * DAY, actor=ACTOR)
    assert build_report(city, incident, now=NOW + 3 * DAY).contract_chain.authorized_at_loss  # type: ignore[union-attr]
    with city.engine.begin() as conn:
        conn.execute(update(Contractor).where(Contractor.name == "logistics").values(withdrawn_at=NOW + DAY))
    later = build_report(city, incident, now=NOW + 3 * DAY)
    assert later.contract_chain is not None and later.contract_chain.refusal_rule == "approval-withdrawn"
    assert "NO / いいえ — approval-withdrawn: 有限会社△△物流 (logistics)" in render.to_markdown(later)


def _cli(home: Home, *args: str) -> int:
    return run([*args, "--home", str(home.path)])


def test_cli_as_a_city_officer_types_it(city: Home, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # The commands read the real clock: the contract here runs until 2099, in era dates as officers write them.
    code = _cli(
        city, "contractor", "add", "ｍａｉｌｅｒ", "--display-name", "株式会社◇◇メール",
        "--contract-ref", "尼契第2026-009号", "--valid-from", "令和8年4月1日", "--valid-until", "2099-03-31",
        "--purposes", f"{MAILING},contact-centre",
    )  # fmt: skip
    assert code == 0 and "株式会社◇◇メール (mailer): contract 尼契第2026-009号" in capsys.readouterr().out
    assert _cli(city, "contractor", "add", "logi", "--under", "mailer", "--display-name", "△△物流") == 0
    assert _cli(city, "contractor", "add", "courier", "--under", "logi", "--display-name", "[red]××運送[/red]") == 0
    assert "[red]××運送[/red] (courier): NOT APPROVED" in capsys.readouterr().out
    code = _cli(
        city, "contractor", "approve-subcontractor", "mailer", "logi", "--purposes", f"{MAILING},bank-transfer",
        "--approved-by", "市民課 山田", "--from", "R8.4.1", "--until", "R80.12.31",
    )  # fmt: skip
    assert code == 1 and "choose among" in capsys.readouterr().err
    code = _cli(
        city, "contractor", "approve-subcontractor", "mailer", "logi", "--purposes", MAILING,
        "--approved-by", "市民課 山田", "--from", "R8.4.1", "--until", "令和80年12月31日", "--json",
    )  # fmt: skip
    assert code == 0 and json.loads(capsys.readouterr().out)["valid_until"] == "2098-12-31"
    code = _cli(city, "contractor", "approve-subcontractor", "mailer", "logi", "--purposes", MAILING,
                "--approved-by", "x", "--until", "R8.13.1")  # fmt: skip
    assert code == 2 and "--until" in capsys.readouterr().err
    assert _cli(city, "recipient", "add", "staff", "--age-recipient", keygen(tmp_path / "staff.key")) == 0
    capsys.readouterr()
    out = tmp_path / "staff.cseal"
    code = _cli(
        city, "seal", "--programme", PROGRAMME, "--purpose", MAILING, "--to", "staff", "--out", str(out), "--json"
    )  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0 and json.loads(captured.out)["contractor"] is None
    assert captured.err.count("\n") == 1 and "belongs to no registered contractor" in captured.err
    assert _cli(city, "exposure", "--json") == 0
    figures = {r["organization"]: r for r in json.loads(capsys.readouterr().out)["organizations"]}
    with city.engine.connect() as conn:
        carried = conn.execute(select(func.count()).select_from(PackageMember)).scalar_one()
    assert figures["staff"]["residents"] == carried and figures["staff"]["registered"] is False
    assert figures["mailer"]["residents"] == 0
    assert _cli(city, "exposure") == 0
    assert "* recipients with no registered contractor: staff (staff)" in capsys.readouterr().out
    # The city registers the staff's organization after the fact: the package now counts under it.
    assert _cli(city, "contractor", "assign-recipient", "mailer", "staff") == 0
    assert "recipient staff now works for 株式会社◇◇メール" in capsys.readouterr().out
    assert _cli(city, "exposure", "--json") == 0
    figures = {r["organization"]: r for r in json.loads(capsys.readouterr().out)["organizations"]}
    assert "staff" not in figures and figures["mailer"]["residents"] == carried
    assert _cli(city, "contractor", "show", "courier") == 0
    shown = capsys.readouterr().out
    assert "株式会社◇◇メール (mailer): contract 尼契第2026-009号; 給付金の確認書の郵送、お問い合わせ窓口" in shown
    assert "△△物流 (logi): approved by 市民課 山田 on " in shown and "NOT APPROVED" in shown
    assert _cli(city, "contractor", "withdraw-subcontractor", "mailer", "courier", "--reason", "x") == 1
    assert "is not a subcontractor of mailer" in capsys.readouterr().err
