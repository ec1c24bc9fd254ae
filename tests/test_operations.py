"""Operations a city expects: trust list/remove, replacing a lost recipient token, the key service's
access log — each through the library and the command line, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from civicseal.cli import run
from civicseal.keys.city import load_city_keys, load_unlock_key
from civicseal.keys.errors import KeyServiceError, UnlockRefused
from civicseal.keys.recipients import list_recipients, rotate_token
from civicseal.keys.service import create_app
from civicseal.keys.trust import format_public_key
from civicseal.keys.unlock import MAX_FAILURES, unlock
from civicseal.store.fieldcrypt import FieldCipher
from civicseal.store.home import Home
from tests.test_keys import ACTOR, NOW, add_package, make_contractor

# --------------------------------------------------------------------------------------------------
# trust list / trust remove (a contractor's home: no database, no config)
# --------------------------------------------------------------------------------------------------


def test_trust_list_and_remove(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    city = tmp_path / "city"
    assert run(["init", "--home", str(city), "--issuer", "amagasaki", "--issuer-name", "尼崎市"]) == 0
    public = format_public_key(load_city_keys(city / "keys").signing.public_key())
    reader = str(tmp_path / "printshop")
    capsys.readouterr()
    assert run(["trust", "list", "--home", reader, "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"issuers": []}
    assert run(["trust", "add", "amagasaki", public, "--home", reader]) == 0
    capsys.readouterr()
    assert run(["--home", reader, "trust", "list", "--json"]) == 0
    (issuer,) = json.loads(capsys.readouterr().out)["issuers"]
    assert issuer["name"] == "amagasaki" and issuer["public_key"] == public and len(issuer["key_id"]) == 16
    assert run(["trust", "list", "--home", reader]) == 0
    assert capsys.readouterr().out.strip() == f"amagasaki: key id {issuer['key_id']}, {public}"
    assert run(["trust", "remove", "amagasaki", "--home", reader, "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"name": "amagasaki", "key_id": issuer["key_id"]}
    assert run(["trust", "remove", "amagasaki", "--home", reader]) == 1
    assert "`civicseal trust list` shows" in capsys.readouterr().err
    assert run(["trust", "list", "--home", reader]) == 0
    assert "no trusted issuers" in capsys.readouterr().out


# --------------------------------------------------------------------------------------------------
# recipient rotate-token
# --------------------------------------------------------------------------------------------------


def _unlocks(home: Home, cipher: FieldCipher, token: str) -> bool:
    try:
        unlock(home.engine, load_unlock_key(home.keys), package_id="pkg_ok", token=token, source="192.0.2.1", now=NOW)
    except UnlockRefused:
        return False
    return True


def test_a_rotated_token_stops_at_once_and_the_new_one_works(home: Home, cipher: FieldCipher) -> None:
    alice = make_contractor(home.engine, "alice")
    add_package(home, cipher, "alice", "pkg_ok")
    old_id = list_recipients(home.engine)[0].token_id
    new = rotate_token(home.engine, "alice", now=NOW, actor=ACTOR)
    assert new != alice.token and re.fullmatch(r"cst_[0-9a-f]{16}_[a-z2-7]{52}", new)
    assert not _unlocks(home, cipher, alice.token)
    assert _unlocks(home, cipher, new)
    with home.engine.connect() as conn:
        actor, details = conn.execute(
            text("SELECT actor, details FROM audit_log WHERE action = 'keys.token-rotated'")
        ).one()
        stored = conn.execute(text("SELECT token_sha256 FROM recipients WHERE name = 'alice'")).scalar_one()
    assert actor == ACTOR and new not in str(details) and alice.token not in str(details)
    recorded = json.loads(details) if isinstance(details, str) else details
    assert recorded["old_token_id"] == old_id and recorded["token_id"] == new.split("_")[1]
    assert new not in stored  # only its hash is kept
    with pytest.raises(KeyServiceError, match="no recipient named bob; `civicseal recipient list`"):
        rotate_token(home.engine, "bob", now=NOW, actor=ACTOR)


def test_rotating_a_locked_token_gives_a_working_one(home: Home, cipher: FieldCipher) -> None:
    alice = make_contractor(home.engine, "alice")
    add_package(home, cipher, "alice", "pkg_ok")
    for _ in range(MAX_FAILURES):
        _unlocks(home, cipher, alice.token[:-1] + ("a" if alice.token[-1] != "a" else "b"))
    assert list_recipients(home.engine)[0].locked_at is not None
    new = rotate_token(home.engine, "alice", now=NOW, actor=ACTOR)
    assert list_recipients(home.engine)[0].locked_at is None
    assert _unlocks(home, cipher, new)


def test_cli_rotate_token(home: Home, capsys: pytest.CaptureFixture[str]) -> None:
    alice = make_contractor(home.engine, "alice")
    where = str(home.path)
    assert run(["recipient", "rotate-token", "alice", "--home", where, "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["recipient"] == "alice" and shown["token"].startswith("cst_") and shown["token"] != alice.token
    assert run(["recipient", "rotate-token", "alice", "--home", where]) == 0
    said = capsys.readouterr()
    assert said.out.strip().startswith("cst_") and said.out.strip() != shown["token"]
    assert "shown ONCE" in said.err and "old token no longer works" in said.err


# --------------------------------------------------------------------------------------------------
# The key service's access log
# --------------------------------------------------------------------------------------------------


def test_access_log_line_per_request_without_secrets(home: Home, cipher: FieldCipher) -> None:
    alice = make_contractor(home.engine, "alice")
    add_package(home, cipher, "alice", "pkg_ok")
    lines: list[str] = []
    app = create_app(home, clock=lambda: NOW, access_log=lines.append)

    async def requests() -> list[int]:
        transport = httpx.ASGITransport(app=app, client=("192.0.2.1", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://keys.test") as c:
            auth = {"Authorization": f"Bearer {alice.token}"}
            answers = [
                await c.post("/v1/unlock", json={"package_id": "pkg_ok"}, headers=auth),
                await c.post(f"/v1/unlock?token={alice.token}", json={"package_id": "nope"}, headers=auth),
                await c.get("/v1/health"),
                await c.get(f"/v1/{alice.token}"),
            ]
        return [a.status_code for a in answers]

    statuses = asyncio.run(requests())
    assert statuses == [200, 403, 200, 404]
    assert len(lines) == 4
    shape = r"2026-11-22 19:00:00 JST (GET|POST) (/v1/unlock|/v1/health|-) (\d{3}) \d+\.\d ms"
    parsed = [re.fullmatch(shape, line) for line in lines]
    assert all(parsed), lines
    assert [(m[1], m[2], int(m[3])) for m in parsed if m] == [
        ("POST", "/v1/unlock", 200),
        ("POST", "/v1/unlock", 403),
        ("GET", "/v1/health", 200),
        ("GET", "-", 404),
    ]
    secret = alice.token.split("_")[2]
    assert not any(secret in line or "Bearer" in line or "pkg_ok" in line for line in lines)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_writes_its_access_log_to_stdout(home: Home) -> None:
    port = _free_port()
    command = [str(Path(sys.executable).with_name("civicseal")), "serve", "--port", str(port), "--home", str(home.path)]
    worker = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ)
    try:
        deadline, answer = time.monotonic() + 30, None
        while answer is None and time.monotonic() < deadline:
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/v1/health?probe=1", timeout=1)
            except httpx.TransportError:
                time.sleep(0.1)
        assert answer is not None and answer.status_code == 200
    finally:
        worker.terminate()
        out, err = worker.communicate(timeout=30)
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d JST GET /v1/health 200 \d+\.\d ms", out.strip()), out
    assert "probe" not in out and "key service and contact centre on http://127.0.0.1" in err


def test_the_city_server_logs_its_pages_by_route_never_by_what_was_sent(home: Home) -> None:
    from civicseal.web.app import create_app as create_city_app

    lines: list[str] = []
    app = create_city_app(home, clock=lambda: NOW, access_log=lines.append)

    async def requests() -> list[int]:
        transport = httpx.ASGITransport(app=app, client=("192.0.2.1", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://city.test") as c:
            return [(await c.get(path)).status_code for path in ("/login?next=secret", "/v1/health", "/no-such")]

    assert asyncio.run(requests()) == [200, 200, 404]
    routes = [line.split(" JST ")[1].rsplit(" ", 3)[0] for line in lines]
    assert routes == ["GET /login", "GET /v1/health", "GET -"]
    assert not any("secret" in line or "no-such" in line for line in lines)
