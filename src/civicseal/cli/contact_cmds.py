"""``civicseal user …``: contact-centre accounts. Each command parses, makes one library call, renders."""

from __future__ import annotations

from typing import Annotated

import typer

from civicseal.cli.app import HomeOption, JsonOption, app, open_home
from civicseal.cli.output import console, err_console, print_json
from civicseal.clock import utcnow
from civicseal.contact.roles import Role

user_app = typer.Typer(help="Contact-centre users: operators, supervisors, admins.", no_args_is_help=True)
app.add_typer(user_app, name="user")


@user_app.command("add")
def user_add(
    name: Annotated[str, typer.Argument(help="User name: lowercase letters, digits, '.', '_', '-'.")],
    role: Annotated[Role, typer.Option("--role", help="operator, supervisor or admin.")],
    organization: Annotated[
        str | None, typer.Option("--organization", help="The recipient (contractor) the user works for.")
    ] = None,
    totp: Annotated[
        bool, typer.Option("--totp", help="Set up a one-time code (always for supervisors, admins).")
    ] = False,
    home: HomeOption = None,
    json_out: JsonOption = False,
) -> None:
    """Create a user; its generated password (and TOTP secret) are printed this once and never stored in clear."""
    from civicseal.audit.log import current_actor
    from civicseal.contact import users
    from civicseal.keys.city import load_city_keys

    opened = open_home(home)
    cipher = load_city_keys(opened.keys).field_cipher()
    issuer = opened.config.issuer_display
    new = users.add_user(
        opened.engine,
        cipher,
        name,
        role,
        organization=organization,
        totp=totp,
        issuer=issuer,
        now=utcnow(),
        actor=current_actor(),
    )
    shown = {
        "username": new.username,
        "role": new.role.value,
        "organization": new.organization,
        "password": new.password,
        "totp_secret": new.totp_secret,
        "totp_uri": new.totp_uri,
    }
    if json_out:
        print_json(shown)
        return
    err_console.print("shown ONCE: hand the password (and one-time code secret) to the user in person", markup=False)
    for key, value in shown.items():
        if value is not None:
            console.print(f"{key}: {value}", markup=False, soft_wrap=True)


@user_app.command("list")
def user_list(home: HomeOption = None, json_out: JsonOption = False) -> None:
    """Users, roles, organizations, open sessions and locks (no secret)."""
    from civicseal.contact import users

    opened = open_home(home)
    with opened.engine.connect() as conn:
        found = users.list_users(conn, now=utcnow())
    if json_out:
        print_json({"users": [u.as_dict() for u in found]})
        return
    if not found:
        console.print("no users; add one with `civicseal user add NAME --role operator --organization RECIPIENT`")
    for u in found:
        lock = f"LOCKED ({u.locked_reason})" if u.locked else "active"
        totp = "yes" if u.totp else "no"
        console.print(
            f"{u.username}: {u.role}, {u.organization or 'city'}, one-time code {totp}, "
            f"{u.open_sessions} open sessions, {lock}",
            markup=False,
        )


@user_app.command("unlock")
def user_unlock(name: str, home: HomeOption = None) -> None:
    """Clear a lock (failed sign-ins or an extraction limit); audited."""
    from civicseal.audit.log import current_actor
    from civicseal.contact import users

    users.unlock_user(open_home(home).engine, name, now=utcnow(), actor=current_actor())
    console.print(f"user {name} unlocked", markup=False)


@user_app.command("revoke-sessions")
def user_revoke(name: str, home: HomeOption = None) -> None:
    """Sign a user out everywhere at once; audited."""
    from civicseal.audit.log import current_actor
    from civicseal.contact import users

    ended = users.revoke_sessions(open_home(home).engine, name, now=utcnow(), actor=current_actor())
    console.print(f"user {name}: {ended} sessions ended", markup=False)


@user_app.command("token")
def user_token(name: str, home: HomeOption = None) -> None:
    """Issue the user's API token (replacing any earlier one); printed this once, stored as SHA-256."""
    from civicseal.audit.log import current_actor
    from civicseal.contact import users

    token = users.issue_api_token(open_home(home).engine, name, now=utcnow(), actor=current_actor())
    err_console.print("API token, shown ONCE:", markup=False)
    console.print(token, markup=False, soft_wrap=True)


@user_app.command("limits")
def user_limits(
    name: str,
    hourly: Annotated[int, typer.Option("--hourly", help="Look-ups an hour before the account locks.")] = 120,
    misses: Annotated[int, typer.Option("--misses", help="Per cent of misses in 20 look-ups that locks.")] = 30,
    home: HomeOption = None,
) -> None:
    """Set a user's extraction limits (default 120 look-ups an hour, 30 % misses in any 20); audited."""
    from civicseal.audit.log import current_actor
    from civicseal.contact import users

    users.set_limits(
        open_home(home).engine, name, hourly=hourly, miss_percent=misses, now=utcnow(), actor=current_actor()
    )
    console.print(f"user {name}: {hourly} look-ups an hour, {misses} % misses in 20", markup=False)
