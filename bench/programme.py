"""Benchmark of issue 11: ``civicseal programme run`` as a whole process, start-up included, on both stores.

The city is synthesized and imported once per store (SQLite in the home; PostgreSQL in a database this
script creates and drops); then a new programme is run several times as the command staff type, each run
on the same register (the run's programme, entitlements and reference numbers are deleted after it, outside
the timing). Printed: the median wall seconds, the process's CPU seconds (``wait4``) and, on PostgreSQL,
the CPU seconds of the run's server backend and its parallel workers (read from ``/proc`` while they
live, so other databases' work on the same server is not counted); ``python -c pass`` runs in the same
invocation as the reference.
``--before SRC`` times a second source tree (e.g. an older ``src/``) interleaved with this one, run for run.
Budgets at 460,517 residents: ≤ 1.5 s on SQLite and ≤ 2.5 s on PostgreSQL, whole process.

    python bench/programme.py [--residents 460517] [--seed 7] [--runs 5] [--stores sqlite,postgresql]
        [--before /tmp/civicseal-before/src]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from civicseal.homes import init_home
from civicseal.keys.city import load_city_keys
from civicseal.register.importer import import_register
from civicseal.register.synth import synthesize
from civicseal.store.driver import sqlite3
from civicseal.store.engine import DATABASE_URL_ENV
from common import postgres_database, store_url

BUDGET = {"sqlite": 1.5, "postgresql": 2.5}
CLI = str(Path(sys.executable).with_name("civicseal"))
# What a run wrote, deleted after each timed run so that every run meets the same register and store (the
# store holds nothing else: no earlier programme, no canaries).
CLEANUP = (
    "DELETE FROM entitlement_members",
    "DELETE FROM entitlements",
    "DELETE FROM reference_numbers",
    "DELETE FROM programme_runs",
    "DELETE FROM programmes",
)


@dataclass
class Timing:
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    server: list[float] = field(default_factory=list)


class BackendCpu:
    """CPU seconds of the server backends serving one database and of their parallel workers, sampled from
    /proc every 5 ms while they live (a process's last few milliseconds before it exits may be missed)."""

    def __init__(self, database: str) -> None:
        self.marker = f" {database} ".encode()
        self.seen: dict[int, float] = {}
        self.backends: set[int] = set()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._poll, daemon=True)

    def __enter__(self) -> BackendCpu:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join()

    @property
    def seconds(self) -> float:
        return sum(self.seen.values())

    def _poll(self) -> None:
        tick = os.sysconf("SC_CLK_TCK")
        while not self.stop.is_set():
            for pid in os.listdir("/proc"):
                if not pid.isdigit():
                    continue
                try:
                    title = Path(f"/proc/{pid}/cmdline").read_bytes()
                    if self.marker in title:
                        self.backends.add(int(pid))
                    elif not ((leader := PARALLEL_WORKER.search(title)) and int(leader[1]) in self.backends):
                        continue
                    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                self.seen[int(pid)] = (int(fields[11]) + int(fields[12])) / tick
            time.sleep(0.005)


PARALLEL_WORKER = re.compile(rb"parallel worker for PID (\d+)")


def process(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU (user + system) seconds of one command run as its own process."""
    started = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    _pid, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode:
        raise SystemExit(f"{' '.join(command)} failed: {child.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
    child.stderr.close()  # type: ignore[union-attr]
    return wall, usage.ru_utime + usage.ru_stime


def cleanup(url: str, database: str | None) -> None:
    """Delete what runs left, then give PostgreSQL its statistics back (as after an import)."""
    if database is None:
        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            for statement in CLEANUP:
                conn.execute(statement)
        return
    with psycopg.connect(url) as conn:
        for statement in CLEANUP:
            conn.execute(statement)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")


@contextmanager
def store(kind: str) -> Iterator[tuple[str | None, str | None]]:
    """(libpq URL, database name) of a fresh PostgreSQL database, or (None, None) for SQLite."""
    if kind == "sqlite":
        yield None, None
        return
    with postgres_database("civicseal_programme") as url:
        yield url, url.rsplit("/", 1)[1]


def bench_store(kind: str, files: list[Path], work: Path, sources: dict[str, str | None], runs: int) -> None:
    env = dict(os.environ)
    env.pop(DATABASE_URL_ENV, None)
    with store(kind) as (url, database):
        if url:
            env[DATABASE_URL_ENV] = os.environ[DATABASE_URL_ENV] = store_url(url)
        try:
            home = init_home(work / f"home-{kind}")
            import_register(home.engine, load_city_keys(home.keys).field_cipher(), files)
            home.engine.dispose()
        finally:
            os.environ.pop(DATABASE_URL_ENV, None)
        admin_url = url or f"sqlite:///{home.path / 'civicseal.db'}"
        where = ["--home", str(home.path), "--json"]
        timings = {label: Timing() for label in sources}
        reference = Timing()
        for i in range(runs):
            reference.wall.append(process([sys.executable, "-c", "pass"], env)[0])
            for label, src in sources.items():
                run_env = env if src is None else env | {"PYTHONPATH": src}
                name = f"bench-{label}-{i}"
                create = [CLI, "programme", "create", name, "--reference-date", "2022-06-01"]
                process([*create, "--fiscal-year", "2022", "--amount", "100000", *where], run_env)
                with BackendCpu(database) if database else nullcontext() as backend:
                    wall, cpu = process([CLI, "programme", "run", name, *where], run_env)
                timings[label].wall.append(wall)
                timings[label].cpu.append(cpu)
                if backend is not None:
                    timings[label].server.append(backend.seconds)
                cleanup(admin_url, database)
        interpreter = statistics.median(reference.wall)
        for label, timing in timings.items():
            wall, cpu = statistics.median(timing.wall), statistics.median(timing.cpu)
            server = f"  server {statistics.median(timing.server):5.2f} s" if timing.server else ""
            print(
                f"{kind:<10} {label:<7} programme run  {wall:6.2f} s  cpu {cpu:5.2f} s{server}"
                f"  (median of {runs}; python -c pass {interpreter:.3f} s; budget ≤ {BUDGET[kind]} s)",
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--residents", type=int, default=460_517)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--stores", default="sqlite,postgresql")
    parser.add_argument("--before", help="a source tree (its src/) to time interleaved with this one")
    args = parser.parse_args()
    sources: dict[str, str | None] = {"this": None}
    if args.before:
        sources = {"before": str(Path(args.before).absolute()), "this": None}
    work = Path(tempfile.mkdtemp(prefix="civicseal-programme-"))
    (work / "register").mkdir()
    summary = synthesize(args.residents, args.seed, work / "register")
    files = [summary.residents_path, summary.tax_path, summary.accounts_path]
    try:
        for kind in args.stores.split(","):
            bench_store(kind, files, work, sources, args.runs)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
