"""Shared set-up for the benchmarks: a synthetic city in a fresh home on the embedded SQLite store."""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from civicseal.homes import init_home
from civicseal.keys.city import load_city_keys
from civicseal.programme.service import RunResult, create_programme, run_programme
from civicseal.register.importer import import_register
from civicseal.register.synth import SynthSummary, synthesize
from civicseal.store.engine import DATABASE_URL_ENV
from civicseal.store.home import Home

PROGRAMME = "bench"


@dataclass
class City:
    work: Path
    home: Home
    synth: SynthSummary
    synth_s: float
    import_s: float
    run_s: float
    run: RunResult

    @property
    def files(self) -> list[Path]:
        return [self.synth.residents_path, self.synth.tax_path, self.synth.accounts_path]


def build_city(residents: int, seed: int, *, before_import=None) -> City:  # type: ignore[no-untyped-def]
    """Synthesize, import and run the programme, timing each step; ``before_import(files)`` runs untimed."""
    os.environ.pop(DATABASE_URL_ENV, None)  # the budgets are for the embedded SQLite store
    work = Path(tempfile.mkdtemp(prefix="civicseal-bench-"))
    (work / "register").mkdir()
    started = time.perf_counter()
    summary = synthesize(residents, seed, work / "register")
    synth_s = time.perf_counter() - started
    files = [summary.residents_path, summary.tax_path, summary.accounts_path]
    if before_import is not None:
        before_import(files, work)
    home = init_home(work / "home")
    cipher = load_city_keys(home.keys).field_cipher()
    started = time.perf_counter()
    import_register(home.engine, cipher, files)
    import_s = time.perf_counter() - started
    create_programme(home.engine, PROGRAMME, reference_date=date(2022, 6, 1), fiscal_year=2022, amount=100_000)
    started = time.perf_counter()
    result = run_programme(home.engine, PROGRAMME)
    run_s = time.perf_counter() - started
    return City(work, home, summary, synth_s, import_s, run_s, result)


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def city_arguments(description: str) -> argparse.Namespace:
    """Every benchmark runs on the synthetic city: its size and seed."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--residents", type=int, default=460_517)
    parser.add_argument("--seed", type=int, default=7)
    return parser.parse_args()
