"""The manifest: the format's constants, key ids, times, canonical JSON and the one schema check."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any, Final

import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from civicseal import clock
from civicseal.cseal.errors import PackageRefused, SealError

# --------------------------------------------------------------------------------------------------
# Constants: the format, defined once.
# --------------------------------------------------------------------------------------------------

FORMAT_VERSION: Final = 2  # 2: the manifest names the recipient's public key (recipient_key)
ENTRIES: Final = ("manifest.json", "manifest.sig", "payload.age")
MAX_MANIFEST: Final = 64 * 1024
MAX_AGE_HEADER: Final = 4096
MAX_LOG_N: Final = 20
CLOCK_SKEW: Final = timedelta(minutes=5)
SIGNATURE_SIZE: Final = 64
PAYLOAD_FORMATS: Final = ("parquet", "csv", "zengin")
CHUNK: Final = 1024 * 1024
Claim = Callable[[Path], AbstractContextManager[object]]  # holds a scratch file for the run (see civicseal.scratch)


class Mode(StrEnum):
    """How the payload is encrypted, and so who can open it (see DESIGN.md, "Modes")."""

    TETHERED = "tethered"
    RECIPIENT = "recipient"
    PASSPHRASE = "passphrase"


_HEX16 = re.compile(r"[0-9a-f]{16}")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_AGE_RECIPIENT = re.compile(r"age1[02-9ac-hj-np-z]{58}")  # bech32 of an X25519 public key
_RFC3339 = re.compile(r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})Z")
_SAFE_TOKEN = re.compile(r"[A-Za-z0-9._-]{1,40}")


def _show(value: object) -> str:
    """Render an attacker-controlled name for an error line only when it is a short, plain token."""
    text = value.decode("ascii", "replace") if isinstance(value, bytes) else str(value)
    return repr(text) if _SAFE_TOKEN.fullmatch(text) else "(unprintable name)"


# --------------------------------------------------------------------------------------------------
# Keys, times, canonical JSON
# --------------------------------------------------------------------------------------------------


def key_id(public_key: Ed25519PublicKey) -> str:
    """The issuer key id: first 16 hex digits of SHA-256 of the raw 32-byte public key.

    Short enough to print and compare by eye, long enough (64 bits) that nobody stumbles on a collision;
    the id only selects a trusted key — the signature check is what proves anything.
    """
    raw = public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def rfc3339(dt: datetime) -> str:
    """Render an aware datetime as the one RFC 3339 form the manifest uses: ``YYYY-MM-DDTHH:MM:SSZ``.

    Sub-second precision is dropped (truncated) so that one instant has exactly one spelling, which the
    canonical-bytes check relies on.
    """
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError("a manifest time must be timezone-aware")
    return clock.rfc3339(dt)


def parse_rfc3339(text: str) -> datetime:
    """Parse the manifest's time form (UTC, ``Z``, whole seconds) and nothing else; ValueError if not."""
    m = _RFC3339.fullmatch(text) if isinstance(text, str) else None
    if m is None:
        raise ValueError("not an RFC 3339 UTC time of the form YYYY-MM-DDTHH:MM:SSZ")
    year, month, day, hour, minute, second = (int(g) for g in m.groups())
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def _refuse_floats(value: Any, where: str) -> None:
    if isinstance(value, float):
        raise SealError(f"manifest field {where} is a float; the manifest carries integers and strings only")
    if isinstance(value, dict):
        for k, v in value.items():
            _refuse_floats(v, f"{where}.{k}" if where else str(k))
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            _refuse_floats(v, f"{where}[{i}]")


def canonical_manifest(manifest: Mapping[str, Any]) -> bytes:
    """The RFC 8785 canonical bytes of a manifest — the exact bytes that are signed.

    Floats are refused: their canonical form depends on a float printer, and nothing in a manifest needs
    one (times are strings, sizes and counts integers).
    """
    _refuse_floats(manifest, "")
    try:
        return rfc8785.dumps(manifest)
    except rfc8785.IntegerDomainError:
        raise SealError("manifest holds an integer outside the range JSON can carry exactly") from None
    except rfc8785.CanonicalizationError as exc:
        raise SealError(f"manifest cannot be canonicalized: {type(exc).__name__}") from None


# --------------------------------------------------------------------------------------------------
# The manifest
# --------------------------------------------------------------------------------------------------

_MANIFEST_FIELDS: Final = (
    "format",
    "package_id",
    "issuer",
    "purpose",
    "recipient",
    "recipient_key",
    "mode",
    "key_service",
    "created",
    "expires",
    "payload",
)
_ISSUER_FIELDS: Final = ("name", "key_id")
_PAYLOAD_FIELDS: Final = ("sha256", "size", "format", "columns", "rows", "scrypt_log_n")
_PAYLOAD_DIGEST_FIELDS: Final = ("sha256", "size")


def build_manifest(
    *,
    package_id: str,
    issuer: str,
    issuer_key_id: str,
    purpose: str,
    recipient: str,
    recipient_key: str,
    mode: Mode | str,
    key_service_url: str | None,
    created: datetime,
    expires: datetime,
    payload: Mapping[str, Any],
) -> dict[str, Any]:
    """Build a manifest of :data:`FORMAT_VERSION`; :func:`write_package` adds the payload's sha256 and size.

    The manifest carries no personal data. Its fields:

    * ``format`` — :data:`FORMAT_VERSION`; a reader refuses any other.
    * ``package_id`` — the issuer's id of this package (custody, revocation and the key service use it).
    * ``issuer`` — ``{"name", "key_id"}``: who signed, and the :func:`key_id` of the signing key; a reader
      looks the key id up in its own trust store and never trusts a key carried in the package.
    * ``purpose`` — the declared purpose the payload was minimized to.
    * ``recipient`` — who the package is for, by the name the issuer knows it by.
    * ``recipient_key`` — the recipient's public age key (``age1…``); a reader holding an identity refuses
      a package addressed to another key (in every mode but passphrase, which opens without one).
    * ``mode`` — ``tethered``, ``recipient`` or ``passphrase`` (:class:`Mode`).
    * ``key_service`` — the URL to ask for the package identity (tethered), else ``null``.
    * ``created`` / ``expires`` — RFC 3339 UTC strings; a reader refuses a package created in the future
      or expired, each with :data:`CLOCK_SKEW` of tolerance.
    * ``payload`` — ``{"sha256", "size"}`` of the exact ``payload.age`` bytes; ``format`` (``parquet``,
      ``csv`` or ``zengin``) and ``columns`` of the plaintext; ``rows`` its row count; ``scrypt_log_n``
      the work factor the age header carries (passphrase mode, at most :data:`MAX_LOG_N`), else ``null``.
    """
    extra = sorted(set(payload) - set(_PAYLOAD_FIELDS))
    if extra:
        raise SealError(f"payload field {_show(extra[0])} is not a manifest field")
    body = {"sha256": None, "size": None, "scrypt_log_n": None, **dict(payload)}
    if isinstance(body.get("columns"), tuple):
        body["columns"] = list(body["columns"])
    manifest: dict[str, Any] = {
        "format": FORMAT_VERSION,
        "package_id": package_id,
        "issuer": {"name": issuer, "key_id": issuer_key_id},
        "purpose": purpose,
        "recipient": recipient,
        "recipient_key": recipient_key,
        "mode": str(Mode(mode)) if mode in set(Mode) else mode,
        "key_service": key_service_url,
        "created": rfc3339(created),
        "expires": rfc3339(expires),
        "payload": body,
    }
    problem = manifest_problem(manifest, digest_required=False)
    if problem:
        raise SealError(f"cannot build manifest: {problem}")
    return manifest


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _nonempty_str(value: Any, limit: int = 200) -> bool:
    return isinstance(value, str) and 0 < len(value) <= limit and value.isprintable()


def _fields_problem(obj: dict[str, Any], expected: tuple[str, ...], where: str) -> str | None:
    for name in expected:
        if name not in obj:
            return f"manifest field {where}{name} is missing"
    for name in obj:
        if name not in expected:
            return f"manifest has an unexpected field {where}{_show(name)}"
    return None


def manifest_problem(manifest: Mapping[str, Any], *, digest_required: bool = True) -> str | None:
    """The first way ``manifest`` departs from the schema, or None; shared by writer and reader.

    One function for both sides, so a writer can never produce a package a reader refuses on its fields.
    Messages name the field, never its value.
    """
    if not isinstance(manifest, dict):
        return "manifest is not a JSON object"
    if problem := _fields_problem(manifest, _MANIFEST_FIELDS, ""):
        return problem
    if not _is_int(manifest["format"]) or manifest["format"] != FORMAT_VERSION:
        return f"manifest format is not version {FORMAT_VERSION}"
    for name in ("package_id", "purpose", "recipient"):
        if not _nonempty_str(manifest[name]):
            return f"manifest field {name} is not a non-empty printable string"
    if not isinstance(manifest["recipient_key"], str) or not _AGE_RECIPIENT.fullmatch(manifest["recipient_key"]):
        return "manifest field recipient_key is not an age X25519 recipient (age1…)"
    issuer = manifest["issuer"]
    if not isinstance(issuer, dict):
        return "manifest field issuer is not an object"
    if problem := _fields_problem(issuer, _ISSUER_FIELDS, "issuer."):
        return problem
    if not _nonempty_str(issuer["name"], 64):
        return "manifest field issuer.name is not a non-empty printable string"
    if not isinstance(issuer["key_id"], str) or not _HEX16.fullmatch(issuer["key_id"]):
        return "manifest field issuer.key_id is not 16 lowercase hex digits"
    mode = manifest["mode"]
    if mode not in set(Mode):
        return "manifest field mode is not tethered, recipient or passphrase"
    service = manifest["key_service"]
    if mode == Mode.TETHERED:
        if not (_nonempty_str(service, 2000) and service.startswith(("https://", "http://"))):
            return "manifest field key_service must be an http(s) URL for a tethered package"
    elif service is not None:
        return f"manifest field key_service must be null for a {mode} package"
    times: dict[str, datetime] = {}
    for name in ("created", "expires"):
        try:
            times[name] = parse_rfc3339(manifest[name])
        except ValueError:
            return f"manifest field {name} is not an RFC 3339 UTC time (YYYY-MM-DDTHH:MM:SSZ)"
    if times["expires"] <= times["created"]:
        return "manifest expires no later than it was created"
    return _payload_problem(manifest["payload"], Mode(mode), digest_required)


def _payload_problem(payload: Any, mode: Mode, digest_required: bool) -> str | None:
    if not isinstance(payload, dict):
        return "manifest field payload is not an object"
    if problem := _fields_problem(payload, _PAYLOAD_FIELDS, "payload."):
        return problem
    sha256, size = payload["sha256"], payload["size"]
    digest_given = digest_required or sha256 is not None or size is not None
    if digest_given and not (isinstance(sha256, str) and _HEX64.fullmatch(sha256)):
        return "manifest field payload.sha256 is not 64 lowercase hex digits"
    if digest_given and not (_is_int(size) and size >= 0):
        return "manifest field payload.size is not a non-negative integer"
    if payload["format"] not in PAYLOAD_FORMATS:
        return "manifest field payload.format is not parquet, csv or zengin"
    columns = payload["columns"]
    if not isinstance(columns, list) or not all(_nonempty_str(c) for c in columns):
        return "manifest field payload.columns is not a list of column names"
    if len(set(columns)) != len(columns):
        return "manifest field payload.columns names a column twice"
    if not _is_int(payload["rows"]) or payload["rows"] < 0:
        return "manifest field payload.rows is not a non-negative integer"
    log_n = payload["scrypt_log_n"]
    if mode == Mode.PASSPHRASE:
        if not _is_int(log_n) or log_n < 1:
            return "manifest field payload.scrypt_log_n is not a positive integer"
        if log_n > MAX_LOG_N:
            return f"manifest declares scrypt work factor {log_n}, above {MAX_LOG_N}"
    elif log_n is not None:
        return f"manifest field payload.scrypt_log_n must be null for a {mode} package"
    return None


class _ManifestSyntax(ValueError):
    pass


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for k, v in pairs:
        if k in obj:
            raise _ManifestSyntax("duplicate key")
        obj[k] = v
    return obj


def _no_constant(_: str) -> Any:
    raise _ManifestSyntax("NaN or Infinity")


def _no_float(_: str) -> Any:
    raise _ManifestSyntax("float")


def _parse_manifest(data: bytes) -> dict[str, Any]:
    """Parse manifest bytes strictly: UTF-8, one JSON object, no duplicate keys, no floats or NaN."""
    try:
        parsed = json.loads(
            data.decode("utf-8"),
            object_pairs_hook=_no_duplicate_keys,
            parse_float=_no_float,
            parse_constant=_no_constant,
        )
    except (UnicodeDecodeError, json.JSONDecodeError, _ManifestSyntax, RecursionError):
        raise PackageRefused("manifest.json is not valid JSON without duplicate keys or floats") from None
    if not isinstance(parsed, dict):
        raise PackageRefused("manifest.json is not a JSON object")
    return parsed
