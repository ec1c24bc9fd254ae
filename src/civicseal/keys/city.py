"""The city's own keys: the master key (field encryption), the Ed25519 signing key, an age identity, and
the key service's unlock key.

They live in ``<home>/keys`` (0700, files 0600). The unlock key (an age identity) is the only secret the
key service needs: package identities are stored encrypted to it, so a key-service host holding it and
the store can release a package's identity and nothing else — not a My Number, not a signature. Sealing
needs only its public half (``unlock.pub``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pyrage
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from civicseal.cseal import key_id
from civicseal.keys.errors import KeyMaterialError
from civicseal.store.fieldcrypt import FieldCipher
from civicseal.store.files import write_private

MASTER = "master.key"
SIGNING = "signing.key"
IDENTITY = "identity.age"
UNLOCK = "unlock.age"
UNLOCK_PUBLIC = "unlock.pub"


@dataclass(frozen=True, repr=False)
class CityKeys:
    master: bytes
    signing: Ed25519PrivateKey
    identity: pyrage.x25519.Identity

    def __repr__(self) -> str:
        return f"CityKeys(signing_key_id={self.signing_key_id!r}, secrets hidden)"

    @property
    def signing_key_id(self) -> str:
        return key_id(self.signing.public_key())

    def field_cipher(self) -> FieldCipher:
        return FieldCipher(self.master)


class UnlockKey:
    """The key service's age identity: it opens package identities, each bound to its package id."""

    def __init__(self, identity: pyrage.x25519.Identity) -> None:
        self._identity = identity

    def __repr__(self) -> str:
        return "UnlockKey(secret hidden)"

    def unwrap(self, package_id: str, wrapped: bytes) -> str:
        """The package's identity; refuses one wrapped for another package (copied between rows)."""
        try:
            plain = pyrage.decrypt(wrapped, [self._identity]).decode("ascii")
        except (pyrage.DecryptError, UnicodeDecodeError):
            raise KeyMaterialError(f"package {package_id}: its identity does not open with the unlock key") from None
        bound, _, secret = plain.partition("\n")
        if bound != package_id:
            raise KeyMaterialError(f"package {package_id}: its stored identity belongs to another package")
        return secret


def wrap_identity(unlock_public: str, package_id: str, secret: str) -> bytes:
    """A package identity encrypted to the unlock key, bound to ``package_id`` inside the ciphertext."""
    return pyrage.encrypt(f"{package_id}\n{secret}".encode("ascii"), [pyrage.x25519.Recipient.from_str(unlock_public)])


def _private_dir(keys_dir: Path) -> None:
    keys_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(keys_dir, 0o700)


def write_unlock_key(keys_dir: Path, identity: str) -> str:
    """Write an unlock key (never over an existing one) and its public half; return the public recipient."""
    _private_dir(keys_dir)
    if (keys_dir / UNLOCK).exists():
        raise KeyMaterialError(f"{keys_dir / UNLOCK}: exists; keys are never overwritten")
    public = str(pyrage.x25519.Identity.from_str(identity).to_public())
    write_private(keys_dir / UNLOCK, (identity + "\n").encode())
    write_private(keys_dir / UNLOCK_PUBLIC, (public + "\n").encode())
    return public


def unlock_public_key(keys_dir: Path) -> str:
    """The unlock key's public recipient; a home made before the key service was split gets its key now."""
    if not (keys_dir / UNLOCK_PUBLIC).exists() and not (keys_dir / UNLOCK).exists():
        return write_unlock_key(keys_dir, str(pyrage.x25519.Identity.generate()))
    try:
        return str(pyrage.x25519.Recipient.from_str((keys_dir / UNLOCK_PUBLIC).read_text().strip()))
    except (OSError, ValueError, pyrage.RecipientError) as exc:
        raise KeyMaterialError(f"{keys_dir / UNLOCK_PUBLIC}: cannot be read ({type(exc).__name__})") from None


def load_unlock_key(keys_dir: Path) -> UnlockKey:
    try:
        return UnlockKey(pyrage.x25519.Identity.from_str((keys_dir / UNLOCK).read_text().strip()))
    except (OSError, ValueError, pyrage.IdentityError) as exc:
        raise KeyMaterialError(f"{keys_dir}: the unlock key cannot be read ({type(exc).__name__})") from None


def read_unlock_identity(keys_dir: Path) -> str:
    """The unlock key's text, for copying it to a key-service home."""
    load_unlock_key(keys_dir)  # refuse a damaged key before copying it anywhere
    return (keys_dir / UNLOCK).read_text().strip()


def load_signing_key(keys_dir: Path) -> tuple[Ed25519PrivateKey, str]:
    """The signing key alone, with its key id: what anchoring needs."""
    try:
        signing = serialization.load_pem_private_key((keys_dir / SIGNING).read_bytes(), password=None)
    except (OSError, ValueError) as exc:
        raise KeyMaterialError(f"{keys_dir}: the signing key cannot be read ({type(exc).__name__})") from None
    if not isinstance(signing, Ed25519PrivateKey):
        raise KeyMaterialError(f"{keys_dir}: the signing key is not an Ed25519 key")
    return signing, key_id(signing.public_key())


def create_city_keys(keys_dir: Path) -> None:
    """Generate the city's keys; refuses to overwrite any existing key file."""
    _private_dir(keys_dir)
    for name in (MASTER, SIGNING, IDENTITY, UNLOCK):
        if (keys_dir / name).exists():
            raise KeyMaterialError(f"{keys_dir / name}: exists; keys are never overwritten")
    write_private(keys_dir / MASTER, os.urandom(32))
    signing = Ed25519PrivateKey.generate()
    write_private(
        keys_dir / SIGNING,
        signing.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
    )
    write_private(keys_dir / IDENTITY, (str(pyrage.x25519.Identity.generate()) + "\n").encode())
    write_unlock_key(keys_dir, str(pyrage.x25519.Identity.generate()))


def load_city_keys(keys_dir: Path) -> CityKeys:
    signing, _ = load_signing_key(keys_dir)
    try:
        master = (keys_dir / MASTER).read_bytes()
        identity = pyrage.x25519.Identity.from_str((keys_dir / IDENTITY).read_text().strip())
    except (OSError, ValueError, pyrage.IdentityError) as exc:
        raise KeyMaterialError(f"{keys_dir}: the city's keys cannot be read ({type(exc).__name__})") from None
    if len(master) != 32:
        raise KeyMaterialError(f"{keys_dir}: the city's keys are not in the expected form")
    return CityKeys(master=master, signing=signing, identity=identity)
