"""Benchmark of issue 11: how long a command takes to answer before it does any work.

Each command runs as a whole process (the console script a person types), several times; the median is
printed with a reference run in the same invocation: ``python -c pass`` (the interpreter alone).
Budget: ``civicseal --help`` ≤ 0.3 s.

    python bench/startup.py [--runs 15]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

BUDGET = 0.3
CLI = str(Path(sys.executable).with_name("civicseal"))
COMMANDS = {
    "python -c pass (reference)": [sys.executable, "-c", "pass"],
    "civicseal --help": [CLI, "--help"],
    "civicseal --version": [CLI, "--version"],
    "civicseal programme run --help": [CLI, "programme", "run", "--help"],
}


def median_seconds(command: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    reference = None
    for label, command in COMMANDS.items():
        seconds = median_seconds(command, args.runs)
        reference = reference or seconds
        note = f"  (budget ≤ {BUDGET} s)" if label == "civicseal --help" else ""
        print(f"{label:<32} {seconds:6.3f} s  {seconds / reference:6.1f} × the interpreter{note}")


if __name__ == "__main__":
    main()
