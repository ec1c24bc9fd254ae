"""Where output goes: results on stdout, progress and errors on stderr, so ``--json`` stays clean."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


class _Printed:
    """Whether this command has put its JSON object on stdout: a refusal after it must not add a second."""

    json = False


printed = _Printed()


def print_json(data: Mapping[str, object] | list) -> None:
    """One JSON object and nothing else on stdout."""
    printed.json = True
    print(json.dumps(data, ensure_ascii=False, sort_keys=True, default=str))


def print_table(title: str, rows: Mapping[str, object]) -> None:
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column(justify="right")
    for key, value in rows.items():
        table.add_row(key, f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value))
    console.print(table)


@contextmanager
def progress_bars(enabled: bool = True) -> Iterator:
    """A progress callback ``(stage, done, total)`` drawing one bar per stage; rows are counted, never shown."""
    bars = Progress(
        TextColumn("{task.description:<22}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        disable=not enabled,
        transient=False,
    )
    tasks: dict[str, int] = {}

    def update(stage: str, done: int, total: int) -> None:
        if stage not in tasks:
            tasks[stage] = bars.add_task(stage, total=total)
        bars.update(tasks[stage], completed=done, total=total)

    with bars:
        yield update
