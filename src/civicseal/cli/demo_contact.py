"""The demo's contact-centre step: one look-up through the API instead of a copy of the register.

With ``--serve`` the demo ends with the server running, an operator and a supervisor account, and
reference numbers to try in a browser.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import httpx
import pyrage
from sqlalchemy import select

from civicseal.cli.output import console
from civicseal.clock import tokyo_today, utcnow
from civicseal.contact import users
from civicseal.contractors.service import add_contractor
from civicseal.keys.city import load_city_keys
from civicseal.keys.recipients import add_recipient
from civicseal.keys.service import BackgroundServer
from civicseal.programme.models import Entitlement
from civicseal.programme.reference import printed
from civicseal.register.models import Resident
from civicseal.store.home import Home
from civicseal.web.app import DEFAULT_PORT, create_app, serve

CENTRE = "callcentre"
CENTRE_CONTRACTOR = "amagasaki-calls"  # the contractor under contract to run the centre
CITY_NAME = "尼崎市"


def _households(city: Home, count: int) -> list[tuple[str, str]]:
    """(reference number, head's birth date) of a few notified households: what a caller would quote."""
    with city.engine.connect() as conn:
        rows = conn.execute(
            select(Entitlement.reference_number, Resident.birth_date)
            .join(Resident, Resident.resident_code == Entitlement.head_resident_code)
            .where(Entitlement.status == "notified")
            .order_by(Entitlement.reference_number)
            .limit(count)
        ).all()
    return [(ref, born.isoformat()) for ref, born in rows]


def run_contact_centre(city: Home, *, serve_after: bool) -> None:
    console.rule("the contact centre looks households up; it holds no copy")
    if not city.config.issuer_name:  # what the centre's pages show on every page
        city.write_config(replace(city.config, issuer_name=CITY_NAME))
        del city.config
    cipher = load_city_keys(city.keys).field_cipher()
    now = utcnow()
    centre_key = str(pyrage.x25519.Identity.generate().to_public())  # the centre keeps its identity, not the city
    today = tokyo_today(now)
    add_contractor(
        city.engine, CENTRE_CONTRACTOR, display_name="株式会社尼崎コールセンター", contract_ref="尼契第2022-057号",
        valid_from=today - timedelta(days=60), valid_until=today + timedelta(days=120), purposes="contact-centre",
        now=now, actor="os:demo",
    )  # fmt: skip
    add_recipient(city.engine, CENTRE, centre_key, now=now, actor="os:demo", contractor=CENTRE_CONTRACTOR)
    common = {"issuer": city.config.issuer_display, "now": now, "actor": "os:demo"}
    operator = users.add_user(
        city.engine, cipher, "operator1", users.Role.OPERATOR, organization=CENTRE, totp=False, **common
    )
    token = users.issue_api_token(city.engine, "operator1", now=now, actor="os:demo")
    (reference, born), *others = _households(city, 3)
    with BackgroundServer(create_app(city)) as server:
        answer = httpx.post(
            f"{server.url}/api/v1/lookup",
            headers={"Authorization": f"Bearer {token}"},
            json={"reference_number": printed(reference), "birth_date": born, "call_reference": "DEMO-0001"},
        ).json()
    household = answer["household"] or {}
    console.print(
        f"  operator1 (callcentre) asked the API for {printed(reference)} with the caller's birth date:"
        f" status {household.get('status')}, {household.get('amount', 0):,} yen — audited with the call reference",
        markup=False,
    )
    console.print("  records copied to the contact centre: 0", markup=False)
    if not serve_after:
        return
    supervisor = users.add_user(
        city.engine, cipher, "supervisor1", users.Role.SUPERVISOR, organization=CENTRE, totp=True, **common
    )
    console.rule("contact centre running")
    console.print(f"  open http://127.0.0.1:{DEFAULT_PORT}/login (Ctrl-C stops it); shown once:", markup=False)
    console.print(f"  operator1   password {operator.password}", markup=False)
    console.print(f"  supervisor1 password {supervisor.password}  TOTP secret {supervisor.totp_secret}", markup=False)
    for ref, birth in [(reference, born), *others]:
        console.print(f"  try {printed(ref)} with birth date {birth}", markup=False)
    serve(city, "127.0.0.1", DEFAULT_PORT)
