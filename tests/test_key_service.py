"""The key service over HTTP and its client: the contract, real sockets, two workers on one store, an
end-to-end tethered open and interop with the reference `age` tool — on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import base64
import shutil
import socket
import subprocess
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pyrage
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from civicseal import cseal as F
from civicseal.clock import utcnow
from civicseal.cseal.errors import PackageRefused
from civicseal.cseal.payload import X25519Identity, encrypt_to_recipient, generate_identity
from civicseal.keys.city import load_city_keys
from civicseal.keys.client import TetheredIdentity, fetch_package_identity, unlock_url
from civicseal.keys.recipients import add_recipient, keygen, load_identity
from civicseal.keys.revocation import revoke_package
from civicseal.keys.service import BackgroundServer, create_app
from civicseal.keys.trust import add_trusted, format_public_key, load_trusted
from civicseal.keys.unlock import MAX_FAILURES
from civicseal.ledger.models import Package, Recipient
from civicseal.store.fieldcrypt import FieldCipher
from civicseal.store.home import Home
from tests.test_keys import (
    ACTOR,
    NOW,
    Contractor,
    add_package,
    is_locked,
    log_rows,
    make_contractor,
    outcomes,
)

AGE = "/usr/bin/age"
CLIENT_ADDRESS = "198.51.100.7"
PLAINTEXT = ("reference,status\n" + "1234-5678-9012,entitled\n" * 5000).encode("utf-8")
needs_age = pytest.mark.skipif(shutil.which(AGE) is None, reason="the reference age tool is not installed")


def live_package(home: Home, cipher: FieldCipher, recipient: str, package_id: str) -> str:
    """A package valid on the real clock (the live server judges expiry by it); returns its identity."""
    now = utcnow()
    return add_package(
        home,
        cipher,
        recipient,
        package_id,
        expires_at=now + timedelta(days=30),
        custody=(("created", now - timedelta(hours=1)),),
    )


class AsgiClient:
    """Requests straight into the app through httpx's ASGI transport, from a fixed client address."""

    def __init__(self, app: FastAPI) -> None:
        self._transport = httpx.ASGITransport(app=app, client=(CLIENT_ADDRESS, 50000))

    def request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        async def go() -> httpx.Response:
            async with httpx.AsyncClient(transport=self._transport, base_url="http://keys.test") as c:
                return await c.request(method, path, **kw)

        return asyncio.run(go())

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return self.request("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> httpx.Response:
        return self.request("POST", path, **kw)


@pytest.fixture
def client(home: Home) -> AsgiClient:
    return AsgiClient(create_app(home, clock=lambda: NOW))


def post(client: AsgiClient, token: str | None, body: object = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return client.post("/v1/unlock", json=body, headers=headers)


# --------------------------------------------------------------------------------------------------
# The HTTP contract (in process)
# --------------------------------------------------------------------------------------------------


def test_health(client: AsgiClient) -> None:
    answer = client.get("/v1/health")
    assert answer.status_code == 200 and answer.json() == {"status": "ok"}


def test_grant_answer(home: Home, cipher: FieldCipher, client: AsgiClient) -> None:
    alice = make_contractor(home.engine, "alice")
    secret = add_package(home, cipher, "alice", "pkg_ok")
    answer = post(client, alice.token, {"package_id": "pkg_ok", "client": "ignored"})
    assert answer.status_code == 200, answer.text
    assert answer.headers["cache-control"] == "no-store"
    body = answer.json()
    assert set(body) == {"package_id", "identity_age"} and body["package_id"] == "pkg_ok"
    sealed = base64.b64decode(body["identity_age"], validate=True)
    assert pyrage.decrypt(sealed, [pyrage.x25519.Identity.from_str(alice.secret)]).decode() == secret
    assert log_rows(home.engine)[-1]["source"] == CLIENT_ADDRESS


@pytest.mark.parametrize(
    ("token", "package_id", "error"),
    [
        (None, "pkg_ok", "refused: bad token"),
        ("", "pkg_ok", "refused: bad token"),
        ("wrong-secret", "pkg_ok", "refused: bad token"),
        ("unknown-id", "pkg_ok", "refused: bad token"),
        ("good", "pkg_gone", "refused: unknown package"),
        ("good", "pkg_revoked", "refused: revoked"),
    ],
)
def test_refusals_are_403_with_one_safe_line(
    home: Home, cipher: FieldCipher, client: AsgiClient, token: str | None, package_id: str, error: str
) -> None:
    alice = make_contractor(home.engine, "alice")
    add_package(home, cipher, "alice", "pkg_ok")
    add_package(home, cipher, "alice", "pkg_revoked")
    revoke_package(home.engine, "pkg_revoked", "lost", now=NOW, actor=ACTOR)
    head, tid, secret = alice.token.split("_")
    tokens = {
        "good": alice.token,
        "wrong-secret": f"{head}_{tid}_{'a' if secret[0] != 'a' else 'b'}{secret[1:]}",
        "unknown-id": f"{head}_{'f' * 16}_{secret}",
    }
    answer = post(client, tokens.get(token or "", token), {"package_id": package_id})
    assert answer.status_code == 403
    assert answer.json() == {"error": error}
    assert alice.token not in answer.text and secret not in answer.text
    assert len(log_rows(home.engine)) == 1  # every attempt is on record


def test_other_authorization_schemes_are_a_bad_token(home: Home, client: AsgiClient) -> None:
    alice = make_contractor(home.engine, "alice")
    answer = client.post("/v1/unlock", json={"package_id": "pkg_ok"}, headers={"Authorization": f"Basic {alice.token}"})
    assert answer.status_code == 403 and answer.json() == {"error": "refused: bad token"}


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'"pkg_ok"',
        b"{}",
        b'{"package_id": 7}',
        b'{"package_id": ""}',
        b'{"package_id": "pkg/../../etc"}',
        b'{"package_id": "' + b"p" * 41 + b'"}',
        b'{"package_id": "pkg_ok", "pad": "' + b"x" * 5000 + b'"}',
        b"\xff\xfe",
    ],
)
def test_malformed_bodies_are_400_and_not_attempts(home: Home, client: AsgiClient, body: bytes) -> None:
    alice = make_contractor(home.engine, "alice")
    answer = client.post(
        "/v1/unlock",
        content=body,
        headers={"Authorization": f"Bearer {alice.token}", "Content-Type": "application/json"},
    )
    assert answer.status_code == 400
    assert set(answer.json()) == {"error"} and answer.json()["error"].startswith("malformed request")
    assert "Traceback" not in answer.text
    assert outcomes(home.engine) == []


def test_unknown_routes_and_methods_answer_json(client: AsgiClient) -> None:
    assert client.get("/v1/unlock").status_code == 405
    missing = client.get("/docs")
    assert missing.status_code == 404 and missing.json() == {"error": "not found"}
    assert client.get("/openapi.json").status_code == 404


def test_the_services_own_fault_is_500_without_detail(home: Home, cipher: FieldCipher, client: AsgiClient) -> None:
    alice = make_contractor(home.engine, "alice")
    add_package(home, cipher, "alice", "pkg_bad")
    with home.engine.begin() as conn:
        conn.execute(Package.__table__.update().values(identity_age=b"\0" * 64))
    answer = post(client, alice.token, {"package_id": "pkg_bad"})
    assert answer.status_code == 500 and answer.json() == {"error": "key service error"}
    assert outcomes(home.engine) == ["error"]


# --------------------------------------------------------------------------------------------------
# Real sockets
# --------------------------------------------------------------------------------------------------


@pytest.fixture
def live(home: Home) -> Iterator[BackgroundServer]:
    with BackgroundServer(create_app(home)) as server:
        yield server


def test_round_trip_over_a_real_socket(home: Home, cipher: FieldCipher, live: BackgroundServer) -> None:
    alice = make_contractor(home.engine, "alice")
    secret = live_package(home, cipher, "alice", "pkg_live")
    assert fetch_package_identity(live.url, "pkg_live", alice.token, alice.identity) == secret
    row = log_rows(home.engine)[-1]
    assert row["outcome"] == "granted" and row["source"] == "127.0.0.1"
    with pytest.raises(PackageRefused) as info:
        fetch_package_identity(live.url + "/", "pkg_nothing", alice.token, alice.identity)
    assert str(info.value).startswith("package refused: key service says refused: unknown package; this package")


def test_an_answer_for_another_identity_is_refused(home: Home, cipher: FieldCipher, live: BackgroundServer) -> None:
    alice = make_contractor(home.engine, "alice")
    live_package(home, cipher, "alice", "pkg_live")
    stranger = X25519Identity(generate_identity()[0])
    with pytest.raises(PackageRefused, match="does not decrypt with this identity"):
        fetch_package_identity(live.url, "pkg_live", alice.token, stranger)


def test_unreachable_service(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    own = X25519Identity(generate_identity()[0])
    with pytest.raises(PackageRefused) as info:
        fetch_package_identity(f"http://127.0.0.1:{port}", "pkg_x", "cst_x", own, timeout=2)
    assert str(info.value).startswith(f"package refused: key service unreachable at http://127.0.0.1:{port};")


def test_the_token_never_travels_in_clear_over_a_network() -> None:
    assert unlock_url("https://keys.city.example/") == "https://keys.city.example/v1/unlock"
    assert unlock_url("http://localhost:8470") == "http://localhost:8470/v1/unlock"
    assert unlock_url("http://[::1]:8470/") == "http://[::1]:8470/v1/unlock"
    own = X25519Identity(generate_identity()[0])
    for url in ("http://keys.city.example/", "http://192.0.2.1:8470", "ftp://127.0.0.1/"):
        with pytest.raises(PackageRefused, match="neither HTTPS nor on loopback"):
            fetch_package_identity(url, "pkg_x", "cst_secret", own)
    assert "cst_secret" not in repr(TetheredIdentity("https://k/", "pkg_x", "cst_secret", own))


def test_two_workers_see_the_same_revocation_and_lockout(home: Home, cipher: FieldCipher) -> None:
    """Two stateless workers, each with its own app and engine, on one store (PostgreSQL or SQLite)."""
    alice = make_contractor(home.engine, "alice")
    secret = live_package(home, cipher, "alice", "pkg_shared")
    live_package(home, cipher, "alice", "pkg_other")
    homes = [Home(home.path), Home(home.path)]
    try:
        with BackgroundServer(create_app(homes[0])) as a, BackgroundServer(create_app(homes[1])) as b:
            for worker in (a, b):
                assert fetch_package_identity(worker.url, "pkg_shared", alice.token, alice.identity) == secret
            revoke_package(home.engine, "pkg_shared", "reported lost", now=utcnow(), actor=ACTOR)
            for worker in (a, b):
                with pytest.raises(PackageRefused, match="key service says refused: revoked"):
                    fetch_package_identity(worker.url, "pkg_shared", alice.token, alice.identity)
            # Failures on either worker count against the one token: 10 in all lock it everywhere.
            failures = 2  # the two revoked attempts
            while failures < MAX_FAILURES:
                worker = (a, b)[failures % 2]
                with pytest.raises(PackageRefused):
                    fetch_package_identity(worker.url, "pkg_nothing", alice.token, alice.identity)
                failures += 1
            assert is_locked(home.engine, "alice")
            for worker in (a, b):
                with pytest.raises(PackageRefused, match="key service says refused: token locked"):
                    fetch_package_identity(worker.url, "pkg_other", alice.token, alice.identity)
    finally:
        for h in homes:
            h.engine.dispose()
    assert outcomes(home.engine)[:4] == ["granted", "granted", "revoked", "revoked"]
    assert outcomes(home.engine).count("locked-out") == 1


# --------------------------------------------------------------------------------------------------
# End to end: a real tethered package, opened by a contractor through the live service
# --------------------------------------------------------------------------------------------------


def seal_tethered(home: Home, cipher: FieldCipher, work: Path, recipient: str, package_id: str, url: str) -> Path:
    """What the sealing side does for a tethered package: fresh identity, age payload, signed package, row."""
    keys = load_city_keys(home.keys)
    secret, public = generate_identity()
    work.mkdir(parents=True, exist_ok=True)
    (work / "plain.csv").write_bytes(PLAINTEXT)
    encrypt_to_recipient(work / "plain.csv", work / "payload.age", public)
    now = utcnow()
    with home.engine.connect() as conn:
        recipient_key = conn.execute(select(Recipient.age_recipient).where(Recipient.name == recipient)).scalar_one()
    manifest = F.build_manifest(
        package_id=package_id,
        issuer=home.config.issuer,
        issuer_key_id=keys.signing_key_id,
        purpose="contact-centre-status",
        recipient=recipient,
        recipient_key=recipient_key,
        mode=F.Mode.TETHERED,
        key_service_url=url,
        created=now - timedelta(minutes=1),
        expires=now + timedelta(days=30),
        payload={"format": "csv", "columns": ["reference", "status"], "rows": 5000},
    )
    out = work / f"{package_id}.cseal"
    manifest_bytes = F.write_package(out, manifest, keys.signing, work / "payload.age")
    add_package(
        home,
        cipher,
        recipient,
        package_id,
        secret=secret,
        expires_at=now + timedelta(days=30),
        custody=(("created", now - timedelta(minutes=1)),),
        key_service_url=url,
        manifest=manifest_bytes,
        payload_sha256=manifest["payload"]["sha256"],
    )
    (work / "plain.csv").unlink()
    (work / "payload.age").unlink()
    return out


@pytest.fixture
def contractor(home: Home, tmp_path: Path) -> tuple[Contractor, Path, Path]:
    """A contractor as it really starts: `recipient keygen`, registered by the city, `trust add`."""
    key = tmp_path / "contractor" / "contractor.key"
    public = keygen(key)
    token = add_recipient(home.engine, "contact-centre", public, now=utcnow(), actor=ACTOR)
    contractor_home = tmp_path / "contractor"
    city_key = load_city_keys(home.keys).signing.public_key()
    add_trusted(contractor_home, home.config.issuer, format_public_key(city_key))
    return Contractor("contact-centre", token, ""), key, contractor_home


def open_tethered(pkg_path: Path, out: Path, token: str, key: Path, contractor_home: Path) -> F.SealedPackage:
    own = load_identity(key)
    return F.open_package(
        pkg_path,
        trusted=load_trusted(contractor_home),
        now=utcnow(),
        out=out,
        force=False,
        identity=lambda pkg: TetheredIdentity.for_package(pkg, token, own),
        recipient_key=own.recipient,
    )


def test_end_to_end_open_through_the_live_service(
    home: Home, cipher: FieldCipher, live: BackgroundServer, contractor: tuple[Contractor, Path, Path], tmp_path: Path
) -> None:
    who, key, contractor_home = contractor
    pkg_path = seal_tethered(home, cipher, tmp_path / "city", "contact-centre", "pkg_e2e", live.url)
    out_dir = tmp_path / "opened"
    out_dir.mkdir()
    pkg = open_tethered(pkg_path, out_dir / "status.csv", who.token, key, contractor_home)
    assert pkg.package_id == "pkg_e2e"
    assert (out_dir / "status.csv").read_bytes() == PLAINTEXT
    assert outcomes(home.engine) == ["granted"]

    # Lost: the city revokes; the same contractor, same token, same file — nothing opens, nothing is written.
    revoke_package(home.engine, "pkg_e2e", "USB stick lost", now=utcnow(), actor=ACTOR)
    with pytest.raises(PackageRefused) as info:
        open_tethered(pkg_path, out_dir / "again.csv", who.token, key, contractor_home)
    assert (
        str(info.value)
        == "package refused: key service says refused: revoked; the city revoked this package: ask it for a new one"
    )
    assert sorted(p.name for p in out_dir.iterdir()) == ["status.csv"]
    assert outcomes(home.engine) == ["granted", "revoked"]


@needs_age
def test_reference_age_decrypts_with_the_identity_the_service_releases(
    home: Home, cipher: FieldCipher, live: BackgroundServer, contractor: tuple[Contractor, Path, Path], tmp_path: Path
) -> None:
    who, key, _ = contractor
    pkg_path = seal_tethered(home, cipher, tmp_path / "city", "contact-centre", "pkg_interop", live.url)
    released = fetch_package_identity(live.url, "pkg_interop", who.token, load_identity(key))
    identity_file = tmp_path / "package.key"
    identity_file.write_text(released + "\n")
    identity_file.chmod(0o600)
    pkg = F.read_package(pkg_path)
    with pkg_path.open("rb") as f:
        f.seek(pkg.payload_offset)
        (tmp_path / "payload.age").write_bytes(f.read(pkg.payload_size))
    subprocess.run(
        [AGE, "-d", "-i", str(identity_file), "-o", str(tmp_path / "plain"), str(tmp_path / "payload.age")],
        check=True,
        capture_output=True,
        timeout=60,
    )
    assert (tmp_path / "plain").read_bytes() == PLAINTEXT
