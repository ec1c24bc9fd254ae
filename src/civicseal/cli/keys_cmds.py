"""Commands of this area; each registers itself on the shared Typer app.

``recipient keygen|add|unlock|list``, ``serve``, ``package revoke`` and ``trust add``: each parses its
arguments, makes one library call and renders what came back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from civicseal.audit.log import os_actor
from civicseal.cli import seal_cmds  # noqa: F401  (registers its groups first: `package` is shared)
from civicseal.cli.app import HomeOption, JsonOption, app, keys_app, open_home
from civicseal.cli.output import console, err_console, print_json
from civicseal.clock import utcnow
from civicseal.keys.city import load_city_keys
from civicseal.keys.trust import format_public_key
from civicseal.store.home import Home


def _group(name: str, help_text: str) -> typer.Typer:
    """The sub-app ``name`` on ``app``: the one another module registered, else a new one.

    ``package`` holds the seal side's ``list``/``show`` and this module's ``revoke``; Typer keeps only
    the last group registered under a name, so both must add their commands to one object.
    """
    for group in app.registered_groups:
        if group.name == name and group.typer_instance is not None:
            return group.typer_instance
    sub = typer.Typer(help=help_text, no_args_is_help=True)
    app.add_typer(sub, name=name)
    return sub


recipient_app = _group("recipient", "Contractors: their age keys and key-service tokens.")
package_app = _group("package", "Sealed packages the city issued.")
trust_app = _group("trust", "Issuer keys this home accepts packages from.")


@recipient_app.command("keygen")
def recipient_keygen(
    out: Annotated[Path, typer.Option("--out", help="Where to write the new age identity (0600, never replaced).")],
) -> None:
    """Make the contractor's own age identity; print the public recipient to give to the city."""
    from civicseal.keys.recipients import keygen

    public = keygen(out)
    err_console.print(f"identity written to {out}; keep it secret, give the city only the line below")
    console.print(public, soft_wrap=True)


@recipient_app.command("add")
def recipient_add(
    name: Annotated[str, typer.Argument(help="The contractor's name: letters, digits, '-', '_'.")],
    age_recipient: Annotated[str, typer.Option("--age-recipient", help="The contractor's public age1… key.")],
    home: HomeOption = None,
) -> None:
    """Register a contractor and print its key-service token — shown this once, stored only as a hash."""
    from civicseal.keys.recipients import add_recipient

    token = add_recipient(open_home(home).engine, name, age_recipient, now=utcnow(), actor=os_actor())
    err_console.print(
        f"recipient {name} registered. Its key-service token is printed below and is shown ONCE:"
        " the city keeps only its hash. Hand it to the contractor over a separate channel."
    )
    console.print(token, soft_wrap=True, markup=False)


@recipient_app.command("unlock")
def recipient_unlock(name: str, home: HomeOption = None) -> None:
    """Clear a recipient's lock-out (10 failed unlocks in an hour); recorded in the unlock log."""
    from civicseal.keys.recipients import unlock_recipient

    unlock_recipient(open_home(home).engine, name, now=utcnow(), actor=os_actor())
    console.print(f"recipient {name} unlocked")


@recipient_app.command("list")
def recipient_list(home: HomeOption = None, json_out: JsonOption = False) -> None:
    """The registered recipients, their token ids and whether they are locked."""
    from civicseal.keys.recipients import list_recipients

    recipients = [r.as_dict() for r in list_recipients(open_home(home).engine)]
    if json_out:
        print_json({"recipients": recipients})
        return
    if not recipients:
        console.print("no recipients")
    for r in recipients:
        state = f"LOCKED since {r['locked_at']}" if r["locked"] else "active"
        console.print(f"{r['name']}: token {r['token_id']}, {r['age_recipient']}, {state}", soft_wrap=True)


@app.command("serve")
def serve_command(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8470,
    home: HomeOption = None,
) -> None:
    """Run a key-service worker (plain HTTP: put TLS in front of it off loopback); it loads only the unlock key."""
    from civicseal.keys.client import is_loopback_host
    from civicseal.keys.service import serve
    from civicseal.keys.split import rewrap_identities

    opened = open_home(home)
    if not opened.is_key_service:
        rewrap_identities(opened)  # packages sealed before the unlock key existed
    if not is_loopback_host(host):
        err_console.print(f"warning: serving plain HTTP on {host}; terminate TLS in front of this worker")
    err_console.print(f"key service on http://{host}:{port} (Ctrl-C stops it)")
    serve(opened, host=host, port=port)


@keys_app.command("public")
def keys_public(home: HomeOption = None) -> None:
    """Print the line a contractor gives to `civicseal trust add`."""
    opened = open_home(home)
    keys = load_city_keys(opened.keys)
    console.print(f"{opened.config.issuer} {format_public_key(keys.signing.public_key())}", soft_wrap=True)


@keys_app.command("split-service")
def keys_split_service(
    out: Annotated[Path, typer.Option("--out", help="A new or empty folder for the key-service home.")],
    home: HomeOption = None,
    json_out: JsonOption = False,
) -> None:
    """Make a home for a key-service host: the unlock key and the store's location, no other city key."""
    from civicseal.keys.split import split_service

    made = split_service(open_home(home), out, now=utcnow(), actor=os_actor())
    if json_out:
        print_json({"home": str(made.path), "store": made.database, "rewrapped": made.rewrapped})
        return
    console.print(f"key-service home written to {made.path} (store: {made.database})", markup=False, soft_wrap=True)
    console.print(
        f"copy it to the key-service host and run: civicseal serve --home {made.path}", markup=False, soft_wrap=True
    )


@package_app.command("revoke")
def package_revoke(
    package_id: Annotated[str, typer.Argument(metavar="ID", help="The package id (pkg_…).")],
    reason: Annotated[str, typer.Option("--reason", help="Why (kept with the package; name no person).")],
    home: HomeOption = None,
) -> None:
    """Revoke a package: final, and from now on every key-service worker refuses to unlock it."""
    from civicseal.keys.revocation import revoke_and_anchor

    done = revoke_and_anchor(open_home(home), package_id, reason, now=utcnow(), actor=os_actor())
    console.print(f"package {done.package_id} revoked at {done.revoked_at.isoformat()}")
    if not done.effective:
        err_console.print(
            f"warning: {done.package_id} is a {done.mode}-mode package: it opens without the key service,"
            " so revoking it is on record but stops no one"
        )


@trust_app.command("add")
def trust_add(
    name: Annotated[str, typer.Argument(help="A name for the issuer, e.g. the city.")],
    public_key: Annotated[str, typer.Argument(metavar="PUBKEY", help="ed25519:<base64>, from `keys public`.")],
    home: HomeOption = None,
) -> None:
    """Trust an issuer's signing key in this home (a contractor's home needs no database or config)."""
    from civicseal.keys.trust import add_trusted

    kid = add_trusted(Home(home).path, name, public_key)
    console.print(f"trusted issuer {name} with key id {kid}")
