"""Scratch files that may hold plaintext (a seal's work folder, an open's ``.part`` file) never outlive a run.

A run that ends normally removes its own scratch. One that is killed cannot, so each scratch item is
*claimed* while it exists: a small record in the home's ``.scratch`` folder names it, and the running
process holds an exclusive ``flock`` on that record. Every command starts with :func:`sweep`, which removes
what dead runs claimed (their locks are gone with them) and never touches what a live run holds.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Final

SCRATCH_DIR: Final = ".scratch"
SEAL_PREFIX: Final = ".seal-"
# Only names civicseal itself gives scratch items are ever removed, whatever a record says.
_REMOVABLE = re.compile(r"\.seal-[A-Za-z0-9_]+|\..+\.[0-9a-f]{16}\.part")
UNCLAIMED_GRACE: Final = 60.0  # seconds: a seal folder is claimed right after it is made


@contextlib.contextmanager
def claimed(home: Path, target: Path) -> Iterator[None]:
    """Hold a claim on ``target`` for the block; a sweep after this process dies removes ``target``."""
    records = home / SCRATCH_DIR
    records.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, pending = tempfile.mkstemp(dir=records, suffix=".new")
    record = Path(pending).with_suffix(".claim")
    try:
        os.write(fd, str(target.absolute()).encode())
        fcntl.flock(fd, fcntl.LOCK_EX)  # locked before it is a claim: a sweep never sees it unlocked
        os.replace(pending, record)
        yield
    finally:
        Path(pending).unlink(missing_ok=True)
        record.unlink(missing_ok=True)
        os.close(fd)


def _remove(target: Path) -> None:
    if not _REMOVABLE.fullmatch(target.name):
        return
    if target.is_dir() and not target.is_symlink():
        shutil.rmtree(target, ignore_errors=True)
    else:
        target.unlink(missing_ok=True)


def sweep(home: Path, *, now: float | None = None) -> int:
    """Remove what dead runs left (claimed items whose lock is free; stray seal folders); return how many."""
    if not home.is_dir():
        return 0
    removed, live = 0, set()
    records = home / SCRATCH_DIR
    for record in sorted(records.glob("*.claim")) if records.is_dir() else []:
        try:
            fd = os.open(record, os.O_RDONLY)
        except FileNotFoundError:
            continue
        try:
            target = Path(os.read(fd, 4096).decode(errors="replace"))
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                live.add(target)
                continue
            _remove(target)
            record.unlink(missing_ok=True)
            removed += 1
        finally:
            os.close(fd)
    cutoff = (now if now is not None else time.time()) - UNCLAIMED_GRACE
    for folder in home.glob(f"{SEAL_PREFIX}*"):  # left by a run killed before it claimed, or by an old version
        if folder.absolute() not in live and folder.lstat().st_mtime < cutoff:
            _remove(folder)
            removed += 1
    return removed
