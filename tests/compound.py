"""A Compound File (OLE2, MS-CFB version 3) writer for the tests: Outlook messages and Word 97–2003 documents
as those programs save them, built here since no library on PyPI writes the format (olefile only reads).

Only what a reader needs: 512-byte sectors, a mini stream for streams under 4,096 bytes, storages whose
children hang off one another as right siblings in the format's name order, no DIFAT beyond the header's.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

SECTOR, MINI, CUTOFF = 512, 64, 4096
FREE, END, FAT_SECTOR, NONE = 0xFFFFFFFF, 0xFFFFFFFE, 0xFFFFFFFD, 0xFFFFFFFF
MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"


@dataclass
class _Entry:
    name: str
    data: bytes | None = None  # None: a storage
    children: dict[str, _Entry] = field(default_factory=dict)
    start: int = END


def compound_file(streams: dict[str, bytes]) -> bytes:
    """A file holding ``streams`` (paths such as ``__attach_version1.0_#00000000/__substg1.0_37010102``); the
    storages on their paths are made as needed."""
    root = _Entry("Root Entry")
    for path, data in streams.items():
        node = root
        *folders, leaf = path.split("/")
        for folder in folders:
            node = node.children.setdefault(folder, _Entry(folder))
        node.children[leaf] = _Entry(leaf, data)
    entries = _flatten(root)
    fat: list[int] = []
    sectors: list[bytes] = []

    def place(data: bytes) -> int:
        count = -(-len(data) // SECTOR)
        if not count:
            return END
        first = len(sectors)
        for i in range(count):
            sectors.append(data[i * SECTOR : (i + 1) * SECTOR].ljust(SECTOR, b"\0"))
            fat.append(first + i + 1 if i < count - 1 else END)
        return first

    mini, mini_fat = bytearray(), []
    for entry in entries[1:]:
        if entry.data is None:
            continue
        if len(entry.data) >= CUTOFF:
            entry.start = place(entry.data)
            continue
        count = -(-len(entry.data) // MINI)
        entry.start = len(mini) // MINI if count else END
        mini_fat += [len(mini) // MINI + i + 1 if i < count - 1 else END for i in range(count)]
        mini += entry.data.ljust(count * MINI, b"\0")
    root.start = place(bytes(mini))
    mini_fat_start = place(b"".join(struct.pack("<I", n) for n in mini_fat)) if mini_fat else END
    directory_start = place(b"".join(_directory_entry(e, entries, len(mini)) for e in entries))
    fat_count = 1
    while (len(sectors) + fat_count) > fat_count * (SECTOR // 4):
        fat_count += 1
    fat_start = len(sectors)
    fat += [FAT_SECTOR] * fat_count
    fat += [FREE] * (fat_count * (SECTOR // 4) - len(fat))
    table = b"".join(struct.pack("<I", n) for n in fat)
    sectors += [table[i * SECTOR : (i + 1) * SECTOR] for i in range(fat_count)]
    difat = [fat_start + i for i in range(fat_count)] + [FREE] * (109 - fat_count)
    header = struct.pack(
        "<8s16sHHHHH6sIIIIIIIII109I",
        MAGIC, b"\0" * 16, 0x3E, 3, 0xFFFE, 9, 6, b"\0" * 6, 0, fat_count, directory_start, 0, CUTOFF,
        mini_fat_start, -(-len(mini_fat) * 4 // SECTOR), END, 0, *difat,
    )  # fmt: skip
    return header.ljust(SECTOR, b"\0") + b"".join(sectors)


def _flatten(root: _Entry) -> list[_Entry]:
    """Every entry, the root first, in the order their ids are given."""
    entries, queue = [], [root]
    while queue:
        entry = queue.pop(0)
        entries.append(entry)
        queue += _ordered(entry)
    return entries


def _ordered(entry: _Entry) -> list[_Entry]:
    """A storage's children in the format's order: shorter names first, then by upper-cased name."""
    return sorted(entry.children.values(), key=lambda e: (len(e.name), e.name.upper()))


def _directory_entry(entry: _Entry, entries: list[_Entry], mini_size: int) -> bytes:
    ids = {id(e): i for i, e in enumerate(entries)}
    kids = _ordered(entry)
    child = ids[id(kids[0])] if kids else NONE
    right = NONE
    for parent in entries:
        siblings = _ordered(parent)
        if entry in siblings and siblings.index(entry) + 1 < len(siblings):
            right = ids[id(siblings[siblings.index(entry) + 1])]
    kind = 5 if entry is entries[0] else 1 if entry.data is None else 2
    size = mini_size if kind == 5 else len(entry.data or b"")
    name = entry.name.encode("utf-16-le")
    return struct.pack(
        "<64sHBBIII16sIQQIQ",
        name, len(name) + 2, kind, 1, NONE, right, child, b"\0" * 16, 0, 0, 0, entry.start if kind != 1 else 0, size,
    )  # fmt: skip
