"""A small synthetic city with a programme run, for tests that need entitlements to seal."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime
from pathlib import Path

from civicseal.keys.city import load_city_keys
from civicseal.keys.recipients import add_recipient, keygen
from civicseal.programme.service import create_programme, run_programme
from civicseal.register.importer import import_register
from civicseal.register.synth import synthesize
from civicseal.store.home import Home
from tests import stores

PROGRAMME = "benefit"
NOW = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)


def entitled_city(home: Home, tmp_path: Path, residents: int = 3000) -> None:
    """A fresh home's register imported (files in tmp_path/register) and PROGRAMME run; the same every time,
    so built once a session and store and copied after (tests/stores.py)."""

    def build() -> None:
        summary = synthesize(residents, 7, tmp_path / "register")
        cipher = load_city_keys(home.keys).field_cipher()
        files = [summary.residents_path, summary.tax_path, summary.accounts_path]
        import_register(home.engine, cipher, files, now=NOW)
        create_programme(home.engine, PROGRAMME, reference_date=date(2022, 6, 1), fiscal_year=2022, amount=100_000)
        run_programme(home.engine, PROGRAMME, rng=random.Random(7), now=NOW)

    if stores.session is None:
        build()
    else:
        stores.session.built(home, f"entitled-{residents}", tmp_path / "register", build)


def contractor(home: Home, tmp_path: Path, name: str = "printshop") -> tuple[Path, str]:
    """A contractor's identity file and recipient token."""
    identity = tmp_path / f"{name}.key"
    token = add_recipient(home.engine, name, keygen(identity), now=NOW, actor="os:test")
    return identity, token
