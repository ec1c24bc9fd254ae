"""The exact-data-match index: keyed fingerprints of every register value a leak could carry, no plaintext.

Every resident counts, moved out and deceased included: a leaked copy of an old export is still a leak.
Each resident is an ordinal (its position in resident-code order), never its code. A posting says
"fingerprint F is slot S of resident R"; slots group into elements, and a name, its kana and the account
holder's kana are one element, because names repeat across a city and only a second element of the
same resident corroborates a match.

The key is derived from the city's master key under its own HKDF label. The index in the home carries
no key (the city derives it); an exported index carries it inside a sealed package for one recipient,
since a scanning station has no master key.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import IntEnum
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from sqlalchemy import Connection, select, text

from civicseal import cseal as fmt
from civicseal.audit import log as audit
from civicseal.clock import utcnow
from civicseal.cseal.errors import SealError
from civicseal.cseal.payload import encrypt_to_recipient
from civicseal.dlp.errors import DlpError
from civicseal.dlp.normalize import Fingerprinter, canonical, key_id
from civicseal.keys.city import load_city_keys
from civicseal.ledger.models import Recipient
from civicseal.register.normalize import split_katagaki
from civicseal.seal.secrets import new_package_id
from civicseal.store.bulk import read_batches
from civicseal.store.engine import transaction
from civicseal.store.fieldcrypt import FieldCipher, derive_key
from civicseal.store.home import Home

KEY_LABEL = b"dlp-fingerprint"
INDEX_FILE = "index.parquet"
META = b"civicseal.dlp"
VERSION = 1
PURPOSE = "dlp-index"
COLUMNS = ("fingerprint", "resident", "slot")
BATCH = 50_000
# Only the slot column repeats: dictionary pages for the fingerprints and residents (nearly all distinct)
# were written, found too large and dropped, which cost half the write and 2 MB.
PARQUET_OPTIONS: dict[str, object] = {"compression": "zstd", "use_dictionary": ["slot"]}
EXPORT_DAYS = 30
REMEMBERED = 500_000  # values per slot whose fingerprints are kept across batches


class Element(IntEnum):
    """What a finding is, as the report names it."""

    NAME = 0
    BIRTH_DATE = 1
    ADDRESS = 2
    MY_NUMBER = 3
    BANK_ACCOUNT = 4

    @property
    def label(self) -> str:
        return self.name.lower()


class Slot(IntEnum):
    """Where a fingerprint came from in the register; several slots may make one element."""

    NAME = 0
    KANA = 1
    BIRTH_DATE = 2
    ADDRESS = 3
    MY_NUMBER = 4
    ACCOUNT = 5
    HOLDER_KANA = 6
    STREET = 7  # the address without the building and room that follow its house number (方書)


SLOT_ELEMENT = np.array(
    [Element.NAME, Element.NAME, Element.BIRTH_DATE, Element.ADDRESS, Element.MY_NUMBER, Element.BANK_ACCOUNT,
     Element.NAME, Element.ADDRESS],
    dtype=np.uint8,
)  # fmt: skip


REPEATING = frozenset({Slot.NAME, Slot.KANA, Slot.BIRTH_DATE, Slot.ADDRESS, Slot.HOLDER_KANA, Slot.STREET})
"""Slots whose values recur across the register. A household's address recurs too: its members are read in
resident-code order, so they fall in different batches (432,000 address HMACs for 207,000 addresses, 0.5 s
of a city's build). A My Number never does."""


def streets(addresses: list[str]) -> tuple[list[int], list[str]]:
    """Which addresses have a 方書 (building and room) after the house number, and the street part of each:
    a list that keeps 住所 and 方書 in two columns (a mailing list, most of all) matches by its 住所 alone."""
    at, found = [], []
    for i, address in enumerate(addresses):
        if " " in address and (parts := split_katagaki(address)):
            at.append(i)
            found.append(parts[0])
    return at, found


def account_text(bank: str, branch: str, number: str) -> str:
    """One value for a bank account: bank, branch and number are one element only together."""
    return f"{bank.zfill(4)}|{branch.zfill(3)}|{number.zfill(7)}"


def fingerprint_key(master: bytes) -> bytes:
    return derive_key(master, KEY_LABEL)


@dataclass
class FingerprintIndex:
    """The index in memory: sorted unique fingerprints with their postings (CSR), and each resident's own."""

    key: bytes
    fingerprints: np.ndarray  # uint64, sorted, unique
    offsets: np.ndarray  # int64, len(fingerprints) + 1: postings of fingerprint i are offsets[i]:offsets[i+1]
    residents: np.ndarray  # uint32 per posting
    slots: np.ndarray  # uint8 per posting
    element: np.ndarray  # uint8 per fingerprint
    own: np.ndarray  # int32 [residents, slots]: each resident's fingerprint number per slot, -1 if none
    resident_count: int
    created: str
    pair_keys: np.ndarray  # int64, sorted, unique: lo * F + hi for two fingerprints of one resident in two elements
    pair_offsets: np.ndarray  # int64, len(pair_keys) + 1: residents of pair key i are pair_offsets[i]:pair_offsets[i+1]
    pair_residents: np.ndarray  # uint32, grouped by pair key

    @classmethod
    def from_postings(cls, key: bytes, table: pa.Table, resident_count: int, created: str) -> FingerprintIndex:
        prints = table.column("fingerprint").to_numpy()
        if len(prints) > 1 and (prints[1:] < prints[:-1]).any():
            order = np.argsort(prints, kind="stable")
            table = table.take(order)
            prints = prints[order]
        residents = table.column("resident").to_numpy().astype(np.uint32)
        slots = table.column("slot").to_numpy().astype(np.uint8)
        starts = np.flatnonzero(np.r_[True, prints[1:] != prints[:-1]]) if len(prints) else np.zeros(0, np.int64)
        offsets = np.r_[starts, len(prints)].astype(np.int64)
        number = np.repeat(np.arange(len(starts), dtype=np.int32), np.diff(offsets))
        own = np.full((resident_count, len(Slot)), -1, dtype=np.int32)
        own[residents, slots] = number
        pair_keys, pair_offsets, pair_residents = _pairs(own, len(starts))
        return cls(
            key=key,
            fingerprints=prints[starts],
            offsets=offsets,
            residents=residents,
            slots=slots,
            element=SLOT_ELEMENT[slots[starts]],
            own=own,
            resident_count=resident_count,
            created=created,
            pair_keys=pair_keys,
            pair_offsets=pair_offsets,
            pair_residents=pair_residents,
        )

    def pair_key(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return pair_key(a, b, len(self.fingerprints))

    def residents_of_pairs(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For pair keys: the key each match belongs to, and its resident (a key may fit several).

        One search per key: the keys are unique and their residents grouped, so a second search for the end
        of a run of equal keys (half the cost of corroboration) is not needed."""
        if not len(self.pair_keys):
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        at = np.minimum(_search(self.pair_keys, keys), len(self.pair_keys) - 1)
        hit = np.flatnonzero(self.pair_keys[at] == keys)
        starts = self.pair_offsets[at[hit]]
        counts = self.pair_offsets[at[hit] + 1] - starts
        which = np.repeat(hit, counts)
        shift = np.repeat(starts - np.r_[0, np.cumsum(counts)[:-1]], counts)
        return which, self.pair_residents[shift + np.arange(counts.sum())].astype(np.int64)

    def find(self, prints: np.ndarray) -> np.ndarray:
        """The fingerprint number of each print, or -1 where the register holds no such value."""
        if not len(self.fingerprints):
            return np.full(len(prints), -1, dtype=np.int32)
        at = _search(self.fingerprints, prints)
        at_clipped = np.minimum(at, len(self.fingerprints) - 1)
        return np.where(self.fingerprints[at_clipped] == prints, at_clipped, -1).astype(np.int32)

    def postings(self, numbers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For fingerprint numbers (one per hit): the hit each posting belongs to, and the posting."""
        counts = self.offsets[numbers + 1] - self.offsets[numbers]
        hit = np.repeat(np.arange(len(numbers)), counts)
        shift = np.repeat(self.offsets[numbers] - np.r_[0, np.cumsum(counts)[:-1]], counts)
        return hit, shift + np.arange(counts.sum())


def _search(table: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """``np.searchsorted`` with the keys sorted first: neighbouring look-ups touch neighbouring memory,
    three to four times faster on a table larger than the cache. (Any sort will do: equal keys find one
    place; numpy's default sort is several times faster than a stable one.)"""
    order = np.argsort(keys)
    at = np.empty(len(keys), dtype=np.int64)
    at[order] = np.searchsorted(table, keys[order])
    return at


def pair_key(a: np.ndarray, b: np.ndarray, count: int) -> np.ndarray:
    """One key for an unordered pair of fingerprint numbers."""
    a, b = a.astype(np.int64), b.astype(np.int64)
    return np.minimum(a, b) * count + np.maximum(a, b)


def _pairs(own: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every pair of one resident's fingerprints in two different elements, as sorted unique keys with their
    residents (CSR): corroboration is then one look-up per pair of matched cells in a row, whatever the
    number of namesakes."""
    columns = [np.ascontiguousarray(own[:, s]) for s in range(own.shape[1])]  # read once, not per pair
    present = [column >= 0 for column in columns]
    keys, residents = [], []
    for s in range(own.shape[1]):
        for t in range(s + 1, own.shape[1]):
            if SLOT_ELEMENT[s] == SLOT_ELEMENT[t]:
                continue
            both = np.flatnonzero(present[s] & present[t])
            keys.append(pair_key(columns[s][both], columns[t][both], count))
            residents.append(both.astype(np.uint32))
    all_keys = np.concatenate(keys)
    order = _stable_order(all_keys, count * count)
    all_keys = all_keys[order]
    starts = np.flatnonzero(np.r_[True, all_keys[1:] != all_keys[:-1]]) if len(all_keys) else np.zeros(0, np.int64)
    offsets = np.r_[starts, len(all_keys)].astype(np.int64)
    return all_keys[starts], offsets, np.concatenate(residents)[order]


def _stable_order(keys: np.ndarray, bound: int) -> np.ndarray:
    """``np.argsort(keys, kind="stable")`` for non-negative int64 keys below ``bound``: where each key and its
    position fit in 63 bits together, one plain sort of the two packed (a city's 3.4 M pair keys: 0.39 ->
    0.25 s); else the stable argsort itself."""
    shift = max(len(keys) - 1, 0).bit_length()
    if max(bound - 1, 0).bit_length() + shift > 63:
        return np.argsort(keys, kind="stable")
    packed = (keys << shift) | np.arange(len(keys), dtype=np.int64)
    packed.sort()
    return packed & ((1 << shift) - 1)


@dataclass(frozen=True)
class IndexSummary:
    residents: int
    fingerprints: int
    postings: int
    elements: dict[str, int]
    path: str
    created: str

    def as_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


def index_path(home: Home) -> Path:
    return home.path / "dlp" / INDEX_FILE


def _resident_batches(
    conn: Connection, cipher: FieldCipher
) -> Iterator[tuple[list[str], list[str], list[str], list[str], list[str | None], list[str], list[bool]]]:
    """Residents in resident-code order, a batch at a time, as columns."""
    for rows in read_batches(
        conn,
        "SELECT name, name_kana, birth_date, address, my_number_enc, household_code, is_head, resident_code"
        " FROM residents ORDER BY resident_code",
        size=BATCH,
    ):
        names, kanas, births, addresses, numbers, households, heads, codes = map(list, zip(*rows, strict=True))
        yield (
            names,
            kanas,
            [str(b)[:10] for b in births],
            addresses,
            cipher.decrypt_many(numbers, "residents.my_number", codes),
            households,
            [bool(h) for h in heads],
        )


def _owners(households: pa.Array, is_head: np.ndarray, accounts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Whose each account is: (account row, resident) pairs. The household's head's; a household whose
    members all left has no current head, so each of its members'."""
    encoded = households.dictionary_encode()
    household = encoded.indices.to_numpy()
    head = np.full(len(encoded.dictionary), -1, dtype=np.int64)
    head[household[is_head]] = np.flatnonzero(is_head)
    of_account = pc.index_in(pa.array(accounts, pa.string()), value_set=encoded.dictionary).fill_null(-1)
    rows, owners = [], []
    for row, h in enumerate(of_account.to_numpy().tolist()):
        if h < 0:  # an account of a household with no resident: the import refuses it, so never here
            continue
        members = [head[h]] if head[h] >= 0 else np.flatnonzero(household == h).tolist()
        rows += [row] * len(members)
        owners += members
    return np.array(rows, dtype=np.int64), np.array(owners, dtype=np.int64)


class _Remembered:
    """Fingerprints of a slot's values seen in earlier batches, for the slots whose values repeat across the
    whole register, not only within a batch: a city of 460,517 holds some 5,000 distinct names and 36,000
    birth dates, which a batch at a time fingerprinted over and over (844,000 HMACs for 377,000 distinct
    fingerprints). At most ``limit`` values are remembered, so memory stays bounded on a prefecture."""

    def __init__(self, fingerprint: Fingerprinter, limit: int = REMEMBERED) -> None:
        self.fingerprint = fingerprint
        self.limit = limit
        self.known: dict[str, int] = {}

    def __call__(self, distinct: list[str]) -> np.ndarray:
        known = self.known
        missing = [v for v in distinct if v not in known]
        fresh = dict(zip(missing, self.fingerprint(canonical(missing)).tolist(), strict=True)) if missing else {}
        prints = np.fromiter(
            (known[v] if v in known else fresh[v] for v in distinct), dtype=np.uint64, count=len(distinct)
        )
        if len(known) + len(fresh) <= self.limit:
            known.update(fresh)
        return prints


def _postings(conn: Connection, cipher: FieldCipher, fingerprint: Fingerprinter) -> tuple[pa.Table, int]:
    """Every (fingerprint, resident, slot) of the register, read in batches."""
    parts: list[tuple[np.ndarray, np.ndarray, int]] = []
    remembered = {slot: _Remembered(fingerprint) for slot in REPEATING}

    def add(values: list[str], ordinals: np.ndarray, slot: Slot) -> None:
        """Fingerprint each distinct value once: households share addresses, thousands share a birthday."""
        if values:
            encoded = pa.array(values, pa.string()).dictionary_encode()
            distinct = encoded.dictionary.to_pylist()
            prints = remembered[slot](distinct) if slot in remembered else fingerprint(canonical(distinct))
            parts.append((prints[encoded.indices.to_numpy()], ordinals.astype(np.uint32), slot))

    households: list[str] = []
    heads: list[bool] = []
    ordinal = 0
    for names, kanas, births, addresses, numbers, household, is_head in _resident_batches(conn, cipher):
        ordinals = np.arange(ordinal, ordinal + len(names))
        add(names, ordinals, Slot.NAME)
        add(kanas, ordinals, Slot.KANA)
        add(births, ordinals, Slot.BIRTH_DATE)
        add(addresses, ordinals, Slot.ADDRESS)
        at, found = streets(addresses)
        add(found, ordinals[at], Slot.STREET)
        present = [i for i, n in enumerate(numbers) if n]
        add([numbers[i] for i in present], ordinals[present], Slot.MY_NUMBER)  # type: ignore[misc]
        households += household
        heads += is_head
        ordinal += len(names)
    rows = conn.execute(
        text("SELECT household_code, bank_code, branch_code, account_number_enc, holder_kana FROM bank_accounts")
    ).all()
    if rows:
        which, owners = _owners(pa.array(households, pa.string()), np.array(heads, bool), [r[0] for r in rows])
        numbers = cipher.decrypt_many(
            [r.account_number_enc for r in rows], "bank_accounts.account_number", [r.household_code for r in rows]
        )
        accounts = [account_text(r.bank_code, r.branch_code, n) for r, n in zip(rows, numbers, strict=True)]
        add([accounts[i] for i in which.tolist()], owners, Slot.ACCOUNT)
        add([rows[i].holder_kana for i in which.tolist()], owners, Slot.HOLDER_KANA)
    prints = np.concatenate([p for p, _, _ in parts]) if parts else np.zeros(0, np.uint64)
    residents = np.concatenate([r for _, r, _ in parts]) if parts else np.zeros(0, np.uint32)
    slots = np.concatenate([np.full(len(p), s, np.uint8) for p, _, s in parts]) if parts else np.zeros(0, np.uint8)
    order = np.argsort(prints, kind="stable")
    table = pa.table(
        {"fingerprint": prints[order], "resident": residents[order], "slot": slots[order]},
    )
    return table, ordinal


def _metadata(resident_count: int, key: bytes, created: str, *, carry_key: bool) -> dict[bytes, bytes]:
    meta: dict[str, object] = {
        "version": VERSION,
        "residents": resident_count,
        "key_id": key_id(key),
        "created": created,
    }
    if carry_key:
        meta["key"] = base64.b64encode(key).decode()
    return {META: json.dumps(meta, sort_keys=True).encode()}


def _write_table(table: pa.Table, path: Path) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        pq.write_table(table, tmp, **PARQUET_OPTIONS)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def build_index(
    home: Home, *, now: datetime | None = None, actor: str | None = None, record: bool = True
) -> IndexSummary:
    """Fingerprint the whole register into ``<home>/dlp/index.parquet`` (replacing the last index).

    Only reads the store; with ``record`` (the default) it then appends the audit entry, which a caller
    building in another process does itself with :func:`record_build`, so that process never writes.
    """
    now = (now or utcnow()).replace(microsecond=0)
    keys = load_city_keys(home.keys)
    key = fingerprint_key(keys.master)
    with home.engine.connect() as conn:
        table, resident_count = _postings(conn, keys.field_cipher(), Fingerprinter(key))
    created = fmt.rfc3339(now)
    table = table.replace_schema_metadata(_metadata(resident_count, key, created, carry_key=False))
    path = index_path(home)
    path.parent.mkdir(mode=0o700, exist_ok=True)
    _write_table(table, path)
    # The counts straight from the sorted postings: the in-memory index (its pairs above all) is the loader's.
    prints = table.column("fingerprint").to_numpy()
    starts = np.flatnonzero(np.r_[True, prints[1:] != prints[:-1]]) if len(prints) else np.zeros(0, np.int64)
    elements = np.bincount(SLOT_ELEMENT[table.column("slot").to_numpy()[starts]], minlength=len(Element))
    summary = IndexSummary(
        residents=resident_count,
        fingerprints=len(starts),
        postings=table.num_rows,
        elements={e.label: int(elements[e]) for e in Element},
        path=str(path),
        created=created,
    )
    if record:
        record_build(home, summary, actor=actor)
    return summary


def record_build(home: Home, summary: IndexSummary, *, actor: str | None = None) -> None:
    """The audit entry of an index build: counts only."""
    key = fingerprint_key(load_city_keys(home.keys).master)
    details = {k: v for k, v in summary.as_dict().items() if k not in ("elements", "path")}
    now = fmt.parse_rfc3339(summary.created)
    with transaction(home.engine) as conn:
        audit.append(
            conn, "dlp.index", "dlp_index", key_id(key), details, actor=actor or audit.current_actor(), now=now
        )


def _read_index(path: Path) -> tuple[pa.Table, dict[str, object]]:
    try:
        table = pq.read_table(path, columns=list(COLUMNS))
        meta = json.loads((table.schema.metadata or {})[META])
    except (OSError, KeyError, ValueError, pa.ArrowException):
        raise DlpError(f"{path}: not a civicseal DLP index") from None
    if meta.get("version") != VERSION:
        raise DlpError(f"{path}: DLP index version {meta.get('version')} is not {VERSION}; build it again")
    return table, meta


def load_home_index(home: Home) -> FingerprintIndex:
    """The city's own index, under the key derived from its master key."""
    path = index_path(home)
    if not path.exists():
        raise DlpError(f"{path}: no DLP index yet; run `civicseal dlp index` first")
    table, meta = _read_index(path)
    key = fingerprint_key(load_city_keys(home.keys).master)
    if meta["key_id"] != key_id(key):
        raise DlpError(f"{path}: the index was built under another key; run `civicseal dlp index` again")
    return FingerprintIndex.from_postings(key, table, int(meta["residents"]), str(meta["created"]))  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------ sealed export


@dataclass(frozen=True)
class ExportSummary:
    package_id: str
    recipient: str
    out: str
    residents: int
    postings: int
    created: str
    expires: str

    def as_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


def export_index(
    home: Home,
    out: Path,
    recipient: str,
    *,
    force: bool = False,
    days: int = EXPORT_DAYS,
    now: datetime | None = None,
    actor: str | None = None,
) -> ExportSummary:
    """Seal the home's index, with its key, for a scanning station (recipient mode: it works offline).

    The package is signed by the city like any other, so the station refuses a forged index.
    """
    now = (now or utcnow()).replace(microsecond=0)
    out = Path(out)
    if out.exists() and not force:
        raise DlpError(f"{out}: exists; pass --force to replace it")
    index = load_home_index(home)
    table, _ = _read_index(index_path(home))
    table = table.replace_schema_metadata(_metadata(index.resident_count, index.key, index.created, carry_key=True))
    keys = load_city_keys(home.keys)
    with home.engine.connect() as conn:
        found = conn.execute(select(Recipient.__table__).where(Recipient.name == recipient)).first()
    if found is None:
        raise DlpError(f"no recipient named {recipient!r}; register the station with `civicseal recipient add`")
    package_id = new_package_id()
    expires = now + timedelta(days=days)
    work = Path(tempfile.mkdtemp(prefix=".dlp-", dir=home.path))  # inside the 0700 home
    try:
        plain = work / "index.parquet"
        pq.write_table(table, plain, **PARQUET_OPTIONS)
        sealed = work / "payload.age"
        encrypt_to_recipient(plain, sealed, found.age_recipient)
        plain.unlink()
        manifest = fmt.build_manifest(
            package_id=package_id,
            issuer=home.config.issuer,
            issuer_key_id=keys.signing_key_id,
            purpose=PURPOSE,
            recipient=recipient,
            recipient_key=found.age_recipient,
            mode=fmt.Mode.RECIPIENT,
            key_service_url=None,
            created=now,
            expires=expires,
            payload={"format": "parquet", "columns": list(COLUMNS), "rows": table.num_rows},
        )
        fmt.write_package(out, manifest, keys.signing, sealed)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    summary = ExportSummary(
        package_id, recipient, str(out), index.resident_count, table.num_rows, fmt.rfc3339(now), fmt.rfc3339(expires)
    )
    with transaction(home.engine) as conn:
        audit.append(
            conn, "dlp.export", "package", package_id, summary.as_dict(), actor=actor or audit.current_actor(), now=now
        )
    return summary


def open_exported_index(
    path: Path, *, trust_home: Path, identity_file: Path, now: datetime | None = None
) -> FingerprintIndex:
    """Verify and open an exported index at a scanning station; the plaintext index never touches its disk
    outside a private temporary folder, removed before this returns."""
    from civicseal.seal.open import open_sealed

    work = Path(tempfile.mkdtemp(prefix="civicseal-dlp-"))
    try:
        out = work / "index.parquet"
        try:
            pkg = open_sealed(path, trust_home=trust_home, out=out, identity_file=identity_file, now=now)
        except SealError as exc:
            raise DlpError(f"{path}: {exc}") from None
        if pkg.manifest["purpose"] != PURPOSE:
            raise DlpError(f"{path}: a sealed package, but not a DLP index (purpose {pkg.manifest['purpose']})")
        table, meta = _read_index(out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    try:
        key = base64.b64decode(str(meta["key"]), validate=True)
    except (KeyError, ValueError):
        raise DlpError(f"{path}: the index carries no fingerprint key") from None
    if len(key) != 32 or key_id(key) != meta["key_id"]:
        raise DlpError(f"{path}: the index's fingerprint key does not match it")
    return FingerprintIndex.from_postings(key, table, int(meta["residents"]), str(meta["created"]))  # type: ignore[arg-type]
