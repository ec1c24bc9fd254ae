"""The key service over HTTP: a thin FastAPI edge over :func:`civicseal.keys.unlock.unlock`.

HTTP contract (version 1):

* ``POST /v1/unlock`` with ``Authorization: Bearer cst_…`` and the JSON body ``{"package_id": "…"}``
  (at most 4 KiB; other keys are ignored).

  - 200 ``{"package_id": "…", "identity_age": "<base64 of an age file>"}`` — the package's identity,
    age-encrypted to the recipient's own age key;
  - 403 ``{"error": "refused: <reason>"}`` — reasons: ``bad token`` (unknown token id, wrong secret or no
    token: never told apart), ``token locked``, ``unknown package``, ``not tethered``, ``revoked``,
    ``expired``, ``custody <state>``, ``contractor not authorized (<rule>)`` (the recipient's contractor
    chain no longer covers the package's purpose today: a contract ended, an approval withdrawn, …);
  - 400 ``{"error": "malformed request: …"}`` — not JSON, not an object, or no string ``package_id`` of
    the id form (1-40 of ``A-Z a-z 0-9 . _ -``); such a request is not an unlock attempt and is not logged;
  - 503 ``{"error": "key service busy: try again in a minute"}`` — the store's write lock stayed taken
    (SQLite, a long job): the attempt could not be logged, so nothing was released;
  - 500 ``{"error": "key service error"}`` — the service's own fault (store down, identity unreadable).

* ``GET /v1/health`` → 200 ``{"status": "ok"}``; touches nothing, so a load balancer may poll it freely.

Every answer carries ``Cache-Control: no-store``. No answer ever holds a traceback or personal data, and
uvicorn's access log is off (it prints the query string, which could carry a token). Workers are
stateless: the unlock key is read once at start-up, everything else is read from and written to the store
on each request. The only key a worker loads is the unlock key: never the city's master field key or
signing key.
``serve`` writes its own access log, one line per request: time (JST), method, route, status and
duration — never a token, a header, a query or a body; a path that is not a route is shown as ``-``.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, Final

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from civicseal.clock import TOKYO, utcnow
from civicseal.keys.city import load_unlock_key
from civicseal.keys.errors import UnlockRefused
from civicseal.keys.unlock import PACKAGE_ID_RE, unlock
from civicseal.store.errors import StoreBusy
from civicseal.store.home import Home

MAX_BODY: Final = 4096
DEFAULT_PORT: Final = 8470
NO_STORE: Final = {"Cache-Control": "no-store"}
UNLOCK_ROUTE: Final = "/v1/unlock"
HEALTH_ROUTE: Final = "/v1/health"
UVICORN_OPTIONS: Final = {"log_level": "warning", "access_log": False, "server_header": False, "date_header": False}

log = logging.getLogger("civicseal.keys.service")


def _answer(status: int, body: dict[str, Any]) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers=NO_STORE)


def _malformed(what: str) -> JSONResponse:
    return _answer(400, {"error": f"malformed request: {what}"})


async def _read_body(request: Request) -> bytes | None:
    """The request body, or None once it passes :data:`MAX_BODY` (stop reading; never buffer a flood)."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _package_id(body: bytes) -> str | None:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    package_id = data.get("package_id") if isinstance(data, dict) else None
    return package_id if isinstance(package_id, str) and PACKAGE_ID_RE.fullmatch(package_id) else None


def _bearer(header: str | None) -> str:
    """The token of an ``Authorization: Bearer …`` header; "" when absent (the library logs it as bad)."""
    scheme, _, value = (header or "").strip().partition(" ")
    return value.strip() if scheme.lower() == "bearer" else ""


class AccessLog:
    """ASGI middleware writing one access-log line per HTTP request, once its answer has been sent."""

    def __init__(self, app: ASGIApp, *, write: Callable[[str], None], clock: Callable[[], datetime]) -> None:
        self.app, self.write, self.clock = app, write, clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        at, started, status = self.clock(), time.perf_counter(), 500

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            # The matched route's template (set by the router), never the path as sent: a token pasted into a
            # URL, or a query, never reaches the log; a path no route matched is "-".
            route = getattr(scope.get("route"), "path", None) or "-"
            self.write(access_line(at, scope["method"], route, status, (time.perf_counter() - started) * 1000))


def access_line(at: datetime, method: str, route: str, status: int, duration_ms: float) -> str:
    """``2026-11-27 17:11:05 JST POST /v1/unlock 403 3.2 ms``: what an operator reads, nothing secret."""
    return f"{at.astimezone(TOKYO):%Y-%m-%d %H:%M:%S} JST {method[:16]} {route} {status} {duration_ms:.1f} ms"


def create_app(
    home: Home, *, clock: Callable[[], datetime] = utcnow, access_log: Callable[[str], None] | None = None
) -> FastAPI:
    """A key-service worker for ``home`` (the city's or a key-service home): the unlock key is loaded now, once.

    ``clock`` gives "now" for each attempt (tests pass a fixed one); expiry is judged on this clock.
    ``access_log``, when given, receives one line per request (:func:`access_line`).
    """
    unlock_key = load_unlock_key(home.keys)
    engine = home.engine
    app = FastAPI(title="civicseal key service", docs_url=None, redoc_url=None, openapi_url=None)
    if access_log is not None:
        app.add_middleware(AccessLog, write=access_log, clock=clock)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _answer(exc.status_code, {"error": str(exc.detail).lower()})

    @app.get(HEALTH_ROUTE)
    async def health() -> JSONResponse:
        return _answer(200, {"status": "ok"})

    @app.post(UNLOCK_ROUTE)
    async def unlock_route(request: Request) -> JSONResponse:
        body = await _read_body(request)
        if body is None:
            return _malformed(f"body larger than {MAX_BODY} bytes")
        package_id = _package_id(body)
        if package_id is None:
            return _malformed('expected a JSON object {"package_id": "<package id>"}')
        source = request.client.host if request.client else "unknown"
        token = _bearer(request.headers.get("authorization"))
        try:
            grant = await run_in_threadpool(
                unlock, engine, unlock_key, package_id=package_id, token=token, source=source, now=clock()
            )
        except UnlockRefused as exc:
            return _answer(403, {"error": str(exc)})
        except StoreBusy:  # a long job held SQLite's write lock throughout: nothing released, nothing logged
            log.warning("unlock attempt not recorded: the store stayed busy")
            return _answer(503, {"error": "key service busy: try again in a minute"})
        except Exception as exc:  # the store is down, an identity does not decrypt, a bug: never a traceback
            log.error("unlock failed: %s", type(exc).__name__)
            return _answer(500, {"error": "key service error"})
        return _answer(200, {"package_id": grant.package_id, "identity_age": grant.identity_age_b64})

    return app


class BackgroundServer:
    """An ASGI app served by uvicorn in a daemon thread, on a socket bound before start (port 0: any free).

    For tests, benches and demos that need a real socket: ``with BackgroundServer(app) as server:`` and
    then talk to ``server.url``. The socket is bound here, so the port is known and never raced for.
    """

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        # proto IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY on accepted connections only then (with 0,
        # Nagle and delayed ACKs add 40 ms to every answer).
        self._socket = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((host, port))
        self.host, self.port = host, self._socket.getsockname()[1]
        config = uvicorn.Config(app, lifespan="off", **UVICORN_OPTIONS)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True, name="key-service"
        )

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self, timeout: float = 10.0) -> BackgroundServer:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the key service did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._socket.close()

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()
