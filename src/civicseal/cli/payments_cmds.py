"""Commands for payments: make a Zengin batch (sealed for the bank), mark it sent, check files, reconcile."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from civicseal.cli.app import HomeOption, JsonOption, ModeName, _parse_cli, app, open_home
from civicseal.cli.output import console, print_json, print_table
from civicseal.clock import TOKYO

payments_app = typer.Typer(help="Zengin transfer files, sealed for the bank, and returns.", no_args_is_help=True)
app.add_typer(payments_app, name="payments")


def _jst(rfc3339: str) -> str:
    from civicseal import cseal as fmt

    return fmt.parse_rfc3339(rfc3339).astimezone(TOKYO).strftime("%Y-%m-%d %H:%M JST")


@payments_app.command("batch")
def payments_batch(
    programme: Annotated[str, typer.Option(help="The programme whose confirmed entitlements are paid.")],
    pay_date: Annotated[str, typer.Option(help="Transfer date (振込指定日), a bank business day: 2022-08-01.")],
    payer_code: Annotated[str, typer.Option(help="The city's payer code at its bank (振込依頼人コード, 10 digits).")],
    payer_name: Annotated[str, typer.Option(help="The city's name in kana (振込依頼人名).")],
    payer_bank: Annotated[str, typer.Option(help="The city's bank code (4 digits).")],
    payer_branch: Annotated[str, typer.Option(help="The city's branch code (3 digits).")],
    payer_account: Annotated[str, typer.Option(help="The city's account number (up to 7 digits).")],
    out: Annotated[Path, typer.Option(help="The Zengin file, or with --seal-to the .cseal package, to write.")],
    payer_account_type: Annotated[str, typer.Option(help="普通 (1), 当座 (2), 貯蓄 (4) or その他 (9).")] = "1",
    crlf: Annotated[bool, typer.Option("--crlf", help="End each 120-byte record with CR LF (122 bytes).")] = False,
    seal_to: Annotated[
        str | None, typer.Option(help="Seal the file for this recipient (the bank); no plaintext is written.")
    ] = None,
    mode: Annotated[ModeName | None, typer.Option(help="With --seal-to: recipient (default) or tethered.")] = None,
    key_service: Annotated[str | None, typer.Option(help="Tethered: key service URL.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing plain file.")] = False,
    home: HomeOption = None,
    json_out: JsonOption = False,
) -> None:
    """Write a Zengin 総合振込 file of the confirmed entitlements not yet paid; hold possible double payments."""
    from civicseal import cseal as fmt
    from civicseal.payments.service import BatchRequest, make_batch
    from civicseal.programme.reference import printed
    from civicseal.register.normalize import parse_account_type, parse_date

    request = BatchRequest(
        programme=programme,
        pay_date=_parse_cli(parse_date, pay_date, "--pay-date"),
        payer_code=payer_code,
        payer_name=payer_name,
        payer_bank=payer_bank,
        payer_branch=payer_branch,
        payer_account=payer_account,
        payer_account_type=_parse_cli(parse_account_type, payer_account_type, "--payer-account-type"),
        out=out,
        crlf=crlf,
        seal_to=seal_to,
        mode=fmt.Mode(mode) if mode else None,
        key_service_url=key_service,
        force=force,
    )
    summary = make_batch(open_home(home), request)
    if json_out:
        print_json(summary.as_dict())
        return
    rows: dict[str, object] = {
        "programme": summary.programme,
        "pay date": summary.pay_date,
        "transfers": summary.records,
        "total (yen)": summary.total_amount,
        "held for a supervisor": len(summary.held),
        "already in a batch not yet sent": summary.in_unsent_batch,
        "file": summary.out,
    }
    if summary.package_id:
        rows |= {"sealed for": summary.recipient, "package": summary.package_id, "mode": summary.mode}
        rows["expires"] = _jst(summary.expires or "")
    else:
        rows["sealed"] = "no: plaintext account numbers; seal it with --seal-to next time"
    print_table(f"payment batch {summary.batch_id}", rows)
    for held in summary.held:
        console.print(f"  held: {printed(held.reference_number)} ({held.rule})", markup=False)
    if summary.held:
        console.print(
            "  check each held payee; `civicseal payments clear REFERENCE --reason TEXT` lets a later batch pay it",
            markup=False,
        )
    console.print(f"  after handing the file to the bank: `civicseal payments sent {summary.batch_id}`", markup=False)


@payments_app.command("sent")
def payments_sent(batch: int, home: HomeOption = None, json_out: JsonOption = False) -> None:
    """The batch's file went to the bank: its entitlements become paid."""
    from civicseal.payments.service import mark_sent

    summary = mark_sent(open_home(home).engine, batch)
    if json_out:
        print_json(asdict(summary))
        return
    console.print(
        f"batch {batch} marked sent {_jst(summary.sent_at)}: {summary.records:,} entitlements paid,"
        f" {summary.total_amount:,} yen",
        markup=False,
    )


@payments_app.command("check")
def payments_check(file: Path, json_out: JsonOption = False) -> None:
    """Check any Zengin 総合振込 file: lengths, order, field types, characters, codes, totals."""
    from civicseal.payments.errors import PaymentsError
    from civicseal.payments.zengin import check

    try:
        data = file.read_bytes()
    except OSError as exc:
        raise PaymentsError(f"cannot read {file}: {exc.strerror or type(exc).__name__}") from None
    result = check(data)
    figures = {
        "file": str(file),
        "ok": result.ok,
        "bytes": result.size,
        "records": result.records,
        "line_end": result.line_end,
        "groups": result.groups,
        "transfers": result.count,
        "total_amount": result.total,
    }
    if json_out:
        print_json(figures | {"problems": [p.as_dict() for p in result.problems]})
    else:
        labels = {"ok": "checks clean", "line_end": "line end", "total_amount": "total (yen)"}
        shown = figures | {"ok": "yes" if result.ok else "no"}
        print_table(f"zengin check: {file.name}", {labels.get(k, k): v for k, v in shown.items()})
        for problem in result.problems:
            console.print(f"  {problem}", markup=False)
        if result.problems:
            console.print("  fix these records and check the file again before it goes to the bank", markup=False)
    if result.problems:
        raise typer.Exit(1)


@payments_app.command("reconcile")
def payments_reconcile(
    batch: int,
    returns: Annotated[
        Path, typer.Option(help="The bank's returns: a Zengin file, or CSV reference_number,reason_code.")
    ],
    home: HomeOption = None,
    json_out: JsonOption = False,
) -> None:
    """Move the transfers the bank returned to `returned`; they are paid again once confirmed anew."""
    from civicseal.payments.service import reconcile

    summary = reconcile(open_home(home), batch, returns)
    if json_out:
        print_json(asdict(summary))
        return
    print_table(
        f"returns of batch {batch}",
        {"returned": summary.returned, "returned (yen)": summary.returned_amount, "still paid": summary.still_paid},
    )
    if summary.returned:
        console.print(
            "  correct each returned account and confirm the entitlement again; the next batch pays it", markup=False
        )


@payments_app.command("clear")
def payments_clear(
    reference: str,
    reason: Annotated[str, typer.Option(help="What the supervisor checked.")],
    home: HomeOption = None,
    json_out: JsonOption = False,
) -> None:
    """A supervisor clears a payee held as a possible double payment; the next batch pays it."""
    from civicseal.payments.service import clear_hold

    cleared = clear_hold(open_home(home).engine, reference, reason=reason)
    if json_out:
        print_json({"reference_number": reference, "cleared": cleared})
        return
    console.print(f"cleared {cleared} hold(s); the next batch pays this entitlement", markup=False)
