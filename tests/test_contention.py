"""Revocation always lands: while a long write transaction holds the store, reads go on, and a revocation and an
unlock attempt (with its log row) land as soon as it ends — on SQLite by retrying past the busy timeout, on
PostgreSQL by waiting for the rows. A store that stays busy is a clear refusal, never an internal error. A
register import holds the write lock only for its final merge."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from civicseal import cseal as fmt
from civicseal.keys.city import load_unlock_key
from civicseal.keys.evidence import verify_evidence
from civicseal.keys.revocation import revoke_package
from civicseal.keys.unlock import unlock
from civicseal.register.importer import import_register
from civicseal.register.synth import synthesize
from civicseal.scratch import SEAL_PREFIX
from civicseal.seal.service import SealRequest, seal
from civicseal.store.engine import make_engine, transaction, write_patiently
from civicseal.store.errors import StoreBusy
from civicseal.store.fieldcrypt import FieldCipher
from civicseal.store.home import Home
from tests.cities import PROGRAMME, contractor, entitled_city
from tests.test_keys import ACTOR, NOW, SOURCE, add_package, log_rows, make_contractor

HOLD = 3.0  # seconds the "long job" keeps its write transaction open


@contextmanager
def long_write(home: Home) -> Iterator[None]:
    """Another connection writes to both packages and keeps its transaction open for HOLD seconds."""
    holding = threading.Event()

    def job() -> None:
        with transaction(home.engine) as conn:
            conn.execute(text("UPDATE packages SET records = records"))
            holding.set()
            time.sleep(HOLD)

    worker = threading.Thread(target=job)
    worker.start()
    assert holding.wait(10)
    try:
        yield
    finally:
        worker.join()


def _impatient(home: Home) -> Engine:
    """SQLite gives up on the write lock after 0.3 s here, so only the retries can carry a write through."""
    return make_engine(home.database_url, busy_timeout=0.3)


def test_revoke_and_unlock_land_when_the_long_write_ends_and_reads_go_on(home: Home, cipher: FieldCipher) -> None:
    alice = make_contractor(home.engine, "alice")
    add_package(home, cipher, "alice", "pkg_lost")
    add_package(home, cipher, "alice", "pkg_fine")
    engine, unlock_key = _impatient(home), load_unlock_key(home.keys)
    granted: list[str] = []

    def attempt() -> None:
        grant = unlock(engine, unlock_key, package_id="pkg_fine", token=alice.token, source=SOURCE, now=NOW)
        granted.append(grant.package_id)

    with long_write(home):
        started = time.monotonic()
        with engine.connect() as conn:  # a read: no write lock needed, so no waiting
            assert conn.execute(text("SELECT COUNT(*) FROM packages")).scalar_one() == 2
        assert time.monotonic() - started < 1.0
        contender = threading.Thread(target=attempt)
        contender.start()
        done = revoke_package(engine, "pkg_lost", "reported lost", now=NOW, actor=ACTOR)
        waited = time.monotonic() - started
        contender.join()
    assert done.package_id == "pkg_lost"
    assert HOLD - 1.0 < waited < HOLD + 5.0  # landed once the job ended, not after it gave up
    assert granted == ["pkg_fine"]
    assert [(r["package_id"], r["outcome"]) for r in log_rows(home.engine)] == [("pkg_fine", "granted")]
    with engine.connect() as conn:
        assert conn.execute(text("SELECT revoked_at IS NOT NULL FROM packages WHERE id = 'pkg_lost'")).scalar_one()
    assert verify_evidence(home).ok
    engine.dispose()


def test_a_store_that_stays_busy_is_a_clear_refusal(home: Home, cipher: FieldCipher, backend: str) -> None:
    if backend != "sqlite":
        pytest.skip("PostgreSQL waits for the rows it needs; only SQLite's file lock can stay taken")
    make_contractor(home.engine, "alice")
    add_package(home, cipher, "alice", "pkg_lost")
    engine = _impatient(home)
    with long_write(home), pytest.raises(StoreBusy, match="try again when that job ends"):
        write_patiently(engine, lambda conn: conn.execute(text("DELETE FROM audit_head WHERE 0 = 1")), patience=1.0)
    with long_write(home), pytest.raises(StoreBusy, match="try again when it ends"), transaction(engine) as conn:
        conn.execute(text("DELETE FROM audit_head WHERE 0 = 1"))  # any other writer: a refusal, not a crash
    engine.dispose()


def test_a_revocation_lands_while_a_seal_is_still_running(home: Home, cipher: FieldCipher, tmp_path: Path) -> None:
    """A seal reads and encrypts without the write lock, so a lost package is revoked at once, not after it."""
    entitled_city(home, tmp_path)
    contractor(home, tmp_path)
    add_package(home, cipher, "printshop", "pkg_lost")
    engine = _impatient(home)
    sealed_at: list[float] = []

    def job() -> None:  # passphrase mode: the scrypt work factor alone makes this seal take a second or more
        request = SealRequest(
            programme=PROGRAMME,
            purpose="confirmation-mailing",
            recipient="printshop",
            out=tmp_path / "mailing.cseal",
            mode=fmt.Mode.PASSPHRASE,
            fields=("postcode",),
        )
        seal(home, request, now=NOW, rng=random.Random(5))
        sealed_at.append(time.monotonic())

    worker = threading.Thread(target=job)
    worker.start()
    deadline = time.monotonic() + 10
    while not any(p.name.startswith(SEAL_PREFIX) for p in home.path.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.01)
    started = time.monotonic()
    done = revoke_package(engine, "pkg_lost", "reported lost", now=NOW, actor=ACTOR)
    revoked_at = time.monotonic()
    worker.join()
    assert done.package_id == "pkg_lost"
    assert revoked_at - started < 5.0
    assert sealed_at and revoked_at < sealed_at[0]  # it did not wait for the seal to end
    assert Path(tmp_path / "mailing.cseal").exists()
    engine.dispose()


REGISTER = 20_000  # residents: an import of a few seconds; the hooks below pin down when each revocation runs


def test_a_revocation_lands_while_a_register_import_runs(
    home: Home, cipher: FieldCipher, backend: str, tmp_path: Path
) -> None:
    """Staging holds no lock of the store, so a revocation then lands at once; the merge holds SQLite's write
    lock for one short transaction, and a revocation issued inside it lands as soon as it commits."""
    make_contractor(home.engine, "alice")
    add_package(home, cipher, "alice", "pkg_staging")
    add_package(home, cipher, "alice", "pkg_merging")
    city = synthesize(REGISTER, 7, tmp_path / "register")
    engine = _impatient(home)
    waited: dict[str, float] = {}
    contenders: list[threading.Thread] = []

    def revoke(package_id: str) -> None:
        started = time.monotonic()
        revoke_package(engine, package_id, "reported lost", now=NOW, actor=ACTOR)
        waited[package_id] = time.monotonic() - started

    def progress(stage: str, done: int, total: int) -> None:
        if stage.startswith("reading") and "pkg_staging" not in waited:
            revoke("pkg_staging")  # the import waits for it, half-way through staging
        if stage == "writing" and done == 1 and not contenders:
            contenders.append(threading.Thread(target=revoke, args=("pkg_merging",)))
            contenders[0].start()
            time.sleep(1.0)  # inside the merge's transaction

    files = [city.residents_path, city.tax_path, city.accounts_path]
    summary = import_register(home.engine, cipher, files, now=NOW, progress=progress)
    contenders[0].join()

    assert summary.residents.new == REGISTER
    assert waited["pkg_staging"] < 1.0
    assert waited["pkg_merging"] < 5.0
    if backend == "sqlite":
        assert waited["pkg_merging"] > 0.5  # it did wait for the merge's write lock, then landed
    else:
        assert waited["pkg_merging"] < 0.5  # PostgreSQL locks rows: the merge's are not the package's
    with engine.connect() as conn:
        revoked = conn.execute(text("SELECT COUNT(*) FROM packages WHERE revoked_at IS NOT NULL")).scalar_one()
    assert revoked == 2
    assert verify_evidence(home).ok
    engine.dispose()
