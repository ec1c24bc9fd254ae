"""The contact centre on both stores: sign-in, look-ups, the extraction guard, actions, and the HTTP edge."""

from __future__ import annotations

import asyncio
import re
import threading
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import pyotp
import pytest
from sqlalchemy import func, select

from civicseal.audit import log as audit
from civicseal.audit.models import AuditEntry
from civicseal.contact import actions, dashboard, lookup, users
from civicseal.contact.errors import AccountLocked, ContactError, NotAllowed, OrganizationNotApproved, SignInRefused
from civicseal.contact.models import Alert, ContactUser, Lookup
from civicseal.contractors import service as contractors
from civicseal.keys.city import load_city_keys
from civicseal.keys.recipients import add_recipient, keygen
from civicseal.programme.errors import ProgrammeError
from civicseal.programme.reference import damm_digit, is_valid, printed
from civicseal.store.engine import transaction
from civicseal.store.fieldcrypt import FieldCipher
from civicseal.store.home import Home
from civicseal.web.app import create_app
from tests.contact_world import BIRTH, NOW, OTHER_BIRTH, World, build, code

ACCOUNT = actions.AccountForm("1", "1", "普通", "1234567", "あまがさき たろう")


@pytest.fixture
def world(home: Home, tmp_path: Path) -> World:
    return build(home, tmp_path)


def sign(home: Home, cipher: FieldCipher, user: users.NewUser, *, totp: str = "", source: str = "10.0.0.1",
         at=NOW) -> users.SignedIn:  # fmt: skip
    return users.sign_in(home.engine, cipher, user.username, user.password, totp, source=source, now=at)


def test_sign_in_needs_the_one_time_code_for_supervisors_and_locks_after_five_failures(
    home: Home, cipher: FieldCipher, world: World
) -> None:
    op = sign(home, cipher, world.operator)
    assert op.principal.role is users.Role.OPERATOR and op.principal.organization == "callcentre"
    with pytest.raises(SignInRefused):
        sign(home, cipher, world.supervisor)  # no code
    sup = sign(home, cipher, world.supervisor, totp=code(world.supervisor, NOW))
    assert sup.session_token != op.session_token
    with pytest.raises(SignInRefused):  # the same code twice is refused (replay)
        sign(home, cipher, world.supervisor, totp=code(world.supervisor, NOW), at=NOW + timedelta(seconds=5))
    for i in range(users.MAX_FAILED_SIGNINS):
        with pytest.raises(SignInRefused):
            users.sign_in(home.engine, cipher, "op1", "wrong", "", source=f"10.0.1.{i}", now=NOW)
    with pytest.raises(SignInRefused, match="locked"):
        sign(home, cipher, world.operator, source="10.0.2.1")
    assert users.session_principal(home.engine, op.session_token, now=NOW) is None  # a lock ends sessions
    users.unlock_user(home.engine, "op1", now=NOW, actor="t")
    assert sign(home, cipher, world.operator).principal.username == "op1"
    with home.engine.connect() as conn:
        actions_seen = [r.action for r in conn.execute(select(AuditEntry.action))]
        assert audit.verify(conn).ok
    assert {"contact.signin", "contact.signin-refused", "contact.user-locked", "contact.user-unlocked"} <= set(
        actions_seen
    )


def test_source_address_is_blocked_after_five_failures_whatever_names_it_tried(
    home: Home, cipher: FieldCipher, world: World
) -> None:
    for name in ("a", "b", "c", "d", "e"):
        with pytest.raises(SignInRefused):
            users.sign_in(home.engine, cipher, name, "x", "", source="10.9.9.9", now=NOW)
    with pytest.raises(SignInRefused, match="this address"):
        sign(home, cipher, world.operator, source="10.9.9.9")
    later = NOW + users.SOURCE_WINDOW + timedelta(seconds=1)
    assert sign(home, cipher, world.operator, source="10.9.9.9", at=later).principal.username == "op1"


def test_idle_sessions_end_and_sign_out_is_audited(home: Home, cipher: FieldCipher, world: World) -> None:
    done = sign(home, cipher, world.operator)
    assert users.session_principal(home.engine, done.session_token, now=NOW + timedelta(minutes=10)) is not None
    assert users.session_principal(home.engine, done.session_token, now=NOW + timedelta(minutes=26)) is None
    again = sign(home, cipher, world.operator)
    users.sign_out(home.engine, again.principal, again.session_token, now=NOW)
    assert users.session_principal(home.engine, again.session_token, now=NOW) is None
    third = sign(home, cipher, world.operator)
    assert users.revoke_sessions(home.engine, "op1", now=NOW, actor="admin") == 1
    assert users.session_principal(home.engine, third.session_token, now=NOW) is None
    with home.engine.connect() as conn:
        last = [e["action"] for e in audit.entries(conn, last=3)]
    assert last == ["contact.signout", "contact.signin", "contact.sessions-revoked"]


def test_a_look_up_shows_one_household_and_a_wrong_birth_date_reveals_nothing(
    home: Home, cipher: FieldCipher, world: World
) -> None:
    op = sign(home, cipher, world.operator).principal
    ref = world.references[0]
    found = lookup.lookup_by_reference(home.engine, cipher, op, printed(ref), "昭和35年4月1日", "C-1", now=NOW)
    assert found is not None and found.reference_number == ref and found.status == "notified"
    assert found.amount == 100_000 and found.account_masked is None
    wrong = lookup.lookup_by_reference(home.engine, cipher, op, ref, OTHER_BIRTH, "C-2", now=NOW)
    body = ref[:10] + str((int(ref[10]) + 1) % 10)
    unknown_number = body + str(damm_digit(body))
    assert is_valid(unknown_number)
    unknown = lookup.lookup_by_reference(home.engine, cipher, op, unknown_number, BIRTH, "C-3", now=NOW)
    assert wrong is None and unknown is None
    with pytest.raises(ContactError, match="check digit"):
        lookup.lookup_by_reference(home.engine, cipher, op, "1234 5678 9012", BIRTH, "C-4", now=NOW)
    with pytest.raises(ContactError, match="call reference"):
        lookup.lookup_by_reference(home.engine, cipher, op, ref, BIRTH, "name: 尼崎", now=NOW)
    with home.engine.connect() as conn:
        rows = [r for r in audit.entries(conn, last=10) if r["action"] == "contact.lookup"]
    assert [r["details"].count('"outcome":"') for r in rows] == [1, 1, 1, 1]
    assert ['"call":"C-1"' in r["details"] for r in rows] == [True, False, False, False]
    assert all('"operator":"op1"' in r["details"] and "1960" not in r["details"] for r in rows)


def test_a_canary_look_up_raises_an_alert_naming_the_operator(home: Home, cipher: FieldCipher, world: World) -> None:
    op = sign(home, cipher, world.operator).principal
    assert lookup.lookup_by_reference(home.engine, cipher, op, world.canary, BIRTH, "C-9", now=NOW) is None
    sup = sign(home, cipher, world.supervisor, totp=code(world.supervisor, NOW)).principal
    with home.engine.connect() as conn:
        board = dashboard.dashboard(conn, sup, now=NOW)
        alert_audit = conn.execute(select(AuditEntry.details).where(AuditEntry.action == "contact.canary-alert")).one()
    assert [(a.kind, a.username, a.reference_number) for a in board.alerts] == [("canary", "op1", world.canary)]
    assert '"operator":"op1"' in alert_audit.details


def test_misses_lock_the_operator_and_alert_the_supervisor(home: Home, cipher: FieldCipher, world: World) -> None:
    op = sign(home, cipher, world.operator).principal
    ref = world.references[0]
    for i in range(5):
        lookup.lookup_by_reference(home.engine, cipher, op, ref, BIRTH, f"H-{i}", now=NOW)
    for i in range(5):
        assert lookup.lookup_by_reference(home.engine, cipher, op, ref, OTHER_BIRTH, f"M-{i}", now=NOW) is None
    lookup.lookup_by_reference(home.engine, cipher, op, ref, OTHER_BIRTH, "M-5", now=NOW)  # 6 of 11: locks
    with pytest.raises(AccountLocked):
        lookup.lookup_by_reference(home.engine, cipher, op, ref, BIRTH, "H-9", now=NOW)
    sup = sign(home, cipher, world.supervisor, totp=code(world.supervisor, NOW)).principal
    with home.engine.connect() as conn:
        board = dashboard.dashboard(conn, sup, now=NOW)
    assert board.locked == [("op1", "miss-rate")]
    assert [(h.username, h.lookups, h.misses) for h in board.hours] == [("op1", 11, 6)]
    assert [a.kind for a in board.alerts] == ["miss-rate"]


def test_the_hourly_limit_locks_and_holds_for_the_hour(home: Home, cipher: FieldCipher, world: World) -> None:
    users.set_limits(home.engine, "op1", hourly=3, miss_percent=30, now=NOW, actor="t")
    op = sign(home, cipher, world.operator).principal
    for i in range(3):
        lookup.lookup_by_reference(home.engine, cipher, op, world.references[i], BIRTH, f"C-{i}", now=NOW)
    with pytest.raises(AccountLocked, match="limit"):
        lookup.lookup_by_reference(home.engine, cipher, op, world.references[0], BIRTH, "C-4", now=NOW)
    with home.engine.connect() as conn:
        assert conn.execute(select(ContactUser.locked_reason)).scalars().all().count("hourly-limit") == 1
        assert conn.execute(select(func.count()).select_from(Alert)).scalar_one() == 1


def test_actions_go_through_the_life_cycle_and_need_a_recent_hit_of_ones_own(
    home: Home, cipher: FieldCipher, world: World
) -> None:
    op = sign(home, cipher, world.operator).principal
    ref = world.references[0]
    hit = lookup.lookup_by_reference(home.engine, cipher, op, ref, BIRTH, "C-1", now=NOW)
    assert hit is not None
    bad = actions.AccountForm("9999", "1", "普通", "1234567", "アマガサキ タロウ")
    with pytest.raises(ContactError, match="bank_code: not a bank in the Zengin data"):
        actions.confirm(home.engine, cipher, op, hit.lookup_id, bad, "C-1", now=NOW)
    with pytest.raises(ContactError, match="holder_kana"):
        actions.confirm(home.engine, cipher, op, hit.lookup_id, actions.AccountForm("1", "1", "1", "1", "山田"), "C-1",
                        now=NOW)  # fmt: skip
    assert actions.confirm(home.engine, cipher, op, hit.lookup_id, ACCOUNT, "C-1", now=NOW) == "confirmed"
    actions.record_note(home.engine, cipher, op, hit.lookup_id, "折り返し不要", "C-1", now=NOW)
    again = lookup.lookup_by_reference(home.engine, cipher, op, ref, BIRTH, "C-2", now=NOW)
    assert again is not None and again.status == "confirmed"
    assert (again.bank_code, again.branch_code, again.account_masked) == ("0001", "001", "****567")
    with pytest.raises(ProgrammeError, match="cannot go from confirmed to confirmed"):
        actions.confirm(home.engine, cipher, op, again.lookup_id, ACCOUNT, "C-2", now=NOW)
    with pytest.raises(ContactError, match="look the household up again"):
        actions.decline(home.engine, op, hit.lookup_id, "C-1", now=NOW + timedelta(minutes=31))
    # another organization's operator sees nothing through someone else's look-up
    cipher_ = load_city_keys(home.keys).field_cipher()
    other = users.add_user(home.engine, cipher_, "op2", users.Role.OPERATOR, organization="printshop", totp=False,
                           issuer="x", now=NOW, actor="t")  # fmt: skip
    op2 = sign(home, cipher, other).principal
    with pytest.raises(ContactError, match="look the household up again"):
        actions.record_note(home.engine, cipher, op2, again.lookup_id, "x", "C-3", now=NOW)
    request_id = actions.request_change(home.engine, cipher, op, again.lookup_id, "account",
        {"bank_code": "5", "branch_code": "1", "account_type": "普通", "account_number": "7654321",
         "holder_kana": "アマガサキ タロウ"}, "C-2", now=NOW)  # fmt: skip
    assert actions.decline(home.engine, op, again.lookup_id, "C-2", now=NOW) == "declined"
    sup = sign(home, cipher, world.supervisor, totp=code(world.supervisor, NOW)).principal
    sup_other = users.add_user(home.engine, cipher_, "sup2", users.Role.SUPERVISOR, organization="printshop",
                               totp=True, issuer="x", now=NOW, actor="t")  # fmt: skip
    sup2 = sign(home, cipher, sup_other, totp=code(sup_other, NOW)).principal
    with home.engine.connect() as conn:
        assert actions.pending_changes(conn, cipher, sup2) == []
        assert dashboard.dashboard(conn, sup2, now=NOW).hours == []
    assert actions.decide_change(home.engine, cipher, sup, request_id, True, now=NOW) == "approved"
    trail = dashboard.household_trail(home.engine, cipher, sup, ref, now=NOW)
    assert [n[2] for n in trail.notes] == ["折り返し不要"]
    assert [(old, new) for _, old, new, _ in trail.status_history][-2:] == [("notified", "confirmed"),
                                                                           ("confirmed", "declined")]  # fmt: skip
    assert {"contact.lookup", "contact.note", "entitlement.confirmed", "contact.change-approved"} <= {
        e.action for e in trail.audit
    }
    with pytest.raises(NotAllowed):
        lookup.lookup_by_name(home.engine, cipher, op, "アマガサキ タロウ", BIRTH, "660-0881", "C-5", now=NOW)
    by_name = lookup.lookup_by_name(home.engine, cipher, sup, "あまがさき たろう", BIRTH, "6600881", "C-6", now=NOW)
    assert by_name is not None and by_name.head_name_kana == "アマガサキ タロウ"


# --------------------------------------------------------------------------------------------------
# The HTTP edge, in process
# --------------------------------------------------------------------------------------------------


class Browser:
    """A cookie-keeping client straight into the ASGI app, from one client address."""

    def __init__(self, app: Any, address: str = "10.1.1.1") -> None:
        transport = httpx.ASGITransport(app=app, client=(address, 50000))
        self.client = httpx.AsyncClient(transport=transport, base_url="http://city.test")

    def request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        return asyncio.run(self.client.request(method, path, **kw))

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return self.request("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> httpx.Response:
        return self.request("POST", path, **kw)

    def csrf(self, path: str) -> str:
        match = re.search(r'name="csrf_token" value="([^"]+)"', self.get(path).text)
        assert match
        return match.group(1)

    def sign_in(self, user: users.NewUser, totp: str = "") -> httpx.Response:
        token = self.csrf("/login")
        form = {"csrf_token": token, "username": user.username, "password": user.password, "totp": totp}
        return self.post("/login", data=form)


@pytest.fixture
def app(home: Home, world: World) -> Any:
    return create_app(home, clock=lambda: NOW)


def test_csrf_roles_and_session_fixation_over_http(app: Any, world: World) -> None:
    b = Browser(app)
    assert b.get("/lookup").status_code == 303
    b.csrf("/login")
    form = {"username": "op1", "password": world.operator.password}
    assert b.post("/login", data=form).status_code == 403  # no token
    assert b.post("/login", data={**form, "csrf_token": "forged"}).status_code == 403
    b.client.cookies.set("cs_session", "chosen-by-attacker", domain="city.test")
    answer = b.sign_in(world.operator)
    assert answer.status_code == 303
    assert "HttpOnly" in answer.headers["set-cookie"] and "SameSite=strict" in answer.headers["set-cookie"]
    session = b.client.cookies.get("cs_session", domain="city.test")
    assert session and session != "chosen-by-attacker"
    page = b.get("/lookup")
    assert page.status_code == 200 and "給付金コンタクトセンター" in page.text and "city" in page.text
    assert page.headers["content-security-policy"].startswith("default-src 'self'")
    assert page.headers["x-frame-options"] == "DENY" and page.headers["cache-control"] == "no-store"
    assert "Benefit contact centre" in b.get("/lookup?lang=en").text
    ref = world.references[0]
    data = {"reference": ref, "birth_date": BIRTH, "call_reference": "C-1"}
    assert b.post("/lookup", data=data).status_code == 403  # no token
    assert b.post("/lookup", data={**data, "csrf_token": "x" * 43}).status_code == 403
    token = b.csrf("/lookup")
    shown = b.post("/lookup", data={**data, "csrf_token": token})
    assert shown.status_code == 200 and printed(ref) in shown.text
    assert b.get("/supervisor").status_code == 403 and b.get("/admin").status_code == 403
    by_name = {"name_kana": "ア", "birth_date": BIRTH, "postcode": "6600881", "call_reference": "C"}
    by_name["csrf_token"] = token
    assert b.post("/lookup/by-name", data=by_name).status_code == 403
    wrong = b.post("/lookup", data={**data, "birth_date": OTHER_BIRTH, "csrf_token": token})
    unknown = b.post("/lookup", data={**data, "reference": world.canary, "csrf_token": token})
    strip = lambda t: re.sub(r'value="[^"]*"', "", t)  # noqa: E731
    assert wrong.status_code == unknown.status_code == 200 and strip(wrong.text) == strip(unknown.text)


INJECTIONS = ["9" * 20, "' OR 1=1 --", '"><script>alert(1)</script>', "1; DROP TABLE residents;", "\x00", "ｱ" * 300]


def test_injection_strings_in_every_field_are_harmless(app: Any, home: Home, world: World) -> None:
    b = Browser(app)
    for bad in INJECTIONS:
        token = b.csrf("/login")
        answer = b.post("/login", data={"csrf_token": token, "username": bad, "password": bad, "totp": bad})
        assert answer.status_code in (401, 403) and "<script>alert" not in answer.text
    b2 = Browser(app, "10.2.2.2")
    b2.sign_in(world.operator)
    token = b2.csrf("/lookup")
    for bad in INJECTIONS:
        for field in ("reference", "birth_date", "call_reference"):
            data = {"reference": world.references[0], "birth_date": BIRTH, "call_reference": "C-1", field: bad}
            answer = b2.post("/lookup", data={**data, "csrf_token": token})
            assert answer.status_code in (200, 400) and "<script>alert" not in answer.text
        for action in ("note", "confirm", "decline", "change"):
            form = {"csrf_token": token, "lookup_id": bad, "call_reference": bad, "note": bad, "bank_code": bad,
                    "kind": bad, "postcode": bad, "address": bad}  # fmt: skip
            answer = b2.post(f"/actions/{action}", data=form)
            assert answer.status_code in (400, 403) and "<script>alert" not in answer.text
    with home.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(ContactUser)).scalar_one() == 3
        assert audit.verify(conn).ok


def test_the_api_needs_a_token_before_it_reads_the_body(app: Any, home: Home, world: World) -> None:
    b = Browser(app)
    refused = b.post("/api/v1/lookup", content=b"not json at all")
    assert refused.status_code == 401 and refused.headers["x-content-type-options"] == "nosniff"
    assert b.post("/api/v1/lookup", headers={"Authorization": "Bearer cst_0_x"}, content=b"{").status_code == 401
    token = users.issue_api_token(home.engine, "op1", now=NOW, actor="t")
    auth = {"Authorization": f"Bearer {token}"}
    body = {"reference_number": printed(world.references[1]), "birth_date": BIRTH, "call_reference": "API-1"}
    answer = b.post("/api/v1/lookup", headers=auth, json=body)
    assert answer.status_code == 200 and answer.json()["found"] is True
    household = answer.json()["household"]
    assert household["status"] == "notified" and household["reference_number"] == world.references[1]
    miss = b.post("/api/v1/lookup", headers=auth, json={**body, "birth_date": OTHER_BIRTH}).json()
    assert miss == {"found": False, "household": None}
    confirmed = b.post("/api/v1/confirm", headers=auth, json={
        "lookup_id": household["lookup_id"], "call_reference": "API-1", "bank_code": "0001", "branch_code": "001",
        "account_type": "普通", "account_number": "7654321", "holder_kana": "アマガサキ タロウ"})  # fmt: skip
    assert confirmed.status_code == 200 and confirmed.json() == {"status": "confirmed"}
    with home.engine.connect() as conn:  # the API chains its look-ups into the audit log after answering
        pending = conn.execute(select(func.count()).select_from(Lookup).where(Lookup.audit_seq.is_(None))).scalar_one()
        chained = [e["details"] for e in audit.entries(conn, last=10) if e["action"] == "contact.lookup"]
        assert pending == 0 and audit.verify(conn).ok
    assert sum('"call":"API-1"' in d for d in chained) == 2
    schema = b.get("/openapi.json").json()
    assert set(schema["paths"]) == {f"/api/v1/{p}" for p in ("lookup", "lookup-by-name", "notes", "confirm",
                                                              "decline", "change-requests")}  # fmt: skip
    assert all(op.get("security") for path in schema["paths"].values() for op in path.values())


def test_cookies_are_secure_behind_https(app: Any, world: World) -> None:
    b = Browser(app)
    b.client.base_url = httpx.URL("https://city.test")  # as the TLS proxy forwards it (X-Forwarded-Proto)
    answer = b.sign_in(world.operator)
    assert answer.status_code == 303
    assert "Secure" in answer.headers["set-cookie"] and "HttpOnly" in answer.headers["set-cookie"]


# --------------------------------------------------------------------------------------------------
# One-time codes turned on by an operator, and organizations whose contract no longer covers the centre
# --------------------------------------------------------------------------------------------------


def test_an_operator_turns_on_one_time_codes_and_sign_in_then_needs_them(app: Any, home: Home, world: World) -> None:
    b = Browser(app)
    b.sign_in(world.operator)
    page = b.get("/account/totp")
    secret = re.search(r'id="totp-secret" class="secret">([A-Z2-7]+)<', page.text)
    offer = re.search(r'name="offer" value="([^"]+)"', page.text)
    assert page.status_code == 200 and secret and offer and "otpauth://totp/" in page.text
    form = {"offer": offer.group(1), "code": pyotp.TOTP(secret.group(1)).at(NOW)}
    assert b.post("/account/totp", data=form).status_code == 403  # no CSRF token
    token = b.csrf("/lookup")
    wrong = b.post("/account/totp", data={**form, "code": "000000", "csrf_token": token})
    assert wrong.status_code == 400 and secret.group(1) in wrong.text  # the same secret, to try again
    done = b.post("/account/totp", data={**form, "csrf_token": token})
    assert done.status_code == 200 and "次回のサインインからワンタイムコードが必要です" in done.text
    assert "設定済み" in b.get("/account/totp").text
    later = Browser(app, "10.3.3.3")
    assert later.sign_in(world.operator).status_code == 401  # no code: refused now
    assert later.sign_in(world.operator, totp=form["code"]).status_code == 401  # the enrolment's code, once only
    next_code = pyotp.TOTP(secret.group(1)).at(NOW + timedelta(seconds=30))
    assert later.sign_in(world.operator, totp=next_code).status_code == 303
    with home.engine.connect() as conn:
        outcomes = [e["details"] for e in audit.entries(conn, last=20) if e["action"] == "contact.totp-enrol"]
        assert audit.verify(conn).ok
    assert outcomes == ['{"outcome":"wrong-code"}', '{"outcome":"enrolled"}']


def test_a_one_time_code_offer_is_bound_to_its_user_and_never_replaces_a_code(
    home: Home, cipher: FieldCipher, world: World
) -> None:
    op = sign(home, cipher, world.operator).principal
    sup = sign(home, cipher, world.supervisor, totp=code(world.supervisor, NOW)).principal
    offer = users.offer_totp(cipher, op, issuer="amagasaki")
    with pytest.raises(ContactError, match="not one this server gave you"):
        users.enrol_totp(home.engine, cipher, sup, offer.sealed, pyotp.TOTP(offer.secret).at(NOW), now=NOW)
    with pytest.raises(ContactError, match="not one this server gave you"):
        users.enrol_totp(home.engine, cipher, op, "bm90IGEgc2VhbGVkIHNlY3JldA==", "123456", now=NOW)
    own = users.offer_totp(cipher, sup, issuer="amagasaki")
    with pytest.raises(ContactError, match="already set up"):
        users.enrol_totp(home.engine, cipher, sup, own.sealed, pyotp.TOTP(own.secret).at(NOW), now=NOW)
    assert users.offer_totp(cipher, op, issuer="amagasaki", sealed=offer.sealed).secret == offer.secret
    assert not users.has_totp(home.engine, op) and users.has_totp(home.engine, sup)


def test_an_organization_whose_contract_no_longer_covers_the_centre_is_refused_everywhere(
    home: Home, cipher: FieldCipher, world: World, tmp_path: Path
) -> None:
    contractors.add_contractor(home.engine, "nightcalls", under="callcentre-co", now=NOW, actor="t")
    contractors.approve_subcontractor(home.engine, "callcentre-co", "nightcalls", purposes="contact-centre",
                                      approved_by="市民課", valid_until=date(2027, 3, 31), now=NOW,
                                      actor="t")  # fmt: skip
    add_recipient(home.engine, "nightdesk", keygen(tmp_path / "n.key"), now=NOW, actor="t", contractor="nightcalls")
    night = users.add_user(home.engine, cipher, "op3", users.Role.OPERATOR, organization="nightdesk", totp=False,
                           issuer="x", now=NOW, actor="t")  # fmt: skip
    op3 = sign(home, cipher, night).principal
    ref = world.references[0]
    hit = lookup.lookup_by_reference(home.engine, cipher, op3, ref, BIRTH, "N-1", now=NOW)
    assert hit is not None
    api_token = users.issue_api_token(home.engine, "op3", now=NOW, actor="t")
    later = NOW + timedelta(minutes=1)
    contractors.withdraw_subcontractor(home.engine, "callcentre-co", "nightcalls", reason="契約違反", now=later,
                                       actor="t")  # fmt: skip
    at = later + timedelta(seconds=1)
    with pytest.raises(OrganizationNotApproved):
        lookup.lookup_by_reference(home.engine, cipher, op3, ref, BIRTH, "N-2", now=at)
    with pytest.raises(OrganizationNotApproved):
        actions.record_note(home.engine, cipher, op3, hit.lookup_id, "x", "N-2", now=at)
    with pytest.raises(OrganizationNotApproved):
        actions.decline(home.engine, op3, hit.lookup_id, "N-2", now=at)
    with pytest.raises(SignInRefused) as refused:
        sign(home, cipher, night, at=at)
    assert refused.value.reason == "organization"
    # over HTTP the refusal says nothing of the number asked: a real one and an unknown one answer alike
    b = Browser(create_app(home, clock=lambda: at))
    auth = {"Authorization": f"Bearer {api_token}"}
    asked = [{"reference_number": r, "birth_date": BIRTH, "call_reference": "N-3"} for r in (ref, world.canary)]
    answers = [b.post("/api/v1/lookup", headers=auth, json=body) for body in asked]
    assert [a.status_code for a in answers] == [403, 403] and answers[0].json() == answers[1].json()
    # a recipient with no registered contractor cannot even be given an operator
    add_recipient(home.engine, "walkin", keygen(tmp_path / "w.key"), now=NOW, actor="t")
    with pytest.raises(ContactError, match="organization"):
        users.add_user(home.engine, cipher, "op4", users.Role.OPERATOR, organization="walkin", totp=False,
                       issuer="x", now=NOW, actor="t")  # fmt: skip
    with home.engine.connect() as conn:
        refusals = [e["details"] for e in audit.entries(conn, last=30) if e["action"] == "contact.refused"]
        night_lookups = conn.execute(
            select(func.count()).select_from(Lookup).where(Lookup.call_reference.like("N-%"))
        ).scalar_one()
        assert audit.verify(conn).ok
    assert len(refusals) == 5 and all('"why":"organization-not-approved"' in d for d in refusals)
    assert night_lookups == 1  # only the look-up made while approved


def test_a_look_up_is_answered_only_once_it_is_on_the_audit_chain(
    home: Home, cipher: FieldCipher, world: World
) -> None:
    """While another transaction holds the chain's head, the look-up waits for it rather than answer unaudited."""
    op = sign(home, cipher, world.operator).principal
    answered: list[lookup.Household | None] = []
    asking = threading.Thread(
        target=lambda: answered.append(
            lookup.lookup_by_reference(home.engine, cipher, op, world.references[0], BIRTH, "Q-1", now=NOW)
        )
    )
    with transaction(home.engine) as holder:
        audit.lock_head(holder)
        asking.start()
        asking.join(1.0)
        assert asking.is_alive() and answered == []
    asking.join(30)
    with home.engine.connect() as conn:
        seq = conn.execute(select(Lookup.audit_seq).where(Lookup.call_reference == "Q-1")).scalar_one()
        assert audit.verify(conn).ok
    assert answered and answered[0] is not None and seq is not None
