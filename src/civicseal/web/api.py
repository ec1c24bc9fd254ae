"""The contact centre's JSON API: the same look-ups and actions as the pages, for a telephony system.

Every route needs ``Authorization: Bearer <API token>``. The token is checked by :class:`TokenGate`
before the route runs, so a request without one is answered 401 before its body is read. The same
limits apply as on the pages: they live in the store, not here.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import datetime
from typing import Any, Final, Literal

from anyio import CapacityLimiter, to_thread
from fastapi import APIRouter, Request, Security
from fastapi.responses import JSONResponse
from fastapi.security import HTTPBearer
from pydantic import BaseModel, Field
from sqlalchemy import Engine

from civicseal.contact import actions, lookup, users
from civicseal.contact.errors import AccountLocked, NotAllowed
from civicseal.contact.users import Principal
from civicseal.errors import CivicsealError
from civicseal.store.engine import POOL_SIZE
from civicseal.store.fieldcrypt import FieldCipher

PREFIX: Final = "/api/v1"
NO_STORE: Final = {"Cache-Control": "no-store"}
CALL_REFERENCE: Any = Field(pattern=r"^[A-Za-z0-9-]{1,32}$", description="The telephone system's call id.")
bearer = HTTPBearer(auto_error=False, description="The user's API token from `civicseal user token`.")

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


def store_threads() -> CapacityLimiter:
    """One app's limit on API requests working in the store at once: the store's pool size. A request past
    it would open a connection (a PostgreSQL backend) for itself and close it again, which cost more CPU than
    its look-up did."""
    return CapacityLimiter(POOL_SIZE)


class TokenGate:
    """ASGI middleware: for /api/ paths, resolve the bearer token to a user or answer 401/403 at once."""

    def __init__(self, app: Callable[..., Awaitable[None]], engine: Engine, threads: CapacityLimiter) -> None:
        self.app, self.engine, self.threads = app, engine, threads

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/api/"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        scheme, _, token = headers.get(b"authorization", b"").decode("latin-1").strip().partition(" ")
        status, error, principal = 401, "missing or unknown API token", None
        if scheme.lower() == "bearer" and token.strip():
            try:
                principal = await to_thread.run_sync(
                    users.api_principal, self.engine, token.strip(), limiter=self.threads
                )
            except AccountLocked as exc:
                status, error = 403, str(exc)
        if principal is None:
            body = json.dumps({"error": error}).encode()
            extra = [(b"www-authenticate", b"Bearer")] if status == 401 else []
            await send(
                {
                    "type": "http.response.start",
                    "status": status,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"cache-control", b"no-store"),
                        *extra,
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        scope.setdefault("state", {})["principal"] = principal
        await self.app(scope, receive, send)


class LookupIn(BaseModel):
    reference_number: str = Field(
        pattern=r"^\d{4}[ -]?\d{4}[ -]?\d{4}$", description="As on the letter: 1234 5678 9012."
    )
    birth_date: str = Field(max_length=40, description="The caller's birth date (ISO or Japanese era).")
    call_reference: str = CALL_REFERENCE


class LookupByNameIn(BaseModel):
    name_kana: str = Field(max_length=100)
    birth_date: str = Field(max_length=40)
    postcode: str = Field(max_length=20)
    call_reference: str = CALL_REFERENCE


class HouseholdOut(BaseModel):
    lookup_id: int
    reference_number: str
    programme: str
    status: str
    amount: int
    created_at: str
    status_since: str
    head_name: str
    head_name_kana: str
    bank_code: str | None
    branch_code: str | None
    account_masked: str | None


class LookupOut(BaseModel):
    found: bool
    household: HouseholdOut | None


class ActionIn(BaseModel):
    lookup_id: int = Field(
        ge=1, le=lookup.MAX_ID, description="The id a look-up of yours returned in the last 30 minutes."
    )
    call_reference: str = CALL_REFERENCE


class NoteIn(ActionIn):
    note: str = Field(max_length=actions.NOTE_LIMIT)


class ConfirmIn(ActionIn):
    bank_code: str = Field(max_length=10)
    branch_code: str = Field(max_length=10)
    account_type: str = Field(max_length=10)
    account_number: str = Field(max_length=20)
    holder_kana: str = Field(max_length=100)


class ChangeIn(ActionIn):
    kind: Literal["address", "account"]
    values: dict[str, str] = Field(description="address: postcode, address; account: as for confirm.")


class Done(BaseModel):
    status: str


class Error(BaseModel):
    error: str


ERRORS: Final[dict[int | str, dict[str, Any]]] = {
    400: {"model": Error},
    401: {"model": Error},
    403: {"model": Error},
}


def _error(exc: CivicsealError) -> JSONResponse:
    status = 403 if isinstance(exc, NotAllowed | AccountLocked) else 400
    return JSONResponse({"error": str(exc)}, status_code=status, headers=NO_STORE)


def _done(fixed: str | None = None) -> Callable[[Any], dict[str, str]]:
    """The answer of an action: a fixed word, or the entitlement's new status."""
    return lambda result: {"status": fixed or str(result)}


def _found(household: lookup.Household | None) -> dict[str, object]:
    return {"found": household is not None, "household": household.as_dict() if household else None}


def api_router(
    engine: Engine, cipher: FieldCipher, clock: Callable[[], datetime], threads: CapacityLimiter
) -> APIRouter:
    router = APIRouter(prefix=PREFIX, dependencies=[Security(bearer)], responses=ERRORS, tags=["contact centre"])

    async def call(request: Request, fn: Callable[..., Any], head: tuple, tail: tuple, *, answer: Callable) -> Any:
        principal: Principal = request.state.principal
        try:
            result = await to_thread.run_sync(lambda: fn(*head, principal, *tail, now=clock()), limiter=threads)
        except CivicsealError as exc:
            response = _error(exc)
        else:
            response = JSONResponse(answer(result), headers=NO_STORE)
        return response

    @router.post("/lookup", response_model=LookupOut, summary="Look up one household by reference and birth date")
    async def lookup_route(request: Request, body: LookupIn) -> Any:
        tail = (body.reference_number, body.birth_date, body.call_reference)
        return await call(request, lookup.lookup_by_reference, (engine, cipher), tail, answer=_found)

    @router.post("/lookup-by-name", response_model=LookupOut, summary="Supervisors: by kana, birth date, postcode")
    async def lookup_by_name_route(request: Request, body: LookupByNameIn) -> Any:
        tail = (body.name_kana, body.birth_date, body.postcode, body.call_reference)
        return await call(request, lookup.lookup_by_name, (engine, cipher), tail, answer=_found)

    @router.post("/notes", response_model=Done, summary="Record a call note")
    async def note_route(request: Request, body: NoteIn) -> Any:
        tail = (body.lookup_id, body.note, body.call_reference)
        return await call(request, actions.record_note, (engine, cipher), tail, answer=_done("recorded"))

    @router.post("/confirm", response_model=Done, summary="Record a returned confirmation form with its account")
    async def confirm_route(request: Request, body: ConfirmIn) -> Any:
        form = actions.AccountForm(*(getattr(body, f) for f in actions.AccountForm.__dataclass_fields__))
        tail = (body.lookup_id, form, body.call_reference)
        return await call(request, actions.confirm, (engine, cipher), tail, answer=_done())

    @router.post("/decline", response_model=Done, summary="Record that the household declines")
    async def decline_route(request: Request, body: ActionIn) -> Any:
        return await call(request, actions.decline, (engine,), (body.lookup_id, body.call_reference), answer=_done())

    @router.post("/change-requests", response_model=Done, summary="Request an address or account change")
    async def change_route(request: Request, body: ChangeIn) -> Any:
        tail = (body.lookup_id, body.kind, body.values, body.call_reference)
        return await call(request, actions.request_change, (engine, cipher), tail, answer=_done("requested"))

    return router
