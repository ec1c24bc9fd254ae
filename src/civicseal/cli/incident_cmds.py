"""`civicseal incident`: open an incident for a lost package, close it, report on it, list incidents.

Times typed without an offset are Asia/Tokyo time (the city's clock), as everywhere in the CLI.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from civicseal.cli.app import HomeOption, JsonOption, app, open_home
from civicseal.cli.output import console, print_json
from civicseal.custody.errors import CustodyError
from civicseal.incident.errors import IncidentError

incident_app = typer.Typer(
    help="Lost packages: incidents, their evidence and the regulator's report.", no_args_is_help=True
)
app.add_typer(incident_app, name="incident")

TIME_HELP = (
    "2024-06-01 14:30, 令和6年6月1日 14時30分, or RFC 3339 (2024-06-01T14:30+09:00); without an offset, Asia/Tokyo"
    " time."
)
FORMATS = ("md", "html", "pdf", "json")


def _at(text: str, option: str) -> datetime:
    from civicseal.custody.service import parse_at

    try:
        return parse_at(text)
    except CustodyError as exc:
        raise IncidentError(f"{option}: {exc}") from None


def _read_text(path: Path, what: str) -> str:
    """A secret read from a file, never from an argument (it would sit in the shell history)."""
    try:
        return path.read_text(encoding="utf-8").rstrip("\r\n")
    except (OSError, UnicodeDecodeError):
        raise IncidentError(f"{path}: cannot read the {what} (UTF-8 text)") from None


@incident_app.command("open")
def incident_open(
    lost_at: Annotated[str, typer.Option(help=f"When the package was lost. {TIME_HELP}")],
    reported_at: Annotated[str, typer.Option(help=f"When the city learnt of the loss. {TIME_HELP}")],
    reported_by: Annotated[str, typer.Option(help="Who reported it (at most 100 characters).")],
    circumstances: Annotated[str, typer.Option(help="What happened (at most 2,000 characters).")],
    package: Annotated[str | None, typer.Option("--package", help="The lost package's id (pkg_…).")] = None,
    file: Annotated[
        Path | None, typer.Option("--file", help="A copy of the package (.cseal), e.g. one found exposed.")
    ] = None,
    home: HomeOption = None,
    json_out: JsonOption = False,
) -> None:
    """Open an incident: custody 'lost', a tethered package revoked at once, the timeline started."""
    from civicseal.incident.service import describe_opened, open_incident

    opened_home = open_home(home)
    incident_id = open_incident(
        opened_home,
        package_id=package,
        found_file=file,
        lost_at=_at(lost_at, "--lost-at"),
        reported_at=_at(reported_at, "--reported-at"),
        reported_by=reported_by,
        circumstances=circumstances,
    )
    opened = describe_opened(opened_home.engine, incident_id)
    if json_out:
        print_json(opened.as_dict())
        return
    if opened.revoked_now:
        state = "revoked now: the key service refuses every unlock"
    elif opened.revoked:
        state = "already revoked"
    else:
        state = f"not revoked ({opened.mode} packages open offline; revocation cannot stop them)"
    console.print(
        f"incident {incident_id} opened for package {opened.package_id} ({opened.mode}); {state}", markup=False
    )


@incident_app.command("close")
def incident_close(
    incident_id: Annotated[int, typer.Argument(metavar="ID", help="The incident's number.")],
    outcome: Annotated[str, typer.Option(help="How it ended (at most 2,000 characters).")],
    found_at: Annotated[
        str | None, typer.Option(help=f"When the package was found; omit if never. {TIME_HELP}")
    ] = None,
    holder: Annotated[str | None, typer.Option(help="Who holds it once found (default: the city).")] = None,
    home: HomeOption = None,
    json_out: JsonOption = False,
) -> None:
    """Close an incident; a found package is recorded 'found' and stays revoked until re-issued."""
    from civicseal.incident.service import close_incident

    found = _at(found_at, "--found-at") if found_at is not None else None
    record = close_incident(open_home(home), incident_id, found_at=found, outcome=outcome, holder=holder)
    if json_out:
        print_json(record.as_dict())
        return
    found_text = "found" if record.found_at is not None else "not found"
    console.print(f"incident {incident_id} closed; package {record.package_id} {found_text}", markup=False)


@incident_app.command("report")
def incident_report(
    incident_id: Annotated[int, typer.Argument(metavar="ID", help="The incident's number.")],
    out: Annotated[Path, typer.Option(help="The report file to write (never replaced without --force).")],
    format_: Annotated[str, typer.Option("--format", help="md, html, pdf or json.")] = "md",
    force: Annotated[bool, typer.Option("--force", help="Replace an earlier report at --out.")] = False,
    passphrase_file: Annotated[
        Path | None, typer.Option(help="A passphrase package's passphrase, for zxcvbn's estimate.")
    ] = None,
    file: Annotated[Path | None, typer.Option("--file", help="A copy of the package: its header is read.")] = None,
    home: HomeOption = None,
    json_out: JsonOption = False,
) -> None:
    """Write the incident report: content, protection, attack economics, counterfactual, APPI assessment."""
    from civicseal.incident.render import write_report
    from civicseal.incident.report import build_report

    if format_ not in FORMATS:
        raise typer.BadParameter(f"one of {', '.join(FORMATS)}", param_hint="--format")
    passphrase = _read_text(passphrase_file, "passphrase") if passphrase_file is not None else None
    report = build_report(open_home(home), incident_id, passphrase=passphrase, package_file=file)
    size = write_report(report, format_, out, replace=force)
    a, c = report.assessment, report.content
    figures = {
        "incident_id": incident_id,
        "package_id": report.package_id,
        "out": str(out),
        "format": format_,
        "bytes": size,
        "residents_affected": c.residents_affected,
        "households_affected": c.households_affected,
        "reportable": a.reportable,
        "notify_individuals": a.notify_individuals,
        "to_be_written": sum(1 for item in report.items if item.needs_person),
    }
    if json_out:
        print_json(figures)
        return
    verdict = "reportable" if a.reportable else "not reportable"
    console.print(
        f"incident {incident_id}: {c.residents_affected:,} residents in {c.households_affected:,} households;"
        f" {verdict}; {figures['to_be_written']} of 9 items need a person; written to {out}",
        markup=False,
    )


@incident_app.command("notify")
def incident_notify(
    incident_id: Annotated[int, typer.Argument(metavar="ID", help="The incident's number.")],
    out: Annotated[Path, typer.Option(help="Folder for the letters (PDF) and the mailing list (CSV).")],
    force: Annotated[bool, typer.Option(help="Write the letters even when no notification is due.")] = False,
    home: HomeOption = None,
    json_out: JsonOption = False,
) -> None:
    """Letters to every affected household when the APPI assessment requires it (or --force)."""
    from civicseal.cli.output import progress_bars
    from civicseal.incident.notify import notify

    with progress_bars(not json_out) as progress:
        summary = notify(
            open_home(home),
            incident_id,
            out,
            force=force,
            progress=lambda done, total: progress("letters", done, total),
        )
    if json_out:
        print_json(summary.as_dict())
        return
    if not summary.letters:
        console.print("no notification is due, so no letter was written:", markup=False)
        for reason in summary.reasons:
            console.print(f"  {reason}", markup=False)
        return
    console.print(
        f"{summary.letters:,} letters in {len(summary.files)} PDF file(s) and the mailing list {summary.mailing_list}"
        f" written to {out}",
        markup=False,
    )


@incident_app.command("list")
def incident_list(home: HomeOption = None, json_out: JsonOption = False) -> None:
    """Every incident, the most recent first."""
    from civicseal.incident.appi import when_en
    from civicseal.incident.service import list_incidents

    incidents = list_incidents(open_home(home).engine)
    if json_out:
        print_json({"incidents": [i.as_dict() for i in incidents]})
        return
    if not incidents:
        console.print("no incidents")
    for i in incidents:
        state = "open" if i.is_open else "closed"
        console.print(f"{i.id:>5} {i.package_id} lost {when_en(i.lost_at)} {state}", markup=False)
