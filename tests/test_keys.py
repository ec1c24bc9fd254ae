"""Recipients, tokens, the unlock decision, lock-out and revocation — the library, on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyrage
import pytest
from sqlalchemy import Engine, inspect, select, text

from civicseal.audit.models import AuditEntry
from civicseal.cli import run
from civicseal.cseal.payload import X25519Identity, generate_identity
from civicseal.custody.models import CustodyEvent
from civicseal.keys.city import load_unlock_key, unlock_public_key, wrap_identity
from civicseal.keys.errors import KeyServiceError, UnlockRefused
from civicseal.keys.models import UnlockAttempt
from civicseal.keys.recipients import (
    TOKEN_RE,
    add_recipient,
    keygen,
    list_recipients,
    load_identity,
    unlock_recipient,
)
from civicseal.keys.revocation import revoke_package
from civicseal.keys.trust import load_issuers
from civicseal.keys.unlock import MAX_FAILURES, UnlockGrant, unlock
from civicseal.ledger.models import Package, Recipient
from civicseal.store.fieldcrypt import FieldCipher
from civicseal.store.home import Home

NOW = datetime(2026, 11, 22, 10, 0, 0, tzinfo=UTC)
ACTOR = "test:clerk"
SOURCE = "192.0.2.10"

# --------------------------------------------------------------------------------------------------
# Helpers shared with test_key_service.py: packages and custody rows written directly, as the sealing
# and custody sides would write them.
# --------------------------------------------------------------------------------------------------


@dataclass
class Contractor:
    name: str
    token: str
    secret: str  # the contractor's own AGE-SECRET-KEY-1…

    @property
    def identity(self) -> X25519Identity:
        return X25519Identity(self.secret)

    @property
    def token_id(self) -> str:
        return self.token.split("_")[1]


def make_contractor(engine: Engine, name: str, *, now: datetime = NOW) -> Contractor:
    secret, public = generate_identity()
    token = add_recipient(engine, name, public, now=now, actor=ACTOR)
    return Contractor(name, token, secret)


def add_package(
    home: Home,
    cipher: FieldCipher,
    recipient: str,
    package_id: str,
    *,
    mode: str = "tethered",
    secret: str | None = None,
    expires_at: datetime = NOW + timedelta(days=30),
    custody: tuple[tuple[str, datetime], ...] = (("created", NOW - timedelta(days=1)),),
    key_service_url: str | None = "https://keys.city.example/",
    manifest: bytes = b"{}",
    payload_sha256: str = "0" * 64,
) -> str:
    """Insert a package row (and its custody events); return the package identity (tethered) or ""."""
    if mode == "tethered" and secret is None:
        secret, _ = generate_identity()
    wrapped = wrap_identity(unlock_public_key(home.keys), package_id, secret) if mode == "tethered" else None
    with home.engine.begin() as conn:
        recipient_id = conn.execute(select(Recipient.id).where(Recipient.name == recipient)).scalar_one()
        conn.execute(
            Package.__table__.insert().values(
                id=package_id,
                purpose="contact-centre-status",
                programme_id=None,
                recipient_id=recipient_id,
                mode=mode,
                key_service_url=key_service_url if mode == "tethered" else None,
                created_at=NOW - timedelta(days=1),
                expires_at=expires_at,
                manifest=manifest,
                payload_sha256=payload_sha256,
                payload_format="csv",
                fields="reference_number,status",
                records=1,
                canaries=0,
                scrypt_log_n=None,
                passphrase_bits=None,
                identity_age=wrapped,
                pseudonym_key_enc=cipher.encrypt("pseudonym-key", "packages.pseudonym_key", package_id),
                revoked_at=None,
                revoked_reason=None,
            )
        )
        for event, at in custody:
            add_custody(conn, package_id, event, at)
    return secret or ""


def add_custody(conn, package_id: str, event: str, at: datetime) -> None:  # type: ignore[no-untyped-def]
    conn.execute(
        CustodyEvent.__table__.insert().values(
            package_id=package_id,
            event=event,
            holder="city",
            at=at,
            location=None,
            note=None,
            recorded_at=at,
            recorded_by=ACTOR,
        )
    )


def log_rows(engine: Engine) -> list[dict]:
    with engine.connect() as conn:
        rows = conn.execute(select(UnlockAttempt.__table__).order_by(UnlockAttempt.id)).mappings().all()
    return [dict(r) for r in rows]


def outcomes(engine: Engine) -> list[str]:
    return [r["outcome"] for r in log_rows(engine)]


def audit_actions(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(select(AuditEntry.action).order_by(AuditEntry.seq)).scalars())


def open_grant(grant: UnlockGrant, contractor: Contractor) -> str:
    return pyrage.decrypt(grant.identity_age, [pyrage.x25519.Identity.from_str(contractor.secret)]).decode()


def try_unlock(home: Home, cipher: FieldCipher, package_id: str, token: str, now: datetime = NOW) -> str:
    """Unlock and return "granted" or the refusal message."""
    try:
        unlock(home.engine, load_unlock_key(home.keys), package_id=package_id, token=token, source=SOURCE, now=now)
    except UnlockRefused as exc:
        return str(exc)
    return "granted"


def is_locked(engine: Engine, name: str) -> bool:
    return next(r for r in list_recipients(engine) if r.name == name).locked_at is not None


# --------------------------------------------------------------------------------------------------
# keygen and identities (no store)
# --------------------------------------------------------------------------------------------------


def test_keygen_writes_a_private_identity_and_never_overwrites(tmp_path: Path) -> None:
    out = tmp_path / "contractor.key"
    public = keygen(out)
    assert public.startswith("age1")
    assert out.stat().st_mode & 0o777 == 0o600
    assert load_identity(out).recipient == public
    before = out.read_bytes()
    with pytest.raises(KeyServiceError, match="never overwritten"):
        keygen(out)
    assert out.read_bytes() == before


def test_load_identity_reads_the_age_keygen_form(tmp_path: Path) -> None:
    secret, public = generate_identity()
    path = tmp_path / "k"
    path.write_text(f"# created: 2026-11-22T10:00:00Z\n# public key: {public}\n{secret}\n")
    assert load_identity(path).recipient == public
    path.write_text("# nothing here\n")
    with pytest.raises(KeyServiceError, match="exactly one"):
        load_identity(path)


# --------------------------------------------------------------------------------------------------
# Recipients and tokens
# --------------------------------------------------------------------------------------------------


def all_stored_text(home: Home) -> str:
    """Every value of every table, as text — and, for SQLite, the raw bytes of the database files."""
    parts: list[str] = []
    with home.engine.connect() as conn:
        for table in inspect(conn).get_table_names():
            for row in conn.execute(text(f'SELECT * FROM "{table}"')):
                parts.append(repr(tuple(row)))
    for f in home.path.glob("civicseal.db*"):
        parts.append(f.read_bytes().decode("latin-1"))
    return "\n".join(parts)


def test_token_is_shown_once_and_stored_only_as_its_hash(home: Home) -> None:
    _, public = generate_identity()
    token = add_recipient(home.engine, "contact-centre", public, now=NOW, actor=ACTOR)
    match = TOKEN_RE.fullmatch(token)
    assert match, "cst_<16 hex>_<52 base32>"
    assert len(base64.b32decode(match.group(2).upper() + "====")) == 32  # 256-bit secret
    with home.engine.connect() as conn:
        row = conn.execute(select(Recipient.__table__)).mappings().one()
    assert row["token_id"] == match.group(1)
    assert row["token_sha256"] == hashlib.sha256(token.encode()).hexdigest()
    assert row["age_recipient"] == public and row["locked_at"] is None
    stored = all_stored_text(home)
    assert token not in stored and match.group(2) not in stored
    assert audit_actions(home.engine)[-1] == "keys.recipient-added"
    # A second token for the same name is never issued.
    with pytest.raises(KeyServiceError, match="already exists"):
        add_recipient(home.engine, "contact-centre", public, now=NOW, actor=ACTOR)


def test_tokens_are_unique(home: Home) -> None:
    _, public = generate_identity()
    tokens = {add_recipient(home.engine, f"r{i}", public, now=NOW, actor=ACTOR) for i in range(5)}
    assert len(tokens) == 5 and len({t.split("_")[1] for t in tokens}) == 5


@pytest.mark.parametrize(
    ("name", "age_recipient", "message"),
    [
        ("print shop", None, "recipient name"),
        ("x" * 65, None, "recipient name"),
        ("", None, "recipient name"),
        ("bank", "age1notakey", "not an age X25519 recipient"),
        ("bank", "AGE-SECRET-KEY-1QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ", "not an age"),
    ],
)
def test_add_recipient_validates(home: Home, name: str, age_recipient: str | None, message: str) -> None:
    _, public = generate_identity()
    with pytest.raises(KeyServiceError, match=message) as info:
        add_recipient(home.engine, name, age_recipient or public, now=NOW, actor=ACTOR)
    if age_recipient:
        assert age_recipient not in str(info.value)  # the value is never echoed
    assert list_recipients(home.engine) == []


def test_list_recipients(home: Home) -> None:
    make_contractor(home.engine, "print-shop")
    make_contractor(home.engine, "bank")
    listed = list_recipients(home.engine)
    assert [r.name for r in listed] == ["bank", "print-shop"]
    assert listed[0].created_at == NOW and listed[0].locked_at is None
    keys = {"name", "age_recipient", "token_id", "created_at", "locked_at", "locked", "display_name", "contractor"}
    assert set(listed[0].as_dict()) == keys
    assert (listed[0].display_name, listed[0].contractor) == ("bank", None)


# --------------------------------------------------------------------------------------------------
# The unlock decision
# --------------------------------------------------------------------------------------------------


def test_grant_releases_the_identity_encrypted_to_the_recipient(home: Home, cipher: FieldCipher) -> None:
    alice = make_contractor(home.engine, "contact-centre")
    secret = add_package(home, cipher, "contact-centre", "pkg_ok")
    grant = unlock(
        home.engine, load_unlock_key(home.keys), package_id="pkg_ok", token=alice.token, source=SOURCE, now=NOW
    )
    assert grant.package_id == "pkg_ok" and grant.recipient == "contact-centre"
    assert grant.identity_age.startswith(b"age-encryption.org/v1\n")
    assert secret.encode() not in grant.identity_age
    assert open_grant(grant, alice) == secret
    assert base64.b64decode(grant.identity_age_b64) == grant.identity_age
    (row,) = log_rows(home.engine)
    assert row["outcome"] == "granted" and row["package_id"] == "pkg_ok" and row["source"] == SOURCE
    assert row["token_id"] == alice.token_id and row["recipient_id"] is not None
    # The unlock log is the record: attempts are not also audit rows.
    assert "keys.unlocked" not in audit_actions(home.engine)


@dataclass(frozen=True)
class Case:
    token: str  # good, wrong-secret, unknown-id, malformed, empty
    package: str
    outcome: str
    message: str


CASES = {
    "granted": Case("good", "pkg_ok", "granted", "granted"),
    "empty token": Case("empty", "pkg_ok", "bad-token", "refused: bad token"),
    "malformed token": Case("malformed", "pkg_ok", "bad-token", "refused: bad token"),
    "wrong secret": Case("wrong-secret", "pkg_ok", "bad-token", "refused: bad token"),
    "unknown token id": Case("unknown-id", "pkg_ok", "unknown-token", "refused: bad token"),
    "no such package": Case("good", "pkg_nothing", "no-such-package", "refused: unknown package"),
    "odd package id": Case("good", "pkg nothing/../x", "no-such-package", "refused: unknown package"),
    "another's package": Case("good", "pkg_bobs", "wrong-package", "refused: unknown package"),
    "recipient mode": Case("good", "pkg_recipient_mode", "not-tethered", "refused: not tethered"),
    "revoked": Case("good", "pkg_revoked", "revoked", "refused: revoked"),
    "expired": Case("good", "pkg_expired", "expired", "refused: expired"),
    "lost": Case("good", "pkg_lost", "custody-lost", "refused: custody lost"),
    "returned": Case("good", "pkg_returned", "custody-returned", "refused: custody returned"),
    "destroyed": Case("good", "pkg_destroyed", "custody-destroyed", "refused: custody destroyed"),
    "found": Case("good", "pkg_found", "custody-found", "refused: custody found"),
    "handed over": Case("good", "pkg_handed_over", "granted", "granted"),
    "received": Case("good", "pkg_received", "granted", "granted"),
}


def world(home: Home, cipher: FieldCipher) -> Contractor:
    """Alice with one package in every state, and Bob with one of his own."""
    alice = make_contractor(home.engine, "alice")
    make_contractor(home.engine, "bob")
    e, day = home.engine, timedelta(days=1)
    add_package(home, cipher, "alice", "pkg_ok")
    add_package(home, cipher, "bob", "pkg_bobs")
    add_package(home, cipher, "alice", "pkg_recipient_mode", mode="recipient")
    add_package(home, cipher, "alice", "pkg_revoked")
    revoke_package(e, "pkg_revoked", "reported lost", now=NOW - day, actor=ACTOR)
    add_package(home, cipher, "alice", "pkg_expired", expires_at=NOW - timedelta(seconds=1))
    for state in ("lost", "returned", "destroyed", "found", "handed-over", "received"):
        events = (("created", NOW - 3 * day), ("handed-over", NOW - 2 * day), (state, NOW - day))
        add_package(home, cipher, "alice", f"pkg_{state.replace('-', '_')}", custody=events)
    return alice


def token_of(kind: str, alice: Contractor) -> str:
    head, tid, secret = alice.token.split("_")
    wrong = ("a" if secret[0] != "a" else "b") + secret[1:]
    return {
        "good": alice.token,
        "empty": "",
        "malformed": "cst_nothex_" + secret,
        "wrong-secret": f"{head}_{tid}_{wrong}",
        "unknown-id": f"{head}_{'0' * 16}_{secret}",
    }[kind]


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_each_outcome_is_refused_with_a_safe_reason_and_logged(home: Home, cipher: FieldCipher, case: Case) -> None:
    alice = world(home, cipher)
    assert try_unlock(home, cipher, case.package, token_of(case.token, alice)) == case.message
    row = log_rows(home.engine)[-1]
    assert row["outcome"] == case.outcome
    assert row["at"].replace(tzinfo=UTC) == NOW and row["source"] == SOURCE
    assert row["package_id"] == (None if " " in case.package else case.package)
    assert row["token_id"] == {"empty": None, "malformed": None, "unknown-id": "0" * 16}.get(case.token, alice.token_id)
    assert (row["recipient_id"] is None) == (case.token in ("empty", "malformed", "unknown-id"))


def test_expiry_has_no_skew(home: Home, cipher: FieldCipher) -> None:
    alice = make_contractor(home.engine, "alice")
    expires = NOW + timedelta(hours=1)
    add_package(home, cipher, "alice", "pkg_x", expires_at=expires)
    assert try_unlock(home, cipher, "pkg_x", alice.token, now=expires - timedelta(seconds=1)) == "granted"
    assert try_unlock(home, cipher, "pkg_x", alice.token, now=expires) == "refused: expired"


def test_custody_is_the_latest_event_by_time_then_id(home: Home, cipher: FieldCipher) -> None:
    alice = make_contractor(home.engine, "alice")
    t = NOW - timedelta(days=3)
    add_package(home, cipher, "alice", "pkg_c", custody=(("created", t), ("handed-over", t + timedelta(hours=1))))
    with home.engine.begin() as conn:
        add_custody(conn, "pkg_c", "lost", t + timedelta(hours=5))
        add_custody(conn, "pkg_c", "received", t + timedelta(hours=2))  # recorded later, happened earlier
    assert try_unlock(home, cipher, "pkg_c", alice.token) == "refused: custody lost"
    with home.engine.begin() as conn:
        add_custody(conn, "pkg_c", "received", t + timedelta(hours=5))  # same time as the loss: the later row wins
    assert try_unlock(home, cipher, "pkg_c", alice.token) == "granted"


def test_a_package_with_no_custody_is_refused(home: Home, cipher: FieldCipher) -> None:
    alice = make_contractor(home.engine, "alice")
    add_package(home, cipher, "alice", "pkg_none", custody=())
    assert try_unlock(home, cipher, "pkg_none", alice.token) == "refused: custody unknown"
    assert outcomes(home.engine) == ["custody-unknown"]


def test_an_identity_that_does_not_decrypt_is_the_citys_fault(home: Home, cipher: FieldCipher) -> None:
    alice = make_contractor(home.engine, "alice")
    add_package(home, cipher, "alice", "pkg_bad")
    with home.engine.begin() as conn:
        conn.execute(Package.__table__.update().values(identity_age=b"\0" * 60))
    with pytest.raises(KeyServiceError) as info:
        unlock(home.engine, load_unlock_key(home.keys), package_id="pkg_bad", token=alice.token, source=SOURCE, now=NOW)
    assert not isinstance(info.value, UnlockRefused)
    assert outcomes(home.engine) == ["error"]


def test_every_attempt_is_logged_in_order(home: Home, cipher: FieldCipher) -> None:
    alice = world(home, cipher)
    attempts = [
        ("pkg_ok", "good"),
        ("pkg_ok", "wrong-secret"),
        ("pkg_revoked", "good"),
        ("pkg_nothing", "unknown-id"),
        ("pkg_lost", "good"),
        ("pkg_ok", "good"),
    ]
    for i, (package, kind) in enumerate(attempts):
        try_unlock(home, cipher, package, token_of(kind, alice), now=NOW + timedelta(seconds=i))
    rows = log_rows(home.engine)
    assert [r["outcome"] for r in rows] == [
        "granted",
        "bad-token",
        "revoked",
        "unknown-token",
        "custody-lost",
        "granted",
    ]
    assert [r["package_id"] for r in rows] == [p for p, _ in attempts]
    assert [r["at"].replace(tzinfo=UTC) for r in rows] == [NOW + timedelta(seconds=i) for i in range(len(attempts))]


# --------------------------------------------------------------------------------------------------
# Lock-out
# --------------------------------------------------------------------------------------------------


def test_ten_failures_within_an_hour_lock_the_token(home: Home, cipher: FieldCipher) -> None:
    alice = world(home, cipher)
    wrong = token_of("wrong-secret", alice)
    # Unknown token ids count against no one.
    for i in range(12):
        try_unlock(home, cipher, "pkg_ok", token_of("unknown-id", alice), now=NOW + timedelta(seconds=i))
    # Nine failures of several kinds over 50 minutes: still open.
    failures = [("pkg_ok", wrong), ("pkg_revoked", alice.token), ("pkg_bobs", alice.token), ("pkg_lost", alice.token)]
    for i in range(MAX_FAILURES - 1):
        package, token = failures[i % len(failures)]
        try_unlock(home, cipher, package, token, now=NOW + timedelta(minutes=i * 50 / 8))
    assert not is_locked(home.engine, "alice")
    assert try_unlock(home, cipher, "pkg_ok", alice.token, now=NOW + timedelta(minutes=51)) == "granted"
    # The tenth, 59 minutes after the first: locked.
    assert try_unlock(home, cipher, "pkg_ok", wrong, now=NOW + timedelta(minutes=59)) == "refused: bad token"
    assert is_locked(home.engine, "alice")
    assert outcomes(home.engine)[-2:] == ["bad-token", "locked-out"]
    assert audit_actions(home.engine)[-1] == "keys.locked-out"
    # Locked: the holder is told so; anyone else still hears only "bad token".
    later = NOW + timedelta(hours=5)
    assert try_unlock(home, cipher, "pkg_ok", alice.token, now=later) == "refused: token locked"
    assert try_unlock(home, cipher, "pkg_ok", wrong, now=later) == "refused: bad token"
    assert outcomes(home.engine)[-2:] == ["locked", "locked"]
    # Only the city unlocks; failures before the unlock do not count again.
    unlock_recipient(home.engine, "alice", now=later, actor=ACTOR)
    assert not is_locked(home.engine, "alice")
    assert outcomes(home.engine)[-1] == "unlocked-by-city"
    assert audit_actions(home.engine)[-1] == "keys.unlocked-by-city"
    assert try_unlock(home, cipher, "pkg_ok", wrong, now=later) == "refused: bad token"
    assert try_unlock(home, cipher, "pkg_ok", alice.token, now=later) == "granted"
    with pytest.raises(KeyServiceError, match="not locked"):
        unlock_recipient(home.engine, "alice", now=later, actor=ACTOR)
    with pytest.raises(KeyServiceError, match="no recipient"):
        unlock_recipient(home.engine, "carol", now=later, actor=ACTOR)


def test_ten_failures_spread_over_more_than_an_hour_do_not_lock(home: Home, cipher: FieldCipher) -> None:
    alice = world(home, cipher)
    wrong = token_of("wrong-secret", alice)
    for i in range(MAX_FAILURES + 5):  # one every 7 minutes: never 10 within an hour
        try_unlock(home, cipher, "pkg_ok", wrong, now=NOW + timedelta(minutes=7 * i))
    assert not is_locked(home.engine, "alice")
    assert "locked-out" not in outcomes(home.engine)
    assert try_unlock(home, cipher, "pkg_ok", alice.token, now=NOW + timedelta(hours=3)) == "granted"


def test_concurrent_failures_lock_exactly_once(home: Home, cipher: FieldCipher) -> None:
    """Workers racing past the limit: the recipient row lock lets exactly ten failures through."""
    alice = world(home, cipher)
    wrong = token_of("wrong-secret", alice)
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            barrier.wait()
            for _ in range(2):
                try_unlock(home, cipher, "pkg_ok", wrong)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    found = outcomes(home.engine)
    assert found.count("bad-token") == MAX_FAILURES
    assert found.count("locked-out") == 1
    assert found.count("locked") == 16 - MAX_FAILURES
    assert is_locked(home.engine, "alice")


# --------------------------------------------------------------------------------------------------
# Revocation
# --------------------------------------------------------------------------------------------------


def test_revocation_takes_effect_at_once_and_is_final(home: Home, cipher: FieldCipher) -> None:
    alice = make_contractor(home.engine, "alice")
    add_package(home, cipher, "alice", "pkg_r")
    assert try_unlock(home, cipher, "pkg_r", alice.token) == "granted"
    done = revoke_package(home.engine, "pkg_r", "USB stick reported lost", now=NOW, actor=ACTOR)
    assert done.effective and done.revoked_at == NOW
    assert try_unlock(home, cipher, "pkg_r", alice.token) == "refused: revoked"
    with pytest.raises(KeyServiceError, match=r"already revoked.*final"):
        revoke_package(home.engine, "pkg_r", "again", now=NOW, actor=ACTOR)
    with home.engine.connect() as conn:
        row = conn.execute(select(Package.revoked_at, Package.revoked_reason)).one()
    assert row.revoked_reason == "USB stick reported lost"
    assert audit_actions(home.engine).count("keys.package-revoked") == 1
    with home.engine.connect() as conn:
        details = conn.execute(select(AuditEntry.details).where(AuditEntry.action == "keys.package-revoked")).scalar()
    assert "USB" not in details  # the reason may name a person: it stays with the package


def test_revoke_refuses_what_it_cannot_do(home: Home, cipher: FieldCipher) -> None:
    make_contractor(home.engine, "alice")
    add_package(home, cipher, "alice", "pkg_rm", mode="recipient")
    with pytest.raises(KeyServiceError, match="no package"):
        revoke_package(home.engine, "pkg_missing", "lost", now=NOW, actor=ACTOR)
    with pytest.raises(KeyServiceError, match="needs a reason"):
        revoke_package(home.engine, "pkg_rm", "  ", now=NOW, actor=ACTOR)
    with pytest.raises(KeyServiceError, match="one line"):
        revoke_package(home.engine, "pkg_rm", "a\nb", now=NOW, actor=ACTOR)
    done = revoke_package(home.engine, "pkg_rm", "lost", now=NOW, actor=ACTOR)
    assert not done.effective  # a recipient-mode package opens offline: on record, stops no one


# --------------------------------------------------------------------------------------------------
# The command line
# --------------------------------------------------------------------------------------------------


def cli(home: Home | None, *args: str) -> int:
    return run([*args, "--home", str(home.path)] if home else list(args))


def test_cli_recipient_commands(home: Home, cipher: FieldCipher, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    key = tmp_path / "contractor.key"
    assert cli(None, "recipient", "keygen", "--out", str(key)) == 0
    public = capsys.readouterr().out.strip()
    assert re.fullmatch(r"age1[0-9a-z]+", public) and load_identity(key).recipient == public
    assert cli(None, "recipient", "keygen", "--out", str(key)) == 1
    assert "never overwritten" in capsys.readouterr().err

    assert cli(home, "recipient", "add", "contact-centre", "--age-recipient", public) == 0
    captured = capsys.readouterr()
    token = captured.out.strip()
    assert TOKEN_RE.fullmatch(token) and "shown ONCE" in captured.err

    assert cli(home, "recipient", "list", "--json") == 0
    listed = json.loads(capsys.readouterr().out)["recipients"]
    assert [r["name"] for r in listed] == ["contact-centre"] and listed[0]["locked"] is False
    assert token not in str(listed)

    assert cli(home, "recipient", "unlock", "contact-centre") == 1
    err = capsys.readouterr().err
    assert "not locked" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1

    add_package(home, cipher, "contact-centre", "pkg_cli")
    assert cli(home, "package", "revoke", "pkg_cli", "--reason", "lost in transit") == 0
    assert "revoked" in capsys.readouterr().out
    assert cli(home, "package", "revoke", "pkg_cli", "--reason", "lost in transit") == 1
    assert "revocation is final" in capsys.readouterr().err


def test_cli_trust_add_needs_only_a_folder(home: Home, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert cli(home, "keys", "public") == 0
    name, public_line = capsys.readouterr().out.split()
    contractor_home = tmp_path / "contractor-home"  # no config.toml, no database
    assert run(["trust", "add", name, public_line, "--home", str(contractor_home)]) == 0
    assert "trusted issuer city" in capsys.readouterr().out
    assert [i.name for i in load_issuers(contractor_home)] == ["city"]
    assert sorted(p.name for p in contractor_home.iterdir()) == ["trust.toml"]
