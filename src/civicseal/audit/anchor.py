"""Anchors: the chain head, signed by the city and kept outside the database.

Whoever can write the database can recompute the whole hash chain and its head row, so the chain alone
proves nothing against its own administrator. An anchor is a signed statement "at time T the chain had
N rows ending in hash H", appended to a file the database cannot reach (a write-once share, another
host, a copy handed to the data-protection officer or a notary). A chain that disagrees with any anchor
was rewritten (the hash at N differs) or cut (it has fewer than N rows).

One anchor is one line of JSON: the RFC 8785 canonical bytes of ``{"v", "issuer", "key_id", "seq",
"hash", "at"}`` are what the Ed25519 signature (``sig``, standard base64) covers.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import Connection, select

from civicseal.audit.errors import AuditError
from civicseal.audit.log import Verification, timestamp
from civicseal.audit.models import AuditEntry, AuditHead
from civicseal.store.files import atomic_writer

ANCHOR_VERSION: Final = 1
_SIGNED_FIELDS: Final = ("v", "issuer", "key_id", "seq", "hash", "at")


@dataclass(frozen=True)
class Anchor:
    """One signed chain head."""

    issuer: str
    key_id: str
    seq: int
    hash: str
    at: str  # RFC 3339 UTC, as signed
    sig: str  # base64 of the raw 64-byte Ed25519 signature

    def signed_bytes(self) -> bytes:
        body = {"v": ANCHOR_VERSION, "issuer": self.issuer, "key_id": self.key_id, "seq": self.seq}
        return rfc8785.dumps(body | {"hash": self.hash, "at": self.at})

    def line(self) -> str:
        body = json.loads(self.signed_bytes()) | {"sig": self.sig}
        return json.dumps(body, sort_keys=True, separators=(",", ":")) + "\n"

    def as_dict(self) -> dict[str, Any]:
        return {"issuer": self.issuer, "key_id": self.key_id, "seq": self.seq, "hash": self.hash, "at": self.at}


def sign_head(conn: Connection, signing_key: Ed25519PrivateKey, *, issuer: str, key_id: str, now: datetime) -> Anchor:
    """The chain head as it is in ``conn``'s snapshot, signed."""
    head = conn.execute(select(AuditHead.seq, AuditHead.hash).where(AuditHead.id == 1)).one()
    unsigned = Anchor(issuer, key_id, int(head.seq), head.hash, timestamp(now), "")
    signature = signing_key.sign(unsigned.signed_bytes())
    return Anchor(issuer, key_id, unsigned.seq, unsigned.hash, unsigned.at, base64.b64encode(signature).decode())


def append_anchor(path: Path, anchor: Anchor) -> None:
    """Append one line with O_APPEND and fsync: earlier lines are never rewritten, a crash loses no line."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, anchor.line().encode("ascii"))
        os.fsync(fd)
    finally:
        os.close(fd)


def write_copy(path: Path, anchor: Anchor) -> None:
    """A single anchor in its own file, to hand over (the caller decided whether it may replace one)."""
    with atomic_writer(path, mode=0o644, text=True) as f:
        f.write(anchor.line())


def _parse(line: str, where: str) -> Anchor:
    try:
        data = json.loads(line)
        fields = {k: data[k] for k in (*_SIGNED_FIELDS, "sig")}
    except (ValueError, KeyError, TypeError):
        raise AuditError(f"{where}: not an anchor") from None
    types_ok = isinstance(fields["seq"], int) and all(
        isinstance(fields[k], str) for k in ("issuer", "key_id", "hash", "at", "sig")
    )
    if fields["v"] != ANCHOR_VERSION or not types_ok or set(data) != {*_SIGNED_FIELDS, "sig"}:
        raise AuditError(f"{where}: not an anchor of version {ANCHOR_VERSION}")
    return Anchor(fields["issuer"], fields["key_id"], fields["seq"], fields["hash"], fields["at"], fields["sig"])


def read_anchors(path: Path) -> list[Anchor]:
    """Every anchor in ``path`` in file order; none when the file does not exist yet."""
    if not path.exists():
        return []
    lines = path.read_text(encoding="ascii", errors="replace").splitlines()
    return [_parse(line, f"{path}:{n}") for n, line in enumerate(lines, start=1) if line.strip()]


def _signature_ok(anchor: Anchor, public_keys: Mapping[str, Ed25519PublicKey]) -> bool:
    key = public_keys.get(anchor.key_id)
    if key is None:
        return False
    try:
        key.verify(base64.b64decode(anchor.sig, validate=True), anchor.signed_bytes())
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True


def check_anchors(
    conn: Connection, anchors: list[Anchor], public_keys: Mapping[str, Ed25519PublicKey], chain: Verification
) -> Verification:
    """The chain (already walked: ``chain``) against every anchor; the first disagreement is named.

    A signature that does not verify under a trusted key is itself a finding: a forged anchor could
    otherwise be used to "confirm" a rewritten chain.
    """
    for n, anchor in enumerate(anchors, start=1):
        if not _signature_ok(anchor, public_keys):
            return Verification(chain.rows, anchor.seq, f"anchor {n} is not signed by a trusted city key")
        if anchor.seq > chain.rows:
            return Verification(
                chain.rows, chain.rows + 1, f"rows up to {anchor.seq} were anchored at {anchor.at}; the tail is gone"
            )
        if anchor.seq == 0:
            continue
        row_hash = conn.execute(select(AuditEntry.hash).where(AuditEntry.seq == anchor.seq)).scalar_one_or_none()
        if row_hash != anchor.hash:
            return Verification(
                chain.rows, anchor.seq, f"differs from the hash anchored at {anchor.at} (the chain was rewritten)"
            )
    return chain
