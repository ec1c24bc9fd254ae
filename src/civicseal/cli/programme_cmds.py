"""`civicseal programme …`: declare a programme, run it (or try it dry), confirm returned forms, list and show."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from civicseal.cli.app import HomeOption, JsonOption, _parse_cli, open_home, programme_app
from civicseal.cli.output import console, print_json, print_table
from civicseal.programme.defaults import DEFAULT_MAX_MISSING_TAX

SHOWN_REFERENCES = 20  # no-longer-qualifying references printed for people; --json carries all


@programme_app.command("create")
def programme_create(
    name: str,
    reference_date: Annotated[str, typer.Option(help="The day households must be resident (ISO or era).")],
    fiscal_year: Annotated[str, typer.Option(help="Fiscal year of the residence tax (2022, R4, 令和4年度).")],
    amount: Annotated[str, typer.Option(help="Yen per household (100000, 100,000 or 100,000円).")],
    exclude_programme: Annotated[
        list[str] | None, typer.Option(help="An earlier programme whose households are not paid again.")
    ] = None,
    home: HomeOption = None,
    json_out: JsonOption = False,
) -> None:
    """Declare a relief programme."""
    from civicseal.programme.service import create_programme
    from civicseal.register.normalize import parse_date, parse_fiscal_year, parse_income

    d, year, yen = (
        _parse_cli(parse_date, reference_date, "--reference-date"),
        _parse_cli(parse_fiscal_year, fiscal_year, "--fiscal-year"),
        _parse_cli(parse_income, amount, "--amount"),  # as a spreadsheet writes yen: the service refuses a loss
    )
    create_programme(
        open_home(home).engine,
        name,
        reference_date=d,
        fiscal_year=year,
        amount=yen,
        exclude=tuple(exclude_programme or ()),
    )
    if json_out:
        print_json(
            {"programme": name, "reference_date": d.isoformat(), "fiscal_year": year, "amount": yen}
            | {"exclude_programmes": list(exclude_programme or ())}
        )
        return
    console.print(
        f"programme {name!r} created: reference date {d}, fiscal year {year}, {yen:,} yen",
        markup=False,
        soft_wrap=True,
    )


FUNNEL_LABELS = {
    "households": "households in the register",
    "resident_on_date": "resident on the reference date",
    "all_exempt": "every member exempt",
    "not_dependants_only": "not dependants only",
    "not_paid_before": "not paid before",
    "entitled": "entitled",
}


def render_funnel(result: dict[str, object], amount_label: str = "total amount (yen)") -> None:
    rows: dict[str, object] = {FUNNEL_LABELS[k]: result[k] for k in FUNNEL_LABELS}
    rows[amount_label] = result["total_amount"]
    rows["members counted exempt for want of a tax row"] = result["members_without_tax_row"]
    if result.get("missing_tax_accepted"):
        rows["missing tax rows accepted (--accept-missing-tax)"] = "yes"
    rows["new entitlements" + (" (dry run: none written)" if result.get("dry_run") else " this run")] = result[
        "new_entitlements"
    ]
    rows["entitled, no longer qualifying"] = result["no_longer_qualifying"]
    print_table("eligibility funnel", rows)


def _render_no_longer_qualifying(references: list[str]) -> None:
    from civicseal.programme.reference import printed

    if not references:
        return
    shown = ", ".join(printed(r) for r in references[:SHOWN_REFERENCES])
    more = len(references) - SHOWN_REFERENCES
    tail = f" … and {more} more (--json lists all)" if more > 0 else ""
    console.print(
        f"no longer qualifying: {shown}{tail}\n"
        "withdraw each once checked (civicseal entitlement withdraw REFERENCE --reason …),"
        " or all at once (civicseal programme withdraw NAME --reason …)",
        markup=False,
        soft_wrap=True,
    )


@programme_app.command("run")
def programme_run(
    name: str,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the funnel and write nothing.")] = False,
    max_missing_tax: Annotated[
        float,
        typer.Option(min=0, max=100, help="Refuse when more than this % of members lack a tax row for the year."),
    ] = DEFAULT_MAX_MISSING_TAX * 100,
    accept_missing_tax: Annotated[
        bool, typer.Option("--accept-missing-tax", help="Go ahead although tax rows are missing (the funnel says so).")
    ] = False,
    home: HomeOption = None,
    json_out: JsonOption = False,
) -> None:
    """Apply the eligibility rules and add entitlements (idempotent)."""
    from civicseal.programme.service import run_programme

    result = run_programme(
        open_home(home).engine,
        name,
        max_missing_tax=max_missing_tax / 100,
        accept_missing_tax=accept_missing_tax,
        dry_run=dry_run,
    ).as_dict()
    if json_out:
        print_json(result)
        return
    render_funnel(result)
    _render_no_longer_qualifying(result["no_longer_qualifying_references"])  # type: ignore[arg-type]


@programme_app.command("withdraw")
def programme_withdraw(
    name: str,
    reason: Annotated[str, typer.Option(help="Why: kept in each entitlement's history.")],
    max_missing_tax: Annotated[
        float, typer.Option(min=0, max=100, help="As for run: refuse when more than this % lack a tax row.")
    ] = DEFAULT_MAX_MISSING_TAX * 100,
    accept_missing_tax: Annotated[bool, typer.Option("--accept-missing-tax", help="As for run.")] = False,
    home: HomeOption = None,
    json_out: JsonOption = False,
) -> None:
    """Withdraw every entitlement that no longer qualifies on the current register (what `run` lists)."""
    from civicseal.programme.service import withdraw_no_longer_qualifying

    withdrawn = withdraw_no_longer_qualifying(
        open_home(home).engine,
        name,
        reason=reason,
        max_missing_tax=max_missing_tax / 100,
        accept_missing_tax=accept_missing_tax,
    )
    if json_out:
        print_json({"withdrawn": len(withdrawn), "reference_numbers": withdrawn})
    else:
        console.print(f"{len(withdrawn):,} entitlements withdrawn", markup=False)


def _statuses_line(statuses: dict[str, int]) -> str:
    return ", ".join(f"{status} {count:,}" for status, count in statuses.items() if count) or "no entitlements"


@programme_app.command("list")
def programme_list(home: HomeOption = None, json_out: JsonOption = False) -> None:
    """The programmes and their entitlements per state."""
    from civicseal.programme.service import list_programmes

    programmes = list_programmes(open_home(home).engine)
    if json_out:
        print_json({"programmes": programmes})
        return
    if not programmes:
        console.print("no programme yet: civicseal programme create NAME …", markup=False)
    for p in programmes:
        console.print(
            f"{p['name']}: reference date {p['reference_date']}, fiscal year {p['fiscal_year']},"
            f" {p['amount']:,} yen; {_statuses_line(p['statuses'])}",  # type: ignore[arg-type]
            markup=False,
            soft_wrap=True,
        )


@programme_app.command("show")
def programme_show(name: str, home: HomeOption = None, json_out: JsonOption = False) -> None:
    """A programme: its entitlements per state and the funnel of its last run."""
    from civicseal.cseal import rfc3339
    from civicseal.incident.appi import when_en
    from civicseal.programme.service import show_programme

    shown = show_programme(open_home(home).engine, name)
    last = shown["last_run"]
    if json_out:
        if last is not None:
            last["at"] = rfc3339(last["at"])  # type: ignore[index]
        print_json(shown)
        return
    console.print(
        f"{shown['name']}: reference date {shown['reference_date']}, fiscal year {shown['fiscal_year']},"
        f" {shown['amount']:,} yen per household",  # type: ignore[str-format]
        markup=False,
    )
    print_table("entitlements per state", shown["statuses"])  # type: ignore[arg-type]
    if last is None:
        console.print("not run yet: civicseal programme run NAME", markup=False)
        return
    console.print(f"last run {when_en(last['at'])} by {last['actor']}", markup=False)  # type: ignore[index]
    render_funnel(last)  # type: ignore[arg-type]


@programme_app.command("confirm")
def programme_confirm(
    name: str,
    file: Annotated[Path, typer.Argument(help="Returned forms: reference_number, optional account columns, declined.")],
    home: HomeOption = None,
    json_out: JsonOption = False,
) -> None:
    """Confirm (or decline) entitlements from returned forms, all or nothing, as the import checks a register."""
    from civicseal.keys.city import load_city_keys
    from civicseal.programme.confirmation import confirm_file
    from civicseal.seal.sightings import canary_holder

    opened = open_home(home)
    cipher = load_city_keys(opened.keys).field_cipher()
    summary = confirm_file(opened.engine, cipher, name, file, canary_holder=canary_holder)
    if json_out:
        print_json(summary.as_dict())
        return
    print_table(
        "returned forms",
        {
            "rows": summary.rows,
            "confirmed": summary.confirmed,
            "declined": summary.declined,
            "accounts given": summary.accounts_given,
            "canary reference numbers (skipped)": summary.canaries,
        },
    )
    if summary.canaries:
        console.print(
            f"CANARY ALERT: {summary.canaries} reference numbers in this file belong to canary households: someone"
            " used leaked data. See `civicseal audit show` (canary.alert) and open an incident.",
            markup=False,
            soft_wrap=True,
        )
