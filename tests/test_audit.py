"""The audit chain: every kind of tampering is found, at the first bad sequence number."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import text

from civicseal.audit import log as audit
from civicseal.cli import run
from civicseal.store.engine import transaction
from civicseal.store.home import Home


@pytest.fixture
def chained(home: Home) -> Home:
    with transaction(home.engine) as conn:
        for n in range(2, 7):  # init wrote row 1
            audit.append(conn, "test.step", "thing", n, {"count": n}, actor="os:test")
    return home


def _bad_seq(home: Home) -> int | None:
    with home.engine.connect() as conn:
        return audit.verify(conn).first_bad_seq


def _sql(home: Home, statement: str, **params: object) -> None:
    with transaction(home.engine) as conn:
        conn.execute(text(statement), params)


def test_an_intact_chain_verifies(chained: Home, capsys: pytest.CaptureFixture[str]) -> None:
    with chained.engine.connect() as conn:
        result = audit.verify(conn)
    assert result.ok and result.rows == 6
    assert run(["audit", "verify", "--home", str(chained.path)]) == 0
    assert "6 rows" in capsys.readouterr().out


def test_an_edited_row_is_named(chained: Home, capsys: pytest.CaptureFixture[str]) -> None:
    _sql(chained, "UPDATE audit_log SET details = :forged WHERE seq = 4", forged='{"count":999}')
    assert _bad_seq(chained) == 4
    assert run(["audit", "verify", "--home", str(chained.path)]) == 1
    assert "sequence 4" in capsys.readouterr().err


def test_a_deleted_row_is_named(chained: Home) -> None:
    _sql(chained, "DELETE FROM audit_log WHERE seq = 3")
    assert _bad_seq(chained) == 3


def test_a_deleted_last_row_is_named(chained: Home) -> None:
    _sql(chained, "DELETE FROM audit_log WHERE seq = 6")
    assert _bad_seq(chained) == 6


def test_an_inserted_row_is_named(chained: Home) -> None:
    # A row slipped in between 3 and 4: everything from 4 on moves up by one, with its hashes copied.
    _sql(chained, "UPDATE audit_log SET seq = seq + 100 WHERE seq >= 4")
    _sql(chained, "UPDATE audit_log SET seq = seq - 99 WHERE seq >= 104")
    _sql(
        chained,
        "INSERT INTO audit_log (seq, at, actor, action, object_type, object_id, details, prev_hash, hash)"
        " SELECT 4, at, actor, 'forged', object_type, object_id, details, prev_hash, hash FROM audit_log WHERE seq = 3",
    )
    assert _bad_seq(chained) == 4


def test_reordered_rows_are_named(chained: Home) -> None:
    _sql(chained, "UPDATE audit_log SET seq = 100 WHERE seq = 3")
    _sql(chained, "UPDATE audit_log SET seq = 3 WHERE seq = 5")
    _sql(chained, "UPDATE audit_log SET seq = 5 WHERE seq = 100")
    assert _bad_seq(chained) == 3


def test_show_lists_the_newest_rows_without_personal_values(chained: Home, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["audit", "show", "--limit", "2", "--json", "--home", str(chained.path)]) == 0
    import json

    shown = json.loads(capsys.readouterr().out)["entries"]
    assert [row["seq"] for row in shown] == [5, 6]
    assert shown[0]["actor"] == "os:test"


def test_a_batch_chains_exactly_as_rows_appended_one_by_one(chained: Home) -> None:
    """append_many takes the head once; the rows and hashes are those of single appends."""
    at = datetime(2026, 11, 27, 1, 0, tzinfo=UTC)
    entries = [audit.Entry("test.batch", "thing", n, {"n": n}, actor="os:test", now=at) for n in range(3)]
    with transaction(chained.engine) as conn:
        first = [audit.append(conn, e.action, e.object_type, e.object_id, e.details, actor=e.actor, now=at)
                 for e in entries]  # fmt: skip
        one_by_one = [row["hash"] for row in audit.entries(conn, last=3)]
        conn.execute(text("DELETE FROM audit_log WHERE seq >= :s"), {"s": first[0]})
        previous = conn.execute(text("SELECT hash FROM audit_log WHERE seq = :s"), {"s": first[0] - 1}).scalar_one()
        conn.execute(text("UPDATE audit_head SET seq = :s, hash = :h"), {"s": first[0] - 1, "h": previous})
        assert audit.append_many(conn, entries) == first
        assert [row["hash"] for row in audit.entries(conn, last=3)] == one_by_one
        assert audit.append_many(conn, []) == [] and audit.verify(conn).ok
