"""Shared set-up for the benchmarks: a synthetic city in a fresh home on the embedded SQLite store."""

from __future__ import annotations

import argparse
import atexit
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import psycopg
from psycopg import sql

from civicseal.homes import init_home
from civicseal.keys.city import load_city_keys
from civicseal.programme.service import RunResult, create_programme, run_programme
from civicseal.register.importer import import_register
from civicseal.register.synth import SynthSummary, synthesize
from civicseal.store.engine import DATABASE_URL_ENV
from civicseal.store.home import Home

PROGRAMME = "bench"
# The PostgreSQL server the benchmarks create their databases on (an admin URL; CIVICSEAL_BENCH_PG to change it).
PG_ADMIN = os.environ.get("CIVICSEAL_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
# The locale the benchmarks' databases are created with (CIVICSEAL_BENCH_PG_LOCALE, e.g. ja_JP.utf8, as a Japanese
# city's database often is; the server must know it); the server's default when unset.
PG_LOCALE = os.environ.get("CIVICSEAL_BENCH_PG_LOCALE")


@contextmanager
def postgres_database(prefix: str = "civicseal_bench") -> Iterator[str]:
    """A database of its own for one run (its libpq URL), dropped afterwards whatever happens."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    create = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    if PG_LOCALE:
        create += sql.SQL(" TEMPLATE template0 ENCODING 'UTF8' LOCALE {}").format(sql.Literal(PG_LOCALE))
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(create)
    try:
        yield f"{PG_ADMIN.rsplit('/', 1)[0]}/{name}"
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def store_url(url: str) -> str:
    """The store's (SQLAlchemy's) URL for a libpq URL: civicseal speaks psycopg 3."""
    return url.replace("postgresql://", "postgresql+psycopg://", 1)


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
    atexit.register(shutil.rmtree, work, ignore_errors=True)  # a city's files and stores: most of a gigabyte
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
