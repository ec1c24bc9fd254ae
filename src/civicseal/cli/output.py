"""Where output goes: results on stdout, progress and errors on stderr, so ``--json`` stays clean."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from civicseal.clock import for_people, yes_no

# Nothing printed is ever read as markup: names, addresses and messages may hold brackets ('[/x]').
console = Console(highlight=False, markup=False)
err_console = Console(stderr=True, highlight=False, markup=False)


def print_done(title: str, seconds: float, note: str = "") -> None:
    """``✓ title (1.2 s)``: one finished step of a long story, as the demo tells it."""
    console.print(Text.assemble(("✓ ", "green"), title, (f" ({note}{seconds:.1f} s)", "dim")))


class _Printed:
    """Whether this command has put its JSON object on stdout: a refusal after it must not add a second."""

    json = False


printed = _Printed()


def print_json(data: Mapping[str, object] | list) -> None:
    """One JSON object and nothing else on stdout."""
    printed.json = True
    print(json.dumps(data, ensure_ascii=False, sort_keys=True, default=str))


_RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)")


def shown(value: object) -> str:
    """A value as a person reads it: yes/no, a dash for nothing, times in Tokyo, thousands separated."""
    if isinstance(value, bool):
        return yes_no(value)
    if value is None:
        return "-"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, datetime):
        return for_people(value)
    if isinstance(value, str) and _RFC3339.fullmatch(value):
        return for_people(datetime.fromisoformat(value.replace("Z", "+00:00")))
    return str(value)


def print_table(title: str, rows: Mapping[str, object]) -> None:
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column(justify="right")
    for key, value in rows.items():
        table.add_row(Text(key), Text(shown(value)))
    console.print(table)


@contextmanager
def progress_bars(enabled: bool = True) -> Iterator:
    """A progress callback ``(stage, done, total)`` drawing one bar per stage, with its share done: what a
    stage counts may be bytes (the import's files), which as "65005596/65005596" read like residents."""
    bars = Progress(
        TextColumn("{task.description:<22}"),
        BarColumn(),
        TaskProgressColumn(),
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
