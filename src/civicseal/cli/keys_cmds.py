"""Commands of this area; each registers itself on the shared Typer app.

``recipient keygen|add|unlock|list``, ``serve``, ``package revoke`` and ``trust add``: each parses its
arguments, makes one library call and renders what came back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from civicseal.cli import seal_cmds  # noqa: F401  (registers its groups first: `package` is shared)
from civicseal.cli.app import HomeOption, JsonOption, app, keys_app, open_home
from civicseal.cli.output import console, err_console, print_json
from civicseal.clock import for_people, rfc3339, utcnow
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
    json_out: JsonOption = False,
) -> None:
    """Make the contractor's own age identity; print the public recipient to give to the city."""
    from civicseal.keys.recipients import keygen

    public = keygen(out)
    if json_out:
        print_json({"identity_file": str(out), "age_recipient": public})
        return
    err_console.print(
        f"identity written to {out}; keep it secret, give the city only the line below", markup=False, soft_wrap=True
    )
    console.print(public, soft_wrap=True, markup=False)


@recipient_app.command("add")
def recipient_add(
    name: Annotated[str, typer.Argument(help="The contractor's name: letters, digits, '-', '_'.")],
    age_recipient: Annotated[str, typer.Option("--age-recipient", help="The contractor's public age1… key.")],
    contractor: Annotated[
        str | None, typer.Option(help="The registered contractor it works for (`civicseal contractor add`).")
    ] = None,
    display_name: Annotated[str | None, typer.Option(help="The name people read, in any script.")] = None,
    home: HomeOption = None,
    json_out: JsonOption = False,
) -> None:
    """Register a contractor and print its key-service token — shown this once, stored only as a hash."""
    from civicseal.audit.log import current_actor
    from civicseal.keys.recipients import add_recipient

    token = add_recipient(
        open_home(home).engine,
        name,
        age_recipient,
        now=utcnow(),
        actor=current_actor(),
        display_name=display_name,
        contractor=contractor,
    )
    if json_out:
        print_json({"recipient": name, "token": token})
        return
    err_console.print(
        f"recipient {name} registered. Its key-service token is printed below and is shown ONCE:"
        " the city keeps only its hash. Hand it to the contractor over a separate channel.",
        markup=False,
        soft_wrap=True,
    )
    console.print(token, soft_wrap=True, markup=False)


@recipient_app.command("unlock")
def recipient_unlock(name: str, home: HomeOption = None) -> None:
    """Clear a recipient's lock-out (10 failed unlocks in an hour); recorded in the unlock log."""
    from civicseal.audit.log import current_actor
    from civicseal.keys.recipients import unlock_recipient

    unlock_recipient(open_home(home).engine, name, now=utcnow(), actor=current_actor())
    console.print(f"recipient {name} unlocked")


@recipient_app.command("rotate-token")
def recipient_rotate_token(
    name: Annotated[str, typer.Argument(help="The recipient whose token was lost or exposed.")],
    home: HomeOption = None,
    json_out: JsonOption = False,
) -> None:
    """Replace a recipient's key-service token: the old one stops at once; the new one is shown ONCE."""
    from civicseal.audit.log import current_actor
    from civicseal.keys.recipients import rotate_token

    token = rotate_token(open_home(home).engine, name, now=utcnow(), actor=current_actor())
    if json_out:
        print_json({"recipient": name, "token": token})
        return
    err_console.print(
        f"recipient {name} has a new key-service token, printed below and shown ONCE; the old token no"
        " longer works. Hand it to the contractor over a separate channel.",
        markup=False,
        soft_wrap=True,
    )
    console.print(token, soft_wrap=True, markup=False)


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
        works_for = f", contractor {r['contractor']}" if r["contractor"] else ""
        console.print(
            f"{r['display_name']} ({r['name']}): token {r['token_id']}, {r['age_recipient']}, {state}{works_for}",
            soft_wrap=True,
            markup=False,
        )


@app.command("serve")
def serve_command(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8470,
    workers: Annotated[int, typer.Option(min=1, max=64, help="Worker processes (above 1: PostgreSQL).")] = 1,
    home: HomeOption = None,
) -> None:
    """Run the key service and, in the city's home, the contact centre (plain HTTP: TLS in front off loopback).

    A key-service home (``keys split-service``) serves the key service's routes only and loads only the unlock key.
    """
    from civicseal.keys.client import is_loopback_host
    from civicseal.keys.split import rewrap_identities
    from civicseal.web.app import serve, serves_pages

    opened = open_home(home)
    if not opened.is_key_service:
        rewrap_identities(opened)  # packages sealed before the unlock key existed
    if not is_loopback_host(host):
        err_console.print(f"warning: serving plain HTTP on {host}; terminate TLS in front of this worker")
    what = "key service and contact centre" if serves_pages(opened) else "key service"
    err_console.print(f"{what} on http://{host}:{port} (Ctrl-C stops it)", markup=False)
    serve(opened, host=host, port=port, workers=workers)


@keys_app.command("public")
def keys_public(home: HomeOption = None, json_out: JsonOption = False) -> None:
    """Print the line a contractor gives to `civicseal trust add`."""
    from civicseal.keys.city import load_city_keys
    from civicseal.keys.trust import format_public_key

    opened = open_home(home)
    keys = load_city_keys(opened.keys)
    public = format_public_key(keys.signing.public_key())
    if json_out:
        print_json({"issuer": opened.config.issuer, "public_key": public, "key_id": keys.signing_key_id})
        return
    console.print(f"{opened.config.issuer} {public}", soft_wrap=True, markup=False)


@keys_app.command("split-service")
def keys_split_service(
    out: Annotated[Path, typer.Option("--out", help="A new or empty folder for the key-service home.")],
    home: HomeOption = None,
    json_out: JsonOption = False,
) -> None:
    """Make a home for a key-service host: the unlock key and the store's location, no other city key."""
    from civicseal.audit.log import current_actor
    from civicseal.keys.split import split_service

    made = split_service(open_home(home), out, now=utcnow(), actor=current_actor())
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
    json_out: JsonOption = False,
) -> None:
    """Revoke a package: final, and from now on every key-service worker refuses to unlock it."""
    from civicseal.audit.log import current_actor
    from civicseal.keys.revocation import revoke_and_anchor

    done = revoke_and_anchor(open_home(home), package_id, reason, now=utcnow(), actor=current_actor())
    if json_out:
        print_json(
            {"package_id": done.package_id, "revoked_at": rfc3339(done.revoked_at), "stops_unlocks": done.effective}
        )
        return
    console.print(f"package {done.package_id} revoked at {for_people(done.revoked_at)}", markup=False)
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
    json_out: JsonOption = False,
) -> None:
    """Trust an issuer's signing key in this home (a contractor's home needs no database or config)."""
    from civicseal.keys.trust import add_trusted

    kid = add_trusted(Home(home).path, name, public_key)
    if json_out:
        print_json({"name": name, "key_id": kid})
        return
    console.print(f"trusted issuer {name} with key id {kid}", markup=False)


@trust_app.command("list")
def trust_list(home: HomeOption = None, json_out: JsonOption = False) -> None:
    """The issuers this home accepts packages from: name, key id and key."""
    from civicseal.keys.trust import load_issuers

    issuers = [{"name": i.name, "key_id": i.key_id, "public_key": i.public_line} for i in load_issuers(Home(home).path)]
    if json_out:
        print_json({"issuers": issuers})
        return
    if not issuers:
        console.print("no trusted issuers; add one with `civicseal trust add NAME ed25519:…`", markup=False)
    for i in issuers:
        console.print(f"{i['name']}: key id {i['key_id']}, {i['public_key']}", soft_wrap=True, markup=False)


@trust_app.command("remove")
def trust_remove(
    name: Annotated[str, typer.Argument(help="The issuer's name, as `trust list` shows it.")],
    home: HomeOption = None,
    json_out: JsonOption = False,
) -> None:
    """Stop accepting packages signed by an issuer's key (its packages no longer open here)."""
    from civicseal.keys.trust import remove_trusted

    removed = remove_trusted(Home(home).path, name)
    if json_out:
        print_json({"name": removed.name, "key_id": removed.key_id})
        return
    console.print(f"issuer {removed.name} (key id {removed.key_id}) is no longer trusted", markup=False)
