"""The sealed package (`.cseal`): writing, strict reading, verification and opening.

A package is a ZIP archive holding exactly three stored entries, in this order:

* ``manifest.json`` — RFC 8785 canonical JSON describing the package (see :func:`build_manifest`);
* ``manifest.sig`` — the raw 64-byte Ed25519 signature of the issuer over the exact manifest bytes;
* ``payload.age`` — an age v1 file whose plaintext is the minimized table.

The ZIP is written and read by hand rather than with :mod:`zipfile` because ZIP is permissive in ways an
attacker can use (prepended data, duplicate names, local headers that disagree with the central
directory, data descriptors, compression bombs). Here the framing is a pure function of the three
entries: every ZIP field other than names, sizes, CRCs and offsets has exactly one allowed value, so a
reader can refuse anything else byte by byte. ZIP64 is not used: a package (framing included) must be
smaller than 4 GiB, and :func:`write_package` refuses a larger payload.

This layer knows nothing about databases, programmes or the key service. A tethered package is opened
by passing :func:`open_package` an ``identity`` callback that talks to the key service; the callback runs
only after every offline check has passed, so no network contact happens for a package we would refuse.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import io
import json
import os
import re
import secrets
import struct
import tempfile
import zlib
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Final

import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from civicseal.seal.errors import PackageRefused, SealError

if TYPE_CHECKING:
    from civicseal.seal.payload import Identity

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


# ZIP structures (APPNOTE 4.3.7, 4.3.12, 4.3.16), little-endian.
_LOCAL = struct.Struct("<IHHHHHIIIHH")  # 30 bytes
_CENTRAL = struct.Struct("<IHHHHHHIIIHHHHHII")  # 46 bytes
_END = struct.Struct("<IHHHHIIH")  # 22 bytes
_LOCAL_SIG: Final = 0x04034B50
_CENTRAL_SIG: Final = 0x02014B50
_END_SIG: Final = 0x06054B50
# The only allowed values of the fields that carry no information in a package: ZIP 2.0, MS-DOS host,
# timestamp 1980-01-01 00:00:00 (the package's time is the manifest's `created`), no attributes.
_ZIP_VERSION: Final = 20
_DOS_TIME: Final = 0
_DOS_DATE: Final = (0 << 9) | (1 << 5) | 1
_ZIP32_LIMIT: Final = 0xFFFFFFFF  # a value of 0xFFFFFFFF means "see ZIP64", which we never write
_MAX_CENTRAL_ENTRIES: Final = 16  # parse a few more than 3 so extra/duplicate entries get a precise error
_CENTRAL_SIZE: Final = sum(_CENTRAL.size + len(n) for n in ENTRIES)

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
    u = dt.astimezone(UTC)
    return f"{u.year:04d}-{u.month:02d}-{u.day:02d}T{u.hour:02d}:{u.minute:02d}:{u.second:02d}Z"


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


# --------------------------------------------------------------------------------------------------
# The age header (age v1, https://age-encryption.org/v1), parsed before pyrage ever sees the file
# --------------------------------------------------------------------------------------------------

AGE_VERSION_LINE: Final = b"age-encryption.org/v1\n"
_AGE_ARMOR: Final = b"-----BEGIN AGE ENCRYPTED FILE-----"
_B64_CHARS = re.compile(rb"[A-Za-z0-9+/]*")
_VCHAR_ARG = re.compile(rb"[\x21-\x7e]+")
_LOG_N = re.compile(r"[1-9][0-9]?")


def _b64_raw(text: bytes) -> bytes | None:
    """Decode canonical unpadded base64 (as age writes it), or None."""
    if not _B64_CHARS.fullmatch(text) or len(text) % 4 == 1:
        return None
    try:
        data = base64.b64decode(text + b"=" * (-len(text) % 4), validate=True)
    except binascii.Error:
        return None
    return data if base64.b64encode(data).rstrip(b"=") == text else None


@dataclass(frozen=True)
class Stanza:
    """One recipient stanza of an age header: ``-> TYPE ARGS…`` and its decoded body."""

    type: str
    args: tuple[str, ...]
    body: bytes


@dataclass(frozen=True)
class AgeHeader:
    """A parsed age v1 header; ``length`` counts its bytes up to and including the MAC line's newline."""

    stanzas: tuple[Stanza, ...]
    mac: bytes
    length: int


def parse_age_header(data: bytes, *, more: bool) -> AgeHeader:
    """Parse the age v1 header at the start of ``data`` (at most :data:`MAX_AGE_HEADER` bytes).

    ``more`` says whether the file continues past ``data``: if the header has not ended by then, it is
    longer than the limit (rather than truncated). We parse it ourselves, linearly and bounded, because
    pyrage parses headers in quadratic time and honours whatever scrypt work factor a header names.
    """
    if data.startswith(_AGE_ARMOR):
        raise PackageRefused("payload.age is ASCII-armored; a package carries the binary age format")
    if not data.startswith(AGE_VERSION_LINE):
        raise PackageRefused("payload.age is not an age v1 file")
    pos = len(AGE_VERSION_LINE)

    def line() -> bytes:
        nonlocal pos
        end = data.find(b"\n", pos, MAX_AGE_HEADER)
        if end < 0:
            if more or len(data) >= MAX_AGE_HEADER:
                raise PackageRefused(f"age header is longer than {MAX_AGE_HEADER} bytes")
            raise PackageRefused("age header is truncated")
        text, pos = data[pos:end], end + 1
        return text

    stanzas: list[Stanza] = []
    while True:
        text = line()
        if text.startswith(b"--- "):
            mac = _b64_raw(text[4:])
            if mac is None or len(mac) != 32:
                raise PackageRefused("age header MAC line is malformed")
            if not stanzas:
                raise PackageRefused("age header has no recipient stanza")
            return AgeHeader(tuple(stanzas), mac, pos)
        if not text.startswith(b"-> "):
            raise PackageRefused("age header is malformed")
        args = text[3:].split(b" ")
        if not all(_VCHAR_ARG.fullmatch(a) for a in args):
            raise PackageRefused("age header stanza line is malformed")
        body = b""
        while True:
            chunk = line()
            if len(chunk) > 64 or not _B64_CHARS.fullmatch(chunk):
                raise PackageRefused("age header stanza body is malformed")
            body += chunk
            if len(chunk) < 64:
                break
        decoded = _b64_raw(body)
        if decoded is None:
            raise PackageRefused("age header stanza body is not canonical base64")
        names = tuple(a.decode("ascii") for a in args)
        stanzas.append(Stanza(names[0], names[1:], decoded))


def age_header_problem(header: AgeHeader, mode: Mode, scrypt_log_n: int | None) -> str | None:
    """The first way the header's stanzas disagree with the package's mode, or None.

    Tethered and recipient packages carry exactly one X25519 stanza (plus at most one ``*-grease``
    stanza, which rage adds to every file it writes and every age implementation ignores); a passphrase
    package carries exactly one scrypt stanza and nothing else, as the age spec requires. The scrypt work
    factor must be at most :data:`MAX_LOG_N` and equal to the one the signed manifest declares.
    """
    stanzas = header.stanzas
    if mode == Mode.PASSPHRASE:
        if len(stanzas) != 1 or stanzas[0].type != "scrypt":
            return "age header of a passphrase package must hold exactly one scrypt stanza"
        (stanza,) = stanzas
        if len(stanza.args) != 2 or not _LOG_N.fullmatch(stanza.args[1]):
            return "age header scrypt stanza is malformed"
        salt = _b64_raw(stanza.args[0].encode("ascii"))
        if salt is None or len(salt) != 16 or len(stanza.body) != 32:
            return "age header scrypt stanza is malformed"
        log_n = int(stanza.args[1])
        if log_n > MAX_LOG_N:
            return f"age header declares scrypt work factor {log_n}, above {MAX_LOG_N}"
        if log_n != scrypt_log_n:
            return f"age header declares scrypt work factor {log_n}, the manifest {scrypt_log_n}"
        return None
    x25519 = [s for s in stanzas if s.type == "X25519"]
    grease = [s for s in stanzas if s.type.endswith("-grease")]
    for s in stanzas:
        if s.type != "X25519" and not s.type.endswith("-grease"):
            return f"age header of a {mode} package holds a stanza of type {_show(s.type)}"
    if len(x25519) != 1:
        return f"age header of a {mode} package must hold exactly one X25519 stanza, not {len(x25519)}"
    if len(grease) > 1:
        return "age header holds more than one grease stanza"
    (stanza,) = x25519
    share = _b64_raw(stanza.args[0].encode("ascii")) if len(stanza.args) == 1 else None
    if share is None or len(share) != 32 or len(stanza.body) != 32:
        return "age header X25519 stanza is malformed"
    return None


def read_age_header(path: Path, offset: int, size: int) -> AgeHeader:
    """Read and parse the header of the age file at ``path[offset:offset+size]``, reading ≤ 4 KiB."""
    with open(path, "rb") as f:
        f.seek(offset)
        data = f.read(min(size, MAX_AGE_HEADER))
    return parse_age_header(data, more=size > len(data))


# --------------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------------


def _digest_file(path: Path) -> tuple[int, str, int]:
    """Size, SHA-256 hex and CRC-32 of a file, streamed in :data:`CHUNK` pieces."""
    sha, crc, size = hashlib.sha256(), 0, 0
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            sha.update(chunk)
            crc = zlib.crc32(chunk, crc)
            size += len(chunk)
    return size, sha.hexdigest(), crc


def _local_header(name: bytes, crc: int, size: int) -> bytes:
    return _LOCAL.pack(_LOCAL_SIG, _ZIP_VERSION, 0, 0, _DOS_TIME, _DOS_DATE, crc, size, size, len(name), 0) + name


def _central_header(name: bytes, crc: int, size: int, offset: int) -> bytes:
    return (
        _CENTRAL.pack(
            _CENTRAL_SIG,
            _ZIP_VERSION,
            _ZIP_VERSION,
            0,
            0,
            _DOS_TIME,
            _DOS_DATE,
            crc,
            size,
            size,
            len(name),
            0,
            0,
            0,
            0,
            0,
            offset,
        )
        + name
    )


def _fsync_dir(directory: Path) -> None:
    """Make a rename durable; best effort where directories cannot be opened (some filesystems)."""
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_package(out: Path, manifest: dict[str, Any], signing_key: Ed25519PrivateKey, payload_age: Path) -> bytes:
    """Seal ``payload_age`` into the package ``out``; return the signed manifest bytes.

    Computes the payload's sha256 and size and sets them in ``manifest["payload"]`` (the caller's dict
    is updated, so it holds the final manifest). Before signing, the manifest is checked against the
    schema, the declared issuer key id against ``signing_key``, and the age header against the mode —
    so we never write a package a reader would refuse. The payload is streamed twice (digest, then
    copy) in 1 MiB chunks and re-hashed while copied; a payload that changes in between is refused.
    The package is written to a temporary file beside ``out``, fsynced and renamed over ``out``.
    """
    out = Path(out)
    size, sha256, crc = _digest_file(payload_age)
    payload = manifest.get("payload")
    if not isinstance(payload, dict):
        raise SealError("cannot seal: manifest field payload is not an object")
    payload["sha256"], payload["size"] = sha256, size
    if problem := manifest_problem(manifest):
        raise SealError(f"cannot seal: {problem}")
    if manifest["issuer"]["key_id"] != key_id(signing_key.public_key()):
        raise SealError("cannot seal: the manifest's issuer key id is not the signing key's")
    try:
        header = read_age_header(Path(payload_age), 0, size)
    except PackageRefused as exc:
        raise SealError(f"cannot seal: {exc.reason}") from None
    if problem := age_header_problem(header, Mode(manifest["mode"]), payload["scrypt_log_n"]):
        raise SealError(f"cannot seal: {problem}")
    manifest_bytes = canonical_manifest(manifest)
    if len(manifest_bytes) > MAX_MANIFEST:
        raise SealError(f"cannot seal: manifest is {len(manifest_bytes)} bytes, above {MAX_MANIFEST}")
    signature = signing_key.sign(manifest_bytes)

    names = [n.encode("ascii") for n in ENTRIES]
    small = [(names[0], manifest_bytes), (names[1], signature)]
    central_offset = sum(_LOCAL.size + len(n) for n in names) + len(manifest_bytes) + len(signature) + size
    if central_offset >= _ZIP32_LIMIT:
        raise SealError(f"cannot seal: payload of {size} bytes is too large; a package holds under 4 GiB")

    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as f:
            central, offset = [], 0
            for name, data in small:
                entry_crc = zlib.crc32(data)
                f.write(_local_header(name, entry_crc, len(data)) + data)
                central.append(_central_header(name, entry_crc, len(data), offset))
                offset += _LOCAL.size + len(name) + len(data)
            f.write(_local_header(names[2], crc, size))
            central.append(_central_header(names[2], crc, size, offset))
            copied = hashlib.sha256()
            with open(payload_age, "rb") as src:
                while chunk := src.read(CHUNK):
                    copied.update(chunk)
                    f.write(chunk)
            if copied.hexdigest() != sha256 or f.tell() != central_offset:
                raise SealError("cannot seal: payload.age changed while it was being sealed")
            directory = b"".join(central)
            f.write(directory)
            f.write(_END.pack(_END_SIG, 0, 0, len(ENTRIES), len(ENTRIES), len(directory), central_offset, 0))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, out)
        _fsync_dir(out.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return manifest_bytes


# --------------------------------------------------------------------------------------------------
# Reading (framing)
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SealedPackage:
    """A package whose framing has been checked. Its manifest is NOT trusted until :func:`verify`.

    ``payload_sha256`` is computed from the bytes of ``payload.age`` while the framing is checked (one
    pass serves the CRC and the hash); :func:`verify` compares it with the signed manifest.
    """

    path: Path
    manifest_bytes: bytes
    manifest: dict[str, Any]
    signature: bytes
    payload_offset: int
    payload_size: int
    payload_sha256: str

    @property
    def mode(self) -> Mode:
        """The package's mode (meaningful after :func:`verify`)."""
        return Mode(self.manifest["mode"])

    @property
    def package_id(self) -> str:
        """The package id (meaningful after :func:`verify`)."""
        return str(self.manifest["package_id"])


@dataclass(frozen=True)
class _Entry:
    name: bytes
    crc: int
    size: int
    offset: int


def _read_exact(f: BinaryIO, offset: int, size: int, what: str) -> bytes:
    f.seek(offset)
    data = f.read(size)
    if len(data) != size:
        raise PackageRefused(f"{what} is truncated")
    return data


def _check_flags_and_fields(name: str, method: int, flags: int, extra_len: int, where: str) -> None:
    if method != 0:
        raise PackageRefused(f"entry {name} is compressed")
    if flags & 0x0008:
        raise PackageRefused(f"entry {name} uses a data descriptor")
    if flags & 0x0001:
        raise PackageRefused(f"entry {name} is encrypted with ZIP encryption")
    if flags != 0:
        raise PackageRefused(f"entry {name} has unexpected ZIP flags in its {where}")
    if extra_len != 0:
        raise PackageRefused(f"entry {name} has an extra field in its {where}")


def _read_central_directory(f: BinaryIO, file_size: int) -> tuple[list[_Entry], int]:
    """Check the end record and central directory; return the three entries and the directory's offset."""
    if file_size < _END.size + _CENTRAL_SIZE:
        raise PackageRefused("file is too short to be a package")
    end = _read_exact(f, file_size - _END.size, _END.size, "end record")
    sig, disk, cd_disk, disk_entries, total, cd_size, cd_offset, comment_len = _END.unpack(end)
    if sig != _END_SIG:
        raise PackageRefused("no ZIP end record at the very end of the file (trailing bytes or a comment?)")
    if comment_len != 0:
        raise PackageRefused("the archive has a comment")
    if disk != 0 or cd_disk != 0 or disk_entries != total:
        raise PackageRefused("the archive spans several disks")
    if total > _MAX_CENTRAL_ENTRIES:
        raise PackageRefused(f"package has {total} entries, expected {len(ENTRIES)}")
    if cd_offset + cd_size != file_size - _END.size:
        raise PackageRefused("the central directory does not end where the end record begins")
    if cd_size > _MAX_CENTRAL_ENTRIES * (_CENTRAL.size + 3 * 0xFFFF):
        raise PackageRefused("the central directory is too large")
    directory = _read_exact(f, cd_offset, cd_size, "central directory")

    raw: list[tuple[tuple[int, ...], bytes]] = []
    pos = 0
    for _ in range(total):
        if pos + _CENTRAL.size > len(directory):
            raise PackageRefused("the central directory is truncated")
        fields = _CENTRAL.unpack_from(directory, pos)
        if fields[0] != _CENTRAL_SIG:
            raise PackageRefused("the central directory is malformed")
        name_len, extra_len, comment_len = fields[10], fields[11], fields[12]
        end_pos = pos + _CENTRAL.size + name_len + extra_len + comment_len
        if end_pos > len(directory):
            raise PackageRefused("the central directory is truncated")
        raw.append((fields, directory[pos + _CENTRAL.size : pos + _CENTRAL.size + name_len]))
        pos = end_pos
    if pos != len(directory):
        raise PackageRefused("the central directory has bytes after its last entry")

    names = [n for _, n in raw]
    expected = [n.encode("ascii") for n in ENTRIES]
    for n in names:
        if n not in expected:
            raise PackageRefused(f"unexpected entry {_show(n)}")
        if names.count(n) > 1:
            raise PackageRefused(f"entry {_show(n)} appears more than once")
    for n in expected:
        if n not in names:
            raise PackageRefused(f"entry {n.decode()} is missing")
    if names != expected:
        raise PackageRefused("entries are not in the order manifest.json, manifest.sig, payload.age")

    entries = []
    for fields, name_bytes in raw:
        (
            _,
            made_by,
            needed,
            flags,
            method,
            mtime,
            mdate,
            crc,
            csize,
            usize,
            _,
            extra_len,
            comment_len,
            disk_start,
            internal,
            external,
            offset,
        ) = fields
        name = name_bytes.decode("ascii")
        _check_flags_and_fields(name, method, flags, extra_len, "central directory entry")
        if comment_len != 0:
            raise PackageRefused(f"entry {name} has a comment")
        if csize != usize:
            raise PackageRefused(f"entry {name} has different stored and original sizes")
        if (made_by, needed, mtime, mdate, disk_start, internal, external) != (
            _ZIP_VERSION,
            _ZIP_VERSION,
            _DOS_TIME,
            _DOS_DATE,
            0,
            0,
            0,
        ):
            raise PackageRefused(f"central directory entry of {name} is not in the package's canonical form")
        if offset >= cd_offset:
            raise PackageRefused(f"entry {name} does not start before the central directory")
        entries.append(_Entry(name_bytes, crc, csize, offset))
    return entries, cd_offset


def _check_layout(entries: list[_Entry], cd_offset: int) -> None:
    """Entries lie back to back from offset 0 to the central directory: no prepended bytes, no gaps."""
    next_offset = 0
    for entry in entries:
        if entry.offset != next_offset:
            if next_offset == 0:
                raise PackageRefused("the first local header is not at offset 0")
            raise PackageRefused(f"entry {entry.name.decode()} does not start where the previous entry ends")
        next_offset = entry.offset + _LOCAL.size + len(entry.name) + entry.size
    if next_offset != cd_offset:
        raise PackageRefused("the central directory does not start where the last entry ends")


def _check_local_header(f: BinaryIO, entry: _Entry) -> int:
    """Check one local header against its central entry; return the offset of its data."""
    name = entry.name.decode("ascii")
    header = _read_exact(f, entry.offset, _LOCAL.size + len(entry.name), f"local header of {name}")
    (sig, needed, flags, method, mtime, mdate, crc, csize, usize, name_len, extra_len) = _LOCAL.unpack_from(header)
    if sig != _LOCAL_SIG:
        raise PackageRefused(f"no local header where entry {name} should start")
    _check_flags_and_fields(name, method, flags, extra_len, "local header")
    if name_len != len(entry.name) or header[_LOCAL.size :] != entry.name:
        raise PackageRefused(f"local header of {name} names another entry")
    if (needed, mtime, mdate, crc, csize, usize) != (
        _ZIP_VERSION,
        _DOS_TIME,
        _DOS_DATE,
        entry.crc,
        entry.size,
        entry.size,
    ):
        raise PackageRefused(f"local header of {name} disagrees with the central directory")
    return entry.offset + len(header)


def read_package(path: Path) -> SealedPackage:
    """Read a package and check its framing, byte by byte; refuse anything but the canonical layout.

    Checks: end record at the very end (no trailing bytes, no comment); exactly the three entries, in
    order, none duplicated, missing or extra; each stored, without data descriptor, extra field or
    comment; the first local header at offset 0 and entries back to back up to the central directory (no
    prepended bytes, no gaps); local headers equal to the central directory; manifest at most 64 KiB,
    signature exactly 64 bytes; CRC-32 of every entry (the payload streamed). The manifest is parsed as
    strict JSON but not yet trusted.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            return _read_open_package(f, path)
    except OSError as exc:
        raise SealError(f"cannot read {path}: {exc.strerror or type(exc).__name__}") from None


def _read_open_package(f: BinaryIO, path: Path) -> SealedPackage:
    file_size = os.fstat(f.fileno()).st_size
    entries, cd_offset = _read_central_directory(f, file_size)
    manifest_e, sig_e, payload_e = entries
    if manifest_e.size > MAX_MANIFEST:
        raise PackageRefused(f"manifest.json is larger than {MAX_MANIFEST} bytes")
    if sig_e.size != SIGNATURE_SIZE:
        raise PackageRefused(f"manifest.sig is not {SIGNATURE_SIZE} bytes")
    data_offsets = [_check_local_header(f, e) for e in entries]
    _check_layout(entries, cd_offset)
    manifest_bytes = _read_exact(f, data_offsets[0], manifest_e.size, "manifest.json")
    signature = _read_exact(f, data_offsets[1], sig_e.size, "manifest.sig")
    for entry, data in ((manifest_e, manifest_bytes), (sig_e, signature)):
        if zlib.crc32(data) != entry.crc:
            raise PackageRefused(f"CRC-32 of {entry.name.decode()} does not match")
    f.seek(data_offsets[2])
    crc, sha, left = 0, hashlib.sha256(), payload_e.size
    while left:
        chunk = f.read(min(CHUNK, left))
        if not chunk:
            raise PackageRefused("payload.age is truncated")
        crc = zlib.crc32(chunk, crc)
        sha.update(chunk)
        left -= len(chunk)
    if crc != payload_e.crc:
        raise PackageRefused("CRC-32 of payload.age does not match")
    return SealedPackage(
        path=path,
        manifest_bytes=manifest_bytes,
        manifest=_parse_manifest(manifest_bytes),
        signature=signature,
        payload_offset=data_offsets[2],
        payload_size=payload_e.size,
        payload_sha256=sha.hexdigest(),
    )


# --------------------------------------------------------------------------------------------------
# Verification: small named checks, run in the order DESIGN.md fixes
# --------------------------------------------------------------------------------------------------


def check_signature(pkg: SealedPackage, trusted: Mapping[str, Ed25519PublicKey]) -> None:
    """The manifest is signed by an issuer key the reader trusts; a key in the package proves nothing."""
    issuer = pkg.manifest.get("issuer")
    kid = issuer.get("key_id") if isinstance(issuer, dict) else None
    if not isinstance(kid, str) or not _HEX16.fullmatch(kid):
        raise PackageRefused("manifest names no valid issuer key id")
    public_key = trusted.get(kid)
    if public_key is None:
        raise PackageRefused(f"issuer key {kid} is not trusted")
    try:
        public_key.verify(pkg.signature, pkg.manifest_bytes)
    except InvalidSignature:
        raise PackageRefused("signature does not verify") from None


def check_canonical(pkg: SealedPackage) -> None:
    """The signed bytes are the RFC 8785 form of what they say: one manifest, one byte string."""
    try:
        canonical = canonical_manifest(pkg.manifest)
    except SealError:
        canonical = None
    if canonical != pkg.manifest_bytes:
        raise PackageRefused("manifest.json is not canonical JSON (RFC 8785)")


def check_format_version(pkg: SealedPackage) -> None:
    """This reader understands exactly format version :data:`FORMAT_VERSION`."""
    version = pkg.manifest.get("format")
    if not _is_int(version) or version != FORMAT_VERSION:
        shown = version if _is_int(version) and 0 <= version < 10**6 else "unknown"
        raise PackageRefused(f"format version {shown} is not {FORMAT_VERSION}")


def check_manifest_fields(pkg: SealedPackage) -> None:
    """Every field is present, typed and consistent with the mode (see :func:`build_manifest`)."""
    if problem := manifest_problem(pkg.manifest):
        raise PackageRefused(problem)


def _aware(now: datetime) -> datetime:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    return now


def check_not_future(pkg: SealedPackage, now: datetime) -> None:
    """Refuse a package created after ``now`` + :data:`CLOCK_SKEW` (a wrong clock or a forged date)."""
    created = parse_rfc3339(pkg.manifest["created"])
    if created > _aware(now) + CLOCK_SKEW:
        raise PackageRefused(f"created at {pkg.manifest['created']}, in the future")


def check_not_expired(pkg: SealedPackage, now: datetime) -> None:
    """Refuse a package whose ``expires`` + :data:`CLOCK_SKEW` is before ``now``."""
    expires = parse_rfc3339(pkg.manifest["expires"])
    if expires + CLOCK_SKEW < _aware(now):
        raise PackageRefused(f"expired at {pkg.manifest['expires']}")


def check_recipient(pkg: SealedPackage, recipient_key: str | None) -> None:
    """A reader holding an identity opens only packages addressed to its public key (passphrase: no key)."""
    if recipient_key is None or pkg.mode is Mode.PASSPHRASE:
        return
    if pkg.manifest["recipient_key"] != recipient_key:
        raise PackageRefused(
            f"package is addressed to another recipient ({_show(pkg.manifest['recipient'])}), not to this identity"
        )


def check_payload_hash(pkg: SealedPackage) -> None:
    """``payload.age`` is exactly the bytes the manifest signs: same size, same SHA-256."""
    payload = pkg.manifest["payload"]
    if pkg.payload_size != payload["size"]:
        raise PackageRefused("payload.age size does not match the manifest")
    if pkg.payload_sha256 != payload["sha256"]:
        raise PackageRefused("payload.age SHA-256 does not match the manifest")


def precheck_age_header(pkg: SealedPackage) -> AgeHeader:
    """Read ≤ 4 KiB of the payload and check its age header fits the mode, before pyrage sees it."""
    header = read_age_header(pkg.path, pkg.payload_offset, pkg.payload_size)
    problem = age_header_problem(header, pkg.mode, pkg.manifest["payload"]["scrypt_log_n"])
    if problem:
        raise PackageRefused(problem)
    return header


def verify(
    pkg: SealedPackage,
    trusted: Mapping[str, Ed25519PublicKey],
    *,
    now: datetime,
    recipient_key: str | None = None,
) -> None:
    """Run every offline check in DESIGN.md's order; raise :class:`PackageRefused` at the first failure.

    signature by a trusted issuer → canonical manifest → format version → fields → not created in the
    future → not expired → recipient → payload hash and size → age header pre-check. Needs no secret
    key, no database and no network.
    """
    check_signature(pkg, trusted)
    check_canonical(pkg)
    check_format_version(pkg)
    check_manifest_fields(pkg)
    check_not_future(pkg, now)
    check_not_expired(pkg, now)
    check_recipient(pkg, recipient_key)
    check_payload_hash(pkg)
    precheck_age_header(pkg)


# --------------------------------------------------------------------------------------------------
# Opening
# --------------------------------------------------------------------------------------------------


class PayloadRegion(io.RawIOBase):
    """A read-only stream over ``payload.age`` inside the package file, hashing what it hands out.

    Decryption reads through this, so only the payload region is ever read, in small pieces; the hash
    lets :func:`open_package` prove that the bytes decrypted are the bytes that were verified.
    """

    def __init__(self, f: BinaryIO, offset: int, size: int) -> None:
        super().__init__()
        self._f = f
        self._remaining = size
        self._sha = hashlib.sha256()
        self.truncated = False
        f.seek(offset)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        want = min(len(view), self._remaining)
        if want == 0:
            return 0
        data = self._f.read(want)
        if not data:
            self.truncated = True
            raise OSError("payload.age ended early: the package changed after it was verified")
        view[: len(data)] = data
        self._sha.update(data)
        self._remaining -= len(data)
        return len(data)

    def finish(self) -> str:
        """Hash whatever the decryptor left unread and return the SHA-256 of the whole region."""
        while self.read(CHUNK):
            pass
        return self._sha.hexdigest()


def _install(tmp: Path, out: Path, force: bool) -> None:
    """Move the finished plaintext into place; without ``force`` never replace an existing file."""
    if force:
        os.replace(tmp, out)
        return
    try:
        os.link(tmp, out)  # atomic no-clobber: fails if out appeared meanwhile
    except FileExistsError:
        raise SealError(f"{out} already exists; refusing to replace it without force") from None
    except OSError:  # a filesystem without hard links
        if out.exists() or out.is_symlink():
            raise SealError(f"{out} already exists; refusing to replace it without force") from None
        os.replace(tmp, out)
        return
    tmp.unlink()


def _decrypt_to(pkg: SealedPackage, identity: Identity, out: Path, force: bool, claim: Claim) -> None:
    tmp = out.parent / f".{out.name}.{secrets.token_hex(8)}.part"
    with claim(tmp):
        _decrypt_into(pkg, identity, tmp, out, force)


def _decrypt_into(pkg: SealedPackage, identity: Identity, tmp: Path, out: Path, force: bool) -> None:
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as dst, open(pkg.path, "rb") as src:
            region = PayloadRegion(src, pkg.payload_offset, pkg.payload_size)
            try:
                identity.decrypt(region, dst)
            except PackageRefused:
                if region.truncated:
                    raise PackageRefused("payload.age changed after it was verified") from None
                raise
            if region.finish() != pkg.manifest["payload"]["sha256"]:
                raise PackageRefused("payload.age changed after it was verified")
            dst.flush()
            os.fsync(dst.fileno())
        _install(tmp, out, force)
        _fsync_dir(out.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def open_package(
    path: Path,
    *,
    trusted: Mapping[str, Ed25519PublicKey],
    now: datetime,
    out: Path,
    force: bool,
    identity: Callable[[SealedPackage], Identity],
    recipient_key: str | None = None,
    claim: Claim = lambda _tmp: contextlib.nullcontext(),
) -> SealedPackage:
    """Verify a package and decrypt its payload to ``out``; return the verified package.

    Order: existing ``out`` refused unless ``force`` → framing (:func:`read_package`) → :func:`verify` →
    ``identity(pkg)`` (for tethered packages the caller asks the key service here — the first moment any
    network contact may happen) → streaming decryption into a 0600 temporary file beside ``out`` →
    fsync → rename. On any failure the temporary file is deleted: no plaintext remains. ``claim(tmp)``
    holds the temporary file for the run, so that a later sweep removes it if this process is killed.
    """
    out = Path(out)
    if not force and (out.exists() or out.is_symlink()):
        raise SealError(f"{out} already exists; refusing to replace it without force")
    pkg = read_package(path)
    verify(pkg, trusted, now=now, recipient_key=recipient_key)
    chosen = identity(pkg)
    try:
        _decrypt_to(pkg, chosen, out, force, claim)
    except OSError as exc:
        raise SealError(f"cannot write {out}: {exc.strerror or type(exc).__name__}") from None
    return pkg
