"""age payloads: encryption helpers and the identities that decrypt them (via pyrage).

An :class:`Identity` is the one thing :func:`civicseal.cseal.open_package` needs from a caller:
something that turns the ``payload.age`` stream into plaintext. Keeping it this small (as age's own
Identity is) lets tethered mode fetch its per-package identity from the key service, recipient mode use
the contractor's key and passphrase mode use a passphrase, without the format layer knowing which.

What streams: X25519 encryption (``pyrage.encrypt_file``) and decryption (``pyrage.decrypt_io``) run in
constant memory. pyrage's passphrase API (``pyrage.passphrase.encrypt``/``decrypt``) takes and returns
``bytes`` only, so passphrase mode holds the payload in memory (about three times its size at peak) and
is limited to :data:`MAX_PASSPHRASE_PLAINTEXT`; both limits are enforced with a clear error.
"""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO, Final, Protocol

import pyrage
from pyrage import passphrase as age_passphrase
from pyrage import x25519

from civicseal.cseal.age_header import parse_age_header
from civicseal.cseal.errors import PackageRefused, SealError
from civicseal.cseal.manifest import MAX_AGE_HEADER, MAX_LOG_N

MAX_PASSPHRASE_PLAINTEXT: Final = 1024 * 1024 * 1024
# Ciphertext overhead: 16 bytes per 64 KiB chunk, a 16-byte nonce and the header.
_MAX_PASSPHRASE_CIPHERTEXT: Final = MAX_PASSPHRASE_PLAINTEXT + MAX_PASSPHRASE_PLAINTEXT // 4096 + 65536


class Identity(Protocol):
    """Something that can decrypt an age payload: read ciphertext from ``src``, write plaintext to ``dst``.

    Implementations raise :class:`PackageRefused` when the payload does not decrypt with them.
    """

    def decrypt(self, src: BinaryIO, dst: BinaryIO) -> None: ...


class X25519Identity:
    """An age X25519 identity (``AGE-SECRET-KEY-1…``); decrypts in constant memory."""

    def __init__(self, secret: str) -> None:
        try:
            self._identity = x25519.Identity.from_str(secret.strip())
        except pyrage.IdentityError:
            raise SealError("not an age X25519 secret key (AGE-SECRET-KEY-1…)") from None

    @property
    def recipient(self) -> str:
        """The public ``age1…`` recipient that encrypts to this identity."""
        return str(self._identity.to_public())

    def decrypt(self, src: BinaryIO, dst: BinaryIO) -> None:
        try:
            pyrage.decrypt_io(src, dst, [self._identity])
        except pyrage.DecryptError as exc:
            if "no matching keys" in str(exc).lower():
                raise PackageRefused("the given identity does not open this package") from None
            raise PackageRefused("payload.age does not decrypt (damaged or forged ciphertext)") from None
        except OSError as exc:
            # decrypt_io reports a chunk that fails authentication as a bare OSError("decryption error");
            # an OSError with an errno comes from the output (disk full, …) and is not the package's fault.
            if exc.errno is None:
                raise PackageRefused("payload.age does not decrypt (damaged or forged ciphertext)") from None
            raise

    def __repr__(self) -> str:  # never show the secret
        return f"X25519Identity({self.recipient})"


def _read_bounded(src: BinaryIO, limit: int) -> bytes:
    parts, total = [], 0
    while chunk := src.read(min(1024 * 1024, limit + 1 - total)):
        parts.append(chunk)
        total += len(chunk)
        if total > limit:
            raise PackageRefused(
                f"passphrase payload is larger than {limit} bytes, the most passphrase mode holds in memory"
            )
    return b"".join(parts)


class PassphraseIdentity:
    """An age scrypt passphrase. pyrage offers no streaming API here: the payload is held in memory."""

    def __init__(self, passphrase: str) -> None:
        if not passphrase:
            raise SealError("the passphrase is empty")
        self._passphrase = passphrase

    def decrypt(self, src: BinaryIO, dst: BinaryIO) -> None:
        ciphertext = _read_bounded(src, _MAX_PASSPHRASE_CIPHERTEXT)
        try:
            plaintext = age_passphrase.decrypt(ciphertext, self._passphrase)
        except pyrage.DecryptError:
            raise PackageRefused("the passphrase does not open this package") from None
        dst.write(plaintext)

    def __repr__(self) -> str:  # never show the passphrase
        return "PassphraseIdentity(…)"


def generate_identity() -> tuple[str, str]:
    """A fresh X25519 identity: ``(secret "AGE-SECRET-KEY-1…", public recipient "age1…")``."""
    identity = x25519.Identity.generate()
    return str(identity), str(identity.to_public())


def _recipient(recipient: str) -> x25519.Recipient:
    try:
        return x25519.Recipient.from_str(recipient.strip())
    except pyrage.RecipientError:
        raise SealError("not an age X25519 recipient (age1…)") from None


def encrypt_to_recipient(src: Path, dst: Path, recipient: str) -> None:
    """Encrypt the file ``src`` to one age X25519 recipient, streaming, into ``dst`` (binary age)."""
    parsed = _recipient(recipient)
    try:
        pyrage.encrypt_file(str(src), str(dst), [parsed])
    except pyrage.EncryptError as exc:
        raise SealError(f"age encryption failed: {type(exc).__name__}") from None


def encrypt_bytes_to_recipient(plaintext: bytes, dst: Path, recipient: str) -> None:
    """Encrypt a payload held in memory into ``dst``: for a payload that must never be on disk in the clear
    (a bank transfer file), not even in the sealing work folder."""
    parsed = _recipient(recipient)
    try:
        Path(dst).write_bytes(pyrage.encrypt(plaintext, [parsed]))
    except pyrage.EncryptError as exc:
        raise SealError(f"age encryption failed: {type(exc).__name__}") from None


def encrypt_with_passphrase(src: Path, dst: Path, passphrase: str) -> int:
    """Encrypt ``src`` with an age scrypt passphrase into ``dst``; return the header's scrypt log N.

    pyrage picks the work factor itself (by timing this machine); the caller records the returned value
    in the manifest. A factor above :data:`MAX_LOG_N` is refused here, because every reader refuses it.
    """
    if not passphrase:
        raise SealError("the passphrase is empty")
    size = Path(src).stat().st_size
    if size > MAX_PASSPHRASE_PLAINTEXT:
        raise SealError(
            f"payload of {size} bytes is too large for passphrase mode (at most {MAX_PASSPHRASE_PLAINTEXT},"
            " as pyrage's passphrase API works in memory); use tethered or recipient mode"
        )
    ciphertext = age_passphrase.encrypt(Path(src).read_bytes(), passphrase)
    try:
        header = parse_age_header(ciphertext[:MAX_AGE_HEADER], more=len(ciphertext) > MAX_AGE_HEADER)
    except PackageRefused as exc:
        raise SealError(f"pyrage wrote an unexpected age header: {exc.reason}") from None
    stanzas = header.stanzas
    if len(stanzas) != 1 or stanzas[0].type != "scrypt" or len(stanzas[0].args) != 2:
        raise SealError("pyrage wrote an unexpected age header: not a single scrypt stanza")
    log_n = int(stanzas[0].args[1])
    if log_n > MAX_LOG_N:
        raise SealError(
            f"pyrage chose scrypt work factor {log_n}, above {MAX_LOG_N}, which readers refuse;"
            " use tethered or recipient mode on this machine"
        )
    Path(dst).write_bytes(ciphertext)
    return log_n
