"""Contact-centre users: accounts, passwords, one-time codes, sessions and API tokens.

Passwords are generated (never typed in) and stored as Argon2id hashes. Supervisors and admins must
give a TOTP code; operators may. Sessions and API tokens are random secrets kept only as SHA-256: the
store, not a worker's memory, decides who is signed in, so any worker answers any request.
"""

from __future__ import annotations

import base64
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Final

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Connection, Engine, Row, bindparam, delete, func, insert, select, update

from civicseal.audit import log as audit
from civicseal.clock import as_utc
from civicseal.contact.errors import AccountLocked, ContactError, NotAllowed, SignInRefused
from civicseal.contact.models import ContactSession, ContactUser, SignInFailure
from civicseal.contact.organizations import approved_for_contact_centre
from civicseal.contact.roles import Role
from civicseal.keys.recipients import new_token, token_digest, token_id_of
from civicseal.store.engine import one_read, transaction
from civicseal.store.errors import StoreError
from civicseal.store.fieldcrypt import FieldCipher

USERNAME_RE: Final = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
TOTP_COLUMN: Final = "contact_users.totp_secret"
PENDING_TOTP_COLUMN: Final = "contact.totp-offered"  # a secret offered, in the enrolment form only
MAX_FAILED_SIGNINS: Final = 5  # per user (locks until unlocked) and per source address (in SOURCE_WINDOW)
SOURCE_WINDOW: Final = timedelta(minutes=15)
IDLE_TIMEOUT: Final = timedelta(minutes=15)
SESSION_LIFETIME: Final = timedelta(hours=10)  # one working day, however busy
SEEN_GRANULARITY: Final = timedelta(seconds=60)  # last_seen is rewritten at most once a minute
DEFAULT_HOURLY_LIMIT: Final = 120
DEFAULT_MISS_PERCENT: Final = 30
PASSWORD_BYTES: Final = 15  # 120 bits, 20 characters

# Argon2id at OWASP's floor (19 MiB, 2 passes, 1 lane): about 50 ms on one core here. RFC 9106's 64 MiB and
# 4 lanes took 0.6 s on a busy 2-core server, where every sign-in would stall a worker's other requests.
_hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)


@cache
def _dummy_hash() -> str:
    """Checked for unknown names, so an unknown name costs as long as a wrong password."""
    return _hasher.hash(secrets.token_urlsafe(PASSWORD_BYTES))


@dataclass(frozen=True)
class NewUser:
    """What ``add_user`` shows once: the password and, when set up, the TOTP secret and its URI."""

    username: str
    role: Role
    organization: str | None
    password: str
    totp_secret: str | None
    totp_uri: str | None


@dataclass(frozen=True)
class Principal:
    """The signed-in user a request acts for."""

    user_id: int
    username: str
    role: Role
    organization: str | None
    csrf_token: str = ""

    @property
    def actor(self) -> str:
        return f"contact:{self.username}"

    def require(self, *roles: Role) -> None:
        if self.role not in roles:
            raise NotAllowed(f"this needs the role {' or '.join(roles)}; ask a supervisor")


@dataclass(frozen=True)
class SignedIn:
    principal: Principal
    session_token: str


def check_username(username: str) -> str:
    if not isinstance(username, str) or not USERNAME_RE.fullmatch(username):
        raise ContactError("user name: 1-64 lowercase letters, digits, '.', '_' or '-'")
    return username


def _user_row(conn: Connection, username: str, *, lock: bool = False) -> Row | None:
    query = select(ContactUser.__table__).where(ContactUser.username == username)
    return conn.execute(query.with_for_update() if lock else query).first()


def _existing(conn: Connection, username: str) -> Row:
    user = _user_row(conn, check_username(username), lock=True)
    if user is None:
        raise ContactError("no such user; `civicseal user list` shows them")
    return user


def add_user(
    engine: Engine,
    cipher: FieldCipher,
    username: str,
    role: Role,
    *,
    organization: str | None,
    totp: bool,
    issuer: str,
    now: datetime,
    actor: str,
) -> NewUser:
    """Create a user with a generated password (shown once) and, for supervisors and admins always, TOTP.

    Operators belong to the organization that runs the centre, which must be approved for the purpose.
    """
    check_username(username)
    role = Role(role)
    if role is Role.OPERATOR and not organization:
        raise ContactError("an operator belongs to the organization that runs the centre: give --organization")
    password = secrets.token_urlsafe(PASSWORD_BYTES)
    secret = pyotp.random_base32() if totp or role is not Role.OPERATOR else None
    with transaction(engine) as conn:
        if not approved_for_contact_centre(conn, organization, now=now):
            raise ContactError(
                "organization: not an approved recipient; register it first with `civicseal recipient add`"
            )
        if _user_row(conn, username) is not None:
            raise ContactError("user name: taken; choose another")
        conn.execute(
            insert(ContactUser).values(
                username=username,
                role=role.value,
                organization=organization or None,
                password_hash=_hasher.hash(password),
                totp_secret_enc=cipher.encrypt(secret, TOTP_COLUMN, username) if secret else None,
                totp_last_step=0,
                failed_signins=0,
                hourly_limit=DEFAULT_HOURLY_LIMIT,
                miss_limit_percent=DEFAULT_MISS_PERCENT,
                created_at=now,
            )
        )
        details = {"role": role.value, "organization": organization, "totp": secret is not None}
        audit.append(conn, "contact.user-added", "contact-user", username, details, actor=actor, now=now)
    uri = pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name=issuer) if secret else None
    return NewUser(username, role, organization or None, password, secret, uri)


def _source_blocked(conn: Connection, source: str, now: datetime) -> bool:
    since = now - SOURCE_WINDOW
    count = conn.execute(
        select(func.count()).where(SignInFailure.source == source, SignInFailure.at > since)
    ).scalar_one()
    return count >= MAX_FAILED_SIGNINS


def _totp_step(cipher: FieldCipher, user: Row, code: str, now: datetime) -> int | None:
    """The time step a valid, unused code belongs to (±1 step of clock drift), else None."""
    if user.totp_secret_enc is None:
        return 0
    return _code_step(cipher.decrypt(user.totp_secret_enc, TOTP_COLUMN, user.username), user.totp_last_step, code, now)


def _code_step(secret: str, last_step: int, code: str, now: datetime) -> int | None:
    totp = pyotp.TOTP(secret)
    code = (code or "").strip().replace(" ", "")
    step = int(now.timestamp()) // totp.interval
    for candidate in (step - 1, step, step + 1):
        if candidate > last_step and secrets.compare_digest(totp.at(candidate * totp.interval), code):
            return candidate
    return None


@dataclass(frozen=True)
class Enrolment:
    """A one-time-code secret offered to a user, not yet theirs: shown with its otpauth URI, and ``sealed``
    (the secret encrypted to this user under the city's key) for the confirming form to send back."""

    secret: str
    uri: str
    sealed: str


def _unseal(cipher: FieldCipher, username: str, sealed: str) -> str:
    try:
        return cipher.decrypt(base64.urlsafe_b64decode(sealed.encode("ascii")), PENDING_TOTP_COLUMN, username)
    except (ValueError, StoreError):
        raise ContactError("one-time code set-up: the form is not one this server gave you; start again") from None


def offer_totp(cipher: FieldCipher, principal: Principal, *, issuer: str, sealed: str | None = None) -> Enrolment:
    """A new secret for ``principal`` to add to an authenticator app, or the one ``sealed`` already offered.

    Nothing is stored until :func:`enrol_totp` sees a current code: a secret the user never added to an app
    must not lock them out. The secret travels only sealed to this user, so no other account can confirm it.
    """
    secret = _unseal(cipher, principal.username, sealed) if sealed else pyotp.random_base32()
    blob = cipher.encrypt(secret, PENDING_TOTP_COLUMN, principal.username)
    uri = pyotp.TOTP(secret).provisioning_uri(name=principal.username, issuer_name=issuer)
    return Enrolment(secret, uri, base64.urlsafe_b64encode(blob).decode("ascii"))


def has_totp(engine: Engine, principal: Principal) -> bool:
    with engine.connect() as conn:
        enc = conn.execute(select(ContactUser.totp_secret_enc).where(ContactUser.id == principal.user_id)).scalar()
    return enc is not None


def enrol_totp(
    engine: Engine, cipher: FieldCipher, principal: Principal, sealed: str, code: str, *, now: datetime
) -> None:
    """Make the offered secret the user's second factor once ``code`` shows their app has it; from the next
    sign-in on, the code is required. Audited, refusals too. A user who has codes cannot replace them here: a
    stolen session must not be able to swap the second factor."""
    secret = _unseal(cipher, principal.username, sealed)
    refusal: ContactError | None = None
    with transaction(engine) as conn:
        user = _existing(conn, principal.username)
        if user.totp_secret_enc is not None:
            refusal, outcome = ContactError("one-time codes are already set up for this account"), "already"
        else:
            step = _code_step(secret, user.totp_last_step, code, now)
            if step is None:
                refusal = ContactError("one-time code: not the app's current code; check the phone's clock and retry")
                outcome = "wrong-code"
            else:
                conn.execute(
                    update(ContactUser)
                    .where(ContactUser.id == user.id)
                    .values(totp_secret_enc=cipher.encrypt(secret, TOTP_COLUMN, user.username), totp_last_step=step)
                )
                outcome = "enrolled"
        details = {"outcome": outcome}
        audit.append(conn, "contact.totp-enrol", "contact-user", user.username, details, actor=principal.actor, now=now)
    if refusal is not None:
        raise refusal


def _password_ok(user: Row | None, password: str) -> bool:
    try:
        return _hasher.verify(user.password_hash if user else _dummy_hash(), password) and user is not None
    except (VerificationError, InvalidHashError):
        return False


def sign_in(
    engine: Engine,
    cipher: FieldCipher,
    username: str,
    password: str,
    totp_code: str,
    *,
    source: str,
    now: datetime,
) -> SignedIn:
    """Check name, password and code; on success open a new session (a fresh id: never one the browser chose).

    Five failures lock the user until an admin unlocks it, and block the source address for 15 minutes.
    Every outcome is audited; a failure says the same whatever was wrong.
    """
    refusal: SignInRefused | None = None
    with transaction(engine) as conn:
        user = _user_row(conn, username, lock=True) if USERNAME_RE.fullmatch(username or "") else None
        who = user.username if user else "unknown"
        conn.execute(
            delete(SignInFailure).where(SignInFailure.source == source, SignInFailure.at < now - SOURCE_WINDOW)
        )
        blocked = _source_blocked(conn, source, now)
        password_ok = _password_ok(user, password or "")
        step = _totp_step(cipher, user, totp_code, now) if user is not None and password_ok else None
        if blocked:
            refusal = SignInRefused(
                "sign-in refused: too many failed sign-ins from this address; wait 15 minutes", "source"
            )
            outcome = "source-blocked"
        elif user is not None and user.locked_at is not None:
            refusal = SignInRefused("sign-in refused: this account is locked; ask an admin to unlock it", "locked")
            outcome = "locked"
        elif user is None or not password_ok or step is None:
            refusal, outcome = SignInRefused(), "bad-credentials"
        elif not approved_for_contact_centre(conn, user.organization, now=now):
            refusal, outcome = (
                SignInRefused("sign-in refused: your organization is not approved for this work", "organization"),
                "org",
            )
        if refusal is not None:
            conn.execute(insert(SignInFailure).values(source=source[:64], at=now))
            if user is not None and outcome == "bad-credentials":
                failed = user.failed_signins + 1
                locked = failed >= MAX_FAILED_SIGNINS
                conn.execute(
                    update(ContactUser)
                    .where(ContactUser.id == user.id)
                    .values(
                        failed_signins=failed, **({"locked_at": now, "locked_reason": "sign-ins"} if locked else {})
                    )
                )
                if locked:
                    audit.append(
                        conn,
                        "contact.user-locked",
                        "contact-user",
                        who,
                        {"why": "sign-ins"},
                        now=now,
                        actor="contact:guard",
                    )
            details = {"outcome": outcome, "source": source}
            audit.append(conn, "contact.signin-refused", "contact-user", who, details, actor=f"contact:{who}", now=now)
        else:
            assert user is not None
            conn.execute(
                update(ContactUser)
                .where(ContactUser.id == user.id)
                .values(failed_signins=0, totp_last_step=max(user.totp_last_step, step or 0))
            )
            token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
            conn.execute(
                insert(ContactSession).values(
                    token_sha256=token_digest(token),
                    user_id=user.id,
                    csrf_token=csrf,
                    source=source[:64],
                    created_at=now,
                    last_seen_at=now,
                )
            )
            audit.append(
                conn, "contact.signin", "contact-user", who, {"source": source}, actor=f"contact:{who}", now=now
            )
            principal = Principal(user.id, user.username, Role(user.role), user.organization, csrf)
    if refusal is not None:
        raise refusal
    return SignedIn(principal, token)


def session_principal(engine: Engine, token: str, *, now: datetime) -> Principal | None:
    """The user of a live session, or None (unknown, ended, idle too long, too old, or user locked)."""
    if not token or len(token) > 100:
        return None
    digest = token_digest(token)
    with engine.connect() as conn:
        row = conn.execute(
            select(
                ContactSession.csrf_token,
                ContactSession.last_seen_at,
                ContactSession.created_at,
                ContactUser.id,
                ContactUser.username,
                ContactUser.role,
                ContactUser.organization,
                ContactUser.locked_at,
            )
            .join(ContactUser, ContactUser.id == ContactSession.user_id)
            .where(ContactSession.token_sha256 == digest, ContactSession.ended_at.is_(None))
        ).first()
    if row is None:
        return None
    last_seen, created = as_utc(row.last_seen_at), as_utc(row.created_at)
    ended = "idle" if now - last_seen > IDLE_TIMEOUT else "expired" if now - created > SESSION_LIFETIME else None
    if ended or row.locked_at is not None:
        _end_sessions(engine, [digest], ended or "locked", now)
        return None
    if now - last_seen > SEEN_GRANULARITY:
        with transaction(engine) as conn:
            conn.execute(update(ContactSession).where(ContactSession.token_sha256 == digest).values(last_seen_at=now))
    return Principal(row.id, row.username, Role(row.role), row.organization, row.csrf_token)


def _end_sessions(engine: Engine, digests: list[str], reason: str, now: datetime) -> None:
    with transaction(engine) as conn:
        conn.execute(
            update(ContactSession)
            .where(ContactSession.token_sha256.in_(digests), ContactSession.ended_at.is_(None))
            .values(ended_at=now, ended_reason=reason)
        )


def sign_out(engine: Engine, principal: Principal, token: str, *, now: datetime) -> None:
    _end_sessions(engine, [token_digest(token)], "signed-out", now)
    with transaction(engine) as conn:
        audit.append(conn, "contact.signout", "contact-user", principal.username, actor=principal.actor, now=now)


def revoke_sessions(engine: Engine, username: str, *, now: datetime, actor: str) -> int:
    """End every open session of a user at once (a lost badge, a leaver); audited with the count."""
    with transaction(engine) as conn:
        user = _existing(conn, username)
        ended = conn.execute(
            update(ContactSession)
            .where(ContactSession.user_id == user.id, ContactSession.ended_at.is_(None))
            .values(ended_at=now, ended_reason="revoked")
        ).rowcount
        audit.append(
            conn, "contact.sessions-revoked", "contact-user", username, {"sessions": ended}, actor=actor, now=now
        )
    return ended


def unlock_user(engine: Engine, username: str, *, now: datetime, actor: str) -> None:
    """Clear a lock (failed sign-ins or an extraction limit) after a supervisor has spoken to the operator."""
    with transaction(engine) as conn:
        user = _existing(conn, username)
        conn.execute(
            update(ContactUser)
            .where(ContactUser.id == user.id)
            .values(locked_at=None, locked_reason=None, failed_signins=0)
        )
        audit.append(conn, "contact.user-unlocked", "contact-user", username, actor=actor, now=now)


def set_limits(engine: Engine, username: str, *, hourly: int, miss_percent: int, now: datetime, actor: str) -> None:
    """Raise or lower one user's extraction limits (a supervisor's decision, audited)."""
    if hourly < 1 or not 1 <= miss_percent <= 100:
        raise ContactError("limits: at least 1 look-up an hour, misses 1-100 %")
    with transaction(engine) as conn:
        user = _existing(conn, username)
        conn.execute(
            update(ContactUser)
            .where(ContactUser.id == user.id)
            .values(hourly_limit=hourly, miss_limit_percent=miss_percent)
        )
        details = {"hourly": hourly, "miss_percent": miss_percent}
        audit.append(conn, "contact.limits-set", "contact-user", username, details, actor=actor, now=now)


def issue_api_token(engine: Engine, username: str, *, now: datetime, actor: str) -> str:
    """A new API token for the user (replacing any earlier one), shown once; the store keeps its SHA-256."""
    token_id, token = new_token()
    with transaction(engine) as conn:
        user = _existing(conn, username)
        conn.execute(
            update(ContactUser)
            .where(ContactUser.id == user.id)
            .values(api_token_id=token_id, api_token_sha256=token_digest(token))
        )
        audit.append(conn, "contact.api-token", "contact-user", username, {"token_id": token_id}, actor=actor, now=now)
    return token


BY_TOKEN: Final = select(ContactUser.__table__).where(ContactUser.api_token_id == bindparam("token_id"))


def api_principal(engine: Engine, token: str) -> Principal | None:
    """The user an API token belongs to, or None; a locked user's token answers as locked (the caller's 403)."""
    token_id = token_id_of(token)
    if token_id is None:
        return None
    with one_read(engine) as conn:
        user = conn.execute(BY_TOKEN, {"token_id": token_id}).first()
    if user is None or not secrets.compare_digest(user.api_token_sha256 or "", token_digest(token)):
        return None
    if user.locked_at is not None:
        raise AccountLocked("this account is locked; ask a supervisor to unlock it")
    return Principal(user.id, user.username, Role(user.role), user.organization)


@dataclass(frozen=True)
class UserInfo:
    username: str
    role: str
    organization: str | None
    totp: bool
    locked: bool
    locked_reason: str | None
    open_sessions: int
    hourly_limit: int
    miss_limit_percent: int

    def as_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


def list_users(conn: Connection, *, now: datetime, organization: str | None = None) -> list[UserInfo]:
    """Users (of one organization when given) with their open-session counts; no secret is part of it."""
    live = now - IDLE_TIMEOUT
    sessions = dict(
        conn.execute(
            select(ContactSession.user_id, func.count())
            .where(ContactSession.ended_at.is_(None), ContactSession.last_seen_at > live)
            .group_by(ContactSession.user_id)
        ).all()
    )
    query = select(ContactUser.__table__).order_by(ContactUser.username)
    if organization is not None:
        query = query.where(ContactUser.organization == organization)
    return [
        UserInfo(
            u.username,
            u.role,
            u.organization,
            u.totp_secret_enc is not None,
            u.locked_at is not None,
            u.locked_reason,
            sessions.get(u.id, 0),
            u.hourly_limit,
            u.miss_limit_percent,
        )
        for u in conn.execute(query).all()
    ]
