"""The entitlement life cycle's one door: checked transitions, history and audit, on both stores."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from sqlalchemy import select

from civicseal.audit import log as audit
from civicseal.programme import entitlements
from civicseal.programme.errors import ProgrammeError
from civicseal.programme.lifecycle import Status
from civicseal.programme.models import Entitlement
from civicseal.programme.reference import printed
from civicseal.programme.service import run_programme
from civicseal.store.engine import transaction
from civicseal.store.fieldcrypt import FieldCipher
from civicseal.store.home import Home
from tests.registers import resident, tax
from tests.test_programme import NOW, benefit, load


def _references(home: Home, cipher: FieldCipher, tmp_path: Path, households: int) -> list[str]:
    residents = [resident(str(i), f"H{i}") for i in range(households)]
    load(home, cipher, tmp_path, residents, [tax(str(i)) for i in range(households)])
    run_programme(home.engine, benefit(home), rng=random.Random(3), now=NOW)
    with home.engine.connect() as conn:
        return sorted(conn.execute(select(Entitlement.reference_number)).scalars())


def test_change_status_follows_the_life_cycle_and_is_recorded(home: Home, cipher: FieldCipher, tmp_path: Path) -> None:
    (ref,) = _references(home, cipher, tmp_path, 1)
    with transaction(home.engine) as conn:
        change = entitlements.change_status(
            conn, printed(ref), Status.NOTIFIED, reason="letter posted", now=NOW, actor="officer:sato"
        )
    assert (change.old, change.new) == (Status.ELIGIBLE, Status.NOTIFIED)
    with pytest.raises(ProgrammeError, match="cannot go from notified to paid"), transaction(home.engine) as conn:
        entitlements.change_status(conn, ref, Status.PAID, reason="x", now=NOW)
    with transaction(home.engine) as conn:
        entitlements.change_status(conn, ref, Status.WITHDRAWN, reason="moved out before D", now=NOW, actor="a")
    with pytest.raises(ProgrammeError, match="final"), transaction(home.engine) as conn:
        entitlements.change_status(conn, ref, Status.CONFIRMED, reason="x", now=NOW)
    with home.engine.connect() as conn:
        row = entitlements.find(conn, ref)
        steps = [(h["from_status"], h["to_status"], h["actor"]) for h in entitlements.history(conn, row["id"])]
        last = audit.entries(conn, last=1)[0]
    assert row["status"] == "withdrawn"
    assert steps == [("eligible", "notified", "officer:sato"), ("notified", "withdrawn", "a")]
    assert (last["action"], last["object_id"]) == ("entitlement.withdrawn", ref)
    assert "moved out" not in last["details"]  # reasons stay out of the chain


def test_a_reference_number_is_checked_before_any_query(home: Home) -> None:
    with home.engine.connect() as conn:
        for wrong in ("1234 5678 9012", "12345", "", "abcd efgh ijkl"):
            with pytest.raises(entitlements.UnknownReference, match="check"):
                entitlements.find(conn, wrong)


def test_a_reference_number_typed_with_a_japanese_input_method_is_found(
    home: Home, cipher: FieldCipher, tmp_path: Path
) -> None:
    """An operator whose input method is on types full-width digits and spaces, or ー for a hyphen."""
    (ref,) = _references(home, cipher, tmp_path, 1)
    wide = "".join(chr(ord(c) + 0xFEE0) if c.isdigit() else "\u3000" for c in printed(ref))  # １２３４　５６７８…
    with home.engine.connect() as conn:
        for typed in (wide, printed(ref).replace(" ", "ー"), f" {ref} "):
            assert entitlements.find(conn, typed)["reference_number"] == ref


def test_change_many_applies_all_or_nothing(home: Home, cipher: FieldCipher, tmp_path: Path) -> None:
    refs = _references(home, cipher, tmp_path, 3)
    with home.engine.connect() as conn:
        ids = [entitlements.find(conn, r)["id"] for r in refs]
    with transaction(home.engine) as conn:
        entitlements.change_status(conn, refs[0], Status.DECLINED, reason="declined by phone", now=NOW)
    with pytest.raises(ProgrammeError, match="1 of 3"), transaction(home.engine) as conn:
        entitlements.change_many(conn, ids, Status.ELIGIBLE, Status.NOTIFIED, reason="mailing", now=NOW)
    with home.engine.connect() as conn:
        assert [entitlements.find(conn, r)["status"] for r in refs] == ["declined", "eligible", "eligible"]
    with transaction(home.engine) as conn:
        assert entitlements.change_many(conn, ids[1:], Status.ELIGIBLE, Status.NOTIFIED, reason="m", now=NOW) == 2
