"""Who may see and change what: sign-in sessions, roles and CSRF, for every route at once.

``StaffAuth`` wraps the whole app, so a new route is protected without anyone remembering to
protect it. Only the routes in ``PUBLIC`` are served without a session (tests pin the list).
Everything else:

- without a session, a page (GET) redirects to ``/login``; anything else answers 401;
- a request that changes something (any method but GET/HEAD) must carry the session's CSRF
  token, as the form field ``csrf`` or the header ``X-CSRF-Token``: 403 otherwise;
- viewers change nothing (403); only admins reach ``/users``;
- ``/metrics`` and ``/healthz/details`` also accept ``Authorization: Bearer <token>`` when
  ``[dashboard] metrics_token_env`` names a set variable, for a Prometheus scraper.

Every response that does not say otherwise is sent with ``Cache-Control: no-store`` (pages,
exports and secret feeds stay out of shared and browser caches); static files and the public
journey feed set their own caching.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import quote

from anyio import to_thread
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response

from bot.community import staff
from bot.service.app import App

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

log = logging.getLogger(__name__)
COOKIE = "pledgebot_session"
# The only routes served without a session: the token in the path is the credential of the last
# three (bot.web.public: an email invitation's confirmation, one-click unsubscribe); the public
# journey feed (bot.web.feed) shows only approved, consented updates, and /media (bot.web.media)
# only their images, behind an HMAC token (Instagram fetches them). Nothing else belongs on it.
PUBLIC = (
    "/login",
    "/static/{path}",
    "/healthz",
    "/calendar/{token}.ics",
    "/join/{token}",
    "/unsubscribe/{token}",
    "/feed.atom",
    "/feed.json",
    "/media/{token}/{name}",
)
_PUBLIC = [
    re.compile("^" + re.sub(r"\{[a-z]+\}", "[^?]+", p.replace(".", r"\.")) + "$") for p in PUBLIC
]
ADMIN_ONLY = ("/users",)
SCRAPER_PATHS = ("/metrics", "/healthz/details")  # a session, or the scraper's bearer token
CACHEABLE = ("/static/",)  # path prefixes served without the default Cache-Control: no-store
# Still with the CSRF token: signing out, and a viewer's own calendar feed (it changes nothing
# of the campaign).
VIEWERS_MAY_POST = ("/logout", "/calendar/feed", "/calendar/feed/revoke")
SAFE_METHODS = ("GET", "HEAD")
MAX_FORM_BYTES = 10 * 1024 * 1024  # a CSV upload
SECURITY_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        b"form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
]


def is_public(path: str) -> bool:
    return any(pattern.match(path) for pattern in _PUBLIC)


class StaffAuth:
    def __init__(self, inner: ASGIApp, app: App) -> None:
        self.inner, self.app = inner, app
        staff.dummy_hash()  # made now, so that no sign-in pays for it

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.inner(scope, receive, send)
            return
        path, method = scope["path"], scope["method"]
        send = _with_security_headers(send, no_store=not path.startswith(CACHEABLE))
        if is_public(path):
            await self.inner(scope, receive, send)
            return
        request = Request(scope)
        if path in SCRAPER_PATHS and self._scraper(request):
            await self.inner(scope, receive, send)
            return
        try:
            found = await to_thread.run_sync(self._session, request.cookies.get(COOKIE, ""))
        except Exception as exc:  # the database is down: say so, without a traceback
            log.warning("dashboard: cannot check the session: %s", type(exc).__name__)
            await PlainTextResponse("The database is unreachable.", 503)(scope, receive, send)
            return
        if found is None:
            await _unauthenticated(request, method)(scope, receive, send)
            return
        user_email, role, csrf = found
        scope.setdefault("state", {}).update(user=user_email, role=role, csrf=csrf)
        if any(path == p or path.startswith(p + "/") for p in ADMIN_ONLY) and role != "admin":
            await _forbidden("Only an admin manages users.")(scope, receive, send)
            return
        if method not in SAFE_METHODS:
            if not staff.role_at_least(role, "editor") and path not in VIEWERS_MAY_POST:
                await _forbidden("Viewers can look, not change.")(scope, receive, send)
                return
            body, receive = await _buffer(receive)
            if body is None:
                await PlainTextResponse("Too large.", 413)(scope, receive, send)
                return
            if not await _csrf_ok(scope, body, csrf):
                await _forbidden("This form has expired; reload the page.")(scope, receive, send)
                return
        await self.inner(scope, receive, send)

    def _session(self, token: str) -> tuple[str, str, str] | None:
        if not token:
            return None
        with self.app.db.session() as session:
            found = staff.session_for(session, token)
            if found is None:
                return None
            staff_session, user = found
            return user.email, user.role, staff_session.csrf_token

    def _scraper(self, request: Request) -> bool:
        name = self.app.config.dashboard.metrics_token_env
        expected = os.environ.get(name, "") if name else ""
        given = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        return bool(expected) and hmac.compare_digest(given.encode(), expected.encode())


def _unauthenticated(request: Request, method: str) -> Response:
    accept = request.headers.get("accept", "*/*")
    page = request.url.path not in SCRAPER_PATHS  # a scraper gets a status, not a sign-in form
    if page and method in SAFE_METHODS and ("text/html" in accept or "*/*" in accept):
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(target, safe='/')}", status_code=303)
    return PlainTextResponse("Sign in first.", status_code=401)


def _forbidden(text: str) -> Response:
    return PlainTextResponse(text, status_code=403)


async def _buffer(receive: Receive) -> tuple[bytes | None, Receive]:
    """Read the request body (so the CSRF field can be checked) and replay it to the app;
    None for a body over ``MAX_FORM_BYTES`` (refused, never cut short)."""
    chunks, size, more = [], 0, True
    while more:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        size += len(chunks[-1])
        if size > MAX_FORM_BYTES:
            return None, receive
        more = message.get("more_body", False)
    body = b"".join(chunks)
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return body, replay


async def _csrf_ok(scope: Scope, body: bytes, expected: str) -> bool:
    headers = Headers(scope=scope)
    given = headers.get("x-csrf-token", "")
    if not given and body:
        delivered = False

        async def once() -> Message:
            nonlocal delivered
            if delivered:
                return {"type": "http.disconnect"}
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}

        try:
            form = await Request(scope, once).form()
            value = form.get("csrf")
            given = value if isinstance(value, str) else ""
        except Exception:  # a body that is not a form
            given = ""
    return bool(given) and hmac.compare_digest(given.encode(), expected.encode())


def _with_security_headers(send: Send, *, no_store: bool) -> Send:
    added = SECURITY_HEADERS + ([(b"cache-control", b"no-store")] if no_store else [])

    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            present = {name.lower() for name, _ in message.get("headers", [])}
            message["headers"] = list(message.get("headers", [])) + [
                (name, value) for name, value in added if name not in present
            ]
        await send(message)

    return wrapped


async def hold_sign_in(app: App, email: str) -> None:
    """Wait out the address's back-off (``bot.community.staff.backoff``) before its password is
    checked:
    on the event loop, so held sign-ins never take the thread pool the pages need."""

    def seconds() -> float:
        with app.db.session() as session:
            return staff.backoff(session, email)

    try:
        wait = await to_thread.run_sync(seconds)
    except Exception as exc:  # the sign-in itself will say the database is unreachable
        log.warning("dashboard: cannot read the sign-in back-off: %s", type(exc).__name__)
        return
    if wait > 0:
        await asyncio.sleep(wait)
