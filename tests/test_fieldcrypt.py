"""Field encryption's column calls say what the one-value calls say: same ciphertext rules, same digests."""

from __future__ import annotations

import hmac
import os

import pytest

from civicseal.store.errors import StoreError
from civicseal.store.fieldcrypt import FieldCipher, KeyedSha256

COLUMN = "residents.my_number"


def test_a_column_opens_as_it_was_sealed_none_staying_none() -> None:
    cipher = FieldCipher(os.urandom(32))
    values, keys = ["123456789018", None, "987654321093", 1200000], ["R1", "R2", "R3", "R4"]
    sealed = cipher.encrypt_many(values, COLUMN, keys)
    assert sealed[1] is None
    assert cipher.decrypt_many(sealed, COLUMN, keys) == ["123456789018", None, "987654321093", "1200000"]
    assert [cipher.decrypt(b, COLUMN, k) for b, k in zip(sealed, keys, strict=True) if b] == [
        "123456789018",
        "987654321093",
        "1200000",
    ]


def test_a_value_moved_to_another_row_does_not_open_in_a_column() -> None:
    cipher = FieldCipher(os.urandom(32))
    sealed = cipher.encrypt_many(["123456789018", "987654321093"], COLUMN, ["R1", "R2"])
    with pytest.raises(StoreError, match="does not authenticate") as refused:
        cipher.decrypt_many(list(reversed(sealed)), COLUMN, ["R1", "R2"])
    assert "123456789018" not in str(refused.value)


def test_a_column_under_an_older_key_and_the_current_one_opens() -> None:
    older, current = os.urandom(32), os.urandom(32)
    old_blob = FieldCipher(older).encrypt("111", COLUMN, "R1")
    cipher = FieldCipher(current, older=(older,))
    blobs = [old_blob, cipher.encrypt("222", COLUMN, "R2"), None]
    assert cipher.decrypt_many(blobs, COLUMN, ["R1", "R2", "R3"]) == ["111", "222", None]


def test_blind_indexes_of_a_column_are_the_hmacs_of_each_value() -> None:
    cipher = FieldCipher(os.urandom(32))
    indexes = cipher.blind_many(["123456789018", None, 42], COLUMN)
    assert indexes[1] is None
    expected = [hmac.digest(cipher._blind, f"{COLUMN}\0{v}".encode(), "sha256") for v in ("123456789018", 42)]
    assert [indexes[0], indexes[2]] == expected
    assert cipher.blind_index("123456789018", COLUMN) == expected[0]
    key = KeyedSha256(b"k" * 32, b"p\0")
    assert key.digests([b"a", b"bc"]) == b"".join(hmac.digest(b"k" * 32, b"p\0" + m, "sha256") for m in (b"a", b"bc"))
