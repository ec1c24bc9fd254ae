"""Typer commands: each parses its options, makes one library call and renders what came back."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer

from civicseal import __version__
from civicseal.audit import log as audit
from civicseal.cli.output import console, print_json, print_table, progress_bars
from civicseal.errors import CivicsealError
from civicseal.keys.city import load_city_keys
from civicseal.register.importer import RejectsEncoding
from civicseal.seal.trust import format_public_key
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
    issuer: Annotated[str, typer.Option(help="The city's machine name (ASCII slug), e.g. amagasaki.")] = "city",
    issuer_name: Annotated[
        str | None, typer.Option(help="The city's name as people read it, in any script, e.g. 尼崎市.")
    ] = None,
    json_out: JsonOption = False,
) -> None:
    """Create a home: keys (0700/0600), configuration and the migrated store."""
    from civicseal.homes import init_home

    created = init_home(home, issuer=issuer, issuer_name=issuer_name)
    if json_out:
        keys = load_city_keys(created.keys)
        print_json(
            {
                "home": str(created.path),
                "issuer": issuer,
                "issuer_name": created.config.issuer_display,
                "public_key": format_public_key(keys.signing.public_key()),
                "key_id": keys.signing_key_id,
                "config": str(created.config_path),
            }
        )
        return
    console.print(
        f"created civicseal home {created.path} for {created.config.issuer_display} (issuer {issuer});"
        f" fill in [contact] in {created.config_path} before writing letters to residents",
        markup=False,
        soft_wrap=True,
    )
    console.print(
        f"{created.config_path}: replace its {len(created.config.canary_addresses)} canary_addresses with"
        " addresses the city controls (canary households live there; mail to them must reach the city)",
        markup=False,
    )


@keys_app.command("public")
def keys_public(home: HomeOption = None, json_out: JsonOption = False) -> None:
    """Print the line a contractor gives to `civicseal trust add`."""
    opened = open_home(home)
    keys = load_city_keys(opened.keys)
    public = format_public_key(keys.signing.public_key())
    if json_out:
        print_json({"issuer": opened.config.issuer, "public_key": public, "key_id": keys.signing_key_id})
        return
    console.print(f"{opened.config.issuer} {public}", soft_wrap=True, markup=False)


@app.command()
def synth(
    out: Annotated[Path, typer.Option(help="Folder for residents.csv, tax.csv and accounts.csv.")],
    residents: Annotated[int, typer.Option(min=1, max=20_000_000, help="How many residents.")] = 460_517,
    seed: Annotated[int, typer.Option(help="Same seed, same bytes.")] = 7,
    force: Annotated[bool, typer.Option("--force", help="Replace the three files if the folder has them.")] = False,
    json_out: JsonOption = False,
) -> None:
    """Write a synthetic city (Amagasaki's towns, real postcodes and bank codes) as three CSV files."""
    from civicseal.register.synth import synthesize

    with progress_bars(not json_out) as progress:
        summary = synthesize(
            residents, seed, out, progress=lambda done: progress("synthesizing", done, residents), replace=force
        )
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
    rejects_encoding: Annotated[
        RejectsEncoding, typer.Option(help="utf-8 (with a BOM, for Excel) or cp932.")
    ] = RejectsEncoding.UTF8,
    home: HomeOption = None,
    json_out: JsonOption = False,
) -> None:
    """Import the register atomically: every error is printed as file:line: column: rule, never the value."""
    from civicseal.register.importer import import_register

    opened = open_home(home)
    cipher = load_city_keys(opened.keys).field_cipher()
    with progress_bars(not json_out) as progress:
        summary = import_register(
            opened.engine, cipher, files, rejects=rejects, rejects_encoding=rejects_encoding, progress=progress
        )
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


def _parse_cli(parser: Callable[[str], T], raw: str, option: str) -> T:
    """An option parsed by the register's own normalizer, its rule shown as a usage error (exit 2)."""
    from civicseal.register.errors import InvalidValue

    try:
        return parser(raw)
    except InvalidValue as exc:
        raise typer.BadParameter(exc.rule, param_hint=option) from None


@audit_app.command("verify")
def audit_verify(home: HomeOption = None, json_out: JsonOption = False) -> None:
    """Walk the hash chain; name the first row that was edited, deleted, inserted or reordered."""
    with open_home(home).engine.connect() as conn:
        result = audit.verify(conn)
    if json_out:
        print_json({"ok": result.ok, "rows": result.rows, "first_bad_seq": result.first_bad_seq})
    elif result.ok:
        console.print(f"audit log intact: {result.rows} rows")
    if not result.ok:
        raise AuditBroken(result.first_bad_seq, result.reason)


class AuditBroken(CivicsealError):
    def __init__(self, seq: int | None, reason: str | None) -> None:
        super().__init__(f"audit log broken at sequence {seq}: {reason}")


@audit_app.command("show")
def audit_show(
    home: HomeOption = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many rows, newest last.")] = 50,
    json_out: JsonOption = False,
) -> None:
    """List audit rows: who, what, which object, counts."""
    with open_home(home).engine.connect() as conn:
        rows = [dict(r) for r in audit.entries(conn, last=limit)]
    if json_out:
        print_json({"entries": rows})
        return
    for r in rows:
        console.print(
            f"{r['seq']:>6} {r['at']} {r['actor']} (OS user {r['os_user'] or '-'}) {r['action']}"
            f" {r['object_type']}:{r['object_id']} {r['details']}",
            soft_wrap=True,
            markup=False,
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
from civicseal.cli import (  # noqa: E402, F401
    contractor_cmds,
    custody_cmds,
    dlp_cmds,
    entitlement_cmds,
    incident_cmds,
    keys_cmds,
    payments_cmds,
    programme_cmds,
    seal_cmds,
)
