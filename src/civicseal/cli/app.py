"""Typer commands: each parses its options, makes one library call and renders what came back."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer

from civicseal import __version__
from civicseal.cli.output import console, print_json, print_table, progress_bars
from civicseal.keys.city import load_city_keys
from civicseal.keys.trust import format_public_key
from civicseal.store.home import Home

T = TypeVar("T")

app = typer.Typer(
    help="civicseal: run a relief programme on the resident register; every transfer of personal data sealed.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
register_app = typer.Typer(help="The resident register.", no_args_is_help=True)
programme_app = typer.Typer(help="Relief programmes and their entitlements.", no_args_is_help=True)
audit_app = typer.Typer(help="The hash-chained audit log.", no_args_is_help=True)
keys_app = typer.Typer(help="The city's keys.", no_args_is_help=True)
app.add_typer(register_app, name="register")
app.add_typer(programme_app, name="programme")
app.add_typer(audit_app, name="audit")
app.add_typer(keys_app, name="keys")

HomeOption = Annotated[
    Path | None,
    typer.Option("--home", envvar="CIVICSEAL_HOME", help="civicseal home (default ./civicseal-home)."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object and nothing else.")]


def _version(value: bool) -> None:
    if value:
        console.print(f"civicseal {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """civicseal: run a relief programme on the resident register; every transfer of personal data sealed."""


def open_home(home: Path | None) -> Home:
    opened = Home(home)
    opened.require()
    return opened


@app.command()
def init(
    home: HomeOption = None,
    issuer: Annotated[str, typer.Option(help="The city's name as issuer of packages.")] = "city",
) -> None:
    """Create a home: keys (0700/0600), configuration and the migrated store."""
    from civicseal.homes import init_home

    created = init_home(home, issuer=issuer)
    console.print(f"created civicseal home {created.path} for issuer {issuer!r}")


@keys_app.command("public")
def keys_public(home: HomeOption = None) -> None:
    """Print the line a contractor gives to `civicseal trust add`."""
    opened = open_home(home)
    keys = load_city_keys(opened.keys)
    console.print(f"{opened.config.issuer} {format_public_key(keys.signing.public_key())}", soft_wrap=True)


@app.command()
def synth(
    out: Annotated[Path, typer.Option(help="Folder for residents.csv, tax.csv and accounts.csv.")],
    residents: Annotated[int, typer.Option(min=1, max=20_000_000, help="How many residents.")] = 460_517,
    seed: Annotated[int, typer.Option(help="Same seed, same bytes.")] = 7,
    json_out: JsonOption = False,
) -> None:
    """Write a synthetic city (Amagasaki's towns, real postcodes and bank codes) as three CSV files."""
    from civicseal.register.synth import synthesize

    out.mkdir(parents=True, exist_ok=True)
    with progress_bars(not json_out) as progress:
        summary = synthesize(residents, seed, out, progress=lambda done: progress("synthesizing", done, residents))
    figures = {
        "residents": summary.residents,
        "households": summary.households,
        "tax_rows": summary.tax_rows,
        "accounts": summary.accounts,
    }
    if json_out:
        print_json(figures)
    else:
        print_table(f"synthetic city written to {out}", figures)


@register_app.command("import")
def register_import(
    files: Annotated[list[Path], typer.Argument(help="residents, tax and/or accounts CSV files (UTF-8 or CP932).")],
    rejects: Annotated[
        Path | None, typer.Option(help="Import the valid rows and write the invalid ones to this file.")
    ] = None,
    home: HomeOption = None,
    json_out: JsonOption = False,
) -> None:
    """Import the register atomically: every error is printed as file:line: column: rule, never the value."""
    from civicseal.register.importer import import_register

    opened = open_home(home)
    cipher = load_city_keys(opened.keys).field_cipher()
    with progress_bars(not json_out) as progress:
        summary = import_register(opened.engine, cipher, files, rejects=rejects, progress=progress)
    figures = summary.as_dict()
    if json_out:
        print_json(figures)
        return
    if summary.rows_read == 0:
        console.print("no rows in the files: nothing imported")
        return
    print_table("register import", figures)
    if summary.rejected:
        console.print(f"{summary.rejected} rows rejected and written to {rejects}")


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


@app.command()
def demo(
    home: HomeOption = None,
    residents: Annotated[int, typer.Option(min=1000, help="Size of the synthetic city.")] = 460_517,
    seed: int = 7,
) -> None:
    """The whole story on a synthetic Amagasaki, in a fresh temporary home (or --home)."""
    from civicseal.cli.demo import run_demo

    run_demo(home, residents=residents, seed=seed)


# Command modules register themselves on `app` when imported.
from civicseal.cli import audit_cmds, custody_cmds, incident_cmds, keys_cmds, seal_cmds  # noqa: E402, F401
