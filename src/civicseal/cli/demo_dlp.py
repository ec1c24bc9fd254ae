"""Demo step of the DLP scanner: the city checks the print shop's folder after the package was opened."""

from __future__ import annotations

import time
from pathlib import Path

from civicseal.cli.output import console
from civicseal.dlp.index import build_index, load_home_index
from civicseal.dlp.scan import scan
from civicseal.store.home import Home


def scan_contractor_folder(city: Home, folder: Path) -> None:
    """Fingerprint the register, then scan the folder where the contractor opened its package."""
    console.rule("before the work ends: is any plaintext left on the print shop's drive?")
    started = time.perf_counter()
    built = build_index(city)
    index = load_home_index(city)
    console.print(
        f"[green]✓[/green] fingerprinted the whole register: {built.residents:,} residents,"
        f" {built.fingerprints:,} keyed fingerprints, no plaintext"
        f" [dim]({time.perf_counter() - started:.1f} s)[/dim]"
    )
    started = time.perf_counter()
    report = scan([folder], index)
    console.print(f"[green]✓[/green] scanned {folder} [dim]({time.perf_counter() - started:.1f} s)[/dim]")
    for f in report.files:
        if f.residents_matched:
            elements = ", ".join(name for name, count in f.elements.items() if count)
            console.print(f"  {f.path}: {f.residents_matched:,} residents ({elements})", markup=False)
        elif f.protected:
            console.print(f"  {f.path}: {f.protected}, not a finding", markup=False)
    console.print(f"  {report.summary()}: wipe them before the work is signed off", markup=False)
