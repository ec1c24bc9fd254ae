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
from civicseal.homes import init_home
from civicseal.keys.city import load_city_keys
from civicseal.programme.service import create_programme, run_programme
from civicseal.register.importer import import_register
from civicseal.register.synth import synthesize

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
    with opened.engine.connect() as conn:
        check = audit.verify(conn)
    console.print(f"audit log: {check.rows} rows, chain {'intact' if check.ok else 'BROKEN'}")
    console.print(f"home kept at {home_path}; try `civicseal --home {home_path} audit show`")
