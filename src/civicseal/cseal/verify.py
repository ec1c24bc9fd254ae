"""Verification: small named checks, run in the order DESIGN.md fixes; no secret, no store, no network."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from civicseal.cseal.age_header import AgeHeader, age_header_problem, read_age_header
from civicseal.cseal.errors import PackageRefused, SealError
from civicseal.cseal.framing import SealedPackage
from civicseal.cseal.manifest import (
    _HEX16,
    CLOCK_SKEW,
    FORMAT_VERSION,
    Mode,
    _is_int,
    _show,
    canonical_manifest,
    manifest_problem,
    parse_rfc3339,
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
        name = issuer.get("name") if isinstance(issuer, dict) else None
        shown = name if isinstance(name, str) and name.isprintable() and len(name) <= 64 else "its issuer"
        raise PackageRefused(
            f"issuer key {kid} is not trusted: the package says it comes from {shown}, whose key this home does"
            " not hold; if it is your city, ask it for the line `civicseal keys public` prints and run"
            " `civicseal trust add NAME ed25519:…` with it"
        )
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
