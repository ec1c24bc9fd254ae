"""Benchmark of the key service: tethered unlocks over HTTP, against plain health checks on the same server.

Self-contained: a temporary home on SQLite (``CIVICSEAL_DATABASE_URL`` is ignored for the run), one
recipient and one tethered package row, the key service on loopback in a background thread (uvicorn),
and one keep-alive httpx client. The reference, in the same run and on the same server, is
``GET /v1/health``: what HTTP, uvicorn and FastAPI cost without the unlock (a token check, the package
and custody reads, the log row and its commit, decrypting the identity and age-encrypting it).
Budget: unlock p50 ≤ 50 ms.

    python bench/unlock.py [--requests 200] [--json]

:func:`run` returns the figures, for bench/seal.py.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Final

import httpx

from civicseal.clock import utcnow
from civicseal.cseal.payload import generate_identity
from civicseal.homes import init_home
from civicseal.keys.city import load_city_keys, unlock_public_key, wrap_identity
from civicseal.keys.recipients import add_recipient
from civicseal.keys.service import BackgroundServer, create_app
from civicseal.ledger.models import Package
from civicseal.store.engine import DATABASE_URL_ENV, transaction
from civicseal.store.fieldcrypt import FieldCipher
from civicseal.store.home import Home

BUDGET_P50_MS: Final = 50.0
WARM_UP: Final = 10
PACKAGE_ID: Final = "pkg_bench0000000000000000000000"
ACTOR: Final = "bench"


def percentile(samples: list[float], p: float) -> float:
    """Nearest-rank percentile: a value that was actually measured."""
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def _add_package(home: Home, cipher: FieldCipher, recipient: str) -> None:
    """One tethered package row with a 'created' custody event, as sealing would leave it."""
    from civicseal.custody.models import CustodyEvent
    from civicseal.ledger.models import Recipient

    now = utcnow()
    secret, _ = generate_identity()
    with transaction(home.engine) as conn:
        recipient_id = conn.execute(Recipient.__table__.select().where(Recipient.name == recipient)).one().id
        conn.execute(
            Package.__table__.insert().values(
                id=PACKAGE_ID,
                purpose="contact-centre-status",
                programme_id=None,
                recipient_id=recipient_id,
                mode="tethered",
                key_service_url="http://127.0.0.1/",
                created_at=now,
                expires_at=now + timedelta(days=1),
                manifest=b"{}",
                payload_sha256="0" * 64,
                payload_format="csv",
                fields="reference_number,status",
                records=0,
                canaries=0,
                scrypt_log_n=None,
                passphrase_bits=None,
                identity_age=wrap_identity(unlock_public_key(home.keys), PACKAGE_ID, secret),
                pseudonym_key_enc=cipher.encrypt("bench", "packages.pseudonym_key", PACKAGE_ID),
                revoked_at=None,
                revoked_reason=None,
            )
        )
        conn.execute(
            CustodyEvent.__table__.insert().values(
                package_id=PACKAGE_ID, event="created", holder="city", at=now, recorded_at=now, recorded_by=ACTOR
            )
        )


def _timed(requests: int, call: Callable[[], httpx.Response]) -> list[float]:
    """Milliseconds per call; every answer must be a 200."""
    for _ in range(WARM_UP):
        call().raise_for_status()
    samples = []
    for _ in range(requests):
        started = time.perf_counter()
        answer = call()
        samples.append((time.perf_counter() - started) * 1000)
        if answer.status_code != 200:
            raise SystemExit(f"bench: the key service answered HTTP {answer.status_code}: {answer.text}")
    return samples


def run(requests: int = 200) -> dict[str, float | int | bool]:
    """Set up, serve, measure; return p50/p99 of unlock and health (ms), their p50 ratio and the verdict."""
    saved = os.environ.pop(DATABASE_URL_ENV, None)
    try:
        with tempfile.TemporaryDirectory(prefix="civicseal-bench-") as tmp:
            home = init_home(Path(tmp) / "home", actor=ACTOR)
            cipher = load_city_keys(home.keys).field_cipher()
            _, public = generate_identity()
            token = add_recipient(home.engine, "bench", public, now=utcnow(), actor=ACTOR)
            _add_package(home, cipher, "bench")
            headers = {"Authorization": f"Bearer {token}"}
            try:
                with BackgroundServer(create_app(home)) as server, httpx.Client(base_url=server.url) as client:
                    unlock_ms = _timed(
                        requests, lambda: client.post("/v1/unlock", json={"package_id": PACKAGE_ID}, headers=headers)
                    )
                    health_ms = _timed(requests, lambda: client.get("/v1/health"))
            finally:
                home.engine.dispose()
    finally:
        if saved is not None:
            os.environ[DATABASE_URL_ENV] = saved
    unlock_p50, health_p50 = percentile(unlock_ms, 50), percentile(health_ms, 50)
    return {
        "requests": requests,
        "unlock_p50_ms": round(unlock_p50, 2),
        "unlock_p99_ms": round(percentile(unlock_ms, 99), 2),
        "health_p50_ms": round(health_p50, 2),
        "health_p99_ms": round(percentile(health_ms, 99), 2),
        "ratio_p50": round(unlock_p50 / health_p50, 1),
        "budget_p50_ms": BUDGET_P50_MS,
        "within_budget": unlock_p50 <= BUDGET_P50_MS,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--json", action="store_true", help="Print one JSON object and nothing else.")
    args = parser.parse_args()
    figures = run(args.requests)
    if args.json:
        print(json.dumps(figures, sort_keys=True))
    else:
        n, f = figures["requests"], figures
        print(f"unlock (POST /v1/unlock)   p50 {f['unlock_p50_ms']:>7.2f} ms  p99 {f['unlock_p99_ms']:>7.2f} ms")
        print(f"reference (GET /v1/health) p50 {f['health_p50_ms']:>7.2f} ms  p99 {f['health_p99_ms']:>7.2f} ms")
        print(f"unlock / reference (p50)   {figures['ratio_p50']:>7.1f} ×   ({n} requests each, keep-alive, SQLite)")
        verdict = "ok" if figures["within_budget"] else "OVER BUDGET"
        print(f"budget: unlock p50 ≤ {BUDGET_P50_MS:.0f} ms: {verdict}")
    if not figures["within_budget"]:
        raise SystemExit(3)


if __name__ == "__main__":
    main()
