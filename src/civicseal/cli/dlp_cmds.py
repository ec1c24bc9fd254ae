"""Commands for the DLP index and for scanning drives, shares and exports for resident data."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from civicseal.cli.app import HomeOption, JsonOption, app, open_home
from civicseal.cli.output import console, print_json, print_table
from civicseal.store.home import Home

if TYPE_CHECKING:
    from civicseal.dlp.report import FileReport, ScanReport

dlp_app = typer.Typer(help="Exact-data-match fingerprints of the register, for scanning.", no_args_is_help=True)
app.add_typer(dlp_app, name="dlp")


@dlp_app.command("index")
def dlp_index(
    export: Annotated[
        Path | None, typer.Option("--export", help="Also seal the index for a scanning station into this file.")
    ] = None,
    to: Annotated[str | None, typer.Option("--to", help="The station's recipient name (with --export).")] = None,
    force: Annotated[bool, typer.Option(help="Replace an existing --export file.")] = False,
    home: HomeOption = None,
    json_out: JsonOption = False,
) -> None:
    """Fingerprint every resident (moved out and deceased too): keyed HMAC-SHA-256, no plaintext."""
    from civicseal.dlp.index import build_index, export_index

    if export is not None and not to:
        raise typer.BadParameter("--export needs --to STATION: the recipient the sealed index is for")
    opened = open_home(home)
    summary = build_index(opened)
    exported = export_index(opened, export, to, force=force) if export is not None and to else None
    if json_out:
        print_json(summary.as_dict() | {"export": exported.as_dict() if exported else None})
        return
    print_table(
        "DLP index",
        {
            "residents": summary.residents,
            "fingerprints": summary.fingerprints,
            **{f"  {name}": count for name, count in summary.elements.items()},
            "written to": summary.path,
        },
    )
    if exported:
        console.print(
            f"sealed for {exported.recipient} into {exported.out} (package {exported.package_id},"
            f" expires {_jst(exported.expires)}); it carries the fingerprint key: keep it like the register",
            markup=False,
        )


@app.command("scan")
def scan_command(
    paths: Annotated[list[Path], typer.Argument(help="Files and folders to scan (ZIP archives are opened).")],
    index: Annotated[
        Path | None, typer.Option("--index", help="A sealed index from `dlp index --export` (scanning station).")
    ] = None,
    identity: Annotated[Path | None, typer.Option(help="The station's age identity (with --index).")] = None,
    fail_at: Annotated[
        int | None, typer.Option("--fail-at", min=1, help="Exit 3 when data of this many residents is found.")
    ] = None,
    home: HomeOption = None,
    json_out: JsonOption = False,
) -> None:
    """Find residents' data in plaintext: register values by fingerprint, My Numbers, phones, postcodes, dates."""
    from civicseal.dlp.errors import FindingsOverThreshold
    from civicseal.dlp.index import load_home_index, open_exported_index
    from civicseal.dlp.scan import scan

    if index is not None:
        if identity is None:
            raise typer.BadParameter("--index needs --identity: the station's age key that the index was sealed to")
        loaded = open_exported_index(index, trust_home=Home(home).path, identity_file=identity)
    else:
        loaded = load_home_index(open_home(home))
    report = scan(paths, loaded)
    if json_out:
        print_json(report.as_dict())
    else:
        _render(report)
    if fail_at is not None and report.residents_matched >= fail_at:
        raise FindingsOverThreshold(report.residents_matched, fail_at)


def _jst(rfc3339: str) -> str:
    from civicseal.cseal import parse_rfc3339
    from civicseal.incident.appi import when_en

    return when_en(parse_rfc3339(rfc3339))


def _where(position: dict[str, object]) -> str:
    return " ".join(f"{k} {v}" for k, v in position.items() if k != "element")


WIDE = 120  # columns from which the files are a table; a narrower terminal lists them, a file a paragraph


def _render(scanned: ScanReport) -> None:
    report = scanned.as_dict()
    if console.width >= WIDE:
        _render_table(scanned, report)
    else:
        _render_list(scanned, report)
    console.print(
        f"{report['files_scanned']:,} {'file' if report['files_scanned'] == 1 else 'files'} read,"
        f" {report['files_protected']:,} protected,"
        f" {report['files_skipped']:,} skipped; index of {report['register_residents']:,} residents"
        f" built {_jst(report['index_created'])}",
        markup=False,
    )
    console.print(report["summary"], markup=False)


def _findings(found: FileReport, f: dict) -> list[str] | None:
    """What a file's line says, part by part: its format, why it was not read or what it holds; None for a
    file read that holds nothing."""
    if f["protected"] or f["skipped"]:
        return [f["format"], f["protected"] or f["skipped"]]
    if not found.has_findings:
        return None
    first = f["positions"][:1] or f["uncorroborated_positions"][:1]
    return [
        f["format"] + (f" ({f['encoding']})" if f["encoding"] else ""),
        f"{f['residents_matched']:,}",
        ", ".join(f"{k} {v:,}" for k, v in f["elements"].items() if v),
        ", ".join(f"{k} {v:,}" for k, v in f["uncorroborated"].items() if v),
        ", ".join(f"{k} {v:,}" for k, v in f["patterns"].items() if v),
        _where(first[0]) if first else "",
    ]


LISTED = ("residents", "elements (corroborated)", "single values", "patterns", "first at")


def _render_list(scanned: ScanReport, report: dict) -> None:
    """At 80 columns a table cuts every column to a few letters: each file is its path on a line of its own,
    whole, then what it holds."""
    rows = [(f["path"], parts) for found, f in zip(scanned.files, report["files"], strict=True)
            if (parts := _findings(found, f)) is not None]  # fmt: skip
    if rows:
        console.print("files", markup=False)
    for path, parts in rows:
        console.print(Text(path), overflow="fold")
        if len(parts) > 2:  # read: each finding named
            parts = [parts[0], *(f"{name} {value}" for name, value in zip(LISTED, parts[1:], strict=True) if value)]
        console.print(Padding(Text(" · ".join(parts)), (0, 0, 0, 2), expand=False))  # wrapped lines indented too


def _render_table(scanned: ScanReport, report: dict) -> None:
    table = Table(title="files", title_justify="left", expand=True)
    # The file is what the officer must find: its path folds onto more lines rather than being cut short,
    # however narrow the terminal, and it keeps the widest share of the width.
    table.add_column("file", overflow="fold", ratio=3)
    table.add_column("format", ratio=1)
    table.add_column("residents", justify="right", min_width=9, no_wrap=True)
    for column in ("elements (corroborated)", "single values", "patterns"):
        table.add_column(column, ratio=2)
    table.add_column("first at", ratio=1)
    for found, f in zip(scanned.files, report["files"], strict=True):
        parts = _findings(found, f)
        if parts is None:
            continue
        if len(parts) == 2:  # not read: the reason stands where the findings would
            table.add_row(Text(f["path"]), parts[0], "", Text(parts[1]), "", "", "")
        else:
            table.add_row(Text(f["path"]), *parts)
    if table.row_count:
        console.print(table)
