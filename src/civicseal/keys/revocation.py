"""Revoking a package: from the moment this commits, the key service refuses every unlock of it.

Revocation is final (DESIGN.md): there is no un-revoke, because a package once reported lost may be in
anyone's hands; re-issuing means sealing a new package. It takes effect at once on every key-service
worker, since each reads ``packages.revoked_at`` from the shared store on every attempt (and holds the
package row FOR SHARE while deciding, so no grant slips in after the revocation commits).

Only a tethered package is stopped by it. A recipient-mode or passphrase package opens offline; it can
still be recorded as revoked (for the incident record), and the result says the revocation has no effect.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final

from sqlalchemy import Connection, Engine, select, update

from civicseal.audit import log as audit
from civicseal.clock import as_utc
from civicseal.keys.errors import KeyServiceError
from civicseal.keys.evidence import anchor
from civicseal.keys.unlock import PACKAGE_ID_RE
from civicseal.ledger.models import Package
from civicseal.store.engine import write_patiently
from civicseal.store.home import Home

MAX_REASON: Final = 500


@dataclass(frozen=True)
class Revocation:
    """A recorded revocation."""

    package_id: str
    revoked_at: datetime
    mode: str

    @property
    def effective(self) -> bool:
        """Whether revoking stops anyone: only the key service can refuse, so only tethered packages."""
        return self.mode == "tethered"


def _check_reason(reason: str) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise KeyServiceError("a revocation needs a reason")
    if len(reason) > MAX_REASON or not reason.isprintable():
        raise KeyServiceError(f"a revocation reason is one line of at most {MAX_REASON} printable characters")
    return reason


def revoke_package(engine: Engine, package_id: str, reason: str, *, now: datetime, actor: str) -> Revocation:
    """Mark ``package_id`` revoked now, for ``reason``, in a transaction of its own (see :func:`revoke_in`).

    While a long job holds SQLite's write lock it keeps trying; if the store stays busy it refuses with
    :class:`~civicseal.store.errors.StoreBusy` (retry), never an internal error.
    """
    return write_patiently(
        engine, lambda conn: revoke_in(conn, package_id, reason, now=now, actor=actor), what="the revocation"
    )


def revoke_and_anchor(home: Home, package_id: str, reason: str, *, now: datetime, actor: str) -> Revocation:
    """:func:`revoke_package`, then an anchor: the revocation is on record outside the database at once."""
    done = revoke_package(home.engine, package_id, reason, now=now, actor=actor)
    anchor(home, now=now)
    return done


def revoke_in(conn: Connection, package_id: str, reason: str, *, now: datetime, actor: str) -> Revocation:
    """Mark ``package_id`` revoked now, inside the caller's transaction; refuse an unknown or revoked package.

    The one definition of revoking: an incident revokes in the same transaction that records the loss.
    The reason is kept with the package (the city's record) and left out of the audit row, which carries
    only who, what and the mode: a reason typed in a hurry may name a person.
    """
    reason = _check_reason(reason)
    if not isinstance(package_id, str) or not PACKAGE_ID_RE.fullmatch(package_id):
        raise KeyServiceError("no such package")
    now = as_utc(now)
    t = Package.__table__
    query = select(t.c.id, t.c.mode, t.c.revoked_at).where(t.c.id == package_id).with_for_update()
    row = conn.execute(query).mappings().first()
    if row is None:
        raise KeyServiceError(f"no package {package_id}")
    if row["revoked_at"] is not None:
        when = as_utc(row["revoked_at"]).isoformat()
        raise KeyServiceError(f"package {package_id} was already revoked at {when}; revocation is final")
    conn.execute(update(t).where(t.c.id == package_id).values(revoked_at=now, revoked_reason=reason))
    audit.append(conn, "keys.package-revoked", "package", package_id, {"mode": row["mode"]}, actor=actor, now=now)
    return Revocation(package_id=package_id, revoked_at=now, mode=row["mode"])
