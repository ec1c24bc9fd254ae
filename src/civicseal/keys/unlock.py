"""The key service's decision: may this token have this package's identity, now? Library first, no HTTP.

One call of :func:`unlock` is one transaction that checks, in this order, and stops at the first refusal:

token format → token id known → token not locked → SHA-256 of the token matches → package exists →
package is this recipient's → package is tethered → not revoked → not expired (no clock skew: the
service's clock is the reference) → custody (latest event by ``at``, then id) is created, handed-over
or received → the recipient's contractor chain still authorizes the package's purpose today
(:func:`civicseal.contractors.service.check_authority`; logged as ``chain-<rule>``).

Every attempt, granted or not, is a row in ``unlock_log`` and an audit entry, written in that same
transaction (:func:`civicseal.keys.evidence.log_attempt`): the chain is the record an incident report
relies on ("no successful unlock after the loss"), so it can be neither skipped nor quietly deleted.
Every failure with a known token id counts against that token; the count is a COUNT over the log (not
process memory) so any number of stateless workers agree, and the recipient row is locked FOR UPDATE so
two workers cannot both let attempts through past the limit. The package row is read FOR SHARE, so a
grant and a revocation of the same package are strictly ordered.

The grant carries the package identity age-encrypted to the recipient's own age key: a token alone
(stolen from a config file, say) releases nothing readable without the contractor's identity too. The
service holds only the unlock key (:class:`~civicseal.keys.city.UnlockKey`), never the city's field or
signing key.
"""

from __future__ import annotations

import base64
import hmac
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

import pyrage
from sqlalchemy import Connection, Engine, RowMapping, func, select, update

from civicseal.audit import log as audit
from civicseal.clock import as_utc
from civicseal.contractors.errors import AuthorityRefused
from civicseal.contractors.service import recipient_authority
from civicseal.custody.service import UNLOCKABLE, current_state
from civicseal.keys.city import UnlockKey
from civicseal.keys.errors import KeyMaterialError, KeyServiceError, UnlockRefused
from civicseal.keys.evidence import GRANTED, log_attempt
from civicseal.keys.models import UnlockAttempt
from civicseal.keys.recipients import UNLOCKED_BY_CITY, is_well_formed, token_digest, token_id_of
from civicseal.ledger.models import Package, Recipient
from civicseal.store.engine import write_patiently

MAX_FAILURES: Final = 10
FAILURE_WINDOW: Final = timedelta(hours=1)
PACKAGE_ID_RE: Final = re.compile(r"[A-Za-z0-9._-]{1,40}")
SERVICE_ACTOR: Final = "key-service"
PATIENCE: Final = 30.0  # seconds an attempt waits for SQLite's write lock: it is logged, or refused as busy

# Outcomes as written to unlock_log (the custody refusal is "custody-<state>").
BAD_TOKEN: Final = "bad-token"
UNKNOWN_TOKEN: Final = "unknown-token"
LOCKED: Final = "locked"
NO_SUCH_PACKAGE: Final = "no-such-package"
WRONG_PACKAGE: Final = "wrong-package"
NOT_TETHERED: Final = "not-tethered"
REVOKED: Final = "revoked"
EXPIRED: Final = "expired"
CHAIN_PREFIX: Final = "chain-"  # the contractor chain no longer holds: chain-ended, chain-approval-withdrawn, …
LOCKED_OUT: Final = "locked-out"
ERROR: Final = "error"  # the city's fault (identity does not decrypt); not counted against the token
# Rows that are not failed attempts of the token: they never count towards a lock-out.
NOT_FAILURES: Final = (GRANTED, LOCKED_OUT, UNLOCKED_BY_CITY, ERROR)


@dataclass(frozen=True)
class UnlockGrant:
    """A released package identity, readable only with the recipient's own age identity."""

    package_id: str
    recipient: str
    identity_age: bytes  # binary age file: the package's AGE-SECRET-KEY-1… encrypted to the recipient

    @property
    def identity_age_b64(self) -> str:
        """The form the HTTP answer carries (standard base64 with padding)."""
        return base64.b64encode(self.identity_age).decode("ascii")


@dataclass(frozen=True)
class _Refusal:
    outcome: str  # as logged
    reason: str  # as told to the client: never distinguishes an unknown token id from a wrong secret


@dataclass(frozen=True)
class _Attempt:
    """What is known about one request, for its log row."""

    at: datetime
    package_id: str | None
    source: str


def unlock(
    engine: Engine, unlock_key: UnlockKey, *, package_id: str, token: str, source: str, now: datetime
) -> UnlockGrant:
    """Decide one unlock attempt, log it, and return the grant or raise :class:`UnlockRefused`.

    ``package_id`` is logged as asked (when it has the shape of an id), ``source`` is the client's
    address. The log row, the failure count and any lock-out commit together before this returns; while a
    long job holds SQLite's write lock the attempt waits up to :data:`PATIENCE` for it, and if it still
    cannot be logged nothing is released (:class:`~civicseal.store.errors.StoreBusy`).
    A package identity that does not open with the unlock key is the city's fault: it is logged as
    ``error`` and raised as :class:`KeyServiceError`, not as a refusal.
    """
    attempt = _Attempt(as_utc(now), _loggable_package_id(package_id), (str(source) or "unknown")[:64])
    result = write_patiently(
        engine, lambda conn: _decide(conn, unlock_key, attempt, token), patience=PATIENCE, what="the unlock attempt"
    )
    if isinstance(result, _Refusal):
        if result.outcome == ERROR:
            raise KeyServiceError("the key service cannot release this package's identity")
        raise UnlockRefused(result.reason)
    return result


def _loggable_package_id(package_id: object) -> str | None:
    return package_id if isinstance(package_id, str) and PACKAGE_ID_RE.fullmatch(package_id) else None


def _decide(conn: Connection, unlock_key: UnlockKey, attempt: _Attempt, token: str) -> UnlockGrant | _Refusal:
    token_id = token_id_of(token)
    if token_id is None:
        return _log(conn, attempt, BAD_TOKEN, None, None, "bad token")
    recipient = _recipient_for_update(conn, token_id)
    if recipient is None:
        return _log(conn, attempt, UNKNOWN_TOKEN, token_id, None, "bad token")
    secret_ok = is_well_formed(token) and hmac.compare_digest(token_digest(token), recipient["token_sha256"])
    if recipient["locked_at"] is not None:
        # Only the token's holder may learn that it is locked; anyone else hears "bad token".
        return _log(conn, attempt, LOCKED, token_id, recipient["id"], "token locked" if secret_ok else "bad token")
    if not secret_ok:
        return _fail(conn, attempt, recipient, BAD_TOKEN, "bad token")
    package = _package_for_share(conn, attempt.package_id)
    if refusal := _package_refusal(conn, package, recipient, attempt.at):
        return _fail(conn, attempt, recipient, *refusal)
    assert package is not None
    try:
        if package["identity_age"] is None:  # sealed before the split and not yet re-wrapped
            raise KeyMaterialError("identity not wrapped for the unlock key")
        identity = unlock_key.unwrap(package["id"], package["identity_age"])
    except KeyMaterialError:
        return _log(conn, attempt, ERROR, token_id, recipient["id"], "error")
    sealed = pyrage.encrypt(identity.encode("ascii"), [pyrage.x25519.Recipient.from_str(recipient["age_recipient"])])
    _log(conn, attempt, GRANTED, token_id, recipient["id"], "granted")
    return UnlockGrant(package_id=package["id"], recipient=recipient["name"], identity_age=sealed)


def _package_refusal(
    conn: Connection, package: RowMapping | None, recipient: RowMapping, now: datetime
) -> tuple[str, str] | None:
    """The first package check that fails, as ``(outcome, reason)``, or None when the package may open.

    A package that does not exist and one sealed for someone else get the same reason, so a recipient
    cannot probe which package ids exist.
    """
    if package is None:
        return NO_SUCH_PACKAGE, "unknown package"
    if package["recipient_id"] != recipient["id"]:
        return WRONG_PACKAGE, "unknown package"
    if package["mode"] != "tethered":
        return NOT_TETHERED, "not tethered"
    if package["revoked_at"] is not None:
        return REVOKED, "revoked"
    if now >= as_utc(package["expires_at"]):
        return EXPIRED, "expired"
    state = current_state(conn, package["id"])  # custody's one definition: latest by `at`, then id
    if state not in UNLOCKABLE:
        shown = str(state) if state is not None else "unknown"
        return f"custody-{shown}", f"custody {shown}"
    try:  # the chain is checked at every unlock, so a withdrawal or a contract's end stops the next one
        recipient_authority(conn, recipient["id"], package["purpose"], on=now)
    except AuthorityRefused as refused:
        return f"{CHAIN_PREFIX}{refused.rule}", f"contractor not authorized ({refused.rule})"
    return None


def _recipient_for_update(conn: Connection, token_id: str) -> RowMapping | None:
    query = select(Recipient.__table__).where(Recipient.token_id == token_id).with_for_update()
    return conn.execute(query).mappings().first()


def _package_for_share(conn: Connection, package_id: str | None) -> RowMapping | None:
    if package_id is None:
        return None
    t = Package.__table__
    columns = (t.c.id, t.c.recipient_id, t.c.purpose, t.c.mode, t.c.identity_age, t.c.revoked_at, t.c.expires_at)
    query = select(*columns).where(t.c.id == package_id).with_for_update(read=True)
    return conn.execute(query).mappings().first()


def _log(
    conn: Connection, attempt: _Attempt, outcome: str, token_id: str | None, recipient_id: int | None, reason: str
) -> _Refusal:
    log_attempt(
        conn,
        at=attempt.at,
        package_id=attempt.package_id,
        token_id=token_id,
        recipient_id=recipient_id,
        source=attempt.source,
        outcome=outcome,
        actor=SERVICE_ACTOR,
    )
    return _Refusal(outcome, reason)


def _fail(conn: Connection, attempt: _Attempt, recipient: RowMapping, outcome: str, reason: str) -> _Refusal:
    """Log a failure of a known token and lock the recipient when it is the 10th within the hour."""
    refusal = _log(conn, attempt, outcome, recipient["token_id"], recipient["id"], reason)
    failures = recent_failures(conn, recipient["token_id"], attempt.at)
    if failures >= MAX_FAILURES:
        conn.execute(update(Recipient).where(Recipient.id == recipient["id"]).values(locked_at=attempt.at))
        _log(conn, attempt, LOCKED_OUT, recipient["token_id"], recipient["id"], "token locked")
        details = {"token_id": recipient["token_id"], "failures": failures}
        audit.append(
            conn, "keys.locked-out", "recipient", recipient["name"], details, actor=SERVICE_ACTOR, now=attempt.at
        )
    return refusal


def recent_failures(conn: Connection, token_id: str, now: datetime) -> int:
    """Failed attempts of ``token_id`` in the hour up to ``now``, since the city last unlocked it."""
    t = UnlockAttempt.__table__
    last_reset = (
        select(func.coalesce(func.max(t.c.id), 0))
        .where(t.c.token_id == token_id, t.c.outcome == UNLOCKED_BY_CITY)
        .scalar_subquery()
    )
    query = (
        select(func.count())
        .select_from(t)
        .where(
            t.c.token_id == token_id,
            t.c.at > as_utc(now) - FAILURE_WINDOW,
            t.c.id > last_reset,
            t.c.outcome.not_in(NOT_FAILURES),
        )
    )
    return int(conn.execute(query).scalar_one())
