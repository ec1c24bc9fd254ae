"""The `.cseal` package format: round trips, strict framing, verification order and interop with `age`."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import pty
import select
import shutil
import struct
import subprocess
import time
import tomllib
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from civicseal import cseal as F
from civicseal.cseal.errors import PackageRefused, SealError
from civicseal.cseal.payload import (
    PassphraseIdentity,
    X25519Identity,
    encrypt_to_recipient,
    encrypt_with_passphrase,
    generate_identity,
)
from civicseal.keys.trust import (
    TRUST_FILE,
    add_trusted,
    format_public_key,
    load_issuers,
    load_trusted,
    remove_trusted,
)

NOW = datetime(2026, 11, 22, 10, 0, 0, tzinfo=UTC)
EXPIRES = NOW + timedelta(days=30)
AGE = "/usr/bin/age"
# A plaintext larger than one age chunk (64 KiB), with a name in it that must never surface in an error.
PLAINTEXT = ("reference,name\n" + "1234-5678-9012,山田太郎\n" * 8000).encode("utf-8")
PERSONAL = "山田太郎"
CONTRACTOR_SECRET, CONTRACTOR_KEY = generate_identity()  # the recipient every test package is addressed to


# --------------------------------------------------------------------------------------------------
# Fixtures and helpers
# --------------------------------------------------------------------------------------------------


@dataclass
class Issuer:
    key: Ed25519PrivateKey
    kid: str

    @property
    def trusted(self) -> dict[str, Any]:
        return {self.kid: self.key.public_key()}


@pytest.fixture(scope="module")
def issuer() -> Issuer:
    key = Ed25519PrivateKey.generate()
    return Issuer(key, F.key_id(key.public_key()))


def manifest_for(
    issuer: Issuer, mode: F.Mode = F.Mode.RECIPIENT, *, recipient_key: str = CONTRACTOR_KEY, **payload: Any
) -> dict[str, Any]:
    return F.build_manifest(
        package_id="pkg-0001",
        issuer="city",
        issuer_key_id=issuer.kid,
        purpose="contact-centre-status",
        recipient="contact-centre",
        recipient_key=recipient_key,
        mode=mode,
        key_service_url="https://keys.city.example/" if mode == F.Mode.TETHERED else None,
        created=NOW,
        expires=EXPIRES,
        payload={"format": "csv", "columns": ["reference", "name"], "rows": 8000, **payload},
    )


@dataclass
class Sealed:
    path: Path
    secret: str
    payload: bytes  # the exact payload.age bytes


@pytest.fixture(scope="module")
def sealed(issuer: Issuer, tmp_path_factory: pytest.TempPathFactory) -> Sealed:
    """One recipient-mode package, shared read-only by the tests that tamper with copies of it."""
    d = tmp_path_factory.mktemp("sealed")
    secret, public = CONTRACTOR_SECRET, CONTRACTOR_KEY
    (d / "plain.csv").write_bytes(PLAINTEXT)
    encrypt_to_recipient(d / "plain.csv", d / "payload.age", public)
    F.write_package(d / "p.cseal", manifest_for(issuer), issuer.key, d / "payload.age")
    return Sealed(d / "p.cseal", secret, (d / "payload.age").read_bytes())


@dataclass
class PassphraseSealed:
    path: Path
    passphrase: str
    log_n: int


@pytest.fixture(scope="module")
def passphrase_sealed(issuer: Issuer, tmp_path_factory: pytest.TempPathFactory) -> PassphraseSealed:
    d = tmp_path_factory.mktemp("passphrase")
    (d / "plain.csv").write_bytes(PLAINTEXT)
    passphrase = "correct-horse-battery-staple-civic-seal"
    try:
        log_n = encrypt_with_passphrase(d / "plain.csv", d / "payload.age", passphrase)
    except SealError as exc:  # pyrage times this machine; a fast one may pick > 20, which seal refuses
        pytest.skip(str(exc))
    manifest = manifest_for(issuer, F.Mode.PASSPHRASE, scrypt_log_n=log_n)
    F.write_package(d / "p.cseal", manifest, issuer.key, d / "payload.age")
    return PassphraseSealed(d / "p.cseal", passphrase, log_n)


def open_with(pkg_path: Path, issuer: Issuer, out: Path, identity: Any, **kw: Any) -> F.SealedPackage:
    return F.open_package(
        pkg_path,
        trusted=kw.pop("trusted", issuer.trusted),
        now=kw.pop("now", NOW),
        out=out,
        force=kw.pop("force", False),
        identity=lambda _pkg: identity,
        **kw,
    )


def refused(pkg_path: Path, issuer: Issuer, secret: str, out_dir: Path, **kw: Any) -> str:
    """Open and expect a refusal with nothing written; return the one-line message."""
    out_dir.mkdir(exist_ok=True)
    before = set(out_dir.iterdir())
    with pytest.raises(PackageRefused) as info:
        open_with(pkg_path, issuer, out_dir / "out.csv", X25519Identity(secret), **kw)
    message = str(info.value)
    assert message.startswith("package refused: ")
    assert "\n" not in message and PERSONAL not in message
    assert set(out_dir.iterdir()) == before, "a refused package left a file behind"
    return message


# A reference ZIP writer, independent of format.py, able to produce every malformation we refuse.
LOCAL = struct.Struct("<IHHHHHIIIHH")
CENTRAL = struct.Struct("<IHHHHHHIIIHHHHHII")
END = struct.Struct("<IHHHHIIH")


@dataclass
class Entry:
    name: bytes
    data: bytes
    method: int = 0
    flags: int = 0
    local_extra: bytes = b""
    central_extra: bytes = b""
    comment: bytes = b""
    descriptor: bool = False
    usize: int | None = None


def zip_raw(entries: list[Entry], *, base: int = 0, archive_comment: bytes = b"") -> bytes:
    """ZIP bytes with the package's pinned field values; ``base`` shifts recorded offsets."""
    out, central = bytearray(), bytearray()
    for e in entries:
        crc, csize = zlib.crc32(e.data), len(e.data)
        usize = csize if e.usize is None else e.usize
        offset = base + len(out)
        if e.descriptor:
            local = LOCAL.pack(0x04034B50, 20, e.flags, e.method, 0, 0x21, 0, 0, 0, len(e.name), 0)
        else:
            local = LOCAL.pack(
                0x04034B50, 20, e.flags, e.method, 0, 0x21, crc, csize, usize, len(e.name), len(e.local_extra)
            )
        out += local + e.name + (b"" if e.descriptor else e.local_extra) + e.data
        if e.descriptor:
            out += struct.pack("<IIII", 0x08074B50, crc, csize, usize)
        central += (
            CENTRAL.pack(
                0x02014B50,
                20,
                20,
                e.flags,
                e.method,
                0,
                0x21,
                crc,
                csize,
                usize,
                len(e.name),
                len(e.central_extra),
                len(e.comment),
                0,
                0,
                0,
                offset,
            )
            + e.name
            + e.central_extra
            + e.comment
        )
    cd_offset = base + len(out)
    out += central
    out += END.pack(0x06054B50, 0, 0, len(entries), len(entries), len(central), cd_offset, len(archive_comment))
    return bytes(out + archive_comment)


def entries_of(pkg_path: Path) -> tuple[bytes, bytes, bytes]:
    with zipfile.ZipFile(pkg_path) as z:
        return z.read("manifest.json"), z.read("manifest.sig"), z.read("payload.age")


def standard(manifest: bytes, sig: bytes, payload: bytes) -> list[Entry]:
    return [Entry(b"manifest.json", manifest), Entry(b"manifest.sig", sig), Entry(b"payload.age", payload)]


def forge(
    path: Path,
    issuer: Issuer,
    manifest: dict[str, Any],
    payload: bytes,
    *,
    fix_digest: bool = True,
    manifest_bytes: bytes | None = None,
) -> Path:
    """Write a package signed by ``issuer`` over whatever we choose, bypassing write_package's checks."""
    if fix_digest:
        manifest["payload"]["sha256"] = hashlib.sha256(payload).hexdigest()
        manifest["payload"]["size"] = len(payload)
    data = F.canonical_manifest(manifest) if manifest_bytes is None else manifest_bytes
    path.write_bytes(zip_raw(standard(data, issuer.key.sign(data), payload)))
    return path


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode().rstrip("=")


def age_header(*stanzas: tuple[str, bytes]) -> bytes:
    """An age v1 header with the given ``(stanza line, body)`` pairs and a dummy MAC."""
    text = "age-encryption.org/v1\n"
    for line, body in stanzas:
        encoded = b64(body)
        lines = [encoded[i : i + 64] for i in range(0, len(encoded), 64)]
        if not lines or len(lines[-1]) == 64:
            lines.append("")
        text += f"-> {line}\n" + "".join(f"{x}\n" for x in lines)
    return (text + f"--- {b64(bytes(32))}\n").encode()


# --------------------------------------------------------------------------------------------------
# Round trips
# --------------------------------------------------------------------------------------------------


def test_roundtrip_recipient(sealed: Sealed, issuer: Issuer, tmp_path: Path) -> None:
    out = tmp_path / "out.csv"
    pkg = open_with(sealed.path, issuer, out, X25519Identity(sealed.secret), recipient_key=CONTRACTOR_KEY)
    assert out.read_bytes() == PLAINTEXT
    assert out.stat().st_mode & 0o777 == 0o600
    assert pkg.mode is F.Mode.RECIPIENT
    assert pkg.manifest["payload"]["sha256"] == hashlib.sha256(sealed.payload).hexdigest()
    assert [p.name for p in tmp_path.iterdir()] == ["out.csv"]


def test_roundtrip_tethered(issuer: Issuer, tmp_path: Path) -> None:
    # Tethered is recipient-mode crypto with a per-package identity handed out by the key service.
    secret, public = generate_identity()
    (tmp_path / "plain").write_bytes(PLAINTEXT)
    encrypt_to_recipient(tmp_path / "plain", tmp_path / "payload.age", public)
    manifest = manifest_for(issuer, F.Mode.TETHERED)
    manifest_bytes = F.write_package(tmp_path / "t.cseal", manifest, issuer.key, tmp_path / "payload.age")
    assert json.loads(manifest_bytes) == manifest  # the caller's dict now holds the final manifest
    asked: list[str] = []

    def key_service(pkg: F.SealedPackage) -> X25519Identity:
        asked.append(pkg.package_id)
        assert pkg.manifest["key_service"] == "https://keys.city.example/"
        return X25519Identity(secret)

    F.open_package(
        tmp_path / "t.cseal",
        trusted=issuer.trusted,
        now=NOW,
        out=tmp_path / "o",
        force=False,
        identity=key_service,
    )
    assert asked == ["pkg-0001"]
    assert (tmp_path / "o").read_bytes() == PLAINTEXT


def test_roundtrip_passphrase(passphrase_sealed: PassphraseSealed, issuer: Issuer, tmp_path: Path) -> None:
    out = tmp_path / "out.csv"
    pkg = open_with(passphrase_sealed.path, issuer, out, PassphraseIdentity(passphrase_sealed.passphrase))
    assert out.read_bytes() == PLAINTEXT
    assert pkg.manifest["payload"]["scrypt_log_n"] == passphrase_sealed.log_n <= F.MAX_LOG_N
    header = F.precheck_age_header(pkg)
    assert header.stanzas[0].type == "scrypt" and header.stanzas[0].args[1] == str(passphrase_sealed.log_n)


def test_wrong_passphrase_refused(passphrase_sealed: PassphraseSealed, issuer: Issuer, tmp_path: Path) -> None:
    with pytest.raises(PackageRefused, match="passphrase does not open"):
        open_with(passphrase_sealed.path, issuer, tmp_path / "o", PassphraseIdentity("not the passphrase"))
    assert list(tmp_path.iterdir()) == []


def test_framing_is_the_reference_layout(sealed: Sealed, issuer: Issuer) -> None:
    manifest, sig, payload = entries_of(sealed.path)
    assert sealed.path.read_bytes() == zip_raw(standard(manifest, sig, payload))
    assert len(sig) == 64 and payload == sealed.payload
    pkg = F.read_package(sealed.path)
    assert pkg.manifest_bytes == manifest == F.canonical_manifest(json.loads(manifest))
    assert sealed.path.read_bytes()[pkg.payload_offset : pkg.payload_offset + pkg.payload_size] == payload


# --------------------------------------------------------------------------------------------------
# Tampering with the bytes
# --------------------------------------------------------------------------------------------------


def regions(path: Path) -> dict[str, range]:
    data = path.read_bytes()
    pkg = F.read_package(path)
    m, s = len(pkg.manifest_bytes), 64
    l0, l1, l2 = 30 + 13, 30 + 12, 30 + 11
    sig_at = l0 + m
    payload_at = sig_at + l1 + s
    header_len = F.read_age_header(path, pkg.payload_offset, pkg.payload_size).length
    cd_at = payload_at + l2 + pkg.payload_size
    assert pkg.payload_offset == payload_at + l2
    return {
        "local header manifest.json": range(0, l0),
        "manifest": range(l0, l0 + m),
        "local header manifest.sig": range(sig_at, sig_at + l1),
        "signature": range(sig_at + l1, sig_at + l1 + s),
        "local header payload.age": range(payload_at, payload_at + l2),
        "age header": range(payload_at + l2, payload_at + l2 + header_len),
        "payload body": range(payload_at + l2 + header_len, cd_at),
        "central directory": range(cd_at, len(data) - 22),
        "end record": range(len(data) - 22, len(data)),
    }


FRAMING = [
    "local header manifest.json",
    "local header manifest.sig",
    "local header payload.age",
    "central directory",
    "end record",
]
CONTENT = ["manifest", "signature", "age header", "payload body"]


@pytest.mark.parametrize("region", FRAMING)
def test_flipping_any_framing_byte_is_refused(sealed: Sealed, issuer: Issuer, tmp_path: Path, region: str) -> None:
    original = sealed.path.read_bytes()
    target = tmp_path / "t.cseal"
    for i in regions(sealed.path)[region]:
        tampered = bytearray(original)
        tampered[i] ^= 0x01
        target.write_bytes(bytes(tampered))
        refused(target, issuer, sealed.secret, tmp_path / "out")


@pytest.mark.parametrize("region", CONTENT)
def test_flipping_content_bytes_is_refused(sealed: Sealed, issuer: Issuer, tmp_path: Path, region: str) -> None:
    original = sealed.path.read_bytes()
    span = regions(sealed.path)[region]
    target = tmp_path / "t.cseal"
    for i in sorted({span[0], span[1], span[len(span) // 2], span[-2], span[-1]}):
        tampered = bytearray(original)
        tampered[i] ^= 0x80
        target.write_bytes(bytes(tampered))
        assert "CRC-32" in refused(target, issuer, sealed.secret, tmp_path / "out")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(position=st.floats(min_value=0, max_value=1, exclude_max=True), mask=st.integers(1, 255))
def test_any_single_byte_change_is_refused(
    sealed: Sealed, issuer: Issuer, tmp_path: Path, position: float, mask: int
) -> None:
    data = bytearray(sealed.path.read_bytes())
    data[int(position * len(data))] ^= mask
    target = tmp_path / "h.cseal"
    target.write_bytes(bytes(data))
    with pytest.raises(PackageRefused):
        F.verify(F.read_package(target), issuer.trusted, now=NOW)


def test_appended_and_prepended_bytes_refused(sealed: Sealed, issuer: Issuer, tmp_path: Path) -> None:
    data = sealed.path.read_bytes()
    manifest, sig, payload = entries_of(sealed.path)
    target = tmp_path / "t.cseal"
    target.write_bytes(data + b"\0")
    assert "end record" in refused(target, issuer, sealed.secret, tmp_path / "o")
    target.write_bytes(b"MZ" + data)  # offsets now off by two: zipfile still reads this
    refused(target, issuer, sealed.secret, tmp_path / "o")
    target.write_bytes(b"MZ" + zip_raw(standard(manifest, sig, payload), base=2))  # a "valid" shifted zip
    assert zipfile.ZipFile(target).read("payload.age") == payload
    assert "offset 0" in refused(target, issuer, sealed.secret, tmp_path / "o")
    target.write_bytes(zip_raw(standard(manifest, sig, payload), archive_comment=b"hi"))
    refused(target, issuer, sealed.secret, tmp_path / "o")


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda e: [*e, Entry(b"notes.txt", b"x")], "unexpected entry 'notes.txt'"),
        (lambda e: [e[0], e[1], e[2], Entry(b"payload.age", b"x")], "appears more than once"),
        (lambda e: [e[0], e[0], e[1], e[2]], "appears more than once"),
        (lambda e: [e[0], e[2]], "manifest.sig is missing"),
        (lambda e: [e[1], e[0], e[2]], "not in the order"),
        (
            lambda e: [
                Entry(b"manifest.json", zlib.compress(e[0].data)[2:-4], method=8, usize=len(e[0].data)),
                e[1],
                e[2],
            ],
            "entry manifest.json is compressed",
        ),
        (lambda e: [e[0], e[1], Entry(b"payload.age", e[2].data, method=8)], "payload.age is compressed"),
        (
            lambda e: [e[0], Entry(b"manifest.sig", e[1].data, local_extra=b"\x55\x54\x01\x00\x00"), e[2]],
            "manifest.sig has an extra field",
        ),
        (
            lambda e: [e[0], e[1], Entry(b"payload.age", e[2].data, central_extra=b"\x55\x54\x01\x00\x00")],
            "payload.age has an extra field",
        ),
        (
            lambda e: [Entry(b"manifest.json", e[0].data, flags=0x08, descriptor=True), e[1], e[2]],
            "manifest.json uses a data descriptor",
        ),
        (lambda e: [e[0], e[1], Entry(b"payload.age", e[2].data, comment=b"c")], "payload.age has a comment"),
        (lambda e: [e[0], e[1], Entry(b"payload.age", e[2].data, flags=0x800)], "unexpected ZIP flags"),
    ],
    ids=[
        "extra",
        "duplicate",
        "duplicate-first",
        "missing",
        "order",
        "compressed",
        "method8",
        "local-extra",
        "central-extra",
        "data-descriptor",
        "entry-comment",
        "utf8-flag",
    ],
)
def test_bad_entries_refused(
    sealed: Sealed, issuer: Issuer, tmp_path: Path, mutate: Callable[[list[Entry]], list[Entry]], expected: str
) -> None:
    target = tmp_path / "t.cseal"
    target.write_bytes(zip_raw(mutate(standard(*entries_of(sealed.path)))))
    assert expected in refused(target, issuer, sealed.secret, tmp_path / "o")


def test_oversize_entries_refused(sealed: Sealed, issuer: Issuer, tmp_path: Path) -> None:
    manifest, sig, payload = entries_of(sealed.path)
    target = tmp_path / "t.cseal"
    target.write_bytes(zip_raw(standard(b" " * (F.MAX_MANIFEST + 1), sig, payload)))
    assert "larger than 65536" in refused(target, issuer, sealed.secret, tmp_path / "o")
    target.write_bytes(zip_raw(standard(manifest, sig + b"\0", payload)))
    assert "manifest.sig is not 64 bytes" in refused(target, issuer, sealed.secret, tmp_path / "o")


# --------------------------------------------------------------------------------------------------
# Signature, manifest and time
# --------------------------------------------------------------------------------------------------


def test_non_canonical_manifest_with_valid_signature_refused(sealed: Sealed, issuer: Issuer, tmp_path: Path) -> None:
    manifest = json.loads(entries_of(sealed.path)[0])
    for variant in (
        json.dumps(manifest, indent=1).encode(),  # insignificant space
        json.dumps(dict(reversed(manifest.items())), separators=(",", ":"), ensure_ascii=False).encode(),  # order
        F.canonical_manifest(manifest).replace(b"contact-centre", b"contact\\u002dcentre"),  # escape
    ):
        target = forge(tmp_path / "t.cseal", issuer, manifest, sealed.payload, manifest_bytes=variant)
        assert "not canonical" in refused(target, issuer, sealed.secret, tmp_path / "o")
    for variant in (
        F.canonical_manifest(manifest)[:-1] + b',"purpose":"x"}',  # duplicate key
        F.canonical_manifest(manifest).replace(b'"rows":8000', b'"rows":8000.0'),  # float
    ):
        target = forge(tmp_path / "t.cseal", issuer, manifest, sealed.payload, manifest_bytes=variant)
        assert "not valid JSON" in refused(target, issuer, sealed.secret, tmp_path / "o")


def test_unknown_issuer_and_bad_signature_refused(sealed: Sealed, issuer: Issuer, tmp_path: Path) -> None:
    stranger = Ed25519PrivateKey.generate()
    message = refused(
        sealed.path,
        issuer,
        sealed.secret,
        tmp_path / "o",
        trusted={F.key_id(stranger.public_key()): stranger.public_key()},
    )
    assert message.startswith(f"package refused: issuer key {issuer.kid} is not trusted: the package says it comes")
    assert "civicseal trust add" in message  # what to do next
    # A stranger signs a manifest that names the trusted key id.
    manifest, _, payload = entries_of(sealed.path)
    target = tmp_path / "t.cseal"
    target.write_bytes(zip_raw(standard(manifest, stranger.sign(manifest), payload)))
    assert refused(target, issuer, sealed.secret, tmp_path / "o") == "package refused: signature does not verify"


def test_signature_is_checked_before_anything_else_in_the_manifest(
    sealed: Sealed, issuer: Issuer, tmp_path: Path
) -> None:
    manifest = json.loads(entries_of(sealed.path)[0])
    manifest["format"] = 1  # the version before recipient_key: refused as a version, not as a field
    data = F.canonical_manifest(manifest)
    target = tmp_path / "t.cseal"
    target.write_bytes(zip_raw(standard(data, bytes(64), sealed.payload)))
    assert "signature does not verify" in refused(target, issuer, sealed.secret, tmp_path / "o")
    forge(target, issuer, manifest, sealed.payload)
    assert "format version 1 is not 2" in refused(target, issuer, sealed.secret, tmp_path / "o")


@pytest.mark.parametrize(
    ("now", "ok"),
    [
        (EXPIRES, True),
        (EXPIRES + F.CLOCK_SKEW, True),
        (EXPIRES + F.CLOCK_SKEW + timedelta(seconds=1), False),
        (NOW - F.CLOCK_SKEW, True),
        (NOW - F.CLOCK_SKEW - timedelta(seconds=1), False),
    ],
    ids=["at-expiry", "expiry+skew", "expiry+skew+1s", "created-skew", "created-skew-1s"],
)
def test_time_checks_honour_the_skew_exactly(
    sealed: Sealed, issuer: Issuer, tmp_path: Path, now: datetime, ok: bool
) -> None:
    pkg = F.read_package(sealed.path)
    if ok:
        F.verify(pkg, issuer.trusted, now=now)
    else:
        message = refused(sealed.path, issuer, sealed.secret, tmp_path / "o", now=now)
        expected = (
            "package refused: expired at 2026-12-22T10:00:00Z"
            if now > EXPIRES
            else "package refused: created at 2026-11-22T10:00:00Z, in the future"
        )
        assert message == expected


def test_recipient_and_fields_checked(sealed: Sealed, issuer: Issuer, tmp_path: Path) -> None:
    _, bank_key = generate_identity()
    message = refused(sealed.path, issuer, sealed.secret, tmp_path / "o", recipient_key=bank_key)
    assert (
        message == "package refused: package is addressed to another recipient ('contact-centre'), not to this identity"
    )
    manifest = json.loads(entries_of(sealed.path)[0])
    manifest["purpose_extra"] = "x"
    target = forge(tmp_path / "t.cseal", issuer, manifest, sealed.payload)
    assert "unexpected field 'purpose_extra'" in refused(target, issuer, sealed.secret, tmp_path / "o")


def test_payload_hash_and_size_checked(sealed: Sealed, issuer: Issuer, tmp_path: Path) -> None:
    manifest = json.loads(entries_of(sealed.path)[0])
    other = sealed.payload[:-1] + bytes([sealed.payload[-1] ^ 1])
    forge(tmp_path / "t.cseal", issuer, manifest, other, fix_digest=False)
    assert "SHA-256 does not match" in refused(tmp_path / "t.cseal", issuer, sealed.secret, tmp_path / "o")
    manifest["payload"]["size"] += 1
    forge(tmp_path / "t.cseal", issuer, manifest, sealed.payload, fix_digest=False)
    assert "size does not match" in refused(tmp_path / "t.cseal", issuer, sealed.secret, tmp_path / "o")


def test_identity_is_not_asked_for_a_refused_package(sealed: Sealed, issuer: Issuer, tmp_path: Path) -> None:
    asked: list[F.SealedPackage] = []
    with pytest.raises(PackageRefused, match="expired"):
        F.open_package(
            sealed.path,
            trusted=issuer.trusted,
            now=EXPIRES + timedelta(days=1),
            out=tmp_path / "o",
            force=False,
            identity=lambda p: asked.append(p) or X25519Identity(sealed.secret),
        )
    assert asked == []


# --------------------------------------------------------------------------------------------------
# The age header pre-check
# --------------------------------------------------------------------------------------------------


def scrypt_header(log_n: int) -> bytes:
    return age_header((f"scrypt {b64(os.urandom(16))} {log_n}", os.urandom(32))) + os.urandom(64)


@pytest.mark.parametrize("declared", [30, 18])
def test_scrypt_work_factor_30_refused_fast(issuer: Issuer, tmp_path: Path, declared: int) -> None:
    manifest = manifest_for(issuer, F.Mode.PASSPHRASE, scrypt_log_n=18)
    manifest["payload"]["scrypt_log_n"] = declared
    target = forge(tmp_path / "t.cseal", issuer, manifest, scrypt_header(30))
    started = time.monotonic()
    with pytest.raises(PackageRefused) as info:
        F.open_package(
            target,
            trusted=issuer.trusted,
            now=NOW,
            out=tmp_path / "o",
            force=False,
            identity=lambda _p: PassphraseIdentity("anything"),
        )
    assert time.monotonic() - started < 1.0
    expected = (
        "manifest declares scrypt work factor 30, above 20"
        if declared == 30
        else ("age header declares scrypt work factor 30, above 20")
    )
    assert str(info.value) == f"package refused: {expected}"
    assert not (tmp_path / "o").exists()


def test_scrypt_work_factor_must_match_the_manifest(issuer: Issuer, tmp_path: Path) -> None:
    manifest = manifest_for(issuer, F.Mode.PASSPHRASE, scrypt_log_n=18)
    target = forge(tmp_path / "t.cseal", issuer, manifest, scrypt_header(19))
    with pytest.raises(PackageRefused, match="work factor 19, the manifest 18"):
        F.verify(F.read_package(target), issuer.trusted, now=NOW)


def test_age_header_over_4_kib_refused(sealed: Sealed, issuer: Issuer, tmp_path: Path) -> None:
    header = age_header((f"X25519 {b64(os.urandom(32))}", os.urandom(32)), ("x-grease", os.urandom(3500)))
    assert len(header) > F.MAX_AGE_HEADER
    target = forge(tmp_path / "t.cseal", issuer, json.loads(entries_of(sealed.path)[0]), header + os.urandom(100))
    assert "age header is longer than 4096 bytes" in refused(target, issuer, sealed.secret, tmp_path / "o")


@pytest.mark.parametrize(
    ("mode", "stanzas", "expected"),
    [
        (F.Mode.RECIPIENT, [("scrypt AAAAAAAAAAAAAAAAAAAAAA 18", bytes(32))], "stanza of type 'scrypt'"),
        (F.Mode.RECIPIENT, [(f"X25519 {b64(bytes(32))}", bytes(32))] * 2, "exactly one X25519 stanza, not 2"),
        (F.Mode.TETHERED, [("ssh-ed25519 abc def", bytes(32))], "stanza of type 'ssh-ed25519'"),
        (F.Mode.PASSPHRASE, [(f"X25519 {b64(bytes(32))}", bytes(32))], "exactly one scrypt stanza"),
        (
            F.Mode.PASSPHRASE,
            [("scrypt AAAAAAAAAAAAAAAAAAAAAA 18", bytes(32)), ("a-grease", b"")],
            "exactly one scrypt stanza",
        ),
    ],
    ids=["scrypt-in-recipient", "two-x25519", "ssh-in-tethered", "x25519-in-passphrase", "scrypt-with-grease"],
)
def test_stanzas_must_match_the_mode(
    issuer: Issuer, tmp_path: Path, mode: F.Mode, stanzas: list[tuple[str, bytes]], expected: str
) -> None:
    manifest = manifest_for(issuer, mode, scrypt_log_n=18 if mode == F.Mode.PASSPHRASE else None)
    target = forge(tmp_path / "t.cseal", issuer, manifest, age_header(*stanzas) + bytes(40))
    with pytest.raises(PackageRefused, match=expected):
        F.verify(F.read_package(target), issuer.trusted, now=NOW)


def test_age_header_parser_is_strict() -> None:
    good = age_header(("X25519 " + b64(bytes(32)), bytes(32)))
    assert F.parse_age_header(good, more=False).length == len(good)
    # The limit is inclusive: a header of exactly 4096 bytes parses, one byte more does not.
    base = age_header(("X25519 " + b64(bytes(32)), bytes(32)), ("x-grease", b""))
    for extra, ok in ((F.MAX_AGE_HEADER - len(base), True), (F.MAX_AGE_HEADER - len(base) + 1, False)):
        header = base.replace(b"x-grease", b"x-grease " + b"a" * (extra - 1))
        assert len(header) == F.MAX_AGE_HEADER + (0 if ok else 1)
        if ok:
            assert F.parse_age_header(header[: F.MAX_AGE_HEADER], more=True).length == F.MAX_AGE_HEADER
        else:
            with pytest.raises(PackageRefused, match="longer than 4096"):
                F.parse_age_header(header[: F.MAX_AGE_HEADER], more=True)
    for bad, reason in [
        (b"-----BEGIN AGE ENCRYPTED FILE-----\n", "ASCII-armored"),
        (b"age-encryption.org/v2\n", "not an age v1 file"),
        (good[:-10], "truncated"),
        (good.replace(b"-> X25519", b"->  X25519"), "stanza line is malformed"),
        (good.replace(b"--- ", b"---x"), "malformed"),
    ]:
        with pytest.raises(PackageRefused, match=reason):
            F.parse_age_header(bad, more=False)


# --------------------------------------------------------------------------------------------------
# Decryption failures and the output file
# --------------------------------------------------------------------------------------------------


def test_wrong_identity_refused_and_nothing_written(sealed: Sealed, issuer: Issuer, tmp_path: Path) -> None:
    message = refused(sealed.path, issuer, generate_identity()[0], tmp_path / "o")
    assert message == "package refused: the given identity does not open this package"


def test_damaged_ciphertext_leaves_no_partial_plaintext(sealed: Sealed, issuer: Issuer, tmp_path: Path) -> None:
    # The signer itself ships a payload whose last chunk is damaged: earlier chunks decrypt and are
    # written to the temporary file before the failure; all of it must disappear.
    damaged = sealed.payload[:-1] + bytes([sealed.payload[-1] ^ 1])
    target = forge(tmp_path / "t.cseal", issuer, json.loads(entries_of(sealed.path)[0]), damaged)
    assert "does not decrypt" in refused(target, issuer, sealed.secret, tmp_path / "o")


def test_package_changed_after_verification_is_refused(sealed: Sealed, issuer: Issuer, tmp_path: Path) -> None:
    target = tmp_path / "t.cseal"
    shutil.copy(sealed.path, target)

    def swap_then_identity(pkg: F.SealedPackage) -> X25519Identity:
        with open(target, "r+b") as f:  # cut the file inside the payload after all checks passed
            f.truncate(pkg.payload_offset + pkg.payload_size // 2)
        return X25519Identity(sealed.secret)

    with pytest.raises(PackageRefused, match="changed after it was verified"):
        F.open_package(
            target, trusted=issuer.trusted, now=NOW, out=tmp_path / "o", force=False, identity=swap_then_identity
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.cseal"]


def test_missing_package_is_a_seal_error(tmp_path: Path) -> None:
    with pytest.raises(SealError, match="cannot read"):
        F.read_package(tmp_path / "nope.cseal")


def test_existing_out_needs_force(sealed: Sealed, issuer: Issuer, tmp_path: Path) -> None:
    out = tmp_path / "out.csv"
    out.write_bytes(b"keep me")
    with pytest.raises(SealError, match="already exists") as info:
        open_with(sealed.path, issuer, out, X25519Identity(sealed.secret))
    assert not isinstance(info.value, PackageRefused)
    assert out.read_bytes() == b"keep me" and len(list(tmp_path.iterdir())) == 1
    open_with(sealed.path, issuer, out, X25519Identity(sealed.secret), force=True)
    assert out.read_bytes() == PLAINTEXT and len(list(tmp_path.iterdir())) == 1


# --------------------------------------------------------------------------------------------------
# Writing, manifest helpers
# --------------------------------------------------------------------------------------------------


def test_write_package_refuses_what_readers_would_refuse(sealed: Sealed, issuer: Issuer, tmp_path: Path) -> None:
    (tmp_path / "payload.age").write_bytes(sealed.payload)
    other = Ed25519PrivateKey.generate()
    with pytest.raises(SealError, match="issuer key id is not the signing key"):
        F.write_package(tmp_path / "a.cseal", manifest_for(issuer), other, tmp_path / "payload.age")
    with pytest.raises(SealError, match="exactly one scrypt stanza"):
        F.write_package(
            tmp_path / "a.cseal",
            manifest_for(issuer, F.Mode.PASSPHRASE, scrypt_log_n=18),
            issuer.key,
            tmp_path / "payload.age",
        )
    with pytest.raises(SealError, match="key_service must be an http"):
        F.build_manifest(
            package_id="p",
            issuer="city",
            issuer_key_id=issuer.kid,
            purpose="x",
            recipient="r",
            recipient_key=CONTRACTOR_KEY,
            mode=F.Mode.TETHERED,
            key_service_url=None,
            created=NOW,
            expires=EXPIRES,
            payload={"format": "csv", "columns": [], "rows": 0},
        )
    assert list(tmp_path.iterdir()) == [tmp_path / "payload.age"]


def test_canonical_manifest_refuses_floats_and_unsafe_integers() -> None:
    assert F.canonical_manifest({"b": 1, "a": ["é", None]}) == '{"a":["é",null],"b":1}'.encode()
    with pytest.raises(SealError, match=r"payload\.ratio is a float"):
        F.canonical_manifest({"payload": {"ratio": 0.5}})
    with pytest.raises(SealError, match="outside the range"):
        F.canonical_manifest({"n": 2**60})


def test_rfc3339_helpers() -> None:
    assert F.rfc3339(datetime(2026, 11, 22, 19, 0, 0, 999999, tzinfo=UTC).astimezone()) == "2026-11-22T19:00:00Z"
    assert F.parse_rfc3339("2026-11-22T10:00:00Z") == NOW
    for bad in ("2026-11-22T10:00:00+00:00", "2026-11-22 10:00:00Z", "2026-11-22T10:00:00.5Z", "2026-02-30T00:00:00Z"):
        with pytest.raises(ValueError):
            F.parse_rfc3339(bad)
    with pytest.raises(ValueError):
        F.rfc3339(datetime(2026, 1, 1))


def test_key_id_is_sha256_of_the_raw_key(issuer: Issuer) -> None:
    raw = issuer.key.public_key().public_bytes_raw()
    assert F.key_id(issuer.key.public_key()) == hashlib.sha256(raw).hexdigest()[:16] == issuer.kid


# --------------------------------------------------------------------------------------------------
# Trust store
# --------------------------------------------------------------------------------------------------


def test_trust_store(issuer: Issuer, tmp_path: Path) -> None:
    home = tmp_path / "home"
    line = format_public_key(issuer.key.public_key())
    assert load_trusted(home) == {}
    assert add_trusted(home, "city", line) == issuer.kid
    assert add_trusted(home, "city", line) == issuer.kid  # idempotent
    path = home / TRUST_FILE
    assert path.stat().st_mode & 0o777 == 0o600
    assert tomllib.loads(path.read_text())["issuers"]["city"] == {"public_key": line, "key_id": issuer.kid}
    trusted = load_trusted(home)
    assert list(trusted) == [issuer.kid]
    assert trusted[issuer.kid].public_bytes_raw() == issuer.key.public_key().public_bytes_raw()
    other = format_public_key(Ed25519PrivateKey.generate().public_key())
    with pytest.raises(SealError, match="already trusted with key"):
        add_trusted(home, "city", other)
    with pytest.raises(SealError, match="already trusted as issuer city"):
        add_trusted(home, "city-2", line)
    add_trusted(home, "print_shop-2", other)
    assert [i.name for i in load_issuers(home)] == ["city", "print_shop-2"]
    for name in ("bad name", "市", "", "a.b", "x]"):
        with pytest.raises(SealError, match="issuer name"):
            add_trusted(home, name, other)
    for bad in ("ssh-ed25519 AAAA", "ed25519:not-base64!", "ed25519:" + base64.b64encode(bytes(31)).decode()):
        with pytest.raises(SealError):
            add_trusted(home, "x", bad)
    remove_trusted(home, "print_shop-2")
    assert list(load_trusted(home)) == [issuer.kid]
    path.write_text(path.read_text().replace(issuer.kid, "0" * 16))
    with pytest.raises(SealError, match="key_id does not match"):
        load_trusted(home)
    assert [p.name for p in home.iterdir()] == [TRUST_FILE]


def test_trusted_store_opens_a_package(sealed: Sealed, issuer: Issuer, tmp_path: Path) -> None:
    home = tmp_path / "contractor"
    add_trusted(home, "city", format_public_key(issuer.key.public_key()))
    F.verify(F.read_package(sealed.path), load_trusted(home), now=NOW)


# --------------------------------------------------------------------------------------------------
# Interop with the reference age tool (Debian's Go age)
# --------------------------------------------------------------------------------------------------

needs_age = pytest.mark.skipif(not Path(AGE).exists() or shutil.which("age") is None, reason="age not installed")


@needs_age
def test_reference_age_decrypts_an_extracted_payload(sealed: Sealed, tmp_path: Path) -> None:
    keyfile = tmp_path / "key.txt"
    keyfile.touch(mode=0o600)
    keyfile.write_text(sealed.secret + "\n")
    with zipfile.ZipFile(sealed.path) as z:
        (tmp_path / "payload.age").write_bytes(z.read("payload.age"))
    subprocess.run(
        [AGE, "-d", "-i", str(keyfile), "-o", str(tmp_path / "plain"), str(tmp_path / "payload.age")],
        check=True,
        capture_output=True,
        timeout=60,
    )
    assert (tmp_path / "plain").read_bytes() == PLAINTEXT


@needs_age
def test_reference_age_encrypts_a_payload_we_open(issuer: Issuer, tmp_path: Path) -> None:
    secret, public = generate_identity()
    (tmp_path / "plain").write_bytes(PLAINTEXT)
    subprocess.run(
        [AGE, "-r", public, "-o", str(tmp_path / "payload.age"), str(tmp_path / "plain")],
        check=True,
        capture_output=True,
        timeout=60,
    )
    F.write_package(tmp_path / "p.cseal", manifest_for(issuer), issuer.key, tmp_path / "payload.age")
    open_with(tmp_path / "p.cseal", issuer, tmp_path / "out", X25519Identity(secret))
    assert (tmp_path / "out").read_bytes() == PLAINTEXT


@needs_age
def test_reference_age_decrypts_a_passphrase_payload(passphrase_sealed: PassphraseSealed, tmp_path: Path) -> None:
    # age reads a passphrase only from a terminal: drive it through a pseudo-terminal.
    with zipfile.ZipFile(passphrase_sealed.path) as z:
        (tmp_path / "payload.age").write_bytes(z.read("payload.age"))
    pid, fd = pty.fork()
    if pid == 0:  # pragma: no cover - child
        os.execv(AGE, [AGE, "-d", "-o", str(tmp_path / "plain"), str(tmp_path / "payload.age")])
    seen, sent, deadline = b"", False, time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.2)
            if not ready:
                continue
            try:
                chunk = os.read(fd, 1024)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
            if not sent and b"passphrase" in seen.lower():
                os.write(fd, passphrase_sealed.passphrase.encode() + b"\n")
                sent = True
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 0
    assert (tmp_path / "plain").read_bytes() == PLAINTEXT


def test_the_signed_manifest_names_the_recipients_key(sealed: Sealed, issuer: Issuer, tmp_path: Path) -> None:
    manifest = json.loads(entries_of(sealed.path)[0])
    assert manifest["format"] == F.FORMAT_VERSION == 2 and manifest["recipient_key"] == CONTRACTOR_KEY
    for bad in ("age1short", CONTRACTOR_SECRET, None):
        manifest["recipient_key"] = bad
        target = forge(tmp_path / "t.cseal", issuer, manifest, sealed.payload)
        assert "recipient_key is not an age X25519 recipient" in refused(target, issuer, sealed.secret, tmp_path / "o")
        target.unlink()


def test_open_sealed_refuses_a_package_for_another_identity_before_any_key_service(
    issuer: Issuer, tmp_path: Path
) -> None:
    """The reader's own identity decides: a tethered package for someone else never reaches the key service."""
    from civicseal.keys.trust import add_trusted, format_public_key
    from civicseal.seal.open import open_sealed

    _, package_public = generate_identity()
    (tmp_path / "plain.csv").write_bytes(PLAINTEXT)
    encrypt_to_recipient(tmp_path / "plain.csv", tmp_path / "payload.age", package_public)
    manifest = manifest_for(issuer, F.Mode.TETHERED)  # addressed to CONTRACTOR_KEY
    F.write_package(tmp_path / "t.cseal", manifest, issuer.key, tmp_path / "payload.age")
    reader = tmp_path / "reader"
    add_trusted(reader, "city", format_public_key(issuer.key.public_key()))
    stranger = tmp_path / "stranger.key"
    stranger.write_text(generate_identity()[0] + "\n")
    with pytest.raises(PackageRefused, match="addressed to another recipient"):
        open_sealed(
            tmp_path / "t.cseal", trust_home=reader, out=tmp_path / "out.csv", identity_file=stranger,
            token="cst_unused", now=NOW,
        )  # fmt: skip
    assert not (tmp_path / "out.csv").exists()
