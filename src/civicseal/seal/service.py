"""Sealing: purpose → minimize → pseudonymize → canaries → age → sign → record.

The minimized table is streamed from the store in batches (in a read transaction, holding no write lock)
into a plaintext file in a private folder of the home, encrypted, and the plaintext removed; the package
file appears (atomically) only once the store has recorded the package, its members, its canaries and its
custody in one short write transaction. If anything fails, neither the file nor the package records
remain; the recipient's canary households, settled first, stay for its next package as they would anyway.
"""

from __future__ import annotations

import base64
import csv
import io
import os
import random
import re
import secrets
import shutil
import tempfile
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import Connection, Row, select, text

from civicseal import cseal as fmt
from civicseal.audit import log as audit
from civicseal.clock import utcnow
from civicseal.contractors.service import recipient_authority
from civicseal.cseal.errors import SealError
from civicseal.cseal.payload import encrypt_to_recipient, encrypt_with_passphrase, generate_identity
from civicseal.custody import service as custody
from civicseal.keys.city import CityKeys, load_city_keys, unlock_public_key, wrap_identity
from civicseal.keys.client import is_loopback_host
from civicseal.ledger.fields import FIELDS
from civicseal.ledger.models import Package, Recipient
from civicseal.ledger.purposes import Purpose, get_purpose
from civicseal.programme.confirmation import PAYABLE_ACCOUNTS_SQL
from civicseal.programme.service import get_programme
from civicseal.scratch import SEAL_PREFIX, claimed
from civicseal.seal.canaries import Canary, canaries_for, check_fields, record_in_package
from civicseal.seal.secrets import check_typed_passphrase, generate_passphrase, new_package_id, pseudonyms
from civicseal.store.bulk import analyze, insert_rows, read_batches
from civicseal.store.engine import reading, writing
from civicseal.store.home import Home

KEY_SERVICE_ENV = "CIVICSEAL_KEY_SERVICE_URL"
DEFAULT_KEY_SERVICE = "http://127.0.0.1:8470"
BATCH = 10_000
SELECTION_SQL = {
    "entitled-households": "e.status NOT IN ('declined', 'withdrawn')",
    "confirmed-with-account": "e.status = 'confirmed' AND a.entitlement_id IS NOT NULL",
}
INTEGER_FIELDS = frozenset({"amount", "account_type", "head_sex"})


@dataclass(frozen=True)
class SealRequest:
    programme: str
    purpose: str
    recipient: str
    out: Path
    mode: fmt.Mode | None = None
    expires_in: timedelta | None = None
    payload_format: str = "parquet"
    fields: tuple[str, ...] | None = None
    key_service_url: str | None = None
    passphrase: str | None = None  # typed by a person; None: generated


@dataclass(frozen=True)
class SealSummary:
    package_id: str
    purpose: str
    recipient: str
    mode: str
    register_households: int
    register_residents: int
    records: int
    residents_carried: int
    fields: tuple[str, ...]
    canaries: int
    created: str
    expires: str
    out: str
    payload_bytes: int
    scrypt_log_n: int | None
    passphrase_bits: int | None
    passphrase: str | None  # a generated passphrase, shown once and never stored
    contractor: str | None  # the recipient's registered organization; None: the city's own or not registered
    contractor_chain: tuple[str, ...]  # display names, the city's contractor first

    def as_dict(self) -> dict[str, object]:
        data = {k: v for k, v in self.__dict__.items() if k != "passphrase"}
        data["fields"] = list(self.fields)
        data["contractor_chain"] = list(self.contractor_chain)
        return data


DURATION_UNITS: Final = {
    "h": timedelta(hours=1), "時間": timedelta(hours=1),
    "d": timedelta(days=1), "日": timedelta(days=1), "日間": timedelta(days=1),
    "w": timedelta(weeks=1), "週": timedelta(weeks=1), "週間": timedelta(weeks=1),
}  # fmt: skip
DURATION: Final = re.compile(f"([0-9]+) ?({'|'.join(sorted(DURATION_UNITS, key=len, reverse=True))})")


def parse_duration(text_value: str) -> timedelta:
    """``14d``, ``12h``, ``2w``, or as a clerk writes them (14日, 12時間, 2週間, full-width digits): how long a
    package stays openable."""
    typed = unicodedata.normalize("NFKC", text_value).strip().lower()
    found = DURATION.fullmatch(typed)
    if found is None or int(found[1]) == 0:
        raise SealError("expiry: a whole number followed by h, d or w (for example 14d, or 14日)")
    return int(found[1]) * DURATION_UNITS[found[2]]


def check_key_service_url(url: str) -> str:
    """HTTPS, or plain HTTP on loopback only: tokens and identities must not cross a network in clear."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme == "https" and host:
        return url.rstrip("/")
    if parts.scheme == "http" and is_loopback_host(host):
        return url.rstrip("/")
    raise SealError("key service URL must be https://, or http:// on loopback (127.0.0.1, ::1, localhost)")


def key_service_url(explicit: str | None) -> str:
    return check_key_service_url(explicit or os.environ.get(KEY_SERVICE_ENV) or DEFAULT_KEY_SERVICE)


# ------------------------------------------------------------------------------------------ the table


def _selection_sql(purpose: Purpose, columns: str) -> str:
    """The purpose's records with ``columns`` (SQL over ``e``, ``r`` and ``a``), in reference-number order."""
    needs_account = "a." in columns + SELECTION_SQL[purpose.selects]
    account_join = f"LEFT JOIN ({PAYABLE_ACCOUNTS_SQL}) a ON a.entitlement_id = e.id" if needs_account else ""
    return (
        f"SELECT {columns} FROM entitlements e JOIN residents r ON r.resident_code = e.head_resident_code"
        f" {account_join} WHERE e.programme_id = :programme AND {SELECTION_SQL[purpose.selects]}"
        " ORDER BY e.reference_number"
    )


def _record_columns(fields: tuple[str, ...]) -> list[tuple[str, str]]:
    """(alias, SQL) of each column the records are read with, in the order the query returns them."""
    columns = [("entitlement_id", "e.id"), ("household_code", "e.household_code"), ("sort_key", "e.reference_number")]
    columns += [(f, FIELDS[f].sql) for f in fields if FIELDS[f].sql]  # type: ignore[misc]
    for f in fields:
        under, row_key = FIELDS[f].encrypted_under_sql, FIELDS[f].encrypted_row_key_sql
        if under and row_key:
            columns += [(f"{f}_under", under), (f"{f}_row_key", row_key)]
    return columns


def _records_sql(purpose: Purpose, fields: tuple[str, ...]) -> str:
    return _selection_sql(purpose, ", ".join(f"{sql} AS {alias}" for alias, sql in _record_columns(fields)))


# What canaries are drawn from: the package's own real rows (canaries.canaries_for).
_REAL_ROWS = (
    "e.id AS entitlement_id, r.birth_date AS birth_date, r.sex AS sex, e.status AS status, e.amount AS amount,"
    " r.postcode AS postcode"
)


class _TableWriter:
    """Parquet (row groups per batch) or CSV with a BOM for spreadsheet users, a batch of columns at a time."""

    def __init__(self, path: Path, fields: tuple[str, ...], payload_format: str) -> None:
        self.fields = fields
        self.format = payload_format
        self.schema = pa.schema([pa.field(f, pa.int64() if f in INTEGER_FIELDS else pa.string()) for f in fields])
        self.file = path.open("wb")
        if payload_format == "parquet":
            self.parquet = pq.ParquetWriter(self.file, self.schema, compression="zstd")
        else:
            self.text = io.TextIOWrapper(self.file, encoding="utf-8-sig", newline="")
            self.csv = csv.writer(self.text, lineterminator="\r\n")
            self.csv.writerow(fields)

    def write(self, columns: dict[str, list[object]]) -> None:
        if not columns[self.fields[0]]:
            return
        if self.format == "parquet":
            self.parquet.write_table(pa.Table.from_pydict(columns, schema=self.schema))
        else:
            self.csv.writerows(zip(*(columns[f] for f in self.fields), strict=True))

    def close(self) -> None:
        if self.format == "parquet":
            self.parquet.close()
            self.file.close()
        else:
            self.text.close()


def _stream_records(
    conn: Connection,
    sql: str,
    programme_id: int,
    keys: CityKeys,
    fields: tuple[str, ...],
    pseudonym_key: bytes,
    canaries: list[Canary],
) -> Iterator[tuple[dict[str, list[object]], list[tuple[int, str, str]]]]:
    """Batches of (columns by field, [(entitlement id, household code, pseudonym)]) in reference-number
    order, the canaries (sorted by reference number) each in its place among the real rows.

    A batch is handled a column at a time (plain driver rows, one pseudonym call, Arrow built from lists):
    building a dictionary per row cost more than reading the rows."""
    pending = list(canaries)
    cipher = keys.field_cipher()
    at = {alias: i for i, (alias, _) in enumerate(_record_columns(fields))}
    for batch in read_batches(conn, sql, {"programme": programme_id}, size=BATCH):
        read = list(zip(*batch, strict=True))
        ids, codes = read[at["entitlement_id"]], read[at["household_code"]]
        aliases = pseudonyms(pseudonym_key, codes)
        columns: dict[str, list[object]] = {}
        for f in fields:
            if not FIELDS[f].sql:
                columns[f] = list(aliases)
            elif FIELDS[f].encrypted_under_sql:
                values, under, row_keys = read[at[f]], read[at[f"{f}_under"]], read[at[f"{f}_row_key"]]
                columns[f] = [cipher.decrypt(*v) for v in zip(values, under, row_keys, strict=True)]
            else:
                columns[f] = list(read[at[f]])
        if "head_birth_date" in columns:
            columns["head_birth_date"] = [None if b is None else str(b)[:10] for b in columns["head_birth_date"]]
        places = []
        for place, sort_key in enumerate(read[at["sort_key"]] if pending else ()):
            while pending and pending[0].reference_number < sort_key:
                places.append((place, pending.pop(0)))
            if not pending:
                break
        for place, canary in reversed(places):  # from the last, so that earlier places stay where they are
            row = canary.row(pseudonym_key, fields)
            for f in fields:
                columns[f].insert(place, row[f])
        yield columns, list(zip(ids, codes, aliases, strict=True))
    if pending:
        rows = [c.row(pseudonym_key, fields) for c in pending]
        yield {f: [row[f] for row in rows] for f in fields}, []


STAGED = "cs_seal_households"


def _start_staging(conn: Connection) -> None:
    conn.exec_driver_sql(
        f"CREATE TEMPORARY TABLE IF NOT EXISTS {STAGED}"
        " (entitlement_id INTEGER PRIMARY KEY, household_code VARCHAR(50), pseudonym VARCHAR(32))"
    )
    conn.exec_driver_sql(f"DELETE FROM {STAGED}")


def _stage_households(conn: Connection, seen: list[tuple[int, str, str]]) -> None:
    insert_rows(conn, STAGED, ("entitlement_id", "household_code", "pseudonym"), seen)


def _record_members(conn: Connection, package_id: str) -> int:
    """Every member of each household carried: the entitlement itself says each member is tax-exempt.

    Then PostgreSQL is told how many rows a package holds. Without statistics it guessed 136, and handing a
    city's mailing package over (which notifies its households through these rows) intersected the whole
    package's key range once per household: 243 s for 74,661 households, 0.2 s with them."""
    result = conn.execute(
        text(
            "INSERT INTO package_members (package_id, resident_code, household_code, pseudonym)"
            f" SELECT :package, m.resident_code, h.household_code, h.pseudonym FROM {STAGED} h"
            " JOIN entitlement_members m ON m.entitlement_id = h.entitlement_id"
        ),
        {"package": package_id},
    )
    analyze(conn, "package_members")
    return result.rowcount


def _register_size(conn: Connection) -> tuple[int, int]:
    row = conn.execute(text("SELECT COUNT(DISTINCT household_code), COUNT(*) FROM residents")).one()
    return int(row[0]), int(row[1])


def _encrypt(
    plain: Path, sealed: Path, mode: fmt.Mode, recipient: Row, passphrase: str | None
) -> tuple[str | None, int | None, str | None, int | None]:
    """Returns (package identity secret, scrypt log N, generated passphrase, passphrase bits)."""
    if mode is fmt.Mode.TETHERED:
        secret, public = generate_identity()
        encrypt_to_recipient(plain, sealed, public)
        return secret, None, None, None
    if mode is fmt.Mode.RECIPIENT:
        encrypt_to_recipient(plain, sealed, recipient.age_recipient)
        return None, None, None, None
    if passphrase is None:
        generated, bits = generate_passphrase()
        return None, encrypt_with_passphrase(plain, sealed, generated), generated, bits
    check_typed_passphrase(passphrase)
    return None, encrypt_with_passphrase(plain, sealed, passphrase), None, None


def seal(
    home: Home,
    request: SealRequest,
    *,
    now: datetime | None = None,
    rng: random.Random | None = None,
    actor: str | None = None,
) -> SealSummary:
    now = (now or utcnow()).replace(microsecond=0)
    rng = rng or random.SystemRandom()
    actor = actor or audit.current_actor()
    purpose = get_purpose(request.purpose)
    fields = purpose.choose(request.fields)
    mode = request.mode or purpose.mode
    expires_in = request.expires_in or purpose.max_validity
    if expires_in > purpose.max_validity:
        raise SealError(f"purpose {purpose.name} allows at most {purpose.max_validity.days} days")
    if request.payload_format not in ("parquet", "csv"):
        raise SealError("payload format: parquet or csv")
    if purpose.payload == "zengin":
        raise SealError(
            f"purpose {purpose.name} carries a Zengin file: make it with `civicseal payments batch --seal-to`"
        )
    url = key_service_url(request.key_service_url) if mode is fmt.Mode.TETHERED else None
    if request.out.exists():
        raise SealError(f"{request.out}: exists; packages are never overwritten")
    keys = load_city_keys(home.keys)
    unlock_to = unlock_public_key(home.keys) if mode is fmt.Mode.TETHERED else ""
    issuer = home.config.issuer
    package_id = new_package_id()
    pseudonym_key = secrets.token_bytes(32)
    work = Path(tempfile.mkdtemp(prefix=SEAL_PREFIX, dir=home.path))  # inside the 0700 home
    placed = False
    try:
        # Three steps on one connection (its temporary staging table lives across them), so that a long seal
        # never holds SQLite's write lock for long: the recipient's canaries are settled in a short write, the
        # table is read, written and encrypted in a read transaction and then outside any, and the package is
        # recorded in a last short write. A revocation or an unlock attempt meanwhile waits seconds at most.
        with claimed(home.path, work), home.engine.connect() as conn:  # a killed run's folder is swept
            with writing(conn):
                programme = get_programme(conn, request.programme)
                recipient = _recipient(conn, request.recipient)
                recipient_authority(conn, recipient.id, purpose.name, on=now)
                canaries: list[Canary] = []
                if purpose.canaries:
                    check_fields(purpose.name, fields)
                    canaries = canaries_for(
                        conn,
                        recipient_id=recipient.id,
                        programme_id=programme.id,
                        real_rows_sql=_selection_sql(purpose, _REAL_ROWS),
                        params={"programme": programme.id},
                        addresses=home.config.canary_addresses,
                        rng=rng,
                        now=now,
                    )
            n_canaries = len(canaries)
            sql = _records_sql(purpose, fields)
            plain = work / "payload"
            with reading(conn):
                households, residents = _register_size(conn)
                total = 0  # the real records, counted as they stream (one read transaction: what a count would say)
                writer = _TableWriter(plain, fields, request.payload_format)
                _start_staging(conn)
                try:
                    for columns, seen in _stream_records(
                        conn, sql, programme.id, keys, fields, pseudonym_key, canaries
                    ):
                        writer.write(columns)
                        _stage_households(conn, seen)
                        total += len(seen)
                finally:
                    writer.close()
            sealed = work / "payload.age"
            identity, log_n, generated, bits = _encrypt(plain, sealed, mode, recipient, request.passphrase)
            plain.unlink()
            expires = now + expires_in
            manifest = fmt.build_manifest(
                package_id=package_id,
                issuer=issuer,
                issuer_key_id=keys.signing_key_id,
                purpose=purpose.name,
                recipient=recipient.name,
                recipient_key=recipient.age_recipient,
                mode=mode,
                key_service_url=url,
                created=now,
                expires=expires,
                payload={
                    "format": request.payload_format,
                    "columns": list(fields),
                    "rows": total + n_canaries,
                    "scrypt_log_n": log_n,
                },
            )
            staged = work / "package.cseal"
            with writing(conn):
                # The authority is checked again where the package is recorded: it may have been withdrawn
                # while the table was being written.
                chain = recipient_authority(conn, recipient.id, purpose.name, on=now)
                sign_and_record(
                    conn,
                    keys,
                    manifest=manifest,
                    sealed=sealed,
                    staged=staged,
                    programme_id=programme.id,
                    recipient_id=recipient.id,
                    fields=fields,
                    records=total,
                    canaries=n_canaries,
                    identity=identity,
                    unlock_public=unlock_to,
                    pseudonym_secret=base64.b64encode(pseudonym_key).decode(),
                    passphrase_bits=bits,
                )
                members = _record_members(conn, package_id)
                record_in_package(conn, package_id, canaries, pseudonym_key)
                custody.record(conn, package_id, custody.Event.CREATED, holder=issuer, at=now, actor=actor, now=now)
                summary = SealSummary(
                    package_id=package_id,
                    purpose=purpose.name,
                    recipient=recipient.name,
                    mode=mode.value,
                    register_households=households,
                    register_residents=residents,
                    records=total,
                    residents_carried=members,
                    fields=fields,
                    canaries=n_canaries,
                    created=fmt.rfc3339(now),
                    expires=fmt.rfc3339(expires),
                    out=str(request.out),
                    payload_bytes=manifest["payload"]["size"],
                    scrypt_log_n=log_n,
                    passphrase_bits=bits,
                    passphrase=generated,
                    contractor=chain[-1].name if chain else None,
                    contractor_chain=tuple(link.display_name for link in chain or ()),
                )
                audit.append(
                    conn,
                    "package.seal",
                    "package",
                    package_id,
                    summary.as_dict()
                    | {"fields": ",".join(fields), "contractor_chain": " > ".join(summary.contractor_chain)},
                    actor=actor,
                    now=now,
                )
                _place(staged, request.out)
                placed = True  # the commit that ends this block is the last thing that can fail
        return summary
    except BaseException:
        if placed:
            request.out.unlink(missing_ok=True)
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _recipient(conn: Connection, name: str) -> Row:
    recipient = conn.execute(select(Recipient.__table__).where(Recipient.name == name)).first()
    if recipient is None:
        raise SealError(f"no recipient named {name!r} (see `civicseal recipient add`)")
    return recipient


def sign_and_record(
    conn: Connection,
    keys: CityKeys,
    *,
    manifest: dict,
    sealed: Path,
    staged: Path,
    programme_id: int,
    recipient_id: int,
    fields: tuple[str, ...],
    records: int,
    canaries: int,
    identity: str | None,
    unlock_public: str,
    pseudonym_secret: str,
    passphrase_bits: int | None,
) -> None:
    """Sign the package into ``staged`` and record its row from the signed manifest: one writer for every
    package, tables and bank transfer files alike. A tethered package's identity is stored encrypted to the
    key service's unlock key (``unlock_public``), bound to the package id; the pseudonym secret under the
    master key, bound to the package's row."""
    cipher = keys.field_cipher()
    package_id = manifest["package_id"]
    manifest_bytes = fmt.write_package(staged, manifest, keys.signing, sealed)
    payload = manifest["payload"]
    conn.execute(
        Package.__table__.insert().values(
            id=package_id,
            purpose=manifest["purpose"],
            programme_id=programme_id,
            recipient_id=recipient_id,
            mode=manifest["mode"],
            key_service_url=manifest["key_service"],
            created_at=fmt.parse_rfc3339(manifest["created"]),
            expires_at=fmt.parse_rfc3339(manifest["expires"]),
            manifest=manifest_bytes,
            payload_sha256=payload["sha256"],
            payload_format=payload["format"],
            fields=",".join(fields),
            records=records,
            canaries=canaries,
            scrypt_log_n=payload["scrypt_log_n"],
            passphrase_bits=passphrase_bits,
            identity_age=None if identity is None else wrap_identity(unlock_public, package_id, identity),
            pseudonym_key_enc=cipher.encrypt(pseudonym_secret, "packages.pseudonym_key", package_id),
        )
    )


def _place(staged: Path, out: Path) -> None:
    """Link, never overwrite: a file that appeared at ``out`` meanwhile is kept and the seal fails."""
    try:
        os.link(staged, out)
    except FileExistsError:
        raise SealError(f"{out}: exists; packages are never overwritten") from None
    except OSError:  # a file system without hard links: copy, still refusing to replace anything
        try:
            with staged.open("rb") as src, out.open("xb") as dst:
                shutil.copyfileobj(src, dst)
        except FileExistsError:
            raise SealError(f"{out}: exists; packages are never overwritten") from None
