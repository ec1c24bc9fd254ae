"""The text of an RTF document, and of the compressed RTF an Outlook message may keep its body in.

Read as plain text, an RTF file written in Japan holds no Japanese at all: its kanji are escaped as the bytes
of its code page (``\\'8e\\'52``, CP932) or as ``\\u23665?``. A scanner reading it so would call it clean.
"""

from __future__ import annotations

import re
import struct

# A control word and its parameter (one space after it belongs to it), a byte in hex, a control symbol, a
# group's brace, line ends (not text in RTF), or a run of text.
_TOKEN = re.compile(
    rb"\\([a-zA-Z]{1,32})(-?[0-9]{1,10})? ?|\\'([0-9a-fA-F]{2})|\\(.)|([{}])|[\r\n]+|([^\\{}\r\n]+)", re.S
)
# Groups whose content is not the document's text: tables of fonts, colours and styles, metadata, pictures,
# embedded objects' data, field instructions (the text shown is the field's result, which is read).
_SKIPPED = {
    b"fonttbl", b"colortbl", b"stylesheet", b"info", b"pict", b"objdata", b"fldinst", b"listtable",
    b"listoverridetable", b"rsidtbl", b"generator", b"themedata", b"colorschememapping", b"datastore",
    b"latentstyles", b"xmlnstbl", b"mmathPr", b"pgdsctbl", b"filetbl", b"revtbl", b"bkmkstart", b"bkmkend",
}  # fmt: skip
_LINE_ENDS = {b"par", b"line", b"row", b"sect", b"page", b"outlinelevel"}
_CELLS = {b"tab", b"cell"}
_SYMBOLS = {b"~": " ", b"_": "-", b"-": "", b"\\": "\\", b"{": "{", b"}": "}"}


def is_rtf(head: bytes) -> bool:
    return head.lstrip(b"\xef\xbb\xbf").startswith(b"{\\rtf")


def rtf_text(data: bytes) -> str:
    """The document's text: paragraphs and rows end lines, cells and tabs are tabs."""
    codepage = _codepage(data)
    out: list[str] = []
    pending = bytearray()  # bytes given in hex, decoded together: a kanji is two of them
    skip_stack: list[tuple[bool, int]] = []
    skipping, unicode_skip, to_skip = False, 1, 0

    for word, parameter, hexbyte, symbol, brace, text in _TOKEN.findall(data):
        if hexbyte:
            if to_skip:
                to_skip -= 1
            elif not skipping:
                pending.append(int(hexbyte, 16))
            continue
        if pending:
            out.append(pending.decode(codepage, errors="replace"))
            pending.clear()
        if brace == b"{":
            skip_stack.append((skipping, unicode_skip))
            to_skip = 0
        elif brace == b"}":
            skipping, unicode_skip = skip_stack.pop() if skip_stack else (False, 1)
            to_skip = 0
        elif symbol == b"*":  # an optional destination: its group is not text
            skipping = True
        elif symbol:
            if not skipping:
                out.append(_SYMBOLS.get(symbol, ""))
        elif word:
            skipping, unicode_skip, to_skip = _control(word, parameter, skipping, unicode_skip, to_skip, out)
        elif text:
            if to_skip:
                text, to_skip = text[to_skip:], max(0, to_skip - len(text))
            if not skipping:
                out.append(text.decode(codepage, errors="replace"))
    if pending:
        out.append(pending.decode(codepage, errors="replace"))
    # \\u gives UTF-16 code units: a character beyond the BMP comes as two, joined here
    return "".join(out).encode("utf-16-le", "surrogatepass").decode("utf-16-le", errors="replace")


def _control(
    word: bytes, parameter: bytes, skipping: bool, unicode_skip: int, to_skip: int, out: list[str]
) -> tuple[bool, int, int]:
    """A control word's effect: the state of the group it is in (skipping, \\uc, characters to skip)."""
    if word in _SKIPPED:
        return True, unicode_skip, to_skip
    if word == b"uc" and parameter:
        return skipping, int(parameter), to_skip
    if skipping:
        return skipping, unicode_skip, to_skip
    if word == b"u" and parameter:
        out.append(chr(int(parameter) % 0x10000))
        return skipping, unicode_skip, unicode_skip  # the fallback characters after it are not read
    if word in _LINE_ENDS:
        out.append("\n")
    elif word in _CELLS:
        out.append("\t")
    return skipping, unicode_skip, to_skip


def _codepage(data: bytes) -> str:
    """The code page of the document's 8-bit text (``\\ansicpg932``), CP932 when it names none: a Japanese
    writer's default, and a superset of ASCII."""
    found = re.search(rb"\\ansicpg([0-9]{3,5})", data[:4096])
    name = f"cp{int(found[1])}" if found else "cp932"
    try:
        "".encode(name)
    except LookupError:
        return "cp932"
    return name


# ---------------------------------------------------------------------------------------- compressed RTF

# MS-OXRTFCP: LZ77 over a 4,096-byte ring, primed with this text; "MELA" marks an uncompressed body.
_PRIMER = (
    b"{\\rtf1\\ansi\\mac\\deff0\\deftab720{\\fonttbl;}{\\f0\\fnil \\froman \\fswiss \\fmodern \\fscript "
    b"\\fdecor MS Sans SerifSymbolArialTimes New RomanCourier{\\colortbl\\red0\\green0\\blue0\r\n\\par "
    b"\\pard\\plain\\f0\\fs20\\b\\i\\u\\tab\\tx"
)
_COMPRESSED, _UNCOMPRESSED = b"LZFu", b"MELA"


def decompress_rtf(data: bytes) -> bytes:
    """The RTF an Outlook message keeps compressed (PidTagRtfCompressed). The checksum is not verified: the
    scanner reads what is there. A header it does not know raises ``ValueError``."""
    size, raw_size, kind = struct.unpack_from("<II4s", data, 0)
    body = data[16 : 4 + size]
    if kind == _UNCOMPRESSED:
        return body[:raw_size]
    if kind != _COMPRESSED:
        raise ValueError("not compressed RTF")
    ring = bytearray(4096)
    ring[: len(_PRIMER)] = _PRIMER
    end = len(_PRIMER)
    out = bytearray()
    at = 0
    while at < len(body) and len(out) < raw_size:
        flags = body[at]
        at += 1
        for bit in range(8):
            if at >= len(body) or len(out) >= raw_size:
                break
            if flags >> bit & 1:  # a reference: 12 bits of offset into the ring, 4 of length less two
                (reference,) = struct.unpack_from(">H", body, at)
                at += 2
                offset, length = reference >> 4, (reference & 0xF) + 2
                if offset == end:  # the end of the stream
                    return bytes(out)
                for i in range(length):
                    byte = ring[(offset + i) % 4096]
                    out.append(byte)
                    ring[end] = byte
                    end = (end + 1) % 4096
            else:
                byte = body[at]
                at += 1
                out.append(byte)
                ring[end] = byte
                end = (end + 1) % 4096
    return bytes(out)
