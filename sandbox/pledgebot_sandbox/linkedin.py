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

import copy
import logging
import secrets
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from pledgebot_sandbox._control import ControlAction, ErrorAnswer, SandboxServer, ready
from pledgebot_sandbox._linkedin_page import Answer, Call, LinkedInPage
from pledgebot_sandbox._linkedin_rules import (
    TOKEN_ERRORS,
    LinkedInError,
    check_headers,
    internal_error,
    recent_versions,
)
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


class LinkedInSandbox(SandboxServer):
    """One fake LinkedIn with one organisation page. Call it only from its event loop's thread.

    ``versions``: the oldest and newest ``LinkedIn-Version`` served (default: the last twelve
    months). ``posts_per_day``: posts a day before 429 (None: no limit). ``processing_polls``:
    status reads of a fresh upload that still answer ``PROCESSING``. ``ghost_duplicates``:
    deleted posts still count as duplicates (LinkedIn's, for a day or two), so the refusal
    names a post that answers 404.
    """

    client_max_size = 20 * 1024 * 1024

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
        super().__init__(host, port)  # method_calls: calls per endpoint, answered or not
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
        self.requests: list[dict[str, Any]] = []  # method, endpoint, headers (no token)

    # --- the page and the server -------------------------------------------------------------
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

    def _add_routes(self, router: web.UrlDispatcher) -> None:
        route = router.add_route
        route("POST", "/rest/posts", self._endpoint("posts.create"))
        route("GET", "/rest/posts/{key}", self._endpoint("posts.get"))
        route("DELETE", "/rest/posts/{key}", self._endpoint("posts.delete"))
        route("POST", "/rest/images", self._endpoint("images.initializeUpload"))
        route("GET", "/rest/images/{key}", self._endpoint("images.get"))
        route("PUT", "/_upload/{key}", self._endpoint("images.upload", versioned=False))

    def _control_actions(self) -> dict[str, ControlAction]:
        """``posts``; ``fault`` (``{"endpoint", "how", ...}``), ``expire``."""
        return {
            "GET posts": lambda _: self.posts(),
            "POST fault": lambda body: self.fail_next(
                body.pop("endpoint"), body.pop("how"), **body
            ),
            "POST expire": lambda _: self.expire_token(),
        }

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

        def named(how: str) -> Callable[[], ErrorAnswer]:
            if how not in FAULTS:
                raise ValueError(f"unknown fault {how!r}; one of {[*FAULTS, 'timeout']}")
            status, code, message, service = FAULTS[how]
            return ready(
                LinkedInError(status, code, message, service_code=service, headers=headers)
            )

        self._fail_next(endpoint, how, named, times=times, delay=delay, deliver=deliver)

    # --- HTTP plumbing ------------------------------------------------------------------------
    def _endpoint(self, endpoint: str, *, versioned: bool = True) -> Callable[[web.Request], Any]:
        async def handle(request: web.Request) -> web.StreamResponse:
            return await self._handle(request, endpoint, versioned)

        return handle

    async def _handle(
        self, request: web.Request, endpoint: str, versioned: bool
    ) -> web.StreamResponse:
        self.method_calls[endpoint] += 1
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
        return await self._answer_call(endpoint, request, lambda: self._run(endpoint, call))

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


class LinkedInSandboxThread(BaseSandboxThread[LinkedInSandbox]):
    """``with LinkedInSandboxThread(**LinkedInSandbox kwargs) as li:`` then ``li.posts()``,
    from synchronous code (the sandboxes' thread runner, building a LinkedIn one)."""

    sandbox_class = LinkedInSandbox

    def posts(self) -> list[dict[str, Any]]:
        return list(self.call("posts"))

    def fail_next(self, endpoint: str, how: str, **options: Any) -> None:
        self.call("fail_next", endpoint, how, **options)

    def expire_token(self) -> None:
        self.call("expire_token")
