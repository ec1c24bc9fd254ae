"""`civicseal custody`: record hand-overs, returns and losses; show a package's timeline; list overdue packages.

Times are shown on the city's clock (Asia/Tokyo) in tables and as RFC 3339 UTC in ``--json``.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from civicseal.cli.app import HomeOption, JsonOption, app, open_home
from civicseal.cli.output import console, print_json
from civicseal.clock import for_people, rfc3339, utcnow
from civicseal.custody.errors import CustodyError, OverdueFound
from civicseal.custody.events import JAPANESE, MANUAL_EVENTS, UNLOCKABLE, Event

custody_app = typer.Typer(help="The chain of custody of every package that leaves the city.", no_args_is_help=True)
app.add_typer(custody_app, name="custody")

PackageArgument = Annotated[str, typer.Argument(metavar="ID", help="The package id (pkg_…), as in its manifest.")]
EVENT_NAMES = ", ".join(f"{e} ({JAPANESE[e]})" for e in Event if e in MANUAL_EVENTS)


@custody_app.command("record")
def custody_record(
    package_id: PackageArgument,
    event: Annotated[str, typer.Option(help=f"What happened: {EVENT_NAMES}. ('created' is recorded by sealing.)")],
    holder: Annotated[
        str, typer.Option(help="Who has the package after the event (for lost: who last had it).", show_default=False)
    ],
    at: Annotated[
        str | None,
        typer.Option(
            help="When it happened: 2024-06-01 14:30, 令和6年6月1日 14時30分, or RFC 3339 (2024-06-01T14:30+09:00,"
            " …Z). Without an offset the time is Asia/Tokyo time, the city's clock. Default: now. No earlier than"
            " the package's latest event."
        ),
    ] = None,
    location: Annotated[str | None, typer.Option(help="Where (at most 200 characters).")] = None,
    note: Annotated[str | None, typer.Option(help="Anything the next reader should know (at most 1000).")] = None,
    home: HomeOption = None,
    json_out: JsonOption = False,
) -> None:
    """Record one custody event of a package; impossible sequences and times are refused.

    ``lost`` revokes a tethered package at once and opens an incident (or joins the package's open one).
    """
    from civicseal.custody import service as custody
    from civicseal.incident.service import record_lost_event

    chosen = _manual_event(event)
    when = custody.parse_at(at) if at is not None else None
    opened = open_home(home)
    engine = opened.engine
    if chosen is Event.LOST:
        loss = record_lost_event(opened, package_id, holder=holder, at=when, location=location, note=note)
        if json_out:
            print_json({"id": loss.event_id, "package_id": package_id, "event": str(chosen)} | loss.as_dict())
            return
        revoked = "revoked now, " if loss.revoked_now else ""
        incident = "opened" if loss.opened else "joined (it was still open)"
        console.print(
            f"recorded lost of package {package_id} (event {loss.event_id}): {revoked}incident {loss.incident_id}"
            f" {incident}; its report: `civicseal incident report {loss.incident_id}`",
            markup=False,
        )
        return
    event_id = custody.record_event(engine, package_id, chosen, holder=holder, at=when, location=location, note=note)
    if json_out:
        print_json({"id": event_id, "package_id": package_id, "event": str(chosen)})
        return
    console.print(f"recorded {chosen} of package {package_id} (event {event_id})", markup=False)


@custody_app.command("show")
def custody_show(package_id: PackageArgument, home: HomeOption = None, json_out: JsonOption = False) -> None:
    """The package's timeline, oldest first, and its current custody state."""
    from civicseal.custody import service as custody

    engine = open_home(home).engine
    events = custody.timeline(engine, package_id)
    with engine.connect() as conn:
        state = custody.current_state(conn, package_id)
    if json_out:
        print_json(
            {
                "package_id": package_id,
                "state": str(state) if state else None,
                "unlockable": state in UNLOCKABLE,
                "events": [_json_event(e) for e in events],
            }
        )
        return
    table = Table(title=f"custody of package {package_id}", title_justify="left")
    for column in ("at", "event", "holder", "location", "note"):
        table.add_column(column)
    for e in events:
        table.add_row(
            for_people(e["at"]), str(e["event"]), Text(e["holder"]), Text(e["location"] or ""), Text(e["note"] or "")
        )
    console.print(table)
    console.print(f"current state: {state or 'no custody recorded'}", markup=False)


@custody_app.command("overdue")
def custody_overdue(home: HomeOption = None, json_out: JsonOption = False) -> None:
    """Packages past their expiry that are neither returned nor destroyed (lost ones too). Exit 3 if any."""
    from civicseal.custody import service as custody

    now = utcnow()
    packages = custody.overdue(open_home(home).engine, now=now)
    lost = sum(p["lost"] for p in packages)
    if json_out:
        print_json(
            {
                "now": rfc3339(now),
                "overdue": len(packages),
                "lost": lost,
                "packages": [_json_overdue(p) for p in packages],
            }
        )
    else:
        _render_overdue(packages, lost)
    if packages:
        raise OverdueFound(len(packages), lost)  # exit 3; the count goes to stderr, stdout stays one object


def _render_overdue(packages: list[dict[str, Any]], lost: int) -> None:
    if not packages:
        console.print("no package overdue")
        return
    table = Table(title="overdue packages", title_justify="left")
    for column in ("package", "recipient", "purpose", "expired (Tokyo)", "days", "state", "holder"):
        table.add_column(column, justify="right" if column == "days" else "left")
    for p in packages:
        state = "LOST" if p["lost"] else str(p["state"] or "no custody recorded")
        table.add_row(
            p["package_id"],
            Text(p["recipient"]),
            p["purpose"],
            for_people(p["expires_at"]),
            str(p["days_overdue"]),
            state,
            Text(p["holder"] or ""),
        )
    console.print(table)


def _manual_event(raw: str) -> Event:
    """Only events a person witnesses: 'created' belongs to sealing, in the sealing transaction."""
    from civicseal.custody import service as custody

    event = custody.parse_event(raw)
    if event not in MANUAL_EVENTS:
        raise CustodyError(f"--event {event}: recorded by sealing the package, never by hand; one of {EVENT_NAMES}")
    return event


def _json_event(e: dict[str, Any]) -> dict[str, Any]:
    return {**e, "event": str(e["event"]), "at": rfc3339(e["at"]), "recorded_at": rfc3339(e["recorded_at"])}


def _json_overdue(p: dict[str, Any]) -> dict[str, Any]:
    return {
        **p,
        "state": str(p["state"]) if p["state"] else None,
        "expires_at": rfc3339(p["expires_at"]),
        "since": rfc3339(p["since"]) if p["since"] else None,
    }
