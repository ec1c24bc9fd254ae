"""The chain of custody (DESIGN.md, "Data model and flows: rules decided"): the transition table, times,
the audit rows, overdue packages and the `custody` commands, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert, select, update

from civicseal.audit import log as audit
from civicseal.audit.models import AuditEntry
from civicseal.cli import run
from civicseal.clock import TOKYO
from civicseal.custody.errors import CustodyError
from civicseal.custody.events import ACCOUNTED_FOR, MANUAL_EVENTS, TRANSITIONS, UNLOCKABLE, Event
from civicseal.custody.service import (
    check_next,
    current_state,
    overdue,
    parse_at,
    parse_event,
    record,
    record_event,
    timeline,
    unlock_allowed,
)
from civicseal.incident.errors import IncidentError
from civicseal.incident.service import record_lost_event
from civicseal.ledger.models import Package, Recipient
from civicseal.store.engine import transaction
from civicseal.store.home import Home

NOW = datetime(2024, 6, 1, 3, 0, tzinfo=UTC)  # 2024-06-01 12:00 in Tokyo
HOUR = timedelta(hours=1)


def add_package(
    home: Home, package_id: str, *, created: datetime = NOW, expires: datetime | None = None, revoked: bool = False
) -> str:
    """A minimal package row as sealing would leave it (dummy bytes), with its 'created' event."""
    with transaction(home.engine) as conn:
        recipient_id = conn.execute(select(Recipient.id).where(Recipient.name == "contact-centre")).scalar()
        if recipient_id is None:
            recipient_id = conn.execute(
                insert(Recipient).values(
                    name="contact-centre",
                    age_recipient="age1dummy",
                    token_id="tok1",
                    token_sha256="0" * 64,
                    created_at=created,
                )
            ).inserted_primary_key[0]
        conn.execute(
            insert(Package).values(
                id=package_id,
                purpose="contact-centre-status",
                recipient_id=recipient_id,
                mode="tethered",
                created_at=created,
                expires_at=expires or created + timedelta(days=30),
                manifest=b"{}",
                payload_sha256="0" * 64,
                payload_format="parquet",
                fields="reference_number,status",
                records=1,
                canaries=0,
                pseudonym_key_enc=b"dummy",
                revoked_at=created if revoked else None,
            )
        )
    record_event(home.engine, package_id, Event.CREATED, holder="city", at=created, actor="test", now=created)
    return package_id


def step(home: Home, package_id: str, event: Event | str, at: datetime, **texts: str) -> int:
    """One event as staff record it; a loss goes through the loss decision, as `custody record` sends it."""
    texts.setdefault("holder", "someone")
    if event == Event.LOST:
        return record_lost_event(home, package_id, at=at, actor="test", now=at, **texts).event_id  # type: ignore[arg-type]
    return record_event(home.engine, package_id, event, at=at, actor="test", now=at, **texts)  # type: ignore[arg-type]


def state(home: Home, package_id: str) -> Event | None:
    with home.engine.connect() as conn:
        return current_state(conn, package_id)


# --- the table itself (no store) ---


def test_every_state_has_a_row_and_destroyed_is_final() -> None:
    assert set(TRANSITIONS) == {None, *Event}
    assert TRANSITIONS[None] == {Event.CREATED}
    assert TRANSITIONS[Event.DESTROYED] == frozenset()
    assert [s for s, nxt in TRANSITIONS.items() if Event.FOUND in nxt] == [Event.LOST]
    assert TRANSITIONS[Event.LOST] == {Event.FOUND}
    assert Event.HANDED_OVER not in TRANSITIONS[Event.FOUND]  # a found package stays revoked
    assert not any(Event.CREATED in nxt for s, nxt in TRANSITIONS.items() if s is not None)
    assert {Event.CREATED, Event.HANDED_OVER, Event.RECEIVED} == UNLOCKABLE
    assert {Event.RETURNED, Event.DESTROYED} == ACCOUNTED_FOR
    assert Event.CREATED not in MANUAL_EVENTS


@pytest.mark.parametrize(
    ("current", "event", "message"),
    [
        (Event.HANDED_OVER, Event.FOUND, "'found' follows only 'lost'"),
        (Event.DESTROYED, Event.RETURNED, "no event can follow 'destroyed'"),
        (Event.RECEIVED, Event.CREATED, "already has its 'created' event"),
        (None, Event.HANDED_OVER, "chain starts with 'created'"),
        (Event.LOST, Event.RETURNED, "next may be found"),
    ],
)
def test_impossible_sequences_name_the_rule(current: Event | None, event: Event, message: str) -> None:
    with pytest.raises(CustodyError, match=message):
        check_next("pkg_x", current, event)


def test_parse_at_reads_naive_times_on_the_tokyo_clock() -> None:
    assert parse_at("2024-06-01T14:30") == datetime(2024, 6, 1, 5, 30, tzinfo=UTC)
    assert parse_at("2024-06-01 14:30:15") == datetime(2024, 6, 1, 14, 30, 15, tzinfo=TOKYO)
    assert parse_at("2024-06-01T05:30:00Z") == datetime(2024, 6, 1, 5, 30, tzinfo=UTC)
    assert parse_at("2024-06-01t05:30:00z") == datetime(2024, 6, 1, 5, 30, tzinfo=UTC)
    assert parse_at("2024-06-01T14:30+09:00") == datetime(2024, 6, 1, 5, 30, tzinfo=UTC)
    assert parse_at("2024-06-01T14:30+09:00").tzinfo is UTC
    for bad in ("2024-06-01", "yesterday", "2024-13-01T10:00", "", "2024/6/1", "2024/6/1 25:00", "平成32年1月1日 9:00"):
        with pytest.raises(CustodyError):
            parse_at(bad)


@pytest.mark.parametrize(
    "typed",
    ["2024/6/1 14:30", "2024/06/01 14:30:00", "令和6年6月1日 14時30分", "令和6年6月1日14時30分", "R6.6.1 14:30",
     "２０２４／６／１　１４：３０", "2024年6月1日 14時30分0秒"],
)  # fmt: skip
def test_parse_at_reads_a_date_as_the_register_writes_it_on_the_tokyo_clock(typed: str) -> None:
    assert parse_at(typed) == datetime(2024, 6, 1, 14, 30, tzinfo=TOKYO)


def test_parse_at_says_what_is_missing() -> None:
    with pytest.raises(CustodyError) as refused:
        parse_at("令和6年6月1日")
    assert "a date and a time are needed" in str(refused.value) and "令和6年6月1日14時30分" in str(refused.value)
    with pytest.raises(CustodyError, match="date after the era ended"):
        parse_at("平成32年1月1日 10:00")


# --- recording, on both backends ---


def test_a_normal_chain_is_recorded_in_order_with_one_audit_row_per_event(home: Home) -> None:
    pkg = add_package(home, "pkg_normal")
    chain = [
        (Event.HANDED_OVER, "courier of the contact centre", "city hall, room 3"),
        (Event.RECEIVED, "contact centre, site A", "site A"),
        (Event.RETURNED, "city", None),
        (Event.DESTROYED, "city", "shredder room"),
    ]
    with home.engine.connect() as conn:
        assert unlock_allowed(conn, pkg)
    for hours, (event, holder, location) in enumerate(chain, start=1):
        step(home, pkg, event, NOW + hours * HOUR, holder=holder, **({"location": location} if location else {}))
        assert state(home, pkg) is event
        with home.engine.connect() as conn:
            assert unlock_allowed(conn, pkg) is (event in UNLOCKABLE)

    events = timeline(home.engine, pkg)
    assert [e["event"] for e in events] == [Event.CREATED, *(c[0] for c in chain)]
    assert [e["at"] for e in events] == [NOW + h * HOUR for h in range(5)]
    assert events[1]["holder"] == "courier of the contact centre" and events[1]["location"] == "city hall, room 3"
    assert all(e["at"].tzinfo is not None for e in events)

    with home.engine.connect() as conn:
        rows = conn.execute(
            select(AuditEntry.action, AuditEntry.object_id, AuditEntry.details, AuditEntry.actor)
            .where(AuditEntry.action.like("custody.%"))
            .order_by(AuditEntry.seq)
        ).all()
        assert audit.verify(conn).ok
    assert [r.action for r in rows] == [f"custody.{e['event']}" for e in events]
    assert {r.object_id for r in rows} == {pkg} and {r.actor for r in rows} == {"test"}
    assert [json.loads(r.details) for r in rows] == [{"event": str(e["event"])} for e in events]
    assert not any("courier" in r.details or "shredder" in r.details for r in rows)


def test_passed_on_lost_found_and_returned(home: Home) -> None:
    pkg = add_package(home, "pkg_passed")
    for hours, event in enumerate(
        [Event.HANDED_OVER, Event.RECEIVED, Event.HANDED_OVER, Event.RECEIVED, Event.LOST, Event.FOUND], start=1
    ):
        step(home, pkg, event, NOW + hours * HOUR)
    with pytest.raises(CustodyError, match="'handed-over' cannot follow"):
        step(home, pkg, Event.HANDED_OVER, NOW + 7 * HOUR)
    step(home, pkg, Event.RETURNED, NOW + 8 * HOUR)
    assert state(home, pkg) is Event.RETURNED
    # found → returned does not make it openable again, nor may it go out again
    with pytest.raises(CustodyError, match="is revoked: it may be returned or destroyed"):
        step(home, pkg, Event.HANDED_OVER, NOW + 9 * HOUR)
    with home.engine.connect() as conn:
        assert not unlock_allowed(conn, pkg)
        revoked = conn.execute(select(Package.revoked_at).where(Package.id == pkg)).scalar_one()
    assert revoked is not None


def test_found_before_lost_is_refused(home: Home) -> None:
    pkg = add_package(home, "pkg_found")
    step(home, pkg, Event.HANDED_OVER, NOW + HOUR)
    with pytest.raises(CustodyError, match="'found' follows only 'lost'"):
        step(home, pkg, Event.FOUND, NOW + 2 * HOUR)
    assert state(home, pkg) is Event.HANDED_OVER


def test_nothing_follows_destroyed(home: Home) -> None:
    pkg = add_package(home, "pkg_destroyed")
    step(home, pkg, Event.DESTROYED, NOW + HOUR)
    for event in Event:
        with pytest.raises((CustodyError, IncidentError), match="destroyed"):
            step(home, pkg, event, NOW + 2 * HOUR)
    assert len(timeline(home.engine, pkg)) == 2


def test_created_twice_is_refused(home: Home) -> None:
    pkg = add_package(home, "pkg_twice")
    with pytest.raises(CustodyError, match="already has its 'created' event"):
        step(home, pkg, Event.CREATED, NOW + HOUR)


def test_an_event_dated_before_the_latest_is_refused(home: Home) -> None:
    pkg = add_package(home, "pkg_backdated")
    step(home, pkg, Event.HANDED_OVER, NOW + 2 * HOUR)
    with pytest.raises(CustodyError, match="before the latest event"):
        record_event(home.engine, pkg, Event.RECEIVED, holder="x", at=NOW + HOUR, actor="test", now=NOW + 3 * HOUR)
    step(home, pkg, Event.RECEIVED, NOW + 2 * HOUR)  # the same instant is fine: the order of recording decides
    assert state(home, pkg) is Event.RECEIVED


def test_an_event_in_the_future_is_refused_beyond_five_minutes(home: Home) -> None:
    pkg = add_package(home, "pkg_future")
    with pytest.raises(CustodyError, match="in the future"):
        record_event(home.engine, pkg, "handed-over", holder="x", at=NOW + timedelta(minutes=6), actor="t", now=NOW)
    record_event(home.engine, pkg, "handed-over", holder="x", at=NOW + timedelta(minutes=4), actor="t", now=NOW)


def test_naive_times_and_bad_texts_are_refused(home: Home) -> None:
    pkg = add_package(home, "pkg_texts")
    with pytest.raises(CustodyError, match="timezone"):
        record_event(home.engine, pkg, Event.LOST, holder="x", at=datetime(2024, 6, 1, 13), actor="t", now=NOW)
    with pytest.raises(IncidentError, match="holder: who holds"):
        step(home, pkg, Event.LOST, NOW, holder="  ")
    with pytest.raises(IncidentError, match="note: at most"):
        step(home, pkg, Event.LOST, NOW, note="x" * 2001)
    with pytest.raises(CustodyError, match="note: at most 1000"):
        step(home, pkg, Event.RETURNED, NOW, note="x" * 1001)
    with pytest.raises(CustodyError, match="unknown custody event"):
        step(home, pkg, "misplaced", NOW)
    assert state(home, pkg) is Event.CREATED


@pytest.mark.parametrize(
    ("typed", "event"),
    [("引渡し", Event.HANDED_OVER), ("引き渡し", Event.HANDED_OVER), ("受領", Event.RECEIVED),
     ("受け取り", Event.RECEIVED), ("返却", Event.RETURNED), ("廃棄", Event.DESTROYED), ("消去", Event.DESTROYED),
     ("紛失", Event.LOST), ("発見", Event.FOUND), (" Handed-Over ", Event.HANDED_OVER)],
)  # fmt: skip
def test_an_event_is_read_as_the_city_staff_write_it(typed: str, event: Event) -> None:
    assert parse_event(typed) is event


def test_an_unknown_package_is_refused(home: Home) -> None:
    with pytest.raises(CustodyError, match="pkg_nowhere: no such package"):
        record_event(home.engine, "pkg_nowhere", Event.CREATED, holder="city", at=NOW, actor="t", now=NOW)
    with pytest.raises(CustodyError, match="no such package"):
        timeline(home.engine, "pkg_nowhere")


def test_a_revoked_package_is_not_handed_over_again(home: Home) -> None:
    pkg = add_package(home, "pkg_revoked")
    step(home, pkg, Event.HANDED_OVER, NOW + HOUR)
    step(home, pkg, Event.RETURNED, NOW + 2 * HOUR)
    with transaction(home.engine) as conn:
        conn.execute(update(Package).where(Package.id == pkg).values(revoked_at=NOW + 2 * HOUR))
    with pytest.raises(CustodyError, match="revoked"):
        step(home, pkg, Event.HANDED_OVER, NOW + 3 * HOUR)
    step(home, pkg, Event.DESTROYED, NOW + 3 * HOUR)


def test_two_recorders_take_turns_on_the_package_row(home: Home) -> None:
    """Without the row lock, the second recorder would check against a stale state and both would pass."""
    pkg = add_package(home, "pkg_race")
    second: list[BaseException | int] = []

    def hand_over() -> None:
        try:
            second.append(step(home, pkg, Event.HANDED_OVER, NOW + 2 * HOUR))
        except BaseException as exc:
            second.append(exc)

    with transaction(home.engine) as conn:
        record(conn, pkg, Event.DESTROYED, holder="city", at=NOW + HOUR, actor="test", now=NOW + HOUR)
        other = threading.Thread(target=hand_over)
        other.start()
        other.join(timeout=1.0)
        assert other.is_alive(), "the second recorder must wait for the first to commit"
    other.join(timeout=15)
    assert len(second) == 1 and isinstance(second[0], CustodyError)
    assert [e["event"] for e in timeline(home.engine, pkg)] == [Event.CREATED, Event.DESTROYED]


def test_overdue_lists_packages_still_out_after_expiry_and_flags_lost_ones(home: Home) -> None:
    expired = NOW + 10 * 24 * HOUR
    later = expired + timedelta(days=3, hours=5)
    out = add_package(home, "pkg_out", expires=expired)
    step(home, out, Event.HANDED_OVER, NOW + HOUR, holder="contact centre")
    back = add_package(home, "pkg_back", expires=expired)
    step(home, back, Event.HANDED_OVER, NOW + HOUR)
    step(home, back, Event.RETURNED, NOW + 2 * HOUR)
    gone = add_package(home, "pkg_gone", expires=expired)
    step(home, gone, Event.DESTROYED, NOW + HOUR)
    lost = add_package(home, "pkg_lost", expires=expired - HOUR)
    step(home, lost, Event.HANDED_OVER, NOW + HOUR)
    step(home, lost, Event.LOST, NOW + 2 * HOUR, holder="sub-subcontractor's worker")
    current = add_package(home, "pkg_current", expires=later + HOUR)
    step(home, current, Event.HANDED_OVER, NOW + HOUR)

    assert overdue(home.engine, now=expired - 2 * HOUR) == []
    found = overdue(home.engine, now=later)
    assert [p["package_id"] for p in found] == ["pkg_lost", "pkg_out"]
    lost_entry, out_entry = found
    assert lost_entry["lost"] is True and lost_entry["state"] is Event.LOST
    assert lost_entry["holder"] == "sub-subcontractor's worker" and lost_entry["since"] == NOW + 2 * HOUR
    assert out_entry["lost"] is False and out_entry["state"] is Event.HANDED_OVER
    assert out_entry["holder"] == "contact centre" and out_entry["recipient"] == "contact-centre"
    assert out_entry["expires_at"] == expired and out_entry["days_overdue"] == 3


# --- the commands ---


def cli(home: Home, *args: str) -> int:
    return run([*args, "--home", str(home.path)])


def test_cli_record_show_and_overdue(home: Home, capsys: pytest.CaptureFixture[str]) -> None:
    now = datetime.now(UTC)
    add_package(home, "pkg_cli", created=now - timedelta(days=40), expires=now - timedelta(days=10))
    at = (now - timedelta(days=39)).astimezone(TOKYO).strftime("%Y-%m-%dT%H:%M:%S")  # naive: Tokyo time
    capsys.readouterr()

    assert cli(home, "custody", "record", "pkg_cli", "--event", "handed-over", "--holder", "courier", "--at", at) == 0
    assert "recorded handed-over" in capsys.readouterr().out
    assert cli(home, "custody", "record", "pkg_cli", "--event", "received", "--holder", "site A", "--json") == 0
    assert json.loads(capsys.readouterr().out)["event"] == "received"

    assert cli(home, "custody", "show", "pkg_cli", "--json") == 0
    shown = json.loads(capsys.readouterr().out)  # exactly one JSON object
    assert shown["state"] == "received" and shown["unlockable"] is True
    assert [e["event"] for e in shown["events"]] == ["created", "handed-over", "received"]
    assert shown["events"][1]["at"] == parse_at(at).isoformat().replace("+00:00", "Z")
    assert shown["events"][1]["holder"] == "courier"
    assert cli(home, "custody", "show", "pkg_cli") == 0
    assert "current state: received" in capsys.readouterr().out

    assert cli(home, "custody", "overdue", "--json") == 3
    out, err = capsys.readouterr()
    assert "1 package overdue after expiry, 0 of them lost" in err
    report = json.loads(out)
    assert report["overdue"] == 1 and report["lost"] == 0
    assert report["packages"][0]["package_id"] == "pkg_cli" and report["packages"][0]["days_overdue"] == 10
    assert cli(home, "custody", "overdue") == 3
    assert "pkg_cli" in capsys.readouterr().out

    assert cli(home, "custody", "record", "pkg_cli", "--event", "returned", "--holder", "city") == 0
    capsys.readouterr()
    assert cli(home, "custody", "overdue", "--json") == 0
    report = json.loads(capsys.readouterr().out)
    assert report.pop("now").endswith("Z")
    assert report == {"lost": 0, "overdue": 0, "packages": []}


def test_cli_refusals(home: Home, capsys: pytest.CaptureFixture[str]) -> None:
    add_package(home, "pkg_refusals", created=datetime.now(UTC) - HOUR)
    capsys.readouterr()
    record = ["custody", "record", "pkg_refusals", "--holder", "x", "--event"]

    for bad, message in [
        (["created"], "recorded by sealing the package, never by hand"),
        (["misplaced"], "unknown custody event; one of: created (作成（封緘）), handed-over (引渡し),"),
        (["lost", "--at", "2024-06-01"], "a date and a time are needed"),
        (["lost", "--at", "tomorrow 9:00"], "not a valid date, e.g. 2024-06-01T14:30+09:00"),
    ]:
        assert cli(home, *record, *bad) == 1
        out, err = capsys.readouterr()
        assert out == "" and message in err and "internal error" not in err

    assert cli(home, *record, "found") == 1
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and "'found' follows only 'lost'" in err and "Traceback" not in err
    assert cli(home, "custody", "show", "pkg_unknown", "--json") == 1
    out, err = capsys.readouterr()
    assert err == "" and json.loads(out) == {"error": "package pkg_unknown: no such package", "rule": "custody_error"}
    assert cli(home, "custody", "overdue") == 0
    assert "no package overdue" in capsys.readouterr().out
    with home.engine.connect() as conn:
        assert audit.verify(conn).ok
