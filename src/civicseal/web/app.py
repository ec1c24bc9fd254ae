"""The city's web server: the key service's routes and, in a home that holds the city's keys, the contact centre.

:func:`serves_pages` is the one place that decides whether a home serves the contact centre; a
key-service-only home (which holds only the unlock key) serves no pages.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Final

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from civicseal.clock import utcnow
from civicseal.contact.errors import NotAllowed
from civicseal.keys import service as key_service
from civicseal.keys.city import MASTER, load_city_keys
from civicseal.keys.service import DEFAULT_PORT
from civicseal.store.engine import is_sqlite
from civicseal.store.errors import StoreError
from civicseal.store.home import HOME_ENV, Home
from civicseal.web.api import TokenGate, api_router, store_threads
from civicseal.web.pages import Forbidden, Pages, forbidden_page

__all__ = ["DEFAULT_PORT", "create_app", "serve", "serves_pages"]

SECURITY_HEADERS: Final = {
    "content-security-policy": "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}


class SecurityHeaders:
    """ASGI middleware adding :data:`SECURITY_HEADERS` to every answer that does not set its own.

    Plain ASGI, not ``@app.middleware("http")``: Starlette's BaseHTTPMiddleware wraps every read of a request
    body in a task group and the answer in a stream, which cost a look-up more CPU than its own SQL did.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)


def serves_pages(home: Home) -> bool:
    """Does this home serve the contact centre? Not a key-service home; only one holding the city's master key
    can read a household."""
    return not home.is_key_service and (home.keys / MASTER).exists()


def city_name(home: Home) -> str:
    """The name on every page: the city's display name (尼崎市), else its issuer slug."""
    return home.config.issuer_display


def _print_line(line: str) -> None:
    print(line, flush=True)


def create_app(
    home: Home, *, clock: Callable[[], datetime] = utcnow, access_log: Callable[[str], None] | None = None
) -> FastAPI:
    """One worker's app: key-service routes always, the contact centre's pages and API where the home allows.

    ``access_log`` receives one line per request (time, method, route, status, duration; never a token).
    """
    keys_app = key_service.create_app(home, clock=clock)
    app = FastAPI(
        title="civicseal contact centre API",
        version="1",
        description="Look-ups of one household at a time; every route needs a bearer API token.",
        docs_url=None,
        redoc_url=None,
    )
    for route in keys_app.router.routes:
        route.include_in_schema = False  # type: ignore[attr-defined]
        app.router.routes.append(route)
    if not serves_pages(home):
        app.openapi_url = None
        _log_requests(app, access_log, clock)
        return app
    engine = home.engine
    cipher = load_city_keys(home.keys).field_cipher()
    city = city_name(home)
    app.include_router(Pages(engine, cipher, city, clock).router)
    threads = store_threads()
    app.include_router(api_router(engine, cipher, clock, threads))
    app.mount("/static", StaticFiles(directory=Path(__file__).parent / "static"), name="static")
    app.add_middleware(TokenGate, engine=engine, threads=threads)

    @app.exception_handler(Forbidden)
    async def _forbidden(request: Request, _exc: Forbidden) -> Response:
        return forbidden_page(request, city)

    @app.exception_handler(NotAllowed)
    async def _not_allowed(request: Request, _exc: NotAllowed) -> Response:
        return forbidden_page(request, city)

    app.add_middleware(SecurityHeaders)
    _log_requests(app, access_log, clock)
    return app


def _log_requests(app: FastAPI, access_log: Callable[[str], None] | None, clock: Callable[[], datetime]) -> None:
    if access_log is not None:
        app.add_middleware(key_service.AccessLog, write=access_log, clock=clock)


def app_from_env() -> FastAPI:
    """The factory each of several uvicorn worker processes calls: the home comes from CIVICSEAL_HOME."""
    home = Home(Path(os.environ[HOME_ENV]))
    home.require()
    return create_app(home, access_log=_print_line)


def serve(home: Home, host: str, port: int, workers: int = 1) -> None:
    """Run the server with uvicorn until interrupted (the key service's only runner too, via :func:`serves_pages`).

        Several workers need PostgreSQL: the embedded SQLite store serves one. Plain HTTP: put TLS in front (a
        reverse proxy); its X-Forwarded-For and -Proto are honoured from the addresses in uvicorn's
        ``FORWARDED_ALLOW_IPS`` (127.0.0.1 by default), so cookies are Secure behind it. Each request is one line
    of the access log on standard output; uvicorn's own is off.
    """
    if workers > 1 and is_sqlite(home.engine):
        raise StoreError("--workers above 1 needs PostgreSQL (CIVICSEAL_DATABASE_URL); the SQLite store serves one")
    options = {"host": host, "port": port, "proxy_headers": True, **key_service.UVICORN_OPTIONS}
    if workers == 1:
        uvicorn.run(create_app(home, access_log=_print_line), **options)  # type: ignore[arg-type]
        return
    os.environ[HOME_ENV] = str(home.path)
    uvicorn.run("civicseal.web.app:app_from_env", factory=True, workers=workers, **options)  # type: ignore[arg-type]
