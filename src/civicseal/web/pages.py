"""The contact centre's server-rendered pages: sign-in, look-up, actions, the supervisor's and admin's pages.

Every form carries the session's CSRF token (sign-in: a double-submit cookie, as there is no session yet)
and a POST without the right one is 403 before anything else happens. Cookies are HttpOnly and
SameSite=Strict, and Secure whenever the request came over HTTPS (directly or through the proxy).
"""

from __future__ import annotations

import html
import secrets
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool

from civicseal.clock import TOKYO, as_utc
from civicseal.contact import actions, dashboard, lookup, users
from civicseal.contact.errors import AccountLocked, NotAllowed, SignInRefused
from civicseal.contact.users import Principal, Role
from civicseal.errors import CivicsealError
from civicseal.programme.reference import printed
from civicseal.store.fieldcrypt import FieldCipher
from civicseal.web.i18n import LANGS, error_text, text

SESSION_COOKIE: Final = "cs_session"
LOGIN_COOKIE: Final = "cs_login"
LANG_COOKIE: Final = "cs_lang"
MAX_FORM: Final = 16 * 1024

templates = Jinja2Templates(directory=Path(__file__).parent / "templates")


def when(at: datetime) -> str:
    """People read Tokyo time."""
    return as_utc(at).astimezone(TOKYO).strftime("%Y-%m-%d %H:%M JST")


class Forbidden(Exception):
    """Answer 403: a missing or wrong CSRF token, or a page the role may not see."""


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def set_cookie(response: Response, request: Request, name: str, value: str, max_age: int | None = None) -> None:
    response.set_cookie(
        name, value, max_age=max_age, httponly=True, samesite="strict", secure=_secure(request), path="/"
    )


def _lang(request: Request) -> str:
    for asked in (request.query_params.get("lang"), request.cookies.get(LANG_COOKIE)):
        if asked in LANGS:
            return asked
    return "ja"


class Pages:
    """The page routes for one home; the engine and cipher are the worker's, everything else is in the store."""

    def __init__(self, engine: Engine, cipher: FieldCipher, city: str, clock: Callable[[], datetime]) -> None:
        self.engine, self.cipher, self.city, self.clock = engine, cipher, city, clock
        self.router = APIRouter(include_in_schema=False)
        r = self.router
        r.add_api_route("/", self.home, methods=["GET"])
        r.add_api_route("/login", self.login_page, methods=["GET"])
        r.add_api_route("/login", self.login, methods=["POST"])
        r.add_api_route("/logout", self.logout, methods=["POST"])
        r.add_api_route("/account/totp", self.totp_page, methods=["GET"])
        r.add_api_route("/account/totp", self.totp_enrol, methods=["POST"])
        r.add_api_route("/lookup", self.lookup_page, methods=["GET"])
        r.add_api_route("/lookup", self.lookup, methods=["POST"])
        r.add_api_route("/lookup/by-name", self.lookup_by_name, methods=["POST"])
        r.add_api_route("/actions/{action}", self.act, methods=["POST"])
        r.add_api_route("/supervisor", self.supervisor, methods=["GET"])
        r.add_api_route("/supervisor/trail", self.trail, methods=["GET"])
        r.add_api_route("/supervisor/unlock", self.unlock, methods=["POST"])
        r.add_api_route("/supervisor/change/{request_id}", self.decide, methods=["POST"])
        r.add_api_route("/admin", self.admin, methods=["GET"])
        r.add_api_route("/admin/revoke", self.revoke, methods=["POST"])

    # ---------------------------------------------------------------------------------------------
    # plumbing

    def render(self, request: Request, name: str, title_key: str, status: int = 200, **context: Any) -> HTMLResponse:
        lang = _lang(request)
        principal: Principal | None = context.pop("principal", None)
        if context.get("error"):
            context["error"] = error_text(context["error"], lang)
        response = templates.TemplateResponse(
            request,
            name,
            {
                "lang": lang,
                "t": lambda key: text(key, lang),
                "title": text(title_key, lang),
                "city": self.city,
                "user": principal,
                "csrf": principal.csrf_token if principal else context.pop("login_csrf", ""),
                "when": when,
                "call_reference": "",
                **context,
            },
            status_code=status,
        )
        if request.query_params.get("lang") in LANGS:
            set_cookie(response, request, LANG_COOKIE, lang, max_age=365 * 86400)
        return response

    async def principal(self, request: Request) -> Principal | None:
        token = request.cookies.get(SESSION_COOKIE, "")
        return await run_in_threadpool(users.session_principal, self.engine, token, now=self.clock()) if token else None

    async def form(self, request: Request, principal: Principal) -> dict[str, str]:
        """The posted form, once its CSRF token matches the session's; else Forbidden, before anything is done."""
        if int(request.headers.get("content-length") or 0) > MAX_FORM:
            raise Forbidden
        data = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
        if not secrets.compare_digest(data.get("csrf_token", "").encode(), principal.csrf_token.encode()):
            raise Forbidden
        return data

    async def signed_in(self, request: Request, *roles: Role) -> Principal | Response:
        principal = await self.principal(request)
        if principal is None:
            return RedirectResponse("/login", status_code=303)
        if roles and principal.role not in roles:
            raise Forbidden
        return principal

    # ---------------------------------------------------------------------------------------------
    # sign-in

    async def home(self, request: Request) -> Response:
        principal = await self.principal(request)
        if principal is None:
            return RedirectResponse("/login", status_code=303)
        return RedirectResponse("/lookup" if principal.role is not Role.ADMIN else "/admin", status_code=303)

    async def login_page(self, request: Request, error: str | None = None, status: int = 200) -> Response:
        token = secrets.token_urlsafe(32)
        response = self.render(request, "login.html", "signin", status=status, login_csrf=token, error=error)
        set_cookie(response, request, LOGIN_COOKIE, token)
        return response

    async def login(self, request: Request) -> Response:
        data = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
        cookie = request.cookies.get(LOGIN_COOKIE, "")
        if not cookie or not secrets.compare_digest(data.get("csrf_token", "").encode(), cookie.encode()):
            raise Forbidden
        source = request.client.host if request.client else "unknown"
        try:
            done = await run_in_threadpool(
                users.sign_in,
                self.engine,
                self.cipher,
                data.get("username", ""),
                data.get("password", ""),
                data.get("totp", ""),
                source=source,
                now=self.clock(),
            )
        except SignInRefused as exc:
            return await self.login_page(request, error=text(f"signin_{exc.reason}", _lang(request)), status=401)
        response = RedirectResponse("/", status_code=303)
        set_cookie(response, request, SESSION_COOKIE, done.session_token)
        response.delete_cookie(LOGIN_COOKIE, path="/")
        return response

    async def logout(self, request: Request) -> Response:
        principal = await self.signed_in(request)
        if isinstance(principal, Response):
            return principal
        await self.form(request, principal)
        token = request.cookies.get(SESSION_COOKIE, "")
        await run_in_threadpool(users.sign_out, self.engine, principal, token, now=self.clock())
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    # ---------------------------------------------------------------------------------------------
    # one-time codes

    async def totp_page(self, request: Request) -> Response:
        """Any signed-in user without one-time codes (in practice an operator) may turn them on here."""
        principal = await self.signed_in(request)
        if isinstance(principal, Response):
            return principal
        enrolled = await run_in_threadpool(users.has_totp, self.engine, principal)
        offer = None if enrolled else users.offer_totp(self.cipher, principal, issuer=self.city)
        return self.render(request, "totp.html", "totp_setup", principal=principal, offer=offer, enrolled=enrolled)

    async def totp_enrol(self, request: Request) -> Response:
        principal = await self.signed_in(request)
        if isinstance(principal, Response):
            return principal
        data = await self.form(request, principal)
        sealed, now = data.get("offer", ""), self.clock()
        try:
            await run_in_threadpool(
                users.enrol_totp, self.engine, self.cipher, principal, sealed, data.get("code", ""), now=now
            )
        except CivicsealError as exc:
            try:  # the same secret again: the user has probably added it to the app already
                offer = users.offer_totp(self.cipher, principal, issuer=self.city, sealed=sealed)
            except CivicsealError:
                offer = users.offer_totp(self.cipher, principal, issuer=self.city)
            enrolled = await run_in_threadpool(users.has_totp, self.engine, principal)
            context = {"offer": offer, "enrolled": enrolled, "error": str(exc)}
            return self.render(request, "totp.html", "totp_setup", status=400, principal=principal, **context)
        message = text("totp_done", _lang(request))
        return self.render(request, "totp.html", "totp_setup", principal=principal, enrolled=True, message=message)

    # ---------------------------------------------------------------------------------------------
    # look-ups and actions

    async def lookup_page(self, request: Request) -> Response:
        principal = await self.signed_in(request, *lookup.LOOKUP_ROLES)
        if isinstance(principal, Response):
            return principal
        return self.render(request, "lookup.html", "lookup", principal=principal)

    def _shown(self, household: lookup.Household | None) -> dict[str, object] | None:
        if household is None:
            return None
        shown = household.as_dict()
        shown.update(
            printed=printed(household.reference_number),
            amount=f"{household.amount:,}",
            created_at=when(household.created_at),
            status_since=when(household.status_since),
        )
        return shown

    async def _lookup(self, request: Request, call: Callable[..., Any], fields: tuple[str, ...]) -> Response:
        principal = await self.signed_in(request, *lookup.LOOKUP_ROLES)
        if isinstance(principal, Response):
            return principal
        data = await self.form(request, principal)
        context: dict[str, Any] = {"principal": principal, "call_reference": data.get("call_reference", "")}
        try:
            household = await run_in_threadpool(
                call, self.engine, self.cipher, principal, *(data.get(f, "") for f in fields), now=self.clock()
            )
        except NotAllowed:
            raise Forbidden from None
        except AccountLocked as exc:
            return self.render(request, "lookup.html", "lookup", status=403, error=str(exc), **context)
        except CivicsealError as exc:
            return self.render(request, "lookup.html", "lookup", status=400, error=str(exc), **context)
        return self.render(request, "lookup.html", "lookup", searched=True, household=self._shown(household), **context)

    async def lookup(self, request: Request) -> Response:
        fields = ("reference", "birth_date", "call_reference")
        return await self._lookup(request, lookup.lookup_by_reference, fields)

    async def lookup_by_name(self, request: Request) -> Response:
        fields = ("name_kana", "birth_date", "postcode", "call_reference")
        return await self._lookup(request, lookup.lookup_by_name, fields)

    async def act(self, request: Request, action: str) -> Response:
        principal = await self.signed_in(request, *actions.ACTION_ROLES)
        if isinstance(principal, Response):
            return principal
        data = await self.form(request, principal)
        call, now = data.get("call_reference", ""), self.clock()
        try:
            lookup_id = int(data.get("lookup_id", ""))
        except ValueError:
            lookup_id = 0
        try:
            if action == "note":
                await run_in_threadpool(
                    actions.record_note,
                    self.engine,
                    self.cipher,
                    principal,
                    lookup_id,
                    data.get("note", ""),
                    call,
                    now=now,
                )
            elif action == "confirm":
                form = actions.AccountForm(*(data.get(k, "") for k in actions.AccountForm.__dataclass_fields__))
                await run_in_threadpool(
                    actions.confirm, self.engine, self.cipher, principal, lookup_id, form, call, now=now
                )
            elif action == "decline":
                await run_in_threadpool(actions.decline, self.engine, principal, lookup_id, call, now=now)
            elif action == "change":
                await run_in_threadpool(
                    actions.request_change,
                    self.engine,
                    self.cipher,
                    principal,
                    lookup_id,
                    data.get("kind", ""),
                    data,
                    call,
                    now=now,
                )
            else:
                return Response(status_code=404)
        except CivicsealError as exc:
            return self.render(
                request, "lookup.html", "lookup", status=400, error=str(exc), principal=principal, call_reference=call
            )
        message = text("done", _lang(request))
        return self.render(request, "lookup.html", "lookup", message=message, principal=principal, call_reference=call)

    # ---------------------------------------------------------------------------------------------
    # supervisors and admins

    async def _supervisor_page(self, request: Request, principal: Principal, **context: Any) -> Response:
        now = self.clock()

        def read() -> tuple[dashboard.Dashboard, list[actions.PendingChange]]:
            with self.engine.connect() as conn:
                board = dashboard.dashboard(conn, principal, now=now)
                pending = (
                    actions.pending_changes(conn, self.cipher, principal) if principal.role is Role.SUPERVISOR else []
                )
            return board, pending

        board, pending = await run_in_threadpool(read)
        return self.render(
            request, "supervisor.html", "dashboard", principal=principal, board=board, pending=pending, **context
        )

    async def supervisor(self, request: Request) -> Response:
        principal = await self.signed_in(request, Role.SUPERVISOR, Role.ADMIN)
        if isinstance(principal, Response):
            return principal
        return await self._supervisor_page(request, principal)

    async def trail(self, request: Request) -> Response:
        principal = await self.signed_in(request, Role.SUPERVISOR)
        if isinstance(principal, Response):
            return principal
        reference = request.query_params.get("reference", "")
        try:
            found = await run_in_threadpool(
                dashboard.household_trail, self.engine, self.cipher, principal, reference, now=self.clock()
            )
        except CivicsealError as exc:
            return await self._supervisor_page(request, principal, error=str(exc))
        return await self._supervisor_page(request, principal, trail=found)

    def _may_manage(self, principal: Principal, username: str) -> bool:
        with self.engine.connect() as conn:
            scoped = users.list_users(conn, now=self.clock(), organization=principal.organization)
        return any(u.username == username for u in scoped)

    async def unlock(self, request: Request) -> Response:
        principal = await self.signed_in(request, Role.SUPERVISOR, Role.ADMIN)
        if isinstance(principal, Response):
            return principal
        username = (await self.form(request, principal)).get("username", "")
        if not await run_in_threadpool(self._may_manage, principal, username):
            raise Forbidden
        await run_in_threadpool(users.unlock_user, self.engine, username, now=self.clock(), actor=principal.actor)
        return RedirectResponse("/supervisor" if principal.role is Role.SUPERVISOR else "/admin", status_code=303)

    async def decide(self, request: Request, request_id: int) -> Response:
        principal = await self.signed_in(request, Role.SUPERVISOR)
        if isinstance(principal, Response):
            return principal
        approve = (await self.form(request, principal)).get("decision") == "approve"
        try:
            await run_in_threadpool(
                actions.decide_change, self.engine, self.cipher, principal, request_id, approve, now=self.clock()
            )
        except CivicsealError as exc:
            return await self._supervisor_page(request, principal, error=str(exc))
        return RedirectResponse("/supervisor", status_code=303)

    async def admin(self, request: Request) -> Response:
        principal = await self.signed_in(request, Role.ADMIN)
        if isinstance(principal, Response):
            return principal

        def read() -> list[users.UserInfo]:
            with self.engine.connect() as conn:
                return users.list_users(conn, now=self.clock(), organization=principal.organization)

        return self.render(request, "admin.html", "admin", principal=principal, users=await run_in_threadpool(read))

    async def revoke(self, request: Request) -> Response:
        principal = await self.signed_in(request, Role.ADMIN)
        if isinstance(principal, Response):
            return principal
        username = (await self.form(request, principal)).get("username", "")
        if not await run_in_threadpool(self._may_manage, principal, username):
            raise Forbidden
        await run_in_threadpool(users.revoke_sessions, self.engine, username, now=self.clock(), actor=principal.actor)
        return RedirectResponse("/admin", status_code=303)


def forbidden_page(request: Request, city: str) -> HTMLResponse:
    lang = _lang(request)
    body = f"<!doctype html><html lang='{lang}'><meta charset='utf-8'><title>403</title>"
    return HTMLResponse(f"{body}<p>{html.escape(city)}: {text('forbidden', lang)}</p>", status_code=403)
