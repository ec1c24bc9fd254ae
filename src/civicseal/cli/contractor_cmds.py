"""``contractor add|approve-subcontractor|withdraw-subcontractor|assign-recipient|show`` and ``exposure``:
parse, call one library function of :mod:`civicseal.contractors.service`, render. People read display names and the
Japanese descriptions of purposes; JSON carries names, ISO dates and RFC 3339 UTC times."""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table
from rich.text import Text

from civicseal.cli.app import HomeOption, JsonOption, _parse_cli, app, open_home
from civicseal.cli.output import console, print_json
from civicseal.clock import utcnow

if TYPE_CHECKING:
    from civicseal.contractors.service import Link

contractor_app = typer.Typer(help="Contractors of the city and the subcontractors it approved.", no_args_is_help=True)
app.add_typer(contractor_app, name="contractor")

PurposesOption = Annotated[
    str | None, typer.Option("--purposes", help="Comma-separated purposes (see `civicseal purpose list`).")
]


def _date(raw: str | None, option: str) -> date | None:
    from civicseal.register.normalize import parse_date

    return _parse_cli(parse_date, raw, option) if raw is not None else None


def _purposes(link: Link) -> str:
    from civicseal.contractors.service import purpose_label

    return "、".join(purpose_label(p) for p in link.purposes) if link.purposes else "none (not approved)"


def say(text: str) -> None:
    """A line of plain text: display names and reasons are never read as markup."""
    console.print(text, markup=False, soft_wrap=True)


def _describe(link: Link) -> str:
    """One line a person reads: who, on what authority, for what, until when."""
    from civicseal.incident.appi import when_en

    basis = f"contract {link.contract_ref}" if link.parent is None else f"approved by {link.approved_by or '—'}"
    if link.parent is not None and link.approved_at is not None and link.purposes is not None:
        basis += f" on {when_en(link.approved_at)}"
    if link.parent is not None and link.purposes is None:
        basis = "NOT APPROVED by the city"
    dates = f"{link.valid_from} to {link.valid_until}" if link.valid_from else "no dates"
    withdrawn = f"; WITHDRAWN {when_en(link.withdrawn_at)}" if link.withdrawn_at else ""
    return f"{link.display_name} ({link.name}): {basis}; {_purposes(link)}; {dates}{withdrawn}"


def _result(verb: str, link: Link, json_out: bool) -> None:
    """A changed link: its JSON form, or one line saying what was done to whom."""
    if json_out:
        print_json(link.as_dict())
    else:
        say(f"{verb} {_describe(link)}")


@contractor_app.command("add")
def contractor_add(
    name: Annotated[str, typer.Argument(help="Machine name: letters, digits, '-', '_'.")],
    display_name: Annotated[str | None, typer.Option(help="The name people read, e.g. 株式会社〇〇印刷.")] = None,
    contract_ref: Annotated[str | None, typer.Option(help="The contract's reference number.")] = None,
    valid_from: Annotated[str | None, typer.Option(help="First day of the contract (ISO or era, e.g. R8.4.1).")] = None,
    valid_until: Annotated[str | None, typer.Option(help="Last day of the contract.")] = None,
    purposes: PurposesOption = None,
    under: Annotated[
        str | None, typer.Option(help="Register a subcontractor of this contractor (no authority until approved).")
    ] = None,
    home: HomeOption = None,
    json_out: JsonOption = False,
) -> None:
    """Register a contractor of the city with its contract, or a subcontractor --under its parent."""
    from civicseal.audit.log import current_actor
    from civicseal.contractors.service import add_contractor

    link = add_contractor(
        open_home(home).engine,
        name,
        display_name=display_name,
        contract_ref=contract_ref,
        valid_from=_date(valid_from, "--valid-from"),
        valid_until=_date(valid_until, "--valid-until"),
        purposes=purposes,
        under=under,
        now=utcnow(),
        actor=current_actor(),
    )
    _result("registered", link, json_out)
    if link.parent is not None and not json_out:
        say(
            f"it may hold no data until the city approves it: `civicseal contractor approve-subcontractor"
            f" {link.parent} {link.name} --purposes … --approved-by … --until …`"
        )


@contractor_app.command("approve-subcontractor")
def contractor_approve(
    parent: str,
    child: str,
    purposes: Annotated[str, typer.Option("--purposes", help="Comma-separated; each among the parent's.")],
    approved_by: Annotated[str, typer.Option(help="The city officer who approves the subcontract.")],
    until: Annotated[str, typer.Option("--until", help="Last day of the approval (not after the parent's).")],
    valid_from: Annotated[
        str | None, typer.Option("--from", help="First day (default: today, or the parent's first day).")
    ] = None,
    home: HomeOption = None,
    json_out: JsonOption = False,
) -> None:
    """Approve a subcontractor for purposes and dates no wider than its parent's."""
    from civicseal.audit.log import current_actor
    from civicseal.contractors.service import approve_subcontractor

    until_day = _date(until, "--until")
    assert until_day is not None
    link = approve_subcontractor(
        open_home(home).engine,
        parent,
        child,
        purposes=purposes,
        approved_by=approved_by,
        valid_until=until_day,
        valid_from=_date(valid_from, "--from"),
        now=utcnow(),
        actor=current_actor(),
    )
    _result("approved", link, json_out)


@contractor_app.command("withdraw-subcontractor")
def contractor_withdraw(
    parent: str,
    child: str,
    reason: Annotated[str, typer.Option(help="Why (kept with the contractor; name no person).")],
    home: HomeOption = None,
    json_out: JsonOption = False,
) -> None:
    """Withdraw a subcontractor's approval: its next unlock, and its own subcontractors', is refused."""
    from civicseal.audit.log import current_actor
    from civicseal.contractors.service import withdraw_subcontractor

    link = withdraw_subcontractor(
        open_home(home).engine, parent, child, reason=reason, now=utcnow(), actor=current_actor()
    )
    _result("withdrawn:", link, json_out)


@contractor_app.command("assign-recipient")
def contractor_assign(
    contractor: str,
    recipient: Annotated[str, typer.Argument(help="A recipient registered before its contractor was.")],
    home: HomeOption = None,
) -> None:
    """Record that a recipient works for a contractor: its packages then open only while the chain holds."""
    from civicseal.audit.log import current_actor
    from civicseal.contractors.service import assign_recipient

    links = assign_recipient(open_home(home).engine, recipient, contractor, now=utcnow(), actor=current_actor())
    say(f"recipient {recipient} now works for {' > '.join(link.display_name for link in links)}")


@contractor_app.command("show")
def contractor_show(name: str, home: HomeOption = None, json_out: JsonOption = False) -> None:
    """Its chain, its subcontractors, its recipients, the packages they hold and the residents each exposes."""
    from civicseal.contractors.service import purpose_label, show
    from civicseal.incident.appi import when_en

    now = utcnow()
    held = show(open_home(home).engine, name, now=now)
    if json_out:
        print_json(held.as_dict())
        return
    me = held.chain[-1]
    say(f"{me.display_name} ({me.name}) as of {when_en(now)}")
    say("chain, from the city's contractor down:")
    for depth, link in enumerate(held.chain):
        say(f"  {'  ' * depth}{_describe(link)}")
    if held.withdrawn_reason:
        say(f"  withdrawal reason: {held.withdrawn_reason}")
    say(f"subcontractors: {len(held.subcontractors)}")
    for link in held.subcontractors:
        say(f"  {_describe(link)}")
    say("recipients: " + (", ".join(f"{shown} ({n})" for n, shown in held.recipients) or "none"))
    say(f"packages its recipients hold now: {len(held.packages)}")
    for p in held.packages:
        say(
            f"  {p.package_id} {purpose_label(p.purpose)} → {p.recipient}: {p.residents:,} residents,"
            f" until {when_en(p.expires_at)}"
        )
    say(
        f"residents whose data it can read now: {held.own_residents:,} itself,"
        f" {held.residents:,} with its subcontractors"
    )


@app.command("exposure")
def exposure_command(home: HomeOption = None, json_out: JsonOption = False) -> None:
    """For each organization, how many residents' data it can read right now, its subcontractors' included."""
    from civicseal.contractors.service import exposure
    from civicseal.incident.appi import when_en

    now = utcnow()
    rows = exposure(open_home(home).engine, now=now)
    if json_out:
        print_json({"at": now.isoformat(), "organizations": rows})
        return
    table = Table(title=f"who can read residents' data, as of {when_en(now)}", title_justify="left")
    table.add_column("organization")
    for column in ("packages", "itself", "residents (with subcontractors)"):
        table.add_column(column, justify="right")
    for row in rows:
        label = "  " * int(row["level"]) + f"{row['display_name']} ({row['organization']})"  # type: ignore[call-overload]
        if not row["registered"]:
            label += " *"
        # Text, not str: a display name is never read as Rich markup.
        table.add_row(Text(label), f"{row['packages']:,}", f"{row['own_residents']:,}", f"{row['residents']:,}")
    console.print(table)
    if not rows:
        say("no contractors registered and no packages out")
    unregistered = [f"{r['display_name']} ({r['organization']})" for r in rows if not r["registered"]]
    if unregistered:
        say(
            f"* recipients with no registered contractor: {', '.join(unregistered)} — the city's own staff, or a"
            " contractor to register with `civicseal contractor add`"
        )
