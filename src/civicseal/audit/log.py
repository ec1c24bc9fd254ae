"""Append-only, hash-chained audit log.

Each row's hash is SHA-256 over the previous row's hash and the row's own canonical content, so an
edited, deleted, inserted or reordered row breaks the chain at a sequence number that `verify` names.
Rows carry who, what, which object and counts — never a personal value.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from sqlalchemy import Connection, Row, RowMapping, select, update

from civicseal.audit.models import AuditEntry, AuditHead

GENESIS = "0" * 64
Detail = str | int | bool | None


ACTOR_ENV = "CIVICSEAL_ACTOR"


def os_user() -> str:
    """The operating-system account the process runs as: recorded beside the person, never instead."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def current_actor() -> str:
    """The person responsible: `--actor` / CIVICSEAL_ACTOR (a name staff recognise), else the OS account.

    Several officers often share one service account on a city's server, so the OS user alone cannot say who.
    """
    return os.environ.get(ACTOR_ENV, "").strip()[:100] or f"os:{os_user()}"


def timestamp(now: datetime) -> str:
    return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _canonical(
    seq: int, at: str, actor: str, action: str, object_type: str, object_id: str, details: str, os_user: str | None
) -> bytes:
    body: dict[str, object] = {
        "seq": seq,
        "at": at,
        "actor": actor,
        "action": action,
        "object_type": object_type,
        "object_id": object_id,
        "details": details,
    }
    if os_user is not None:  # rows written before the OS user was recorded hash as they did then
        body["os_user"] = os_user
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def chain_hash(prev_hash: str, content: bytes) -> str:
    return hashlib.sha256(bytes.fromhex(prev_hash) + content).hexdigest()


HEAD: Final = select(AuditHead.seq, AuditHead.hash).where(AuditHead.id == 1).with_for_update()
HEAD_IF_FREE: Final = HEAD.with_for_update(skip_locked=True)


def lock_head(conn: Connection) -> Row:
    """Lock the chain head for the rest of the caller's transaction: whoever holds it appends next.

    A batch writer takes it before choosing what to append, so on PostgreSQL its next statement sees every
    row the previous holder appended (read committed takes a fresh snapshot per statement).
    """
    return conn.execute(HEAD).one()


def try_lock_head(conn: Connection) -> Row | None:
    """:func:`lock_head` if no other transaction holds the head now, else None at once (never waits)."""
    return conn.execute(HEAD_IF_FREE).first()


@dataclass(frozen=True)
class Entry:
    """One row to append: who, what, which object, counts; ``actor`` None: :func:`current_actor`."""

    action: str
    object_type: str
    object_id: str | int
    details: Mapping[str, Detail] | None = None
    actor: str | None = None
    now: datetime | None = None


def append(
    conn: Connection,
    action: str,
    object_type: str,
    object_id: str | int,
    details: Mapping[str, Detail] | None = None,
    *,
    actor: str | None = None,
    now: datetime | None = None,
) -> int:
    """Append one row inside the caller's transaction; the head row lock orders concurrent appends."""
    (seq,) = append_many(conn, [Entry(action, object_type, object_id, details, actor, now)])
    return seq


def append_many(conn: Connection, entries: Sequence[Entry], *, head: Row | None = None) -> list[int]:
    """Append rows in order inside the caller's transaction with one head lock, one insert and one head update.

    The chain is the same as appending them one by one; a batch only takes the single head once, which is
    how a busy writer (the contact centre's look-ups) keeps the head from becoming everyone's queue.
    ``head`` is what :func:`lock_head` returned earlier in the same transaction, if the caller took it first.
    Returns the rows' sequence numbers.
    """
    if not entries:
        return []
    head = head or lock_head(conn)
    seq, prev, account, rows = head.seq, head.hash, os_user(), []
    for entry in entries:
        seq += 1
        at = timestamp(entry.now or datetime.now(UTC))
        who, object_id = entry.actor or current_actor(), str(entry.object_id)
        detail_text = json.dumps(dict(entry.details or {}), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        content = _canonical(seq, at, who, entry.action, entry.object_type, object_id, detail_text, account)
        digest = chain_hash(prev, content)
        rows.append(
            {
                "seq": seq,
                "at": at,
                "actor": who,
                "os_user": account,
                "action": entry.action,
                "object_type": entry.object_type,
                "object_id": object_id,
                "details": detail_text,
                "prev_hash": prev,
                "hash": digest,
            }
        )
        prev = digest
    conn.execute(AuditEntry.__table__.insert(), rows)
    conn.execute(update(AuditHead).where(AuditHead.id == 1).values(seq=seq, hash=prev))
    return [row["seq"] for row in rows]


@dataclass(frozen=True)
class Verification:
    rows: int
    first_bad_seq: int | None
    reason: str | None

    @property
    def ok(self) -> bool:
        return self.first_bad_seq is None


def verify(conn: Connection) -> Verification:
    """Walk the chain from the start; the first row that does not follow from its predecessor is named."""
    prev, expected_seq, rows = GENESIS, 1, 0
    for row in conn.execute(select(AuditEntry.__table__).order_by(AuditEntry.seq)).mappings():
        rows += 1
        if row["seq"] != expected_seq:
            return Verification(rows, expected_seq, "row missing or out of sequence")
        if row["prev_hash"] != prev:
            return Verification(rows, row["seq"], "does not follow the previous row (deleted, inserted or reordered)")
        content = _canonical(
            row["seq"],
            row["at"],
            row["actor"],
            row["action"],
            row["object_type"],
            row["object_id"],
            row["details"],
            row["os_user"],
        )
        if chain_hash(prev, content) != row["hash"] or row["hash"] != row["hash"].lower():
            return Verification(rows, row["seq"], "content does not match its hash (edited)")
        prev, expected_seq = row["hash"], expected_seq + 1
    head = conn.execute(select(AuditHead.seq, AuditHead.hash).where(AuditHead.id == 1)).one()
    if head.seq != expected_seq - 1 or head.hash != prev:
        return Verification(rows, expected_seq, "rows after this one were removed (chain head is ahead)")
    return Verification(rows, None, None)


def entries(conn: Connection, *, last: int) -> list[RowMapping]:
    """The newest ``last`` rows, oldest first."""
    query = select(AuditEntry.__table__).order_by(AuditEntry.seq.desc()).limit(last)
    return list(reversed(conn.execute(query).mappings().all()))
