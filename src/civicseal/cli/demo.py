"""`civicseal demo`: the story end to end on a synthetic Amagasaki, each step one library call."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import TypeVar

from civicseal.audit import log as audit
from civicseal.cli.app import render_funnel
from civicseal.cli.output import console, progress_bars
from civicseal.clock import utcnow
from civicseal.custody.service import Event, record_event
from civicseal.homes import init_home
from civicseal.keys.city import load_city_keys
from civicseal.keys.recipients import add_recipient, keygen
from civicseal.keys.service import BackgroundServer, create_app
from civicseal.programme.service import create_programme, run_programme
from civicseal.register.importer import import_register
from civicseal.register.synth import synthesize
from civicseal.seal.open import open_sealed
from civicseal.seal.records import show_package
from civicseal.seal.service import SealRequest, seal
from civicseal.seal.trace import trace
from civicseal.seal.trust import add_trusted, format_public_key
from civicseal.store.home import Home

T = TypeVar("T")
PROGRAMME = "2022 residence-tax-exempt household benefit"


def _step(title: str, action: Callable[[], T]) -> T:
    started = time.perf_counter()
    result = action()
    console.print(f"[green]✓[/green] {title} [dim]({time.perf_counter() - started:.1f} s)[/dim]")
    return result


def run_demo(home: Path | None, *, residents: int, seed: int) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="civicseal-demo-"))
    home_path = home or workdir / "home"
    register_dir = workdir / "register"
    register_dir.mkdir()
    console.rule("civicseal demo: the city of Amagasaki, June 2022")
    console.print(
        "A contractor's worker lost a USB stick holding all 460,517 residents' data on the way to the contact"
        " centre for the 100,000-yen relief payment. civicseal runs the same programme so that nothing like"
        " it can expose anyone."
    )
    opened = _step(f"created a home at {home_path}", lambda: init_home(home_path, issuer="amagasaki"))
    with progress_bars() as progress:
        summary = _step(
            f"synthesized {residents:,} residents (seed {seed}) into {register_dir}",
            lambda: synthesize(
                residents, seed, register_dir, progress=lambda n: progress("synthesizing", n, residents)
            ),
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
    _step(
        f"declared {PROGRAMME!r}: resident on 2022-06-01, fiscal year 2022, 100,000 yen",
        lambda: create_programme(
            opened.engine, PROGRAMME, reference_date=date(2022, 6, 1), fiscal_year=2022, amount=100_000
        ),
    )
    result = _step("ran the eligibility rules as set-based SQL", lambda: run_programme(opened.engine, PROGRAMME))
    render_funnel(result.as_dict())
    _seal_and_hand_over(opened, workdir)
    with opened.engine.connect() as conn:
        check = audit.verify(conn)
    console.print(f"audit log: {check.rows} rows, chain {'intact' if check.ok else 'BROKEN'}")
    console.print(f"home kept at {home_path}; try `civicseal --home {home_path} audit show`")


def _seal_and_hand_over(city: Home, workdir: Path) -> None:
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
    with BackgroundServer(create_app(city)) as server:
        console.print(f"  key service listening on {server.url} (loopback)")
        package = workdir / "confirmation-mailing.cseal"
        sealed = _step(
            "sealed the confirmation-mailing package",
            lambda: seal(
                city,
                SealRequest(PROGRAMME, "confirmation-mailing", "printshop", package, key_service_url=server.url),
            ),
        )
        console.print(
            f"  register {sealed.register_residents:,} residents / {sealed.register_households:,} households"
            f" → {sealed.records:,} households in the package, fields {', '.join(sealed.fields)},"
            f" {sealed.canaries} canary records, {sealed.mode}, expires {sealed.expires}"
        )
        record_event(city.engine, sealed.package_id, Event.HANDED_OVER, holder="printshop", location="city hall")
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
        "traced a copy found online (pseudonym column stripped) back to its package",
        lambda: trace(city.engine, [leaked]),
    )
    best = found.packages[0]
    console.print(
        f"  {best.package_id} ({best.purpose}): {best.verdict} — {best.canaries} canaries,"
        f" {best.reference_numbers:,} reference numbers"
    )


def _strip_identifiers(parquet: Path, out: Path) -> None:
    """What a leak often looks like: re-saved as CSV by someone who dropped the column they did not need."""
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    table = pq.read_table(parquet).drop_columns(["pseudonym"])
    pacsv.write_csv(table, out)
