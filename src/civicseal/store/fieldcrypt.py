"""Field encryption at rest (AES-256-GCM) and keyed blind indexes (HMAC-SHA-256).

Bank account numbers, My Number and income are stored only as ciphertext. A ciphertext is
``key id (4 bytes) || nonce (12 bytes) || AES-GCM(ciphertext || tag)`` and is bound by the associated data
to its table, column and row key (``table.column NUL row key``), so a value copied into another column
or another row — one resident's My Number into another's — does not decrypt. The key id lets a later
master key rotate in while old rows still open. Nonces are a random 8-byte prefix per cipher instance plus
a 32-bit counter (NIST SP 800-38D 8.2.1): unique without a system call per field, which import needs, and
with 64 random bits per instance two instances in a city's lifetime do not share a prefix (birthday bound
about n²/2^65); a prefix is drawn afresh before its counter could wrap.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator, Sequence
from itertools import compress, repeat
from operator import itemgetter

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from civicseal.store.errors import StoreError

COUNTER_LIMIT = 2**32 - 1


def derive_key(master: bytes, label: bytes) -> bytes:
    """A 32-byte key for one use, from the master key: one HKDF label per use, so no two uses share a key."""
    return HKDF(algorithm=SHA256(), length=32, salt=None, info=b"civicseal/" + label).derive(master)


def master_key_id(master: bytes) -> bytes:
    return hashlib.sha256(b"civicseal/key-id" + master).digest()[:4]


class FieldCipher:
    """Encrypts and decrypts single field values under keys derived from the city's master key."""

    def __init__(self, master: bytes, *, older: tuple[bytes, ...] = ()) -> None:
        self._keys = (master, older)
        self._key_id = master_key_id(master)
        self._aead = {master_key_id(m): AESGCM(derive_key(m, b"field")) for m in (*older, master)}
        self._blind = derive_key(master, b"blind-index")
        self._blind_by_column: dict[str, KeyedSha256] = {}  # its pads hashed once per column, not per value
        self._row = derive_key(master, b"row-mac")
        self._fresh_prefix()

    def __reduce__(self) -> tuple:
        """A copy in another process is a new instance: its own nonce prefix, never a shared counter."""
        master, older = self._keys
        return (_cipher, (master, older))

    def _fresh_prefix(self) -> None:
        self._prefix = os.urandom(8)
        self._next = 0

    def _nonces(self, count: int) -> list[bytes]:
        """``count`` nonces never used before under this key: a fresh prefix before the counter could wrap."""
        if self._next + count > COUNTER_LIMIT:
            if count > COUNTER_LIMIT:
                raise StoreError("too many values to encrypt in one call")
            self._fresh_prefix()
        start, self._next = self._next, self._next + count
        counters = map(int.to_bytes, range(start, start + count), repeat(4), repeat("big"))
        return list(map(bytes.__add__, repeat(self._prefix), counters))

    def encrypt(self, value: str, column: str, row_key: object) -> bytes:
        return self.encrypt_many([value], column, [row_key])[0]  # type: ignore[return-value]

    def encrypt_many(self, values: Sequence[object], column: str, row_keys: Sequence[object]) -> list[bytes | None]:
        """A column at once, each value stored as its text (None stays None), bound to ``column`` and its
        row's key.

        Every step is a map over the column, so the AEAD is called from C: import encrypts millions.
        """
        plain, keys = _present(values, row_keys)
        nonces = self._nonces(len(plain))
        sealed = map(self._aead[self._key_id].encrypt, nonces, _texts(plain), _bound_to(column, keys))
        blobs = list(map(bytes.__add__, map(self._key_id.__add__, nonces), sealed))
        return _in_place(values, blobs)

    def decrypt(self, blob: bytes, column: str, row_key: object) -> str:
        return self._open(blob, column, next(_bound_to(column, [row_key])))

    def decrypt_many(self, blobs: Sequence[bytes | None], column: str, row_keys: Sequence[object]) -> list[str | None]:
        """:meth:`decrypt` of a column (None stays None): one AEAD call per value from C through map when
        every value is under one key, as a city's register is; else value by value."""
        present, keys = _present(blobs, row_keys)
        ids = {bytes(blob[:4]) for blob in present}
        aead = self._aead.get(ids.pop()) if len(ids) == 1 else None
        if aead is None:
            return _in_place(blobs, [self.decrypt(b, column, k) for b, k in zip(present, keys, strict=True)])
        nonces = map(bytes, map(_NONCE, present))
        bodies = map(bytes, map(_SEALED, present))
        try:
            opened = list(map(bytes.decode, map(aead.decrypt, nonces, bodies, _bound_to(column, keys))))
        except InvalidTag:
            raise StoreError(
                f"{column}: ciphertext does not authenticate (altered, or moved from another row)"
            ) from None
        return _in_place(blobs, opened)

    def decrypt_unbound(self, blob: bytes, column: str) -> str:
        """A value sealed before ciphertexts were bound to their row (only package identities, to re-wrap)."""
        return self._open(blob, column, column.encode())

    def _open(self, blob: bytes, column: str, aad: bytes) -> str:
        aead = self._aead.get(bytes(blob[:4]))
        if aead is None:
            raise StoreError(f"{column}: encrypted under an unknown key")
        try:
            return aead.decrypt(bytes(blob[4:16]), bytes(blob[16:]), aad).decode()
        except InvalidTag:
            raise StoreError(
                f"{column}: ciphertext does not authenticate (altered, or moved from another row)"
            ) from None

    def blind_index(self, value: str, column: str) -> bytes:
        """Equality look-up without the plaintext: equal values give equal indexes, only with the key."""
        return self.blind_many([value], column)[0]  # type: ignore[return-value]

    def blind_many(self, values: Sequence[object], column: str) -> list[bytes | None]:
        """:meth:`blind_index` of a column of values, each as its text (None stays None)."""
        keyed = self._blind_by_column.get(column)
        if keyed is None:
            keyed = self._blind_by_column[column] = KeyedSha256(self._blind, column.encode() + b"\0")
        plain, _ = _present(values, values)
        joined = keyed.digests(_texts(plain))
        return _in_place(values, [joined[i : i + 32] for i in range(0, len(joined), 32)])

    def row_macs(self, lines: Iterable[bytes]) -> list[bytes]:
        """Keyed digests of rows as the file gave them (each line in UTF-8), so re-importing the same files
        writes nothing.

        Over the raw line, not the normalized values, because that costs a few C calls a row: a register
        re-exported in another spelling only rewrites its rows with the same values. The keyed state is
        set up once and copied per line (keying BLAKE2 costs a block of its own).
        """
        keyed = hashlib.blake2b(key=self._row, digest_size=16)
        digests = []
        for data in lines:
            state = keyed.copy()
            state.update(data)
            digests.append(state.digest())
        return digests


_NONCE, _SEALED = itemgetter(slice(4, 16)), itemgetter(slice(16, None))  # a ciphertext's parts after its key id


def _present(values: Sequence[object], keys: Sequence[object]) -> tuple[Sequence[object], Sequence[object]]:
    """The values that are not None, and their keys."""
    if None not in values:
        return values, keys
    kept = [v is not None for v in values]
    return list(compress(values, kept)), list(compress(keys, kept))


def _texts(values: Iterable[object]) -> Iterator[bytes]:
    return map(str.encode, map(str, values))


def _bound_to(column: str, row_keys: Iterable[object]) -> Iterator[bytes]:
    """The associated data a value is sealed under: its column and its row's key, so that a ciphertext moved
    to another column or row does not open."""
    return map(bytes.__add__, repeat(column.encode() + b"\0"), _texts(row_keys))


def _in_place(values: Sequence[object], results: list[bytes]) -> list[bytes | None]:
    """``results`` (one per value that is not None) with None where ``values`` had it."""
    if None not in values:
        return results  # type: ignore[return-value]
    done = iter(results)
    return [None if v is None else next(done) for v in values]


class KeyedSha256:
    """HMAC-SHA-256 under one key for many short messages, each after an optional fixed prefix.

    The inner and outer pads are hashed once and copied per message (RFC 2104 as written), which costs a
    third of ``hmac.digest``: OpenSSL 3 sets up a new HMAC context on every one-shot call. The DLP index
    and a package's pseudonyms each key hundreds of thousands of values.
    """

    def __init__(self, key: bytes, prefix: bytes = b"") -> None:
        if len(key) > 64:
            raise ValueError("an HMAC-SHA-256 key of at most one block (64 bytes)")
        block = key.ljust(64, b"\0")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in block))
        self._inner.update(prefix)
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in block))

    def digests(self, messages: Iterable[bytes], size: int = 32) -> bytes:
        """The first ``size`` bytes of each message's HMAC, concatenated."""
        inner_pad, outer_pad = self._inner, self._outer
        out = []
        for message in messages:
            inner = inner_pad.copy()
            inner.update(message)
            outer = outer_pad.copy()
            outer.update(inner.digest())
            out.append(outer.digest()[:size])
        return b"".join(out)


def _cipher(master: bytes, older: tuple[bytes, ...]) -> FieldCipher:
    return FieldCipher(master, older=older)
