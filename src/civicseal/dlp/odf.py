"""The text of OpenDocument files (.odt, .ods, .odp): what LibreOffice saves, and what the cities that moved
their offices to it keep on their drives.

Read as a ZIP archive, an ODF file is its XML parts, a whole table on one line among its markup: a row's name
and birth date are rarely within reach of each other. Here each paragraph is a line, and each table row one
line of its cells, tab-separated.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from xml.etree import ElementTree

MIMETYPE = "application/vnd.oasis.opendocument."
_TEXT = "{urn:oasis:names:tc:opendocument:xmlns:text:1.0}"
_TABLE = "{urn:oasis:names:tc:opendocument:xmlns:table:1.0}"
_PARAGRAPHS = {f"{_TEXT}p", f"{_TEXT}h"}
_CELLS = {f"{_TABLE}table-cell", f"{_TABLE}covered-table-cell"}
_ROW = f"{_TABLE}table-row"
_SPACES, _TAB, _BREAK = f"{_TEXT}s", f"{_TEXT}tab", f"{_TEXT}line-break"
_NOT_TEXT = {f"{_TEXT}tracked-changes", f"{_TEXT}sequence-decls", f"{_TEXT}variable-decls"}


def kind(z: zipfile.ZipFile) -> str | None:
    """``odt``, ``ods``, ``odp`` (or another ODF kind's short name) for an ODF package, else None."""
    if "mimetype" not in z.namelist() or "content.xml" not in z.namelist():
        return None
    mimetype = z.read("mimetype").decode("ascii", errors="replace").strip()
    if not mimetype.startswith(MIMETYPE):
        return None
    short = {"text": "odt", "spreadsheet": "ods", "presentation": "odp", "graphics": "odg"}
    return short.get(mimetype.removeprefix(MIMETYPE).split("-")[0], "odf")


def encrypted(z: zipfile.ZipFile) -> bool:
    """Whether a password protects the package: its manifest gives its parts encryption data."""
    try:
        return b"encryption-data" in z.read("META-INF/manifest.xml")
    except KeyError:
        return False


def lines(z: zipfile.ZipFile) -> Iterator[str]:
    """The document's lines: a paragraph outside a table, or a table row (its cells' paragraphs joined)."""
    with z.open("content.xml") as xml:
        cell: list[str] = []
        row: list[str] = []
        depth = 0  # table cells open around the current element
        for event, element in ElementTree.iterparse(xml, events=("start", "end")):
            if event == "start":
                depth += element.tag in _CELLS
                continue
            if element.tag in _PARAGRAPHS:
                text = _text(element)
                if depth:
                    cell.append(text)
                else:
                    yield text
                element.clear()
            elif element.tag in _CELLS:
                depth -= 1
                row.append(" ".join(cell))
                cell = []
                element.clear()
            elif element.tag == _ROW:
                if any(row):
                    yield "\t".join(row).rstrip("\t")
                row = []
                element.clear()


def _text(element: ElementTree.Element) -> str:
    """A paragraph's text: its spans' too, ``<text:s text:c="3"/>`` as three spaces, tabs and line breaks kept."""
    parts = [element.text or ""]
    for child in element:
        if child.tag == _SPACES:
            parts.append(" " * _spaces(child.get(f"{_TEXT}c", "1")))
        elif child.tag == _TAB:
            parts.append("\t")
        elif child.tag == _BREAK:
            parts.append("\n")
        elif child.tag not in _NOT_TEXT:
            parts.append(_text(child))
        parts.append(child.tail or "")
    return "".join(parts)


def _spaces(count: str) -> int:
    """A run of spaces' length, at most a line's worth: a file's claim of a billion is not believed."""
    return min(int(count), 120) if count.isdigit() else 1
