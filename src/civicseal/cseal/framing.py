"""The ZIP framing of a package, written and read byte by byte (see the package docstring)."""

from __future__ import annotations

import hashlib
import os
import struct
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Final

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from civicseal.cseal.age_header import age_header_problem, read_age_header
from civicseal.cseal.errors import PackageRefused, SealError
from civicseal.cseal.manifest import (
    CHUNK,
    ENTRIES,
    MAX_MANIFEST,
    SIGNATURE_SIZE,
    Mode,
    _parse_manifest,
    _show,
    canonical_manifest,
    key_id,
    manifest_problem,
)

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


_ZIP_MAGIC = b"PK\x03\x04"  # every package starts with the manifest's local header


def _read_central_directory(f: BinaryIO, file_size: int) -> tuple[list[_Entry], int]:
    """Check the end record and central directory; return the three entries and the directory's offset."""
    if file_size < _END.size + _CENTRAL_SIZE:
        raise PackageRefused("file is too short to be a package")
    end = _read_exact(f, file_size - _END.size, _END.size, "end record")
    sig, disk, cd_disk, disk_entries, total, cd_size, cd_offset, comment_len = _END.unpack(end)
    if sig != _END_SIG and _read_exact(f, 0, len(_ZIP_MAGIC), "first bytes") != _ZIP_MAGIC:
        raise PackageRefused(
            "not a sealed package (.cseal): the file is not a ZIP archive; give verify and open the .cseal file"
            " the city sent (a register CSV is imported with `civicseal register import`)"
        )
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
