"""Commands for purposes, sealing, verifying, opening, listing and tracing packages."""

from __future__ import annotations

import getpass
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from civicseal.cli.app import HomeOption, JsonOption, ModeName, app, open_home
from civicseal.cli.output import console, err_console, print_json, print_table
from civicseal.cli.output import shown as people
from civicseal.clock import utcnow
from civicseal.store.home import Home

TOKEN_ENV = "CIVICSEAL_TOKEN"

purpose_app = typer.Typer(help="Declared purposes: the only reasons data may leave the city.", no_args_is_help=True)
package_app = typer.Typer(help="Packages the city has sealed.", no_args_is_help=True)
app.add_typer(purpose_app, name="purpose")
app.add_typer(package_app, name="package")


@purpose_app.command("list")
def purpose_list(json_out: JsonOption = False) -> None:
    """Each purpose with the only fields it may carry."""
    from civicseal.ledger.purposes import purposes

    listed = [
        {
            "name": p.name,
            "description": p.description,
            "fields": list(p.fields),
            "selects": p.selects,
            "canaries": p.canaries,
            "mode": p.mode.value,
            "max_days": p.max_validity.days,
        }
        for p in purposes().values()
    ]
    if json_out:
        print_json({"purposes": listed})
        return
    for p in listed:
        console.print(Text.assemble((p["name"], "bold"), f" — {p['description']}"))
        console.print(
            f"  fields: {', '.join(p['fields'])}\n"
            f"  selects: {p['selects']}; canaries: {'yes' if p['canaries'] else 'no'};"
            f" default mode: {p['mode']}; valid at most {p['max_days']} days"
        )


@app.command("seal")
def seal_command(
    programme: Annotated[str, typer.Option(help="The programme whose records the purpose selects.")],
    purpose: Annotated[str, typer.Option(help="A purpose from `civicseal purpose list`.")],
    to: Annotated[str, typer.Option("--to", help="The recipient (see `civicseal recipient add`).")],
    out: Annotated[Path, typer.Option(help="The .cseal file to write.")],
    mode: Annotated[ModeName | None, typer.Option(help="tethered (default), recipient or passphrase.")] = None,
    expires: Annotated[str | None, typer.Option(help="Validity, e.g. 14d or 14日; at most the purpose's.")] = None,
    payload_format: Annotated[str, typer.Option("--format", help="parquet or csv (UTF-8 with BOM).")] = "parquet",
    field: Annotated[list[str] | None, typer.Option(help="Carry only these of the purpose's fields.")] = None,
    key_service: Annotated[str | None, typer.Option(help="Key service URL (https, or http on loopback).")] = None,
    passphrase_file: Annotated[
        Path | None, typer.Option(help="Passphrase mode: use this passphrase instead of a generated one.")
    ] = None,
    home: HomeOption = None,
    json_out: JsonOption = False,
) -> None:
    """Seal the minimized records of a purpose for one recipient."""
    from civicseal import cseal as fmt
    from civicseal.keys.recipients import display_name_of_recipient
    from civicseal.seal.service import SealRequest, parse_duration, seal

    typed = _read_passphrase_file(passphrase_file) if passphrase_file else None
    request = SealRequest(
        programme=programme,
        purpose=purpose,
        recipient=to,
        out=out,
        mode=fmt.Mode(mode) if mode else None,
        expires_in=parse_duration(expires) if expires else None,
        payload_format=payload_format,
        fields=tuple(field) if field else None,
        key_service_url=key_service,
        passphrase=typed,
    )
    opened = open_home(home)
    summary = seal(opened, request)
    with opened.engine.connect() as conn:
        recipient_name = display_name_of_recipient(conn, summary.recipient)
    if json_out:
        print_json(summary.as_dict())
    else:
        print_table(
            f"sealed {summary.package_id}",
            {
                "purpose": summary.purpose,
                "recipient": recipient_name,
                "contractor chain": " > ".join(summary.contractor_chain) or "none registered",
                "register (households)": summary.register_households,
                "register (residents)": summary.register_residents,
                "records in package (households)": summary.records,
                "residents carried": summary.residents_carried,
                "fields": ", ".join(summary.fields),
                "canary records": summary.canaries,
                "mode": summary.mode,
                "expires": summary.expires,
                "file": summary.out,
            },
        )
    if summary.contractor is None:
        err_console.print(
            f"note: recipient {summary.recipient} belongs to no registered contractor, so no contract chain was"
            " checked (the city's own staff, or register the contractor with `civicseal contractor add`)",
            markup=False,
            soft_wrap=True,
        )
    if summary.passphrase:
        err_console.print(
            Text.assemble(
                (f"passphrase ({summary.passphrase_bits} bits), shown once — hand it over separately:", "bold"),
                f" {summary.passphrase}",
            ),
            highlight=False,
        )


def _read_passphrase_file(path: Path) -> str:
    from civicseal.cseal.errors import SealError

    try:
        return path.read_text(encoding="utf-8").rstrip("\r\n")
    except OSError as exc:
        raise SealError(f"{path}: cannot be read ({exc.strerror})") from None


def _token(given: str | None, token_file: Path | None) -> str | None:
    """``--token-file``, else ``--token`` (with a warning), else ``CIVICSEAL_TOKEN``."""
    from civicseal.cseal.errors import SealError

    if token_file is not None:
        try:
            return token_file.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError):
            raise SealError(f"{token_file}: cannot be read as a token file") from None
    if given is not None:
        err_console.print(
            f"warning: --token is visible to every user of this machine in the process list;"
            f" use {TOKEN_ENV} or --token-file instead",
            markup=False,
        )
        return given
    return os.environ.get(TOKEN_ENV) or None


def _reader_home(home: Path | None) -> Home:
    """A reader's home may be a contractor's: only its identity and trust.toml, no store."""
    return Home(home)


@app.command("verify")
def verify_command(file: Path, home: HomeOption = None, json_out: JsonOption = False) -> None:
    """Check framing, signature, manifest, payload hash and expiry — no secret key, no network."""
    from civicseal import cseal as fmt
    from civicseal.keys.trust import load_trusted

    pkg = fmt.read_package(file)
    fmt.verify(pkg, load_trusted(_reader_home(home).path), now=utcnow())
    manifest = pkg.manifest
    if json_out:
        print_json(
            {
                "ok": True,
                "package_id": pkg.package_id,
                "purpose": manifest["purpose"],
                "recipient": manifest["recipient"],
                "mode": manifest["mode"],
                "expires": manifest["expires"],
                "rows": manifest["payload"]["rows"],
            }
        )
    else:
        console.print(
            f"ok: {pkg.package_id} {manifest['purpose']} for {manifest['recipient']}, {manifest['mode']},"
            f" {manifest['payload']['rows']:,} rows, expires {manifest['expires']}"
        )


@app.command("open")
def open_command(
    file: Path,
    out: Annotated[Path, typer.Option(help="Where to write the plaintext table.")],
    identity: Annotated[Path | None, typer.Option(help="Your age identity file (recipient keygen).")] = None,
    token_file: Annotated[
        Path | None, typer.Option(help=f"Tethered: read your recipient token from this file (or set {TOKEN_ENV}).")
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(help=f"Your recipient token; visible to others in the process list: prefer {TOKEN_ENV}."),
    ] = None,
    passphrase_file: Annotated[Path | None, typer.Option(help="Passphrase mode: read it from this file.")] = None,
    force: Annotated[bool, typer.Option(help="Replace an existing --out.")] = False,
    home: HomeOption = None,
    json_out: JsonOption = False,
) -> None:
    """Open a package: every check first, then (tethered) the key service, then the plaintext."""
    from civicseal.seal.open import open_sealed

    passphrase = None
    if passphrase_file is not None:
        passphrase = _read_passphrase_file(passphrase_file)
    elif identity is None:
        passphrase = getpass.getpass("passphrase: ") if os.isatty(0) else None
    pkg = open_sealed(
        file,
        trust_home=_reader_home(home).path,
        out=out,
        force=force,
        identity_file=identity,
        token=_token(token, token_file),
        passphrase=passphrase,
    )
    rows = pkg.manifest["payload"]["rows"]
    if json_out:
        print_json({"package_id": pkg.package_id, "rows": rows, "out": str(out), "purpose": pkg.manifest["purpose"]})
        return
    console.print(f"opened {pkg.package_id}: {rows:,} rows written to {out}", markup=False)


@package_app.command("list")
def package_list(home: HomeOption = None, json_out: JsonOption = False) -> None:
    """Every package the city sealed, with its custody state."""
    from civicseal.seal.records import list_packages

    packages = list_packages(open_home(home).engine)
    if json_out:
        print_json({"packages": packages})
        return
    for p in packages:
        console.print(
            f"{p['package_id']} {p['purpose']} → {p['recipient_name']} ({p['mode']}) {p['records']:,} records,"
            f" custody {p['custody']}, expires {people(p['expires'])}{', REVOKED' if p['revoked'] else ''}",
            markup=False,
        )


@package_app.command("show")
def package_show(package_id: str, home: HomeOption = None, json_out: JsonOption = False) -> None:
    """Manifest, members, custody timeline and the unlock log of one package."""
    from civicseal.seal.records import show_package

    shown = show_package(open_home(home).engine, package_id)
    if json_out:
        print_json(shown)
        return
    print_table(f"package {package_id}", {k: v for k, v in shown.items() if not isinstance(v, list | dict)})
    console.print("custody", style="bold", markup=False)
    for event in shown["custody"]:
        console.print(f"  {people(event['at'])} {event['event']} {event['holder']}", markup=False)
    console.print("unlock log", style="bold", markup=False)
    for attempt in shown["unlock_log"]:
        console.print(f"  {people(attempt['at'])} {attempt['outcome']} from {attempt['source']}", markup=False)


@app.command("trace")
def trace_command(
    files: Annotated[list[Path], typer.Argument(help="Found files: CSV, Parquet, XLSX or plain text.")],
    home: HomeOption = None,
    json_out: JsonOption = False,
) -> None:
    """Name the recipient, then the package, a found copy came from: canaries, pseudonyms, reference numbers."""
    from civicseal.seal.trace import trace

    result = trace(open_home(home).engine, files)
    if json_out:
        print_json(result.as_dict())
        return
    if not result.recipients:
        console.print(
            f"no recipient or package matches ({result.pseudonym_like:,} pseudonym-like,"
            f" {result.reference_like:,} reference-like tokens)"
        )
        return
    for r in result.recipients:
        matched = f", by {', '.join(r.fields)}" if r.fields else ""
        console.print(f"{r.recipient}: {r.verdict} — canaries {r.canaries}{matched}", markup=False)
        for e in r.packages:
            console.print(
                f"  {e.package_id} ({e.purpose}): {e.verdict} — canaries {e.canaries}, pseudonyms {e.pseudonyms:,},"
                f" reference numbers {e.reference_numbers:,} of {e.records:,} records",
                markup=False,
            )
