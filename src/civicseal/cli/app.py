"""Typer commands: each parses its options, makes one library call and renders what came back."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from civicseal import __version__
from civicseal.cli.output import console
from civicseal.store.home import Home

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
    audit_cmds,
    custody_cmds,
    incident_cmds,
    keys_cmds,
    programme_cmds,
    register_cmds,
    seal_cmds,
)
