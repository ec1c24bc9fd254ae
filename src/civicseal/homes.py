"""Creating a civicseal home: keys, configuration, the migrated store and the first audit row."""

from __future__ import annotations

import random
from pathlib import Path

from civicseal.audit import log as audit
from civicseal.keys.city import create_city_keys, load_city_keys
from civicseal.keys.trust import add_trusted, format_public_key
from civicseal.schema import metadata
from civicseal.seal.canaries import default_addresses
from civicseal.store.engine import SQLITE_FILE, make_engine, transaction
from civicseal.store.errors import StoreError
from civicseal.store.home import Home, default_config
from civicseal.store.migrate import REVISION, SchemaBehind, refusal, revision, upgrade


def init_home(
    path: Path | None,
    *,
    issuer: str = "city",
    issuer_name: str | None = None,
    actor: str | None = None,
    rng: random.Random | None = None,
) -> Home:
    """Refuses an existing home: its keys are the only way to read what it encrypted.

    ``issuer`` is the ASCII machine name packages carry; ``issuer_name`` the name people read (尼崎市),
    the slug when not given. The ``[contact]`` table is written empty, for the city to fill in, and the
    canary addresses are drawn in the city's towns (``rng``), for the city to replace.
    """
    home = Home(path)
    if home.exists() or (home.keys.exists() and any(home.keys.iterdir())):
        raise StoreError(f"{home.path}: a civicseal home exists there already; it is never overwritten")
    config = default_config(issuer, issuer_name, default_addresses(rng or random.SystemRandom()))
    home.path.mkdir(mode=0o700, parents=True, exist_ok=True)
    home.path.chmod(0o700)  # the register is in here: readable by the city's service account only
    create_city_keys(home.keys)
    home.write_config(config)
    engine = make_engine(home.database_url)  # unchecked: a new store holds no schema until this migrates it
    try:
        upgrade(engine, metadata)
    finally:
        engine.dispose()
    if (db := home.path / SQLITE_FILE).exists():
        db.chmod(0o600)  # SQLite gives its -wal and -shm files the same mode
    keys = load_city_keys(home.keys)
    add_trusted(home.path, config.issuer, format_public_key(keys.signing.public_key()))  # a city trusts itself
    with transaction(home.engine) as conn:
        audit.append(conn, "home.init", "home", config.issuer, {"signing_key_id": keys.signing_key_id}, actor=actor)
    return home


def upgrade_home(path: Path | None, *, actor: str | None = None) -> tuple[str | None, str]:
    """Bring a home's store to this civicseal's schema after a new version was installed; (before, after).

    Run it with nothing else using the store, after a backup: a migration may rebuild a table. A store
    already at this schema is left as it is, and no audit row is written for it.
    """
    url, empty = Home(path).store()
    engine = make_engine(url)  # unchecked: this is what makes the store usable again
    try:
        before = revision(engine)
        if before == REVISION:
            return before, REVISION
        refused = refusal(before, empty)
        if refused is not None and not isinstance(refused, SchemaBehind):
            raise refused  # a newer civicseal's store: never migrated back
        upgrade(engine, metadata)
        with transaction(engine) as conn:
            audit.append(conn, "store.upgrade", "store", REVISION, {"from": before, "to": REVISION}, actor=actor)
    finally:
        engine.dispose()
    return before, REVISION
