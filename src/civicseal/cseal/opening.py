"""Opening: verify, then decrypt through a claimed temporary file beside the output, then rename."""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import secrets
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from civicseal.cseal.errors import PackageRefused, SealError
from civicseal.cseal.framing import SealedPackage, _fsync_dir, read_package
from civicseal.cseal.manifest import CHUNK, Claim
from civicseal.cseal.payload import Identity
from civicseal.cseal.verify import verify

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
        raise SealError(f"{out} already exists; choose another --out, or add --force to replace it") from None
    except OSError:  # a filesystem without hard links
        if out.exists() or out.is_symlink():
            raise SealError(f"{out} already exists; choose another --out, or add --force to replace it") from None
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
        raise SealError(f"{out} already exists; choose another --out, or add --force to replace it")
    pkg = read_package(path)
    verify(pkg, trusted, now=now, recipient_key=recipient_key)
    chosen = identity(pkg)
    try:
        _decrypt_to(pkg, chosen, out, force, claim)
    except OSError as exc:
        raise SealError(f"cannot write {out}: {exc.strerror or type(exc).__name__}") from None
    return pkg
