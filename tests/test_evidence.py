"""Evidence that cannot be rewritten quietly: unlock attempts in the chain, anchors outside the database, and
`audit verify` catching a deleted unlock, a recomputed chain, a cut tail and a forged anchor."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, text

from civicseal.audit import anchor as anchors
from civicseal.audit import log as audit
from civicseal.audit.errors import AuditError
from civicseal.audit.models import AuditEntry
from civicseal.cli import run
from civicseal.keys.evidence import UNLOCK_ACTION, anchor, chain_unlocks, verify_evidence
from civicseal.keys.revocation import revoke_and_anchor
from civicseal.store.engine import transaction
from civicseal.store.fieldcrypt import FieldCipher
from civicseal.store.home import Home
from tests.test_keys import ACTOR, NOW, add_package, log_rows, make_contractor, try_unlock


@pytest.fixture
def unlocked(home: Home, cipher: FieldCipher) -> Home:
    """Alice: one grant, one refusal for a wrong package, one grant after; all on record."""
    alice = make_contractor(home.engine, "alice")
    add_package(home, cipher, "alice", "pkg_ok")
    assert try_unlock(home, cipher, "pkg_ok", alice.token, now=NOW) == "granted"
    assert try_unlock(home, cipher, "pkg_nothing", alice.token, now=NOW + timedelta(minutes=1)) != "granted"
    assert try_unlock(home, cipher, "pkg_ok", alice.token, now=NOW + timedelta(minutes=2)) == "granted"
    return home


def _sql(home: Home, statement: str, **params: object) -> None:
    with transaction(home.engine) as conn:
        conn.execute(text(statement), params)


def _verify(home: Home, capsys: pytest.CaptureFixture[str]) -> tuple[int, dict]:
    code = run(["audit", "verify", "--json", "--home", str(home.path)])
    return code, json.loads(capsys.readouterr().out)


def test_every_attempt_is_a_chain_entry_that_matches_its_log_row(unlocked: Home) -> None:
    rows = log_rows(unlocked.engine)
    with unlocked.engine.connect() as conn:
        chained = conn.execute(
            select(AuditEntry.object_id, AuditEntry.details).where(AuditEntry.action == UNLOCK_ACTION)
        ).all()
        evidence = chain_unlocks(conn, "pkg_ok", until=NOW + timedelta(hours=1))
    assert [(r["package_id"], r["outcome"]) for r in rows] == [
        ("pkg_ok", "granted"),
        ("pkg_nothing", "no-such-package"),
        ("pkg_ok", "granted"),
    ]
    assert [(o, json.loads(d)["unlock_id"]) for o, d in chained] == [(r["package_id"], r["id"]) for r in rows]
    assert [(e.at, e.outcome) for e in evidence] == [(NOW, "granted"), (NOW + timedelta(minutes=2), "granted")]
    check = verify_evidence(unlocked)
    assert check.ok and check.unlock_rows == 3 and check.unchained == 0


def test_deleting_a_granted_unlock_is_caught(unlocked: Home, capsys: pytest.CaptureFixture[str]) -> None:
    _sql(unlocked, "DELETE FROM unlock_log WHERE outcome = 'granted' AND at = (SELECT MAX(at) FROM unlock_log)")
    code, shown = _verify(unlocked, capsys)
    assert code == 1 and not shown.get("ok", False)
    assert "deleted from the unlock log" in shown["problem"] or "deleted" in json.dumps(shown)


def test_editing_an_unlock_row_is_caught(unlocked: Home) -> None:
    _sql(unlocked, "UPDATE unlock_log SET outcome = 'revoked' WHERE outcome = 'granted'")
    check = verify_evidence(unlocked)
    assert not check.ok and "differs from its audit entry" in check.reason


def _recompute_chain(home: Home) -> None:
    """The administrator's rewrite: drop the unlock entries, recompute every hash and the head row."""
    with transaction(home.engine) as conn:
        rows = conn.execute(select(AuditEntry.__table__).order_by(AuditEntry.seq)).mappings().all()
        kept = [r for r in rows if r["action"] != UNLOCK_ACTION]
        conn.execute(text("DELETE FROM audit_log"))
        prev = audit.GENESIS
        for seq, r in enumerate(kept, start=1):
            content = audit._canonical(
                seq, r["at"], r["actor"], r["action"], r["object_type"], r["object_id"], r["details"], r["os_user"]
            )
            digest = audit.chain_hash(prev, content)
            conn.execute(
                AuditEntry.__table__.insert().values(**(dict(r) | {"seq": seq, "prev_hash": prev, "hash": digest}))
            )
            prev = digest
        conn.execute(text("UPDATE audit_head SET seq = :seq, hash = :hash"), {"seq": len(kept), "hash": prev})
        conn.execute(text("DELETE FROM unlock_log"))


def test_a_recomputed_chain_passes_alone_but_not_against_its_anchor(unlocked: Home) -> None:
    anchor(unlocked, now=NOW + timedelta(hours=1))
    _recompute_chain(unlocked)
    with unlocked.engine.connect() as conn:
        assert audit.verify(conn).ok  # the chain by itself is consistent again: only the anchor tells
    check = verify_evidence(unlocked)
    assert not check.ok and ("rewritten" in check.reason or "tail is gone" in check.reason)


def test_a_removed_tail_is_caught_by_the_anchor(unlocked: Home, capsys: pytest.CaptureFixture[str]) -> None:
    signed = anchor(unlocked, now=NOW + timedelta(hours=1))
    _sql(unlocked, "DELETE FROM audit_log WHERE seq > :keep", keep=signed.seq - 2)
    _sql(
        unlocked,
        "UPDATE audit_head SET seq = :keep, hash = (SELECT hash FROM audit_log WHERE seq = :keep)",
        keep=signed.seq - 2,
    )
    _sql(unlocked, "DELETE FROM unlock_log WHERE id > 1")
    code, shown = _verify(unlocked, capsys)
    assert code == 1 and shown["first_bad_seq"] == signed.seq - 1 and "tail is gone" in shown["problem"]


def test_a_forged_anchor_is_refused(unlocked: Home) -> None:
    signed = anchor(unlocked, now=NOW + timedelta(hours=1))
    line = json.loads(unlocked.anchors_path.read_text().splitlines()[-1])
    line["seq"] = signed.seq + 5  # claims more rows than were ever written, signature kept
    with unlocked.anchors_path.open("a") as f:
        f.write(json.dumps(line) + "\n")
    check = verify_evidence(unlocked)
    assert not check.ok and "not signed by a trusted city key" in check.reason


def test_anchor_command_appends_and_hands_over_a_copy(
    unlocked: Home, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    copy = tmp_path / "for-the-dpo.json"
    assert run(["audit", "anchor", "--out", str(copy), "--json", "--home", str(unlocked.path)]) == 0
    shown = json.loads(capsys.readouterr().out)
    with unlocked.engine.connect() as conn:
        head = conn.execute(text("SELECT seq, hash FROM audit_head")).one()
    assert (shown["seq"], shown["hash"]) == (head.seq, head.hash)
    assert copy.read_text() == unlocked.anchors_path.read_text()  # the one line, byte for byte
    assert run(["audit", "anchor", "--out", str(copy), "--home", str(unlocked.path)]) == 1
    assert "--force" in capsys.readouterr().err
    assert run(["audit", "anchor", "--out", str(copy), "--force", "--home", str(unlocked.path)]) == 0
    assert "a copy is in" in capsys.readouterr().out
    assert len(anchors.read_anchors(unlocked.anchors_path)) == 2
    code, verified = _verify(unlocked, capsys)
    assert code == 0 and verified["anchors"] == 2 and verified["latest_anchor"]["seq"] == head.seq


def test_the_anchors_file_can_live_elsewhere(home: Home, tmp_path: Path) -> None:
    elsewhere = tmp_path / "worm" / "anchors.jsonl"
    config = home.config_path.read_text(encoding="utf-8")  # a top-level key: before any [table]
    home.config_path.write_text(f'anchors_file = "{elsewhere}"\n' + config, encoding="utf-8")
    moved = Home(home.path)
    anchor(moved, now=NOW)
    assert elsewhere.exists() and not (home.path / "anchors.jsonl").exists()


def test_revoking_anchors_at_once(home: Home, cipher: FieldCipher) -> None:
    make_contractor(home.engine, "alice")
    add_package(home, cipher, "alice", "pkg_r")
    revoke_and_anchor(home, "pkg_r", "reported lost", now=NOW, actor=ACTOR)
    (latest,) = anchors.read_anchors(home.anchors_path)
    with home.engine.connect() as conn:
        action = conn.execute(select(AuditEntry.action).where(AuditEntry.seq == latest.seq)).scalar_one()
    assert action == "keys.package-revoked"


def test_a_report_needs_intact_evidence(unlocked: Home) -> None:
    from civicseal.keys.evidence import require_intact

    assert require_intact(unlocked).ok
    _sql(unlocked, "DELETE FROM unlock_log WHERE id = 1")
    with pytest.raises(AuditError, match="cannot be relied on"):
        require_intact(unlocked)
