"""Creating a civicseal home: keys, configuration, the migrated store and the first audit row."""

from __future__ import annotations

from pathlib import Path

from civicseal.audit import log as audit
from civicseal.keys.city import create_city_keys, load_city_keys
from civicseal.store.engine import transaction
from civicseal.store.errors import StoreError
from civicseal.store.home import Home, default_config
from civicseal.store.migrate import upgrade


def init_home(path: Path | None, *, issuer: str = "city", actor: str | None = None) -> Home:
    """Refuses an existing home: its keys are the only way to read what it encrypted."""
    home = Home(path)
    if home.exists() or (home.keys.exists() and any(home.keys.iterdir())):
        raise StoreError(f"{home.path}: a civicseal home exists there already; it is never overwritten")
    config = default_config(issuer)
    home.path.mkdir(parents=True, exist_ok=True)
    create_city_keys(home.keys)
    home.write_config(config)
    upgrade(home.engine)
    keys = load_city_keys(home.keys)
    with transaction(home.engine) as conn:
        audit.append(conn, "home.init", "home", config.issuer, {"signing_key_id": keys.signing_key_id}, actor=actor)
    return home
