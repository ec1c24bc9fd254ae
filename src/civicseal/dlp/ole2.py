"""What the scanner reads inside the OLE2 (Compound File) files that are not workbooks: Outlook messages (.msg),
Word and PowerPoint 97–2003 files (.doc, .ppt), common on a city's shared drives and in its staff's mail.

Readers over an open ``olefile.OleFileIO``, returning text and attached files; the scanner matches them.
A broken structure raises ``ValueError``, ``IndexError`` or ``struct.error``, as olefile's own do, and the
scanner names the file damaged.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from typing import Protocol


class OleFile(Protocol):
    """What the readers need of ``olefile.OleFileIO`` (imported only where a scan meets an OLE2 file)."""

    def listdir(self, streams: bool = True, storages: bool = False) -> list[list[str]]: ...
    def openstream(self, filename: str | list[str]) -> object: ...


class NotRead(Exception):
    """A file of a kind these readers leave alone; ``reason`` says so to the officer."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _read(ole: OleFile, path: list[str]) -> bytes:
    return ole.openstream(path).read()  # type: ignore[attr-defined]


# ---------------------------------------------------------------------------------------- Outlook (.msg)

# MS-OXMSG: each property in a stream named for its id and type: 001F UTF-16LE text, 001E text in the message's
# code page (CP932 in a Japanese Outlook), 0102 binary, 000D a storage (an attached message).
MESSAGE_PROPERTIES = "__properties_version1.0"
BODY = ("__substg1.0_1000001F", "__substg1.0_1000001E")  # PidTagBody
HTML = ("__substg1.0_10130102", "__substg1.0_1013001F", "__substg1.0_1013001E")  # PidTagHtml
RTF = "__substg1.0_10090102"  # PidTagRtfCompressed
ATTACHMENT = "__attach_version1.0_#"
ATTACHED_DATA = "__substg1.0_37010102"  # PidTagAttachDataBinary
ATTACHED_OBJECT = "__substg1.0_3701000D"  # an attached message, or an embedded OLE object
ATTACHED_NAMES = ("__substg1.0_3707001F", "__substg1.0_3707001E", "__substg1.0_3704001F", "__substg1.0_3704001E")


@dataclass(frozen=True)
class Attached:
    """One attachment: a file's bytes, or (``message``) the storage of an attached Outlook message."""

    name: str
    data: bytes = b""
    message: list[str] | None = None
    not_read: str | None = None  # an embedded OLE object (a drawing, a workbook pasted as an icon)


@dataclass(frozen=True)
class Message:
    """An Outlook message's body and attachments. ``body`` is UTF-8, or the stored bytes of an 8-bit body whose
    code page the scanner tells as it tells any file's; ``html`` marks a body that is HTML."""

    body: bytes
    html: bool
    rtf: bytes  # the body as compressed RTF, when the message keeps it in no other form
    attachments: list[Attached]


def is_message(streams: set[str]) -> bool:
    return MESSAGE_PROPERTIES in streams and any(s.startswith("__substg1.0_") for s in streams)


def read_message(ole: OleFile, root: list[str]) -> Message:
    """The message stored at ``root`` (``[]`` for the file itself, an attachment's storage for a message
    attached to it)."""
    entries = ole.listdir(streams=True, storages=True)  # once: each attachment's storage is looked up in it
    children = _children(entries, root)
    body, html = b"", False
    if found := next((name for name in (*BODY, *HTML) if name in children), None):
        body, html = _text(_read(ole, [*root, found]), found), found in HTML
    attachments = [
        _attached(ole, entries, [*root, name], number) for number, name in enumerate(_attachments(children), 1)
    ]
    rtf = _read(ole, [*root, RTF]) if not body.strip() and RTF in children else b""
    return Message(body, html, rtf, attachments)


def _children(entries: list[list[str]], root: list[str]) -> set[str]:
    depth = len(root)
    return {parts[depth] for parts in entries if len(parts) == depth + 1 and parts[:depth] == root}


def _attachments(children: set[str]) -> list[str]:
    return sorted(name for name in children if name.startswith(ATTACHMENT))


def _text(data: bytes, stream: str) -> bytes:
    """A text property as UTF-8 when it is stored as UTF-16; an 8-bit one as it is stored."""
    if stream.endswith("001F"):
        return data.decode("utf-16-le", errors="replace").rstrip("\0").encode("utf-8")
    return data.rstrip(b"\0")


def _name(data: bytes) -> str:
    """An attachment's file name: UTF-8 as :func:`_text` gives it, else the CP932 of a Japanese Outlook."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp932", errors="replace")


def _attached(ole: OleFile, entries: list[list[str]], storage: list[str], number: int) -> Attached:
    children = _children(entries, storage)
    found = next((n for n in ATTACHED_NAMES if n in children), None)
    name = _name(_text(_read(ole, [*storage, found]), found)) if found else ""
    name = name or f"attachment-{number}"
    if ATTACHED_DATA in children:
        return Attached(name, data=_read(ole, [*storage, ATTACHED_DATA]))
    if ATTACHED_OBJECT in children:
        inner = [*storage, ATTACHED_OBJECT]
        if MESSAGE_PROPERTIES in _children(entries, inner):
            return Attached(name, message=inner)
        return Attached(name, not_read="object embedded in an Outlook message (OLE), not read")
    return Attached(name)


# ---------------------------------------------------------------------------------------- Word (.doc)

WORD_97 = 0x00C1  # nFib of Word 97, the first version of the format read here
ENCRYPTED, OBFUSCATED, TABLE_1 = 0x0100, 0x8000, 0x0200  # FibBase flags
CLX_PAIR = 33  # fcClx/lcbClx: the 34th pair of FibRgFcLcb97
COMPRESSED = 0x40000000  # a piece stored as 8-bit text (CP1252), not UTF-16LE
# Word's marks in the text stream: paragraph and line ends become line ends, a table cell's end a tab, field
# marks and anchors of pictures and objects spaces; an optional hyphen goes, a non-breaking one stays a hyphen.
# A table row ends with its last cell's mark and a mark of its own, told by its paragraph's properties; where
# they cannot be read, two marks end a line (an empty cell does so too, which breaks its row's line in two).
ROW_END = "\x07\x07"
WORD_MARKS = str.maketrans(
    {"\r": "\n", "\x0b": "\n", "\x0c": "\n", "\x07": "\t", "\x13": " ", "\x14": " ", "\x15": " ", "\x01": " ",
     "\x08": " ", "\x1e": "-", "\x1f": None}
)  # fmt: skip
FIELD_CODE = re.compile(r"\x13[^\x13\x14\x15]*\x14")  # a field's instructions (HYPERLINK "…"), before its result


def word_text(ole: OleFile) -> str | None:
    """A Word 97–2003 document's text (body, headers, notes, text boxes), from its piece table (MS-DOC 2.4.1);
    None when a password protects it. A file of Word 6 or 95 raises :class:`NotRead`."""
    document = _read(ole, ["WordDocument"])
    ident, version = struct.unpack_from("<HH", document, 0)
    (flags,) = struct.unpack_from("<H", document, 0x0A)
    if ident != 0xA5EC:
        raise ValueError("not a Word document")
    if version < WORD_97:
        raise NotRead("Word 6/95 document, not read: save it as .docx and scan it again")
    if flags & (ENCRYPTED | OBFUSCATED):
        return None
    table = _read(ole, ["1Table" if flags & TABLE_1 else "0Table"])
    pairs = _fc_lcb(document)
    clx_at, clx_size = struct.unpack_from("<II", document, pairs + CLX_PAIR * 8)
    pieces = _piece_table(table[clx_at : clx_at + clx_size])
    text = _text_of(document, pieces)
    papx_at, papx_size = struct.unpack_from("<II", document, pairs + PAPX_PAIR * 8)
    rows = _row_ends(document, table[papx_at : papx_at + papx_size])
    if rows:  # each table row's end mark (its paragraph's properties say so) ends a line
        marks = list(text)
        for at in _positions(pieces, rows):
            if 0 <= at < len(marks):
                marks[at] = "\r"
        text = "".join(marks)
    else:  # properties not found: two marks in a row end one
        text = text.replace(ROW_END, "\r")
    return FIELD_CODE.sub(" ", text).translate(WORD_MARKS)


PAPX_PAIR = 13  # fcPlcfBtePapx/lcbPlcfBtePapx: where the paragraphs' properties are, page by page
PAGE = 512  # a formatted disk page (FKP)
TABLE_ROW_END = (0x2417, 0x244C)  # sprmPFTtp, sprmPFInnerTtp: this paragraph ends a table row
# An operand's size by the sprm's top three bits (spra); 6 is variable, its size in its first byte.
OPERAND = {0: 1, 1: 1, 2: 2, 3: 4, 4: 2, 5: 2, 7: 3}
TABLE_DEFINITION = 0xD608  # sprmTDefTable: a two-byte size, one more than the bytes after it


def _row_ends(document: bytes, plc: bytes) -> set[int]:
    """Where each paragraph that ends a table row ends (its offset in the WordDocument stream), from the
    paragraphs' properties: the PlcBtePapx's pages (MS-DOC 2.8.6, 2.9.175), each paragraph's grpprl."""
    count = (len(plc) - 4) // 8
    ends: set[int] = set()
    for (number,) in struct.iter_unpack("<I", plc[4 * (count + 1) : 4 * (count + 1) + 4 * count]):
        page = document[(number & 0x3FFFFF) * PAGE : (number & 0x3FFFFF) * PAGE + PAGE]
        try:
            ends |= _page_row_ends(page)
        except (struct.error, IndexError, KeyError):  # a broken page: its rows end where two marks do
            return set()
    return ends


def _page_row_ends(page: bytes) -> set[int]:
    runs = page[PAGE - 1]
    bounds = struct.unpack_from(f"<{runs + 1}I", page, 0)
    ends = set()
    for i in range(runs):
        offset = page[4 * (runs + 1) + 13 * i] * 2
        if offset and any(sprm in TABLE_ROW_END and value for sprm, value in _sprms(_grpprl(page, offset))):
            ends.add(bounds[i + 1])
    return ends


def _grpprl(page: bytes, at: int) -> bytes:
    """A PapxInFkp's properties, after its style (two bytes)."""
    size = page[at]
    if size == 0:
        return page[at + 2 + 2 : at + 2 + 2 * page[at + 1]]
    return page[at + 1 + 2 : at + 2 * size]


def _sprms(grpprl: bytes) -> list[tuple[int, int]]:
    """Each property (sprm) with its operand's first byte."""
    found, at = [], 0
    while at + 2 < len(grpprl):
        (sprm,) = struct.unpack_from("<H", grpprl, at)
        at += 2
        spra = sprm >> 13
        if sprm == TABLE_DEFINITION:
            size = struct.unpack_from("<H", grpprl, at)[0] + 1
        elif spra == 6:
            size = grpprl[at] + 1
        else:
            size = OPERAND[spra]
        found.append((sprm, grpprl[at]))
        at += size
    return found


def _positions(pieces: list[tuple[int, int, int]], ends: set[int]) -> list[int]:
    """Where in the text the characters stand that end at ``ends`` (offsets in the WordDocument stream)."""
    positions = []
    for start, end, fc in pieces:
        width, base = (1, (fc & ~COMPRESSED) // 2) if fc & COMPRESSED else (2, fc)
        stop = base + width * (end - start)
        positions += [start + (at - base) // width - 1 for at in ends if base < at <= stop]
    return positions


def _fc_lcb(document: bytes) -> int:
    """Where FibRgFcLcb begins: after FibBase (32 bytes), FibRgW and FibRgLw, each after its count."""
    at = 32
    (words,) = struct.unpack_from("<H", document, at)
    at += 2 + 2 * words
    (longs,) = struct.unpack_from("<H", document, at)
    return at + 2 + 4 * longs + 2


def _piece_table(clx: bytes) -> list[tuple[int, int, int]]:
    """The pieces of the text: (first character, end, where it is stored), from the Clx's Pcdt after any Prc."""
    at = 0
    while clx[at] == 0x01:  # a Prc: a group of properties, skipped
        (size,) = struct.unpack_from("<h", clx, at + 1)
        at += 3 + size
    if clx[at] != 0x02:
        raise ValueError("no piece table")
    (size,) = struct.unpack_from("<I", clx, at + 1)
    plc = clx[at + 5 : at + 5 + size]
    count = (len(plc) - 4) // 12
    cps = struct.unpack_from(f"<{count + 1}I", plc, 0)
    return [(cps[i], cps[i + 1], struct.unpack_from("<I", plc, 4 * (count + 1) + 8 * i + 2)[0]) for i in range(count)]


def _text_of(document: bytes, pieces: list[tuple[int, int, int]]) -> str:
    """The pieces' text, no longer than the stream that holds it: pieces that claim more (a damaged or hostile
    file pointing them all at the same bytes) are cut there."""
    parts, left = [], len(document)
    for start, end, fc in pieces:
        if left <= 0:
            break
        part = _piece(document, start, min(end, start + left), fc)
        parts.append(part)
        left -= len(part)
    return "".join(parts)


def _piece(document: bytes, start: int, end: int, fc: int) -> str:
    length = end - start
    if fc & COMPRESSED:
        at = (fc & ~COMPRESSED) // 2
        return document[at : at + length].decode("cp1252", errors="replace")
    return document[fc : fc + 2 * length].decode("utf-16-le", errors="replace")


# ---------------------------------------------------------------------------------------- PowerPoint (.ppt)

SLIDES = "PowerPoint Document"
SLIDES_ENCRYPTED = "EncryptedSummary"  # beside the slides when a password protects them (RC4 CryptoAPI)
CONTAINER = 0xF  # recVer of a record that holds records
TEXT_CHARS, TEXT_BYTES = 0x0FA0, 0x0FA8  # a text block in UTF-16LE; in 8 bits (each a UTF-16 code unit's low byte)
PPT_MARKS = str.maketrans({"\r": "\n", "\x0b": "\n"})  # paragraph and line ends


def slides_text(ole: OleFile) -> list[str]:
    """Every text block of a PowerPoint 97–2003 file (titles, bodies, table cells, notes), walking its records
    (MS-PPT 2.3.1) into every container: earlier saves kept in the stream are read too."""
    data = _read(ole, [SLIDES])
    blocks, at = [], 0
    while at + 8 <= len(data):
        version, kind, size = struct.unpack_from("<HHI", data, at)
        at += 8
        if version & 0xF == CONTAINER:
            continue  # its records follow its header
        if kind == TEXT_CHARS:
            blocks.append(data[at : at + size].decode("utf-16-le", errors="replace").translate(PPT_MARKS))
        elif kind == TEXT_BYTES:
            blocks.append(data[at : at + size].decode("latin-1").translate(PPT_MARKS))
        at += size
    return blocks
