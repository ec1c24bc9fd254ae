"""What a scan found, per file and in all: counts, element types and positions, never a value."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from civicseal.dlp.index import Element
from civicseal.dlp.normalize import PATTERNS

MAX_POSITIONS = 20
PASSWORD_FORMATS = {"office", "pdf", "zip"}  # protected by a password someone chose, not by a key


@dataclass
class FileReport:
    """One file (or one member of an archive). ``matched`` marks the corroborated residents (by ordinal)."""

    path: str
    format: str
    matched: np.ndarray
    encoding: str | None = None
    elements: dict[str, int] = field(default_factory=lambda: {e.label: 0 for e in Element})
    uncorroborated: dict[str, int] = field(default_factory=lambda: {e.label: 0 for e in Element})
    patterns: dict[str, int] = field(default_factory=lambda: dict.fromkeys(PATTERNS, 0))
    positions: list[dict[str, Any]] = field(default_factory=list)
    single_positions: list[dict[str, Any]] = field(default_factory=list)
    protected: str | None = None
    skipped: str | None = None

    @property
    def residents_matched(self) -> int:
        return int(np.count_nonzero(self.matched))

    @property
    def has_findings(self) -> bool:
        return bool(self.residents_matched or any(self.uncorroborated.values()) or any(self.patterns.values()))

    def add_position(self, position: dict[str, Any], *, corroborated: bool) -> None:
        target = self.positions if corroborated else self.single_positions
        if len(target) < MAX_POSITIONS:
            target.append(position)

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "format": self.format,
            "encoding": self.encoding,
            "residents_matched": self.residents_matched,
            "elements": dict(self.elements),
            "uncorroborated": dict(self.uncorroborated),
            "patterns": dict(self.patterns),
            "positions": list(self.positions),
            "uncorroborated_positions": list(self.single_positions),
            "protected": self.protected,
            "skipped": self.skipped,
        }


@dataclass
class ScanReport:
    paths: list[str]
    index_created: str
    register_residents: int
    files: list[FileReport]
    matched: np.ndarray  # union over files

    @property
    def residents_matched(self) -> int:
        return int(np.count_nonzero(self.matched))

    @property
    def files_with_residents(self) -> int:
        return sum(1 for f in self.files if f.residents_matched)

    def summary(self) -> str:
        """The one sentence an officer reads before a copy leaves: how many files, how many residents, and
        how many files nobody can vouch for (not read, or locked with a password the scan does not have)."""
        where = ", ".join(self.paths)
        if not self.residents_matched:
            singles = sum(sum(f.uncorroborated.values()) for f in self.files)
            tail = f" ({singles:,} single values match the register without a second element)" if singles else ""
            return f"no file under {where} holds resident data matched to the register{tail}{self._unchecked()}"
        files = self.files_with_residents
        noun = "file" if files == 1 else "files"
        verb = "holds" if files == 1 else "hold"
        residents = f"{self.residents_matched:,} {'resident' if self.residents_matched == 1 else 'residents'}"
        found = f"{files:,} {noun} under {where} {verb} data of {residents} in plaintext"
        return found + self._unchecked()

    def _unchecked(self) -> str:
        """What the sentence must not hide: files not read, and files protected by a password alone (a sealed
        package or an age file is protected by design, and is not counted here)."""
        skipped = sum(1 for f in self.files if f.skipped)
        locked = sum(1 for f in self.files if f.protected and f.format in PASSWORD_FORMATS)
        parts = [
            f"{n:,} {'file' if n == 1 else 'files'} {what}"
            for n, what in ((skipped, "not read"), (locked, "behind a password"))
            if n
        ]
        return f"; not vouched for: {', '.join(parts)} (see the list)" if parts else ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "paths": self.paths,
            "index_created": self.index_created,
            "register_residents": self.register_residents,
            "files_scanned": sum(1 for f in self.files if f.skipped is None and f.protected is None),
            "files_with_residents": self.files_with_residents,
            "files_protected": sum(1 for f in self.files if f.protected),
            "files_skipped": sum(1 for f in self.files if f.skipped),
            "residents_matched": self.residents_matched,
            "uncorroborated": sum(sum(f.uncorroborated.values()) for f in self.files),
            "patterns": {p: sum(f.patterns[p] for f in self.files) for p in PATTERNS},
            "summary": self.summary(),
            "files": [f.as_dict() for f in self.files],
        }
