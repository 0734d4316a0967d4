"""A local LinkedIn REST API: the Posts and Images calls pledgebot makes, for tests and the demo.

Serves ``/rest/posts`` and ``/rest/images`` as LinkedIn does for an organisation page: every
call needs ``Authorization: Bearer <token>`` (401 ``INVALID_ACCESS_TOKEN``, or
``EXPIRED_ACCESS_TOKEN`` once ``expire_token()`` ran), a served ``LinkedIn-Version`` (missing:
400 ``VERSION_MISSING``; too old or not yet out: 426 ``NONEXISTENT_VERSION``; served: the last
twelve months by default) and ``X-Restli-Protocol-Version: 2.0.0``. A post is checked against
the schema (author = the page, 3,000 characters of commentary, visibility, distribution,
images that were uploaded and are ``AVAILABLE``), its commentary read as little text (an
unescaped reserved character cuts it short, silently, as on LinkedIn), the same commentary twice
is refused as LinkedIn refuses it (422 "Content is a duplicate of urn:li:share:…"), and
``posts_per_day`` answers 429 past a daily count. Images go up in three steps:
``initializeUpload`` hands out an upload URL on this server, the bytes are ``PUT`` there, and the
image turns ``AVAILABLE`` (after ``processing_polls`` status reads answering ``PROCESSING``).

Faults: the next call of an endpoint can answer 5xx, 429, an expired or revoked token, 403, or
nothing in time (``fail_next``). Stateful: tests read the posts back with ``posts()`` (what a
reader sees: ``text``, ``mentions``, ``hashtags``) and every request's headers with
``requests``. The page and its handlers live in ``_linkedin_page``, the rules and error bodies in
``_linkedin_rules``; ``LinkedInSandboxThread`` runs it for synchronous code.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import secrets
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from aiohttp import web

from pledgebot_sandbox._linkedin_page import Answer, Call, LinkedInPage
from pledgebot_sandbox._linkedin_rules import (
    TOKEN_ERRORS,
    LinkedInError,
    check_headers,
    internal_error,
    recent_versions,
)
from pledgebot_sandbox._server import serve
from pledgebot_sandbox._thread import BaseSandboxThread

__all__ = ["LinkedInSandbox", "LinkedInSandboxThread"]

log = logging.getLogger(__name__)

DAY_LIMIT = "Resource level throttle APPLICATION DAY limit for calls to this resource is reached."
# What a test can ask the next call to do: (status, code, message, serviceErrorCode).
FAULTS: dict[str, tuple[int, str, str, int | None]] = {
    "server_error": (500, "INTERNAL_SERVER_ERROR", "Internal Server Error", None),
    "bad_gateway": (502, "BAD_GATEWAY", "Bad Gateway", None),
    "unavailable": (503, "SERVICE_UNAVAILABLE", "Service Unavailable", None),
    "rate_limited": (429, "TOO_MANY_REQUESTS", "Too Many Requests", 101),
    "day_limit": (429, "TOO_MANY_REQUESTS", DAY_LIMIT, 101),
    "forbidden": (403, "ACCESS_DENIED", "Not enough permissions to access: posts.CREATE", 100),
}
FAULTS.update(  # expired_token, revoked_token, invalid_token: a 401 as LinkedIn words it
    (f"{kind}_token", (401, code, message, service))
    for kind, (service, code, message) in TOKEN_ERRORS.items()
)
ENDPOINTS = (
    "posts.create", "posts.get", "posts.delete",
    "images.initializeUpload", "images.upload", "images.get",
)  # fmt: skip


@dataclass
class _Fault:
    error: LinkedInError | None
    delay: float | None
    deliver: bool


class LinkedInSandbox:
    """One fake LinkedIn with one organisation page. Call it only from its event loop's thread.

    ``versions``: the oldest and newest ``LinkedIn-Version`` served (default: the last twelve
    months). ``posts_per_day``: posts a day before 429 (None: no limit). ``processing_polls``:
    status reads of a fresh upload that still answer ``PROCESSING``. ``ghost_duplicates``:
    deleted posts still count as duplicates (LinkedIn's, for a day or two), so the refusal
    names a post that answers 404.
    """

    def __init__(
        self,
        *,
        organization_id: str = "2414183",
        access_token: str | None = None,
        versions: tuple[str, str] | None = None,
        posts_per_day: int | None = None,
        processing_polls: int = 0,
        ghost_duplicates: bool = False,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.host, self.port = host, port
        self._clock: Callable[[], float] = time.time
        self.versions = versions or recent_versions(self._clock)
        self.access_token = access_token or "AQX" + secrets.token_urlsafe(36)
        self.page = LinkedInPage(
            organization_id=organization_id,
            access_token=self.access_token,
            upload_base=lambda: self.base_url,
            clock=self._clock,
            posts_per_day=posts_per_day,
            processing_polls=processing_polls,
            ghost_duplicates=ghost_duplicates,
        )
        self.rate_limited = 0
        self.calls: Counter[str] = Counter()  # calls per endpoint, answered or not
        self.requests: list[dict[str, Any]] = []  # method, endpoint, headers (no token)
        self._faults: dict[str, deque[_Fault]] = {}
        self._closing = asyncio.Event()
        self._runner: web.AppRunner | None = None

    # --- lifecycle ----------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def api_base_url(self) -> str:
        return f"{self.base_url}/rest"

    @property
    def author(self) -> str:
        return self.page.author

    @property
    def organization_id(self) -> str:
        return self.page.author.rsplit(":", 1)[1]

    @property
    def latest_version(self) -> str:
        return self.versions[1]

    async def start(self) -> None:
        if self._runner is not None:
            raise RuntimeError("the sandbox is already running")
        self._closing = asyncio.Event()
        app = web.Application(client_max_size=20 * 1024 * 1024)
        route = app.router.add_route
        route("POST", "/rest/posts", self._endpoint("posts.create"))
        route("GET", "/rest/posts/{key}", self._endpoint("posts.get"))
        route("DELETE", "/rest/posts/{key}", self._endpoint("posts.delete"))
        route("POST", "/rest/images", self._endpoint("images.initializeUpload"))
        route("GET", "/rest/images/{key}", self._endpoint("images.get"))
        route("PUT", "/_upload/{key}", self._endpoint("images.upload", versioned=False))
        route("*", "/_sandbox/{action}", self._handle_control)
        self._runner, self.port = await serve(app, self.host, self.port)

    async def stop(self) -> None:
        if self._runner is None:
            return
        self._closing.set()  # cuts injected delays short
        await self._runner.cleanup()
        self._runner = None

    # --- what tests look at and do ------------------------------------------------------------
    def posts(self, *, deleted: bool = False) -> list[dict[str, Any]]:
        """Live posts in posting order (copies), each with what a reader sees: ``text``,
        ``mentions``, ``hashtags`` and ``cut`` (an unescaped reserved character ended it)."""
        found = []
        for urn, post in self.page.posts.items():
            if (urn in self.page.deleted) != deleted:
                continue
            seen = self.page.rendered[urn]
            found.append(
                {
                    **copy.deepcopy(post),
                    "text": seen.text,
                    "mentions": copy.deepcopy(seen.mentions),
                    "hashtags": list(seen.hashtags),
                    "cut": seen.cut,
                }
            )
        return found

    def texts(self) -> list[str]:
        return [post["text"] for post in self.posts()]

    def images(self) -> dict[str, dict[str, Any]]:
        return copy.deepcopy(self.page.images)

    def expire_token(self, token: str | None = None) -> None:
        """The page's access token expired (LinkedIn's last 60 days)."""
        self.page.tokens.states[token or self.access_token] = "expired"

    def revoke_token(self, token: str | None = None) -> None:
        self.page.tokens.states[token or self.access_token] = "revoked"

    def renew_token(self) -> str:
        """Staff signed in again: a new valid token (the old one stays as it was)."""
        self.access_token = "AQX" + secrets.token_urlsafe(36)
        self.page.tokens.states[self.access_token] = "valid"
        return self.access_token

    def fail_next(
        self,
        endpoint: str,
        how: str,
        *,
        times: int = 1,
        headers: dict[str, str] | None = None,
        delay: float | None = None,
        deliver: bool = False,
    ) -> None:
        """The next ``times`` calls of ``endpoint`` (one of ``ENDPOINTS``) answer ``how`` (a
        ``FAULTS`` name, ``headers`` added: a 429's ``Retry-After``, say) or, for
        ``how="timeout"``, answer nothing for ``delay`` seconds (default 10). With ``deliver``
        the call is carried out first: "done, but the client never heard"."""
        if endpoint not in ENDPOINTS:
            raise ValueError(f"unknown endpoint {endpoint!r}; one of {ENDPOINTS}")
        if times < 1:
            raise ValueError("times must be at least 1")
        error = None
        if how == "timeout":
            delay = 10.0 if delay is None else delay
        elif how in FAULTS:
            status, code, message, service = FAULTS[how]
            error = LinkedInError(status, code, message, service_code=service, headers=headers)
        else:
            raise ValueError(f"unknown fault {how!r}; one of {[*FAULTS, 'timeout']}")
        queue = self._faults.setdefault(endpoint, deque())
        queue.extend(_Fault(error, delay, deliver) for _ in range(times))

    # --- HTTP plumbing ------------------------------------------------------------------------
    def _endpoint(self, endpoint: str, *, versioned: bool = True) -> Callable[[web.Request], Any]:
        async def handle(request: web.Request) -> web.StreamResponse:
            return await self._handle(request, endpoint, versioned)

        return handle

    async def _handle(
        self, request: web.Request, endpoint: str, versioned: bool
    ) -> web.StreamResponse:
        self.calls[endpoint] += 1
        body = await request.read()  # all of it, even to refuse it: no reset connection
        headers = {k: v for k, v in request.headers.items() if k.lower() != "authorization"}
        self.requests.append(
            {
                "endpoint": endpoint,
                "method": request.method,
                "path": request.path,
                "raw_path": request.rel_url.raw_path,
                "query": dict(request.query),
                "headers": headers,
                "authorized": "Authorization" in request.headers,
            }
        )
        try:
            if versioned:
                check_headers(request.headers, self.versions)
            self.page.tokens.verify(request.headers.get("Authorization"))
        except LinkedInError as exc:
            return self._error(exc)
        call = Call(request.method, request.match_info.get("key", ""), request.query, body)
        faults = self._faults.get(endpoint)
        if not faults:
            return await self._run(endpoint, call)
        fault = faults.popleft()
        delivered = await self._run(endpoint, call) if fault.deliver else None
        if fault.delay:
            with contextlib.suppress(TimeoutError):  # stop() cuts the delay short
                await asyncio.wait_for(self._closing.wait(), fault.delay)
        if fault.error is not None:
            return self._error(fault.error)
        if delivered is not None:
            return delivered
        if request.transport is None or request.transport.is_closing():
            return web.Response(status=499)  # the client gave up: the call is never carried out
        return await self._run(endpoint, call)

    async def _run(self, endpoint: str, call: Call) -> web.Response:
        try:
            answer: Answer = await self.page.handlers[endpoint](call)
        except LinkedInError as exc:
            return self._error(exc)
        except Exception:  # a sandbox bug shows as LinkedIn's own 500, and in the test's log
            log.exception("linkedin sandbox: %s failed", endpoint)
            return self._error(internal_error())
        headers = {"x-restli-protocol-version": "2.0.0", **answer.headers}
        if answer.body is None:
            return web.Response(status=answer.status, headers=headers)
        return web.json_response(answer.body, status=answer.status, headers=headers)

    def _error(self, error: LinkedInError) -> web.Response:
        if error.status == 429:
            self.rate_limited += 1
        return web.json_response(error.body, status=error.status, headers=error.headers)

    async def _handle_control(self, request: web.Request) -> web.Response:
        """``/_sandbox/posts`` (GET), ``/_sandbox/fault`` (POST ``{"endpoint", "how", ...}``)
        and ``/_sandbox/expire`` (POST): for subprocess tests and the demo."""
        action = request.match_info["action"]
        try:
            if request.method == "GET" and action == "posts":
                return web.json_response(self.posts())
            if request.method == "POST" and action == "fault":
                body = await request.json()
                self.fail_next(body.pop("endpoint"), body.pop("how"), **body)
            elif request.method == "POST" and action == "expire":
                self.expire_token()
            else:
                return web.json_response({"error": "unknown control action"}, status=404)
            return web.json_response({"ok": True})
        except (KeyError, TypeError, ValueError) as exc:
            return web.json_response({"error": f"{type(exc).__name__}: {exc}"}, status=400)


class LinkedInSandboxThread(BaseSandboxThread):
    """``with LinkedInSandboxThread(**LinkedInSandbox kwargs) as li:`` then ``li.posts()``,
    from synchronous code (the sandboxes' thread runner, building a LinkedIn one)."""

    sandbox_class = LinkedInSandbox

    @property
    def sandbox(self) -> LinkedInSandbox:  # type: ignore[override]
        return cast(LinkedInSandbox, super().sandbox)

    def posts(self) -> list[dict[str, Any]]:
        return list(self.call("posts"))

    def fail_next(self, endpoint: str, how: str, **options: Any) -> None:
        self.call("fail_next", endpoint, how, **options)

    def expire_token(self) -> None:
        self.call("expire_token")
