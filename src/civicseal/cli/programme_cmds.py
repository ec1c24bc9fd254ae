"""``programme create|run|list``: relief programmes and their eligibility funnel."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, TypeVar

import typer

from civicseal.cli.app import HomeOption, JsonOption, open_home, programme_app
from civicseal.cli.output import console, print_json, print_table

T = TypeVar("T")


@programme_app.command("create")
def programme_create(
    name: str,
    reference_date: Annotated[str, typer.Option(help="The day households must be resident (ISO or era).")],
    fiscal_year: Annotated[str, typer.Option(help="Fiscal year of the residence tax (2022, R4, 令和4年度).")],
    amount: Annotated[int, typer.Option(help="Yen per household.")],
    exclude_programme: Annotated[
        list[str] | None, typer.Option(help="An earlier programme whose households are not paid again.")
    ] = None,
    home: HomeOption = None,
) -> None:
    """Declare a relief programme."""
    from civicseal.programme.service import create_programme
    from civicseal.register.normalize import parse_date, parse_fiscal_year

    d, year = (
        _parse_cli(parse_date, reference_date, "--reference-date"),
        _parse_cli(parse_fiscal_year, fiscal_year, "--fiscal-year"),
    )
    create_programme(
        open_home(home).engine,
        name,
        reference_date=d,
        fiscal_year=year,
        amount=amount,
        exclude=tuple(exclude_programme or ()),
    )
    console.print(f"programme {name!r} created: reference date {d}, fiscal year {year}, {amount:,} yen")


def _parse_cli(parser: Callable[[str], T], raw: str, option: str) -> T:
    """An option parsed by the register's own normalizer, its rule shown as a usage error (exit 2)."""
    from civicseal.register.errors import InvalidValue

    try:
        return parser(raw)
    except InvalidValue as exc:
        raise typer.BadParameter(exc.rule, param_hint=option) from None


FUNNEL_LABELS = {
    "households": "households in the register",
    "resident_on_date": "resident on the reference date",
    "all_exempt": "every member exempt",
    "not_dependants_only": "not dependants only",
    "not_paid_before": "not paid before",
    "entitled": "entitled",
}


def render_funnel(result: dict[str, int], amount_label: str = "total amount (yen)") -> None:
    rows: dict[str, object] = {FUNNEL_LABELS[k]: result[k] for k in FUNNEL_LABELS}
    rows[amount_label] = result["total_amount"]
    rows["members counted exempt for want of a tax row"] = result["members_without_tax_row"]
    rows["new entitlements this run"] = result["new_entitlements"]
    rows["entitled, no longer qualifying"] = result["no_longer_qualifying"]
    print_table("eligibility funnel", rows)


@programme_app.command("run")
def programme_run(name: str, home: HomeOption = None, json_out: JsonOption = False) -> None:
    """Apply the eligibility rules and add entitlements (idempotent)."""
    from civicseal.programme.service import run_programme

    result = run_programme(open_home(home).engine, name).as_dict()
    if json_out:
        print_json(result)
    else:
        render_funnel(result)


@programme_app.command("list")
def programme_list(home: HomeOption = None, json_out: JsonOption = False) -> None:
    """The programmes and how many entitlements each has."""
    from civicseal.programme.service import list_programmes

    programmes = list_programmes(open_home(home).engine)
    if json_out:
        print_json({"programmes": programmes})
        return
    for p in programmes:
        console.print(
            f"{p['name']}: reference date {p['reference_date']}, fiscal year {p['fiscal_year']},"
            f" {p['amount']:,} yen, {p['entitlements']:,} entitlements"
        )
