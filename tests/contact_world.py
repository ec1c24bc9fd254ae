"""A small city for contact-centre tests: notified households, a call-centre contractor and its users."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import pyotp
from sqlalchemy import select

from civicseal.contact import users
from civicseal.contractors import service as contractors
from civicseal.keys.city import load_city_keys
from civicseal.keys.recipients import add_recipient, keygen
from civicseal.programme import entitlements
from civicseal.programme.lifecycle import Status
from civicseal.programme.models import Entitlement
from civicseal.programme.service import issue_references, run_programme
from civicseal.store.engine import transaction
from civicseal.store.home import Home
from tests.registers import resident, tax
from tests.test_programme import benefit, load

NOW = datetime(2026, 11, 27, 1, 0, tzinfo=UTC)
BIRTH = "1960-04-01"
OTHER_BIRTH = "1961-05-02"


@dataclass
class World:
    references: list[str]  # notified households, head born BIRTH
    canary: str
    operator: users.NewUser
    supervisor: users.NewUser
    admin: users.NewUser


def build(home: Home, tmp_path: Path, households: int = 3) -> World:
    cipher = load_city_keys(home.keys).field_cipher()
    rows = [resident(f"R{i}", f"H{i}", name_kana=f"アマガサキ タロウ{'イ' * i}") for i in range(households)]
    load(home, cipher, tmp_path, rows, [tax(f"R{i}") for i in range(households)])
    run_programme(home.engine, benefit(home), rng=random.Random(5), now=NOW)
    with transaction(home.engine) as conn:
        refs = sorted(conn.execute(select(Entitlement.reference_number)).scalars())
        for ref in refs:
            entitlements.change_status(conn, ref, Status.NOTIFIED, reason="letter posted", now=NOW, actor="t")
        (canary,) = issue_references(conn, 1, "canary", random.Random(9))
    for org in ("callcentre", "printshop"):  # two organizations under contract to run a centre
        add_recipient(home.engine, org, keygen(tmp_path / f"{org}.key"), now=NOW, actor="t")
        contract = {"contract_ref": f"C-{org}", "valid_from": date(2026, 4, 1), "valid_until": date(2027, 3, 31)}
        contractors.add_contractor(home.engine, f"{org}-co", purposes="contact-centre", now=NOW, actor="t", **contract)
        contractors.assign_recipient(home.engine, org, f"{org}-co", now=NOW, actor="t")
    add = users.add_user
    common = {"issuer": "amagasaki", "now": NOW, "actor": "t"}
    op = add(home.engine, cipher, "op1", users.Role.OPERATOR, organization="callcentre", totp=False, **common)
    sup = add(home.engine, cipher, "sup1", users.Role.SUPERVISOR, organization="callcentre", totp=True, **common)
    adm = add(home.engine, cipher, "admin1", users.Role.ADMIN, organization=None, totp=True, **common)
    return World(refs, canary, op, sup, adm)


def code(user: users.NewUser, at: datetime) -> str:
    assert user.totp_secret is not None
    return pyotp.TOTP(user.totp_secret).at(at)
