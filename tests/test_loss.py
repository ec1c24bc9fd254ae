"""Lost means revoked (DESIGN): a loss recorded by any path revokes at once and opens or joins an incident,
and nothing recorded after it (found, returned) makes the package openable again; on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import random
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from civicseal import cseal as fmt
from civicseal.cli import run
from civicseal.custody.errors import CustodyError
from civicseal.custody.service import Event, current_state, record_event, unlock_allowed
from civicseal.incident.errors import IncidentError
from civicseal.incident.report import build_report
from civicseal.incident.service import close_incident, list_incidents, open_incident, record_lost_event
from civicseal.keys.city import load_unlock_key
from civicseal.keys.errors import UnlockRefused
from civicseal.keys.unlock import unlock
from civicseal.seal.service import SealRequest, seal
from civicseal.store.fieldcrypt import FieldCipher
from civicseal.store.home import Home
from tests.cities import NOW, PROGRAMME, contractor, entitled_city

H = timedelta(hours=1)


@pytest.fixture
def out(home: Home, tmp_path: Path) -> tuple[Home, str]:
    """A tethered mailing package handed over to the print shop; returns the recipient's token too."""
    entitled_city(home, tmp_path, residents=600)
    _, token = contractor(home, tmp_path)
    return home, token


def _package(home: Home, tmp_path: Path, mode: fmt.Mode = fmt.Mode.TETHERED, seed: int = 1) -> str:
    request = SealRequest(PROGRAMME, "confirmation-mailing", "printshop", tmp_path / f"p{seed}.cseal", mode=mode)
    package_id = seal(home, request, now=NOW, rng=random.Random(seed)).package_id
    record_event(home.engine, package_id, Event.HANDED_OVER, holder="印刷会社", at=NOW + H, now=NOW + H)
    return package_id


def _opens(home: Home, cipher: FieldCipher, token: str, package_id: str, at: timedelta) -> bool:
    try:
        unlock(
            home.engine,
            load_unlock_key(home.keys),
            package_id=package_id,
            token=token,
            source="192.0.2.10",
            now=NOW + at,
        )
    except UnlockRefused:
        return False
    return True


def _actions(home: Home) -> list[str]:
    with home.engine.connect() as conn:
        return list(conn.execute(text("SELECT action FROM audit_log ORDER BY seq")).scalars())


def test_lost_recorded_in_custody_revokes_opens_an_incident_and_found_never_reopens(
    out, cipher: FieldCipher, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home, token = out
    package_id = _package(home, tmp_path)
    assert _opens(home, cipher, token, package_id, 2 * H)
    capsys.readouterr()

    code = run(
        ["custody", "record", package_id, "--event", "lost", "--holder", "配送業者 佐藤", "--note", "鞄ごと紛失",
         "--at", "2026-11-22T15:00+09:00", "--json", "--home", str(home.path)]
    )  # fmt: skip
    shown = json.loads(capsys.readouterr().out)
    assert code == 0 and shown["event"] == "lost" and shown["revoked_now"] and shown["opened"]
    incident_id = shown["incident_id"]
    assert _actions(home)[-3:] == ["keys.package-revoked", "custody.lost", "incident.open"]
    assert not _opens(home, cipher, token, package_id, 7 * H)
    [incident] = list_incidents(home.engine)
    assert incident.id == incident_id and incident.revoked_at is not None and incident.reported_by
    assert build_report(home, incident_id, now=NOW + 8 * H).content.households_affected > 0  # a report can be made

    # reported again through `incident open`: refused, naming the incident that already exists
    with pytest.raises(IncidentError, match=rf"already lost \(incident {incident_id}: `civicseal incident report"):
        open_incident(
            home, package_id=package_id, lost_at=NOW + 6 * H, reported_at=NOW + 7 * H, reported_by="総務課",
            circumstances="同じ紛失", now=NOW + 8 * H,
        )  # fmt: skip

    # found, lost again while the incident is open: the loss joins it
    record_event(home.engine, package_id, Event.FOUND, holder="警察署", at=NOW + 9 * H, now=NOW + 9 * H)
    again = record_lost_event(home, package_id, holder="警察署", at=NOW + 10 * H, now=NOW + 10 * H)
    assert again.incident_id == incident_id and not again.opened and not again.revoked_now
    assert _actions(home)[-1] == "incident.lost-again" and len(list_incidents(home.engine)) == 1

    # found, returned: never handed over again, never unlocked again
    close_incident(home, incident_id, found_at=NOW + 11 * H, outcome="交番に届けられた", now=NOW + 12 * H)
    record_event(home.engine, package_id, Event.RETURNED, holder="city", at=NOW + 13 * H, now=NOW + 13 * H)
    with pytest.raises(CustodyError, match="is revoked: it may be returned or destroyed, not handed over"):
        record_event(home.engine, package_id, Event.HANDED_OVER, holder="印刷会社", at=NOW + 14 * H, now=NOW + 14 * H)
    with home.engine.connect() as conn:
        assert current_state(conn, package_id) is Event.RETURNED and not unlock_allowed(conn, package_id)
    assert not _opens(home, cipher, token, package_id, 15 * H)

    # lost once more after the incident closed: a new incident
    third = record_lost_event(home, package_id, holder="city", at=NOW + 16 * H, now=NOW + 16 * H)
    assert third.opened and third.incident_id != incident_id


def test_custody_alone_cannot_record_a_loss(out, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    home, _ = out
    package_id = _package(home, tmp_path)
    with pytest.raises(CustodyError, match="`civicseal incident open`"):
        record_event(home.engine, package_id, Event.LOST, holder="x", at=NOW + 2 * H, now=NOW + 2 * H)
    with home.engine.connect() as conn:
        assert current_state(conn, package_id) is Event.HANDED_OVER
        revoked = conn.execute(text("SELECT revoked_at FROM packages")).scalar_one()
    assert revoked is None and list_incidents(home.engine) == []
    # the CLI in plain text says what happened and where the incident is
    capsys.readouterr()
    assert (
        run(["custody", "record", package_id, "--event", "lost", "--holder", "印刷会社", "--home", str(home.path)]) == 0
    )
    said = capsys.readouterr().out
    assert f"recorded lost of package {package_id}" in said and "revoked now" in said and "incident 1 opened" in said


def test_a_recipient_mode_loss_opens_an_incident_without_a_revocation_to_make(out, tmp_path: Path) -> None:
    home, _ = out
    package_id = _package(home, tmp_path, fmt.Mode.RECIPIENT)
    loss = record_lost_event(home, package_id, holder="印刷会社", at=NOW + 2 * H, now=NOW + 3 * H)
    assert loss.opened and not loss.revoked_now
    with home.engine.connect() as conn:
        assert current_state(conn, package_id) is Event.LOST
    with pytest.raises(IncidentError, match="lost at is in the future"):
        record_lost_event(home, package_id, holder="x", at=NOW + 9 * H, now=NOW + 3 * H)
