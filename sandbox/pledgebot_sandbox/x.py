"""A local X API v2 server: the subset pledgebot uses, for tests and the demo.

Serves ``/2/tweets``, ``/2/users/...`` and ``/2/media/...`` to the real tweepy client, whose
requests are signed with OAuth 1.0a for ``https://api.twitter.com`` and only then sent here (a
transport adapter rewrites the host after signing), so the signature is checked against the
real URL. Owns the HTTP surface: authentication, fault injection and a small
``/_sandbox/...`` control surface for subprocess tests. The account's posts and media and what
each endpoint does live in ``_x_api``, X's rules (errors, OAuth, text length, media) in
``_x_rules``; ``XSandboxThread`` reuses the sandboxes' thread runner.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web
from multidict import MultiDict, MultiDictProxy

from pledgebot_sandbox._control import ControlAction, Fault, SandboxServer, check_error_status
from pledgebot_sandbox._thread import BaseSandboxThread
from pledgebot_sandbox._x_api import Call, Handler, XAccount
from pledgebot_sandbox._x_rules import (
    MAX_IMAGE_BYTES,
    FixedWindow,
    NonceCache,
    OAuthCredentials,
    XError,
    problem,
    verify_oauth1,
)

__all__ = ["XSandbox", "XSandboxThread"]


class XSandbox(SandboxServer):
    """One fake X with one signed-in account. Call it only from the server's event loop thread.

    ``POST /2/tweets`` is limited to ``posts_per_window`` requests per fixed window of
    ``window_seconds`` that starts with its first request (see ``FixedWindow``); every request
    of that route counts, refused ones included, as on X; only the 429s themselves do not.
    """

    client_max_size = 2 * MAX_IMAGE_BYTES  # an oversized image gets X's 400, not a bare 413

    def __init__(
        self,
        *,
        consumer_key: str = "sandbox-consumer-key",
        consumer_secret: str = "sandbox-consumer-secret",
        access_token: str = "1500000000000000001-sandboxtoken",
        access_token_secret: str = "sandbox-token-secret",
        user_id: str = "1500000000000000001",
        username: str = "pledgebot_sandbox",
        posts_per_window: int = 100,
        window_seconds: float = 900.0,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        if not user_id.isdigit():
            raise ValueError("X user ids are decimal strings")
        if posts_per_window < 1 or window_seconds <= 0:
            raise ValueError("posts_per_window must be at least 1 and window_seconds positive")
        super().__init__(host, port)  # method_calls: requests per route, answered or not
        self._oauth = OAuthCredentials(
            consumer_key, consumer_secret, access_token, access_token_secret
        )
        self._clock: Callable[[], float] = time.time  # wall clock: reset headers are unix time
        self._nonces = NonceCache()
        self._revoked = False
        window = FixedWindow(posts_per_window, window_seconds, self._clock)
        self._account = XAccount(user_id, username, window, self._clock)
        # Routes are named "<METHOD> <path pattern>", e.g. "DELETE /2/tweets/{id}".
        self._routes: dict[str, Handler] = self._account.handlers

    # --- the account and the server ----------------------------------------------------------
    @property
    def user_id(self) -> str:
        return self._account.user_id

    @property
    def username(self) -> str:
        return self._account.username

    @property
    def credentials(self) -> dict[str, str]:
        """Keyword arguments for ``tweepy.Client``."""
        return {
            "consumer_key": self._oauth.consumer_key,
            "consumer_secret": self._oauth.consumer_secret,
            "access_token": self._oauth.access_token,
            "access_token_secret": self._oauth.access_token_secret,
        }

    def _add_routes(self, router: web.UrlDispatcher) -> None:
        for route, handler in self._routes.items():
            method, path = route.split(" ", 1)
            router.add_route(method, path, self._endpoint(route, handler))
        router.add_route("*", "/{tail:.*}", self._handle_unknown)

    def _control_actions(self) -> dict[str, ControlAction]:
        return {
            "GET posts": lambda query: self.posts(
                include_deleted=query.get("include_deleted", "") in ("1", "true")
            ),
            "GET media": lambda _: self.media(),
            "POST fault": lambda body: self.inject_fault(body.pop("route"), **body),
            "POST revoke": lambda _: self.revoke_tokens(),
        }

    # --- what tests look at and do ------------------------------------------------------------
    def posts(self, *, include_deleted: bool = False) -> list[dict[str, Any]]:
        """Posts in posting order (copies); deleted ones only with ``include_deleted``.

        ``text`` is what X stores and returns (every link wrapped in t.co, and a t.co link to the
        media appended when there is media), ``sent_text`` the text as the client sent it,
        ``urls`` the ``entities.urls`` (t.co → the URL as sent, or to the media page).
        """
        return [
            copy.deepcopy(post)
            for post in self._account.posts.values()
            if include_deleted or not post["deleted"]
        ]

    def media(self) -> dict[str, dict[str, Any]]:
        """Uploaded media by id: size, media_type, media_category, alt_text (copies)."""
        keys = ("size", "media_type", "media_category", "alt_text")
        return {mid: {key: item[key] for key in keys} for mid, item in self._account.media.items()}

    def revoke_tokens(self) -> None:
        """The user revoked the app (or the token expired): every later request gets 401."""
        self._revoked = True

    def inject_fault(
        self,
        route: str,
        *,
        status: int | None = None,
        delay: float | None = None,
        deliver: bool = False,
        times: int = 1,
        body: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        """Make the next ``times`` calls of ``route`` (e.g. ``"POST /2/tweets"``) misbehave.

        ``status`` answers with that HTTP error (X's problem body unless ``body`` is given,
        plus ``headers``); ``delay`` waits first. Without ``deliver`` a faulted call is not
        carried out, except a pure delay whose client is still connected when it ends. With
        ``deliver`` it is carried out first: "accepted, but the client never heard".
        Authentication still comes first: a badly signed request gets its 401, not the fault.
        """
        if route not in self._routes:
            raise ValueError(f"unknown route {route!r}; one of {sorted(self._routes)}")
        if status is None and delay is None:
            raise ValueError("give status or delay")
        error: Callable[[], XError] | None = None
        if status is not None:
            check_error_status(status)
            extra = dict(headers or {})
            error = partial(self._fault_error, route, status, copy.deepcopy(body), extra)
        self._queue_fault(route, Fault(error, delay, deliver), times)

    # --- HTTP plumbing ------------------------------------------------------------------------
    def _endpoint(
        self, route: str, handler: Handler
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def endpoint(request: web.Request) -> web.StreamResponse:
            self.method_calls[route] += 1
            try:
                call = await self._authenticate(request)
            except XError as exc:
                return self._error(exc)
            return await self._answer_call(route, request, lambda: self._run(handler, call))

        return endpoint

    async def _authenticate(self, request: web.Request) -> Call:
        # The whole body is read before answering, even a 401: a client still uploading an
        # image would otherwise see a reset connection instead of the answer.
        form: MultiDictProxy[Any] | None = None
        form_body: str | None = None
        try:
            if request.content_type == "multipart/form-data":
                form = await request.post()
                body = b""
            else:
                body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            raise problem(413) from None
        if request.content_type == "application/x-www-form-urlencoded":
            form_body = body.decode("utf-8", "replace")
            form = MultiDictProxy(MultiDict(parse_qsl(form_body, keep_blank_values=True)))
        if self._revoked:
            raise problem(401)
        verify_oauth1(
            method=request.method,
            raw_path=request.raw_path,
            authorization=request.headers.get("Authorization"),
            form_body=form_body,
            credentials=self._oauth,
            nonces=self._nonces,
            now=self._clock(),
        )
        return Call(dict(request.match_info), request.query, body, request.content_type, form)

    def _fault_error(
        self, route: str, status: int, body: dict[str, Any] | None, headers: dict[str, str]
    ) -> XError:
        error = problem(status)
        if body is not None:
            error.body = body
        if route == "POST /2/tweets" and status == 429:
            # The window as it stands when the fault is served, not when it was injected.
            error.headers.update(self._account.post_window.headers())
        error.headers.update(headers)
        return error

    async def _run(self, handler: Handler, call: Call) -> web.Response:
        try:
            answer = await handler(call)
        except XError as exc:
            return self._error(exc)
        return web.json_response(answer.body, status=answer.status, headers=answer.headers)

    async def _handle_unknown(self, request: web.Request) -> web.Response:
        # X's answer for a path it does not serve (an old v1.1-style error, even under /2).
        body = {"errors": [{"message": "Sorry, that page does not exist", "code": 34}]}
        return web.json_response(body, status=404)


class XSandboxThread(BaseSandboxThread[XSandbox]):
    """``with XSandboxThread(**XSandbox kwargs) as x:`` then ``x.posts()``, from sync code.

    The sandboxes' thread runner, building an ``XSandbox``: ``call``, ``base_url``, ``port``,
    ``rate_limited``, ``method_calls`` and ``inject_fault`` come from it; the Telegram
    proxies (``push_message``, ``token``, ...) are the Telegram runner's only.
    """

    sandbox_class = XSandbox

    @property
    def credentials(self) -> dict[str, str]:
        return dict(self.call("credentials"))

    @property
    def user_id(self) -> str:
        return self.sandbox.user_id

    @property
    def username(self) -> str:
        return self.sandbox.username

    def posts(self, *, include_deleted: bool = False) -> list[dict[str, Any]]:
        return list(self.call("posts", include_deleted=include_deleted))

    def media(self) -> dict[str, dict[str, Any]]:
        return dict(self.call("media"))

    def revoke_tokens(self) -> None:
        self.call("revoke_tokens")
