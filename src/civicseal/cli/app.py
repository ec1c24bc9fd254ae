"""Typer commands: each parses its options, makes one library call and renders what came back."""

from __future__ import annotations

import copy
import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Literal, TypeVar

import typer

from civicseal import __version__
from civicseal.cli.output import console, print_json
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
# The values of cseal.Mode, named here so that `--help` does not load the package format and its ciphers.
ModeName = Literal["tethered", "recipient", "passphrase"]


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


def _parse_cli(parser: Callable[[str], T], raw: str, option: str) -> T:
    """An option parsed by the register's own normalizer, its rule shown as a usage error (exit 2)."""
    from civicseal.register.errors import InvalidValue

    try:
        return parser(raw)
    except InvalidValue as exc:
        raise typer.BadParameter(exc.rule, param_hint=option) from None


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
    from civicseal.keys.city import load_city_keys
    from civicseal.keys.trust import format_public_key

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


@app.command()
def upgrade(home: HomeOption = None, json_out: JsonOption = False) -> None:
    """Bring the home's store to this civicseal's schema, after installing a new version (back up first)."""
    from civicseal.homes import upgrade_home

    before, after = upgrade_home(home)
    if json_out:
        print_json({"from": before, "to": after, "changed": before != after})
    elif before == after:
        console.print(f"the store is at schema {after} already: nothing to do")
    else:
        console.print(f"the store went from schema {before} to {after}")


@app.command()
def demo(
    home: HomeOption = None,
    residents: Annotated[int, typer.Option(min=1000, help="Size of the synthetic city.")] = 460_517,
    seed: int = 7,
    serve: Annotated[bool, typer.Option("--serve", help="End with the contact centre running.")] = False,
    json_out: JsonOption = False,
) -> None:
    """The whole story on a synthetic Amagasaki, in a fresh temporary home (or --home)."""
    import gc
    import sys

    from civicseal.cli.demo_synth import start_synthesis

    synthesis = start_synthesis(residents, seed)  # first: it runs while the story's modules load
    from civicseal.cli.demo import run_demo

    if json_out:
        console.file = sys.stderr  # the story goes to stderr; stdout carries the one JSON object
    figures = run_demo(home, synthesis, serve=serve)
    if json_out:
        print_json(figures)
    # The process ends here. What the story loaded (the web framework, the store, Arrow) is a few hundred
    # thousand objects, and the collector's passes over them at exit took half a second: they are frozen
    # out of them (exit handlers and module clean-up still run).
    gc.freeze()


# The command modules that define each word a command line may start with (besides HERE's, defined in
# this module). A command imports only its own modules, so that Typer turns only their commands into Click's:
# all 63 of them took every command 0.09 s before it began. Help, and a word that is none of these, import
# them all (ALL_MODULES, in the order `civicseal --help` lists them).
HERE = ("init", "upgrade", "demo")
COMMAND_MODULES: dict[str, tuple[str, ...]] = {
    "synth": ("register_cmds",),
    "register": ("register_cmds",),
    "programme": ("programme_cmds",),
    "audit": ("audit_cmds",),
    "keys": ("keys_cmds",),
    "serve": ("keys_cmds",),
    "recipient": ("keys_cmds",),
    "trust": ("keys_cmds",),
    "purpose": ("seal_cmds",),
    "package": ("seal_cmds", "keys_cmds"),
    "seal": ("seal_cmds",),
    "verify": ("seal_cmds",),
    "open": ("seal_cmds",),
    "trace": ("seal_cmds",),
    "custody": ("custody_cmds",),
    "incident": ("incident_cmds",),
    "contractor": ("contractor_cmds",),
    "exposure": ("contractor_cmds",),
    "dlp": ("dlp_cmds",),
    "scan": ("dlp_cmds",),
    "entitlement": ("entitlement_cmds",),
    "user": ("contact_cmds",),
    "payments": ("payments_cmds",),
}
ALL_MODULES = (
    "audit_cmds",
    "contact_cmds",
    "contractor_cmds",
    "custody_cmds",
    "dlp_cmds",
    "entitlement_cmds",
    "incident_cmds",
    "keys_cmds",
    "payments_cmds",
    "programme_cmds",
    "register_cmds",
    "seal_cmds",
)


def load_commands(word: str | None) -> typer.Typer:
    """The app with the commands a line starting with ``word`` may need (a module registers its commands
    on :data:`app` when imported); every command for a word no module defines; for a line with no command
    word (`civicseal --help`), :func:`_top_level`."""
    known = word in COMMAND_MODULES or word in HERE
    for module in COMMAND_MODULES.get(word or "", ()) if known else ALL_MODULES:
        importlib.import_module(f"civicseal.cli.{module}")
    return app if word is not None else _top_level()


def _top_level() -> typer.Typer:
    """The app as its own help shows it: every command, and every group by its name and help alone.

    The groups' own commands are left out because nothing at this level can reach them, and Typer would
    build all 53 of them (a fifth of `civicseal --help`'s time) only to list the groups.
    """
    shown = copy.copy(app)
    shown.registered_groups = []
    for group in app.registered_groups:
        outline = typer.Typer()
        outline.info = group.typer_instance.info  # its name, help and settings: no commands
        listed = copy.copy(group)
        listed.typer_instance = outline
        shown.registered_groups.append(listed)
    return shown
