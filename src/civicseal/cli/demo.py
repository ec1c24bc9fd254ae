"""`civicseal demo`: the story end to end on a synthetic Amagasaki, each step one library call."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TypeVar

from rich.table import Table

from civicseal.audit import log as audit
from civicseal.cli.demo_contact import run_contact_centre
from civicseal.cli.demo_contractors import refuse_unapproved_subcontractor
from civicseal.cli.demo_dlp import index_in_background, scan_contractor_folder
from civicseal.cli.demo_forms import returned_forms
from civicseal.cli.demo_payments import pay_confirmed_households
from civicseal.cli.demo_synth import Synthesis
from civicseal.cli.output import console, print_done, progress_bars
from civicseal.cli.programme_cmds import render_funnel
from civicseal.clock import utcnow
from civicseal.cseal.errors import PackageRefused
from civicseal.custody.service import Event, record_event
from civicseal.homes import init_home
from civicseal.incident.render import write_report
from civicseal.incident.report import Report, build_report
from civicseal.incident.service import open_incident
from civicseal.keys.city import load_city_keys
from civicseal.keys.recipients import add_recipient, keygen
from civicseal.keys.service import BackgroundServer, create_app
from civicseal.keys.trust import add_trusted, format_public_key
from civicseal.programme.service import create_programme, run_programme
from civicseal.register.importer import import_register
from civicseal.seal.open import open_sealed
from civicseal.seal.records import show_package
from civicseal.seal.service import SealRequest, seal
from civicseal.seal.trace import trace
from civicseal.store.home import Home

T = TypeVar("T")
PROGRAMME = "2022 residence-tax-exempt household benefit"


def _step(title: str, action: Callable[[], T]) -> T:
    started = time.perf_counter()
    result = action()
    print_done(title, time.perf_counter() - started)
    return result


def run_demo(home: Path | None, synthesis: Synthesis, *, serve: bool = False) -> dict[str, object]:
    """The story, step by step on the console; returns its main figures (what `demo --json` prints).

    The synthetic register is being written by ``synthesis`` (started before this module was loaded)."""
    workdir, register_dir = synthesis.workdir, synthesis.register_dir
    residents, seed = synthesis.residents, synthesis.seed
    home_path = home or workdir / "home"
    console.rule("civicseal demo: the city of Amagasaki, June 2022")
    console.print(
        "A contractor's worker lost a USB stick holding all 460,517 residents' data on the way to the contact"
        " centre for the 100,000-yen relief payment. civicseal runs the same programme so that nothing like"
        " it can expose anyone."
    )
    opened = _step(
        f"created a home at {home_path}", lambda: init_home(home_path, issuer="amagasaki", issuer_name="尼崎市")
    )
    started = time.perf_counter()
    summary = synthesis.finish()
    print_done(
        f"synthesized {residents:,} residents (seed {seed}) into {register_dir}",
        time.perf_counter() - started,
        note="waited ",
    )
    cipher = load_city_keys(opened.keys).field_cipher()
    with progress_bars() as progress:
        imported = _step(
            "imported the register (bank accounts, My Number and income encrypted per field)",
            lambda: import_register(
                opened.engine,
                cipher,
                [summary.residents_path, summary.tax_path, summary.accounts_path],
                progress=progress,
            ),
        )
    console.print(
        f"  {imported.residents.new:,} residents, {imported.tax.new:,} tax rows, {imported.accounts.new:,} accounts"
    )
    indexing = index_in_background(opened)
    _step(
        f"declared {PROGRAMME!r}: resident on 2022-06-01, fiscal year 2022, 100,000 yen",
        lambda: create_programme(
            opened.engine, PROGRAMME, reference_date=date(2022, 6, 1), fiscal_year=2022, amount=100_000
        ),
    )
    result = _step("ran the eligibility rules as set-based SQL", lambda: run_programme(opened.engine, PROGRAMME))
    render_funnel(result.as_dict())
    with BackgroundServer(create_app(opened)) as key_service:
        console.print(f"key service listening on {key_service.url} (loopback)")
        package, finder = _seal_and_hand_over(opened, workdir, key_service.url)
        scan_contractor_folder(opened, finder.trust_home, indexing)
        refuse_unapproved_subcontractor(opened, workdir, PROGRAMME, key_service.url)
        returned_forms(opened, PROGRAMME, workdir / "printshop" / "mailing.parquet", workdir)
        pay_confirmed_households(opened, workdir, PROGRAMME)
        report = _lose_it(opened, workdir, package, finder)
    with opened.engine.connect() as conn:
        check = audit.verify(conn)
    console.print(f"audit log: {check.rows} rows, chain {'intact' if check.ok else 'BROKEN'}")
    console.print(f"home kept at {home_path}; try `civicseal --home {home_path} audit show`")
    _step("the contact centre step", lambda: run_contact_centre(opened, serve_after=serve))
    return {
        "home": str(home_path),
        "residents": imported.residents.new,
        "entitled": result.entitled,
        "total_amount": result.total_amount,
        "package_id": report.package_id,
        "residents_in_package": report.content.residents_affected,
        "reportable": report.assessment.reportable,
        "audit_rows": check.rows,
        "audit_intact": check.ok,
        "records_copied_to_contact_centre": 0,
    }


def MORNING() -> datetime:
    """The package was sealed four hours before the story reaches its loss."""
    return utcnow() - timedelta(hours=4)


@dataclass(frozen=True)
class _Finder:
    """What a finder of the lost bag would hold: the stick, and the print shop's key and token beside it."""

    identity: Path
    token: str
    trust_home: Path


def _seal_and_hand_over(city: Home, workdir: Path, key_service: str) -> tuple[Path, _Finder]:
    """The print shop gets the mailing package: sealed, tethered, opened through the key service, traced."""
    console.rule("a package for the print shop, instead of a USB stick")
    contractor = workdir / "printshop"
    contractor.mkdir()
    identity = contractor / "printshop.key"
    token = add_recipient(city.engine, "printshop", keygen(identity), now=utcnow(), actor="os:demo")
    keys = load_city_keys(city.keys)
    add_trusted(contractor, city.config.issuer, format_public_key(keys.signing.public_key()))
    console.print(
        "  the print shop made its own age key and trusts the city's signing key;"
        " the city registered it and handed it a recipient token (shown once)"
    )
    package = workdir / "confirmation-mailing.cseal"
    sealed = _step(
        "sealed the confirmation-mailing package",
        lambda: seal(
            city,
            SealRequest(PROGRAMME, "confirmation-mailing", "printshop", package, key_service_url=key_service),
            now=MORNING(),
        ),
    )
    console.print(
        f"  register {sealed.register_residents:,} residents / {sealed.register_households:,} households"
        f" → {sealed.records:,} households in the package, fields {', '.join(sealed.fields)},"
        f" {sealed.canaries} canary records, {sealed.mode}, expires {sealed.expires}"
    )
    record_event(
        city.engine, sealed.package_id, Event.HANDED_OVER, holder="printshop", location="city hall",
        at=MORNING() + timedelta(minutes=30),
    )  # fmt: skip
    console.print("  custody: created → handed-over (its households are now 'notified')")
    opened_file = contractor / "mailing.parquet"
    _step(
        "the print shop opened it: signature, expiry and hash checked, then the key service asked",
        lambda: open_sealed(package, trust_home=contractor, out=opened_file, identity_file=identity, token=token),
    )
    shown = show_package(city.engine, sealed.package_id)
    outcomes = ", ".join(a["outcome"] for a in shown["unlock_log"])
    console.print(f"  unlock log: {outcomes}")
    leaked = contractor / "found-online.csv"
    _strip_identifiers(opened_file, leaked)
    found = _step(
        "traced a copy found online (pseudonym column stripped) back to its recipient and package",
        lambda: trace(city.engine, [leaked]),
    )
    who, best = found.recipients[0], found.packages[0]
    console.print(
        f"  {who.recipient}: {who.verdict} ({who.canaries} canaries, by {', '.join(who.fields)});"
        f" {best.package_id} ({best.purpose}): {best.verdict}, {best.reference_numbers:,} reference numbers",
        markup=False,
    )
    return package, _Finder(identity, token, contractor)


def _lose_it(city: Home, workdir: Path, package: Path, finder: _Finder) -> Report:
    """The print shop's courier loses the stick; the city knows within minutes what that means."""
    console.rule("the stick is lost on the way back")
    # The print shop opened its copy moments ago; the stick is lost after that, and reported at once.
    lost_at = utcnow()
    reported_at = lost_at + timedelta(seconds=1)
    incident = _step(
        "opened an incident: custody 'lost', the tethered package revoked at once",
        lambda: open_incident(
            city, found_file=package, lost_at=lost_at, reported_at=reported_at, reported_by="printshop",
            circumstances="The courier's bag, holding the USB stick, was left behind after a late dinner.",
        ),
    )  # fmt: skip
    try:
        open_sealed(package, trust_home=finder.trust_home, out=workdir / "finder.parquet",
                    identity_file=finder.identity, token=finder.token)  # fmt: skip
        console.print("  the finder opened it", style="red")
    except PackageRefused as refused:
        console.print(f"  a finder holding the stick, the key file and the token tried to open it: {refused}")
    report = _step("built the incident report", lambda: build_report(city, incident, package_file=package))
    for fmt_name in ("md", "json"):
        write_report(report, fmt_name, workdir / f"incident-{incident}.{fmt_name}")
    _print_report_summary(report)
    console.print(f"  report written to {workdir}/incident-{incident}.md (.json); PDF: `civicseal incident report"
                  f" {incident} --format pdf --out report.pdf --home {city.path}`")  # fmt: skip
    return report


def _print_report_summary(report: Report) -> None:
    c, p, w, a = report.content, report.protection, report.counterfactual, report.assessment
    after = ", ".join(sorted({u.outcome for u in p.unlocks_after})) or "none"
    table = Table(title="what was exposed: this package next to the Amagasaki practice", title_justify="left")
    table.add_column("")
    table.add_column("this package", justify="right")
    table.add_column("whole register on a password stick", justify="right")
    table.add_row("residents", f"{c.residents_affected:,}", f"{w.residents:,}")
    table.add_row("households", f"{c.households_affected:,}", f"{w.households:,}")
    table.add_row("kinds of data", ", ".join(c.categories), ", ".join(w.categories))
    table.add_row("bank accounts", "yes" if c.bank_accounts else "none", f"{w.bank_accounts:,}")
    table.add_row("My Numbers", "yes" if c.my_number else "none", f"{w.my_numbers:,}")
    table.add_row("offline attack", "impossible" if not p.offline_attack else "possible", "unlimited")
    table.add_row("opened after the loss", f"{p.granted_after} times (attempts: {after})", "nobody can tell")
    table.add_row("reportable under APPI", "yes" if a.reportable else "no", "yes" if w.reportable else "no")
    console.print(table)
    console.print(f"  assessment: {a.reasons[0]}", markup=False)
    if len(a.reasons) > 2:
        console.print(f"  {a.reasons[1]}", markup=False)


def _strip_identifiers(parquet: Path, out: Path) -> None:
    """What a leak often looks like: re-saved as CSV by someone who dropped the column they did not need."""
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    table = pq.read_table(parquet).drop_columns(["pseudonym"])
    pacsv.write_csv(table, out)
