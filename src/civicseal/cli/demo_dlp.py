"""Demo step of the DLP scanner: the city checks the print shop's folder after the package was opened.

Fingerprinting a city of 460,517 residents takes seconds, so the demo starts it in a forked process right
after the import (:func:`index_in_background`) and the story goes on; the step that scans the print
shop's folder waits for it. The child only reads the store and writes the index file; the audit entry is
written by the demo's own process.
"""

from __future__ import annotations

import multiprocessing
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from civicseal.cli.output import console, print_done
from civicseal.dlp.errors import DlpError
from civicseal.dlp.index import IndexSummary, build_index, load_home_index, record_build
from civicseal.dlp.scan import scan
from civicseal.store.home import Home


def _build(home_path: Path, results: multiprocessing.SimpleQueue) -> None:
    try:
        results.put(build_index(Home(home_path), record=False))
    except Exception as exc:  # the parent reports it; only its type and message cross
        traceback.print_exc()
        results.put(DlpError(f"building the DLP index failed ({type(exc).__name__})"))


def index_in_background(city: Home) -> Callable[[], IndexSummary]:
    """Start building the home's index in a forked process; the returned call waits for it."""
    context = multiprocessing.get_context("fork")
    results = context.SimpleQueue()
    worker = context.Process(target=_build, args=(city.path, results), daemon=True)
    city.engine.dispose()  # no pooled connection may cross the fork: the child opens its own
    worker.start()

    def finish() -> IndexSummary:
        result = results.get()
        worker.join()
        if isinstance(result, Exception):
            raise result
        return result

    return finish


def scan_contractor_folder(city: Home, folder: Path, indexing: Callable[[], IndexSummary] | None = None) -> None:
    """Fingerprint the register (or wait for the background build), then scan the contractor's folder."""
    console.rule("before the work ends: is any plaintext left on the print shop's drive?")
    started = time.perf_counter()
    built = indexing() if indexing is not None else build_index(city, record=False)
    record_build(city, built)
    index = load_home_index(city)
    print_done(
        f"the register fingerprinted: {built.residents:,} residents, {built.fingerprints:,} keyed fingerprints,"
        " no plaintext",
        time.perf_counter() - started,
        note="waited ",
    )
    started = time.perf_counter()
    report = scan([folder], index)
    print_done(f"scanned {folder}", time.perf_counter() - started)
    for f in report.files:
        if f.residents_matched:
            elements = ", ".join(name for name, count in f.elements.items() if count)
            console.print(f"  {f.path}: {f.residents_matched:,} residents ({elements})", markup=False)
        elif f.protected:
            console.print(f"  {f.path}: {f.protected}, not a finding", markup=False)
    console.print(f"  {report.summary()}: wipe them before the work is signed off", markup=False)
