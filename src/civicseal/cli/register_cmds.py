"""``synth`` and ``register import``: the resident register."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer

from civicseal.cli.app import HomeOption, JsonOption, app, open_home, register_app
from civicseal.cli.output import console, print_json, print_table, progress_bars

if TYPE_CHECKING:
    from civicseal.register.importer import Note

# The values of the importer's RejectsEncoding, named here so that `--help` does not load the importer.
RejectsEncodingName = Literal["utf-8", "cp932"]


@app.command()
def synth(
    out: Annotated[Path, typer.Option(help="Folder for residents.csv, tax.csv and accounts.csv.")],
    residents: Annotated[int, typer.Option(min=1, max=20_000_000, help="How many residents.")] = 460_517,
    seed: Annotated[int, typer.Option(help="Same seed, same bytes.")] = 7,
    force: Annotated[bool, typer.Option("--force", help="Replace the three files if the folder has them.")] = False,
    json_out: JsonOption = False,
) -> None:
    """Write a synthetic city (Amagasaki's towns, real postcodes and bank codes) as three CSV files."""
    from civicseal.register.synth import synthesize

    with progress_bars(not json_out) as progress:
        summary = synthesize(
            residents, seed, out, progress=lambda done: progress("synthesizing", done, residents), replace=force
        )
    figures = {
        "residents": summary.residents,
        "households": summary.households,
        "tax_rows": summary.tax_rows,
        "accounts": summary.accounts,
    }
    if json_out:
        print_json(figures)
    else:
        print_table(f"synthetic city written to {out}", figures)


@register_app.command("import")
def register_import(
    files: Annotated[list[Path], typer.Argument(help="residents, tax and/or accounts CSV files (UTF-8 or CP932).")],
    rejects: Annotated[
        Path | None, typer.Option(help="Import the valid rows and write the invalid ones to this file.")
    ] = None,
    rejects_encoding: Annotated[
        RejectsEncodingName, typer.Option(help="utf-8 (with a BOM, for Excel) or cp932.")
    ] = "utf-8",
    home: HomeOption = None,
    json_out: JsonOption = False,
) -> None:
    """Import the register atomically: every error is printed as file:line: column: rule, never the value."""
    from civicseal.keys.city import load_city_keys
    from civicseal.register.importer import RejectsEncoding, import_register

    opened = open_home(home)
    cipher = load_city_keys(opened.keys).field_cipher()
    with progress_bars(not json_out) as progress:
        summary = import_register(
            opened.engine,
            cipher,
            files,
            rejects=rejects,
            rejects_encoding=RejectsEncoding(rejects_encoding),
            progress=progress,
        )
    figures = summary.as_dict()
    if json_out:
        print_json(figures)
        return
    if summary.rows_read == 0:
        console.print("no rows in the files: nothing imported")
        return
    print_table("register import", figures)
    if summary.rejected:
        console.print(f"{summary.rejected} rows rejected and written to {rejects}")
    if summary.notes:
        _print_gaiji(summary.notes)


def _print_gaiji(notes: list[Note]) -> None:
    """Where the register holds characters of the city's own: the city tells whoever prints from a package."""
    from civicseal.register.importer import MAX_PRINTED_PROBLEMS

    for note in notes[:MAX_PRINTED_PROBLEMS]:
        console.print(str(note), highlight=False)
    if len(notes) > MAX_PRINTED_PROBLEMS:
        console.print(f"… and {len(notes) - MAX_PRINTED_PROBLEMS} more")
    console.print(
        "外字 are stored as they are: civicseal's letters print them as 〓, and a package carries them to whoever"
        " prints from it, to be mapped with the city's 外字 table",
        highlight=False,
    )
