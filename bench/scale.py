"""Benchmark of issue 11: does a city's cost grow linearly with its size, on SQLite and on PostgreSQL?

Each step runs as the command a city runs (``civicseal synth``, ``register import``, ``programme run``) in a
subprocess, so the seconds include start-up and the memory is the peak RSS of that process (read with
``wait4``; the PostgreSQL server's own memory is not counted). A run at the reference size (460,517, one
city) and one at ``--residents`` are made in the same invocation; the per-resident ratio
(seconds per resident at N / seconds per resident at the reference) must stay ≤ 1.2 ×.
PostgreSQL runs in a database this script creates and drops.

    python bench/scale.py --residents 2000000 [--seed 7] [--stores sqlite,postgresql]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from common import postgres_database, store_url

REFERENCE = 460_517
PER_RESIDENT_BUDGET = 1.2
CLI = [str(Path(sys.executable).with_name("civicseal"))]  # the console script a city runs
STEPS = ("import", "programme run")


@dataclass
class Step:
    seconds: float  # wall clock
    cpu: float  # user + system seconds of the process: what a busy machine does not inflate (SQLite's work
    # is all in it; PostgreSQL's server is not)
    peak_mib: float
    output: dict


@dataclass
class Run:
    residents: int
    store: str
    steps: dict[str, Step] = field(default_factory=dict)
    entitled: int = 0


def civicseal(*args: str, env: dict[str, str]) -> Step:
    """One command as a process of its own: wall seconds and that process's peak resident memory.

    The child is reaped with ``wait4``, which gives that one process's usage (``ru_maxrss``, KiB on Linux);
    its output goes to files, so no pipe can fill while nobody reads it.
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        process = subprocess.Popen([*CLI, *args, "--json"], stdout=out, stderr=err, env=env)
        _pid, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait again
        out.seek(0)
        err.seek(0)
        if process.returncode != 0:
            raise SystemExit(f"civicseal {' '.join(args)} failed ({process.returncode}): {err.read().decode()[-2000:]}")
        cpu = usage.ru_utime + usage.ru_stime
        return Step(seconds, cpu, usage.ru_maxrss / 1024, json.loads(out.read()))


def run_city(residents: int, store: str, register: Path, work: Path) -> Run:
    env = dict(os.environ)
    env.pop("CIVICSEAL_DATABASE_URL", None)
    run = Run(residents, store)
    home = work / f"home-{store}-{residents}"
    files = [str(register / name) for name in ("residents.csv", "tax.csv", "accounts.csv")]
    with postgres_database("civicseal_scale") if store == "postgresql" else _nothing() as url:
        if url:
            env["CIVICSEAL_DATABASE_URL"] = store_url(url)
        civicseal("init", "--home", str(home), env=env)
        run.steps["import"] = civicseal("register", "import", *files, "--home", str(home), env=env)
        civicseal(
            "programme", "create", "scale", "--reference-date", "2022-06-01", "--fiscal-year", "2022",
            "--amount", "100000", "--home", str(home), env=env,
        )  # fmt: skip
        run.steps["programme run"] = civicseal("programme", "run", "scale", "--home", str(home), env=env)
        run.entitled = int(run.steps["programme run"].output["entitled"])
    shutil.rmtree(home, ignore_errors=True)
    return run


@contextmanager
def _nothing() -> Iterator[str]:
    yield ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--residents", type=int, default=2_000_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--stores", default="sqlite,postgresql")
    args = parser.parse_args()
    stores = args.stores.split(",")
    sizes = [REFERENCE] if args.residents == REFERENCE else [REFERENCE, args.residents]
    work = Path(tempfile.mkdtemp(prefix="civicseal-scale-"))
    runs: dict[tuple[int, str], Run] = {}
    try:
        for size in sizes:
            register = work / f"register-{size}"
            synth = civicseal("synth", "--out", str(register), "--residents", str(size), "--seed", str(args.seed),
                              env=dict(os.environ))  # fmt: skip
            print(
                f"synth      {size:>12,} residents      {synth.seconds:8.2f} s  cpu {synth.cpu:8.2f} s"
                f"  peak {synth.peak_mib:7.0f} MiB",
                flush=True,
            )
            for store in stores:
                run = runs[size, store] = run_city(size, store, register, work)
                for name, step in run.steps.items():
                    print(
                        f"{store:<10} {size:>12,} {name:<14} {step.seconds:8.2f} s  cpu {step.cpu:8.2f} s"
                        f"  peak {step.peak_mib:7.0f} MiB",
                        flush=True,
                    )
            shutil.rmtree(register, ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if len(sizes) == 1:
        return
    print(f"\nper-resident cost at {args.residents:,} / at {REFERENCE:,} (budget ≤ {PER_RESIDENT_BUDGET} ×)")
    for store in stores:
        small, large = runs[REFERENCE, store], runs[args.residents, store]
        for name in STEPS:
            a, b = small.steps[name], large.steps[name]
            ratio = (b.seconds / large.residents) / (a.seconds / small.residents)
            cpu_ratio = (b.cpu / large.residents) / (a.cpu / small.residents)
            verdict = "ok" if ratio <= PER_RESIDENT_BUDGET else "OVER"
            print(
                f"{store:<10} {name:<14} {ratio:6.2f} × per resident  {verdict:<4} (cpu {cpu_ratio:.2f} ×)"
                f"  memory {a.peak_mib:.0f} → {b.peak_mib:.0f} MiB ({b.peak_mib / a.peak_mib:.2f} ×)"
                f"  entitled {small.entitled:,} → {large.entitled:,}"
            )


if __name__ == "__main__":
    main()
