"""``audit verify|show|anchor``: the hash-chained audit log, its anchors and the unlock evidence."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from civicseal.audit.errors import AuditError
from civicseal.cli.app import HomeOption, JsonOption, audit_app, open_home
from civicseal.cli.output import console, print_json, shown


@audit_app.command("verify")
def audit_verify(home: HomeOption = None, json_out: JsonOption = False) -> None:
    """Check the chain row by row and against every anchor, and the unlock log against the chain."""
    from civicseal.keys.evidence import verify_evidence

    result = verify_evidence(open_home(home))
    latest = result.latest_anchor
    if json_out:
        print_json(
            {
                "ok": result.ok,
                "rows": result.chain.rows,
                "first_bad_seq": result.chain.first_bad_seq,
                "anchors": result.anchors,
                "latest_anchor": latest.as_dict() if latest else None,
                "unlock_log_rows": result.unlock_rows,
                "unlock_log_rows_before_chaining": result.unchained,
                "problem": None if result.ok else result.reason,
            }
        )
    elif result.ok:
        console.print(f"audit log intact: {result.chain.rows} rows; unlock log agrees ({result.unlock_rows} rows)")
        if latest is None:
            console.print("no anchors yet: run `civicseal audit anchor` (and schedule it)", markup=False)
        else:
            console.print(
                f"checked against {result.anchors} anchors; latest: row {latest.seq} at {shown(latest.at)}",
                markup=False,
                soft_wrap=True,
            )
    if not result.ok:
        raise AuditError(f"{result.reason}; keep the store and the anchors file as they are and tell the DPO")


@audit_app.command("anchor")
def audit_anchor(
    out: Annotated[Path | None, typer.Option(help="Also write this anchor alone to FILE, to hand over.")] = None,
    force: Annotated[bool, typer.Option(help="Replace an existing --out file.")] = False,
    home: HomeOption = None,
    json_out: JsonOption = False,
) -> None:
    """Sign the chain head with the city's key and append it to the anchors file outside the database."""
    from civicseal.keys.evidence import anchor

    opened = open_home(home)
    signed = anchor(opened, out=out, force=force)
    if json_out:
        print_json(signed.as_dict() | {"anchors_file": str(opened.anchors_path), "out": str(out) if out else None})
        return
    console.print(
        f"anchored row {signed.seq} ({signed.hash[:16]}…) at {shown(signed.at)} in {opened.anchors_path}",
        markup=False,
        soft_wrap=True,
    )
    if out is not None:
        console.print(f"a copy is in {out}", markup=False, soft_wrap=True)


@audit_app.command("show")
def audit_show(
    home: HomeOption = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many rows, newest last.")] = 50,
    json_out: JsonOption = False,
) -> None:
    """List audit rows: who, what, which object, counts."""
    from civicseal.audit import log as audit

    with open_home(home).engine.connect() as conn:
        rows = [dict(r) for r in audit.entries(conn, last=limit)]
    if json_out:
        print_json({"entries": rows})
        return
    for r in rows:
        console.print(
            f"{r['seq']:>6} {shown(r['at'])} {r['actor']} (OS user {r['os_user'] or '-'}) {r['action']}"
            f" {r['object_type']}:{r['object_id']} {r['details']}",
            soft_wrap=True,
            markup=False,
        )
