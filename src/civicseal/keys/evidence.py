"""Unlock evidence that cannot be edited quietly: the unlock log, the audit chain and its anchors agree.

Every unlock attempt (and every lock-out cleared by the city) is a row of ``unlock_log`` and, in the same
transaction, an audit entry ``keys.unlock`` that names the row's id and repeats what it says. The chain
is the evidence: an incident report reads unlock attempts from it, after :func:`verify_evidence` found
the chain whole, every anchor matching and the unlock log agreeing with it. Deleting a ``granted`` row
from the log, editing the chain, recomputing it from scratch or cutting its tail are each reported.

Unlock-log rows older than the first chained one (written before migration 0010) have no entry; they
are counted as ``unchained`` and are not evidence either way.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Final

from sqlalchemy import Connection, insert, select

from civicseal.audit import anchor as anchors
from civicseal.audit import log as audit
from civicseal.audit.errors import AuditError
from civicseal.audit.models import AuditEntry
from civicseal.clock import as_utc, utcnow
from civicseal.keys.city import load_signing_key
from civicseal.keys.models import UnlockAttempt
from civicseal.keys.trust import load_trusted
from civicseal.store.home import Home

UNLOCK_ACTION: Final = "keys.unlock"
GRANTED: Final = "granted"  # the outcome of an attempt that released the identity
NO_PACKAGE: Final = "-"  # the entry's object id when the attempt named no package


@dataclass(frozen=True)
class UnlockEvidence:
    """One attempt as the chain records it."""

    at: datetime
    outcome: str
    source: str  # the client's address
    token_id: str | None
    seq: int  # its place in the audit chain


def log_attempt(
    conn: Connection,
    *,
    at: datetime,
    package_id: str | None,
    token_id: str | None,
    recipient_id: int | None,
    source: str,
    outcome: str,
    actor: str,
) -> None:
    """The one way an unlock-log row is written: with its audit entry, inside the caller's transaction."""
    row_id = conn.execute(
        insert(UnlockAttempt)
        .values(
            at=at,
            package_id=package_id,
            token_id=token_id,
            recipient_id=recipient_id,
            source=source,
            outcome=outcome,
        )
        .returning(UnlockAttempt.id)
    ).scalar_one()
    details = {"unlock_id": int(row_id), "outcome": outcome, "token_id": token_id, "source": source}
    audit.append(conn, UNLOCK_ACTION, "package", package_id or NO_PACKAGE, details, actor=actor, now=at)


def _chained(conn: Connection, package_id: str | None = None) -> Iterator[tuple[int, str, str, dict]]:
    """(seq, at, object id, details) of every ``keys.unlock`` entry, oldest first."""
    t = AuditEntry.__table__
    query = select(t.c.seq, t.c.at, t.c.object_id, t.c.details).where(t.c.action == UNLOCK_ACTION)
    if package_id is not None:
        query = query.where(t.c.object_id == package_id)
    for seq, at, object_id, details in conn.execute(query.order_by(t.c.seq)):
        yield seq, at, object_id, json.loads(details)


def chain_unlocks(conn: Connection, package_id: str, *, until: datetime) -> list[UnlockEvidence]:
    """The package's unlock attempts up to ``until``, from the chain (verify it first), in time order."""
    found = [
        UnlockEvidence(as_utc(datetime.fromisoformat(at)), d["outcome"], d["source"], d.get("token_id"), seq)
        for seq, at, _, d in _chained(conn, package_id)
    ]
    return sorted((e for e in found if e.at <= as_utc(until)), key=lambda e: (e.at, e.seq))


@dataclass(frozen=True)
class EvidenceCheck:
    """The outcome of :func:`verify_evidence`: the chain's verdict, the anchors, and the unlock log's."""

    chain: audit.Verification
    anchors: int
    latest_anchor: anchors.Anchor | None
    unlock_rows: int
    unchained: int  # unlock-log rows older than the chain's first unlock entry
    problem: str | None  # the first disagreement between the unlock log and the chain

    @property
    def ok(self) -> bool:
        return self.chain.ok and self.problem is None

    @property
    def reason(self) -> str:
        if not self.chain.ok:
            return f"audit log broken at sequence {self.chain.first_bad_seq}: {self.chain.reason}"
        return f"unlock evidence broken: {self.problem}"


def reconcile_unlock_log(conn: Connection) -> tuple[int, int, str | None]:
    """(unlock-log rows, unchained rows, first disagreement) between the unlock log and the chain."""
    entries = {d["unlock_id"]: (seq, at, object_id, d) for seq, at, object_id, d in _chained(conn)}
    first_chained = min(entries, default=None)
    t = UnlockAttempt.__table__
    rows = unchained = 0
    seen: set[int] = set()
    for row in conn.execute(select(t).order_by(t.c.id)).mappings():
        rows += 1
        entry = entries.get(row["id"])
        if entry is None:
            if first_chained is None or row["id"] < first_chained:
                unchained += 1
                continue
            return rows, unchained, f"unlock log row {row['id']} has no audit entry (inserted outside the service)"
        seq, at, object_id, details = entry
        recorded = (audit.timestamp(as_utc(row["at"])), row["package_id"] or NO_PACKAGE, row["outcome"])
        if recorded != (at, object_id, details["outcome"]) or (row["token_id"], row["source"]) != (
            details["token_id"],
            details["source"],
        ):
            return rows, unchained, f"unlock log row {row['id']} differs from its audit entry (sequence {seq})"
        seen.add(row["id"])
    for unlock_id, (seq, *_rest) in sorted(entries.items()):
        if unlock_id not in seen:
            return rows, unchained, f"the unlock attempt at sequence {seq} was deleted from the unlock log"
    return rows, unchained, None


def verify_evidence(home: Home) -> EvidenceCheck:
    """The chain, checked against every anchor in the home's anchors file, and the unlock log against it."""
    found = anchors.read_anchors(home.anchors_path)
    with home.engine.connect() as conn:
        chain = anchors.check_anchors(conn, found, load_trusted(home.path), audit.verify(conn))
        rows, unchained, problem = reconcile_unlock_log(conn)
    latest = max(found, key=lambda a: (a.seq, a.at)) if found else None
    return EvidenceCheck(chain, len(found), latest, rows, unchained, problem)


def require_intact(home: Home) -> EvidenceCheck:
    """:func:`verify_evidence`, refusing when it finds anything: a report must not rest on altered evidence."""
    check = verify_evidence(home)
    if not check.ok:
        raise AuditError(
            f"{check.reason}; the unlock evidence cannot be relied on. Keep the store and the anchors file as"
            " they are, run `civicseal audit verify` and tell the DPO"
        )
    return check


def granted_between(conn: Connection, package_id: str, since: datetime, until: datetime) -> int:
    """Unlocks of the package granted from ``since`` up to ``until``, counted in the chain."""
    return sum(
        1 for e in chain_unlocks(conn, package_id, until=until) if e.outcome == GRANTED and e.at >= as_utc(since)
    )


def anchor(home: Home, *, now: datetime | None = None, out: Path | None = None, force: bool = False) -> anchors.Anchor:
    """Sign the chain head with the city's key and append it to the anchors file (and to ``out``, a copy).

    ``incident open`` and ``package revoke`` call this after they commit, so the evidence of a loss is
    anchored the moment it exists.
    """
    if out is not None and out.exists() and not force:  # refuse before anything is appended
        raise AuditError(f"{out}: exists; use --force to replace it")
    signing, signing_key_id = load_signing_key(home.keys)
    with home.engine.connect() as conn:
        signed = anchors.sign_head(
            conn, signing, issuer=home.config.issuer, key_id=signing_key_id, now=as_utc(now or utcnow())
        )
    anchors.append_anchor(home.anchors_path, signed)
    if out is not None:
        anchors.write_copy(out, signed)
    return signed
