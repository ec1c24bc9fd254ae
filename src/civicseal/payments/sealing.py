"""A Zengin file sealed for the bank: a `bank-transfer` package whose payload is the file itself.

The file's bytes are encrypted from memory (:func:`encrypt_bytes_to_recipient`), so its plaintext never
reaches a disk; only the ciphertext and the package are staged in a private folder of the home. The
package is recorded (row, members, custody, audit) in the caller's transaction, as `seal` records its
own. A bank file carries no canaries: a bank would pay them.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import Connection, select, text

from civicseal import cseal as fmt
from civicseal.audit import log as audit
from civicseal.cseal.payload import encrypt_bytes_to_recipient, generate_identity
from civicseal.custody import service as custody
from civicseal.keys.city import load_city_keys, unlock_public_key
from civicseal.ledger.models import Recipient
from civicseal.ledger.purposes import get_purpose
from civicseal.payments.errors import PaymentsError
from civicseal.scratch import SEAL_PREFIX
from civicseal.seal.secrets import new_package_id
from civicseal.seal.service import key_service_url, sign_and_record
from civicseal.store.engine import is_sqlite
from civicseal.store.home import Home

PURPOSE = "bank-transfer"
CUSTOMER_CODE_DIGITS = 10


def customer_code(item_no: int) -> str:
    """The item's number in the file's customer code 1: what a bank's return list echoes back."""
    return str(item_no).zfill(CUSTOMER_CODE_DIGITS)


@dataclass(frozen=True)
class SealedFile:
    package_id: str
    recipient: str
    mode: str
    expires: str
    staged: Path  # the finished package in the private work folder, for the caller to place


def _record_members(conn: Connection, package_id: str, batch_id: int) -> int:
    """Each member of each household paid; its pseudonym in this package is the item's customer code."""
    code = "printf('%010d', i.item_no)" if is_sqlite(conn) else "lpad(CAST(i.item_no AS TEXT), 10, '0')"
    return conn.execute(
        text(
            "INSERT INTO package_members (package_id, resident_code, household_code, pseudonym)"
            f" SELECT :package, m.resident_code, e.household_code, {code} FROM payment_items i"
            " JOIN entitlements e ON e.id = i.entitlement_id"
            " JOIN entitlement_members m ON m.entitlement_id = i.entitlement_id WHERE i.batch_id = :batch"
        ),
        {"package": package_id, "batch": batch_id},
    ).rowcount


@contextmanager
def sealed_transfer_file(
    conn: Connection,
    home: Home,
    *,
    data: bytes,
    transfers: int,
    programme_id: int,
    batch_id: int,
    recipient: str,
    mode: fmt.Mode | None,
    key_service: str | None,
    now: datetime,
    actor: str,
) -> Iterator[SealedFile]:
    """Seal ``data`` and record the package; the staged package exists only inside the block."""
    purpose = get_purpose(PURPOSE)
    if purpose.payload != "zengin" or purpose.canaries:
        raise PaymentsError(f"purpose {PURPOSE} must declare format zengin and no canaries (a bank would pay them)")
    mode = mode or purpose.mode
    if mode is fmt.Mode.PASSPHRASE:
        raise PaymentsError("a bank file is sealed tethered or to the bank's own key (recipient), not by passphrase")
    row = conn.execute(select(Recipient.__table__).where(Recipient.name == recipient)).first()
    if row is None:
        raise PaymentsError(f"no recipient named {recipient!r}; add the bank with `civicseal recipient add`")
    url = key_service_url(key_service) if mode is fmt.Mode.TETHERED else None
    keys = load_city_keys(home.keys)
    package_id = new_package_id()
    unlock_to = unlock_public_key(home.keys) if mode is fmt.Mode.TETHERED else ""
    work = Path(tempfile.mkdtemp(prefix=SEAL_PREFIX, dir=home.path))  # inside the 0700 home
    try:
        sealed = work / "payload.age"
        if mode is fmt.Mode.TETHERED:
            identity, public = generate_identity()
        else:
            identity, public = None, row.age_recipient
        encrypt_bytes_to_recipient(data, sealed, public)
        expires = now + purpose.max_validity
        manifest = fmt.build_manifest(
            package_id=package_id,
            issuer=home.config.issuer,
            issuer_key_id=keys.signing_key_id,
            purpose=PURPOSE,
            recipient=row.name,
            recipient_key=row.age_recipient,
            mode=mode,
            key_service_url=url,
            created=now,
            expires=expires,
            payload={"format": "zengin", "columns": list(purpose.fields), "rows": transfers, "scrypt_log_n": None},
        )
        staged = work / "package.cseal"
        sign_and_record(
            conn,
            keys,
            manifest=manifest,
            sealed=sealed,
            staged=staged,
            programme_id=programme_id,
            recipient_id=row.id,
            fields=purpose.fields,
            records=transfers,
            canaries=0,
            identity=identity,
            unlock_public=unlock_to,
            # No keyed pseudonyms here: the customer codes re-identify through payment_items.
            pseudonym_secret=f"payment-batch:{batch_id}",
            passphrase_bits=None,
        )
        members = _record_members(conn, package_id, batch_id)
        custody.record(conn, package_id, custody.Event.CREATED, holder=home.config.issuer, at=now, actor=actor, now=now)
        audit.append(
            conn,
            "package.seal",
            "package",
            package_id,
            {
                "purpose": PURPOSE,
                "recipient": row.name,
                "mode": mode.value,
                "records": transfers,
                "residents_carried": members,
                "canaries": 0,
                "format": "zengin",
            },
            actor=actor,
            now=now,
        )
        yield SealedFile(package_id, row.name, mode.value, fmt.rfc3339(expires), staged)
    finally:
        shutil.rmtree(work, ignore_errors=True)
