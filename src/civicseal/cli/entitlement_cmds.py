"""`civicseal entitlement …`: look at one entitlement and correct it (decline, withdraw, confirm)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from civicseal.cli.app import HomeOption, JsonOption, app, open_home
from civicseal.cli.output import console, print_json
from civicseal.programme.defaults import FORM_REASON

if TYPE_CHECKING:
    from civicseal.programme.entitlements import Change

entitlement_app = typer.Typer(help="One entitlement: show it, decline, withdraw or confirm it.", no_args_is_help=True)
app.add_typer(entitlement_app, name="entitlement")

ReferenceArgument = Annotated[str, typer.Argument(help="The reference number on the letter (1234 5678 9012).")]
ReasonOption = Annotated[str, typer.Option(help="Why: kept in the entitlement's history (not in the audit chain).")]


def _report(change: Change, json_out: bool) -> None:
    from civicseal.programme.reference import printed

    if json_out:
        print_json({"reference_number": change.reference_number, "from": change.old, "to": change.new})
    else:
        console.print(f"{printed(change.reference_number)}: {change.old} → {change.new}", markup=False)


@entitlement_app.command("show")
def entitlement_show(reference: ReferenceArgument, home: HomeOption = None, json_out: JsonOption = False) -> None:
    """Status, programme, the account it would be paid into (number masked) and its history."""
    from civicseal.cseal import rfc3339
    from civicseal.incident.appi import when_en
    from civicseal.keys.city import load_city_keys
    from civicseal.programme import confirmation
    from civicseal.programme.reference import printed

    opened = open_home(home)
    shown = confirmation.show(opened.engine, load_city_keys(opened.keys).field_cipher(), reference)
    history: list[dict] = shown["history"]  # type: ignore[assignment]
    if json_out:
        print_json(shown | {"history": [step | {"at": rfc3339(step["at"])} for step in history]})
        return
    account = shown["account"]
    lines = [
        f"{printed(str(shown['reference_number']))} ({shown['programme']}): {shown['status']},"
        f" {shown['amount']:,} yen, household {shown['household_code']}, {shown['members']} members",  # type: ignore[str-format]
        "account: none (bank-transfer cannot pay it)"
        if account is None
        else f"account ({account['source']}): bank {account['bank_code']} branch {account['branch_code']}"  # type: ignore[index]
        f" type {account['account_type']} number {account['account_number']}",  # type: ignore[index]
    ]
    lines += [
        f"{when_en(step['at'])} {step['from']} → {step['to']} by {step['actor']}: {step['reason']}" for step in history
    ]
    console.print("\n".join(lines), markup=False, soft_wrap=True)


@entitlement_app.command("decline")
def entitlement_decline(
    reference: ReferenceArgument, reason: ReasonOption, home: HomeOption = None, json_out: JsonOption = False
) -> None:
    """The household declines the benefit (final)."""
    from civicseal.programme import confirmation

    _report(confirmation.decline(open_home(home).engine, reference, reason=reason), json_out)


@entitlement_app.command("withdraw")
def entitlement_withdraw(
    reference: ReferenceArgument, reason: ReasonOption, home: HomeOption = None, json_out: JsonOption = False
) -> None:
    """The household no longer qualifies: withdraw it before payment (final)."""
    from civicseal.programme import confirmation

    _report(confirmation.withdraw(open_home(home).engine, reference, reason=reason), json_out)


@entitlement_app.command("confirm")
def entitlement_confirm(
    reference: ReferenceArgument,
    bank: Annotated[str | None, typer.Option(help="Bank code (4 digits) of the account given on the form.")] = None,
    branch: Annotated[str | None, typer.Option(help="Branch code (3 digits).")] = None,
    account_type: Annotated[str | None, typer.Option("--type", help="1 普通, 2 当座, 4 貯蓄, 9 その他.")] = None,
    account: Annotated[str | None, typer.Option(help="Account number (up to 7 digits).")] = None,
    holder_kana: Annotated[str | None, typer.Option(help="Account holder in kana, as the bank writes it.")] = None,
    reason: ReasonOption = FORM_REASON,
    home: HomeOption = None,
    json_out: JsonOption = False,
) -> None:
    """Confirm an entitlement, with the account the household gave (checked as the register's are), if any."""
    from civicseal.keys.city import load_city_keys
    from civicseal.programme import confirmation

    opened = open_home(home)
    typed = {"bank_code": bank, "branch_code": branch, "account_type": account_type}
    typed |= {"account_number": account, "holder_kana": holder_kana}
    given = None
    if any(v is not None for v in typed.values()):
        given = confirmation.read_account({k: v or "" for k, v in typed.items()})
    cipher = load_city_keys(opened.keys).field_cipher()
    _report(confirmation.confirm(opened.engine, cipher, reference, given, reason=reason), json_out)
