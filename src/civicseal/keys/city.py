"""The city's own keys: the master key (field encryption), the Ed25519 signing key and an age identity.

They live in ``<home>/keys`` (0700, files 0600) and nowhere else.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pyrage
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from civicseal.keys.errors import KeyMaterialError
from civicseal.seal.format import key_id
from civicseal.store.fieldcrypt import FieldCipher
from civicseal.store.files import write_private

MASTER = "master.key"
SIGNING = "signing.key"
IDENTITY = "identity.age"


@dataclass(frozen=True)
class CityKeys:
    master: bytes
    signing: Ed25519PrivateKey
    identity: pyrage.x25519.Identity

    @property
    def signing_key_id(self) -> str:
        return key_id(self.signing.public_key())

    def field_cipher(self) -> FieldCipher:
        return FieldCipher(self.master)


def create_city_keys(keys_dir: Path) -> None:
    """Generate the city's keys; refuses to overwrite any existing key file."""
    keys_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(keys_dir, 0o700)
    for name in (MASTER, SIGNING, IDENTITY):
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


def load_city_keys(keys_dir: Path) -> CityKeys:
    try:
        master = (keys_dir / MASTER).read_bytes()
        signing = serialization.load_pem_private_key((keys_dir / SIGNING).read_bytes(), password=None)
        identity = pyrage.x25519.Identity.from_str((keys_dir / IDENTITY).read_text().strip())
    except (OSError, ValueError) as exc:
        raise KeyMaterialError(f"{keys_dir}: the city's keys cannot be read ({type(exc).__name__})") from None
    if len(master) != 32 or not isinstance(signing, Ed25519PrivateKey):
        raise KeyMaterialError(f"{keys_dir}: the city's keys are not in the expected form")
    return CityKeys(master=master, signing=signing, identity=identity)
