"""A local Bluesky PDS: the XRPC methods pledgebot uses, for tests and the demo.

Serves ``/xrpc/<nsid>`` to the real ``atproto`` client: sessions made with a handle and an app
password (HS256 JWTs: access and refresh, the refresh token rotated on use), records in one
account's repository (``app.bsky.feed.post`` checked against the lexicon: 300 graphemes, facets,
up to 4 images with their ``alt``), blobs, handle resolution for mentions. It answers with the
PDS's own error shapes (``{"error", "message"}``), limits repo writes by points with the
``ratelimit-*`` headers, and can be told to misbehave: the next call of a method answers 5xx,
429, an expired token, or nothing in time. Stateful: tests read the posts (and their threads)
back with ``posts()``. The account and its methods live in ``_bluesky_repo``, the rules and
error bodies in ``_bluesky_rules``; ``BlueskySandboxThread`` runs it for synchronous code.
"""

from __future__ import annotations

import copy
import logging
import secrets
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from aiohttp import web

from pledgebot_sandbox._bluesky_repo import Answer, BlueskyAccount, Call
from pledgebot_sandbox._bluesky_rules import (
    MAX_IMAGE_BYTES,
    MAX_UPLOAD_BYTES,
    POST,
    PointsWindow,
    Tokens,
    XrpcError,
    internal_error,
    invalid_request,
)
from pledgebot_sandbox._control import (
    TIMEOUT_HOLD_SECONDS,
    ControlAction,
    Fault,
    SandboxServer,
    check_error_status,
)
from pledgebot_sandbox._thread import BaseSandboxThread

__all__ = ["BlueskySandbox", "BlueskySandboxThread"]

log = logging.getLogger(__name__)

QUERIES = frozenset({"com.atproto.repo.getRecord", "com.atproto.identity.resolveHandle"})
# What a test can ask the next call to do: an HTTP answer, or no answer in time.
FAULTS: dict[str, tuple[int, str, str]] = {
    "server_error": (500, "InternalServerError", "Internal Server Error"),
    "bad_gateway": (502, "UpstreamFailure", "Upstream Failure"),
    "unavailable": (503, "NotEnoughResources", "Service Unavailable"),
    "rate_limited": (429, "RateLimitExceeded", "Rate Limit Exceeded"),
    "expired_token": (400, "ExpiredToken", "Token has expired"),
    "invalid_token": (400, "InvalidToken", "Token could not be verified"),
    "unauthorized": (401, "AuthenticationRequired", "Authentication Required"),
}


class BlueskySandbox(SandboxServer):
    """One fake PDS with one account. Call it only from the server's event loop thread.

    ``points_per_window`` / ``window_seconds``: the repo-write limit (Bluesky: 5,000 points an
    hour, a post costs 3). ``max_image_bytes``: the lexicon's image limit (2,000,000; an older
    PDS: 1,000,000). ``known_handles``: other accounts a mention may name (handle → DID).
    """

    client_max_size = 2 * MAX_UPLOAD_BYTES  # an oversized upload gets the PDS's 413, not aiohttp's

    def __init__(
        self,
        *,
        handle: str = "pledgebot.bsky.social",
        did: str = "did:plc:pledgebotsandbox0000000a",
        app_password: str = "abcd-efgh-ijkl-mnop",
        known_handles: dict[str, str] | None = None,
        points_per_window: int = 5000,
        window_seconds: float = 3600.0,
        max_image_bytes: int = MAX_IMAGE_BYTES,
        duplicate_status: int = 500,
        access_lifetime: float = 2 * 3600.0,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        if duplicate_status not in (409, 500):
            raise ValueError("duplicate_status is 500 (the reference PDS today) or 409")
        super().__init__(host, port)  # method_calls: calls per method, answered or not
        self._clock: Callable[[], float] = time.time  # ratelimit-reset is Unix time
        self.tokens = Tokens(secrets.token_bytes(32), self._clock)
        self.account = BlueskyAccount(
            did=did,
            handle=handle,
            app_password=app_password,
            tokens=self.tokens,
            window=PointsWindow(points_per_window, window_seconds, self._clock),
            clock=self._clock,
            known_handles=dict(known_handles or {}),
            max_image_bytes=max_image_bytes,
            duplicate_status=duplicate_status,
            access_lifetime=access_lifetime,
        )

    # --- the account and the server ----------------------------------------------------------
    @property
    def did(self) -> str:
        return self.account.did

    @property
    def handle(self) -> str:
        return self.account.handle

    @property
    def app_password(self) -> str:
        return self.account.app_password

    def _add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_route("*", "/xrpc/{nsid}", self._handle)

    def _control_actions(self) -> dict[str, ControlAction]:
        """``posts``; ``fault`` (``{"nsid", "how", ...}``), ``expire``, ``revoke``."""
        return {
            "GET posts": lambda _: self.posts(),
            "POST fault": lambda body: self.fail_next(body.pop("nsid"), body.pop("how"), **body),
            "POST expire": lambda _: self.expire_tokens(),
            "POST revoke": lambda _: self.revoke_app_password(),
        }

    # --- what tests look at and do ------------------------------------------------------------
    def posts(self) -> list[dict[str, Any]]:
        """Posts in posting order (copies): uri, cid, rkey, value (the record), indexedAt."""
        return [
            copy.deepcopy(stored)
            for (collection, _), stored in self.account.records.items()
            if collection == POST
        ]

    def texts(self) -> list[str]:
        return [post["value"]["text"] for post in self.posts()]

    def blobs(self) -> dict[str, dict[str, Any]]:
        """Uploaded blobs by CID: size and mimeType (copies)."""
        return copy.deepcopy(self.account.blobs)

    @property
    def sessions_created(self) -> int:
        return self.account.sessions_created

    @property
    def sessions_refreshed(self) -> int:
        return self.account.sessions_refreshed

    def expire_tokens(self) -> None:
        """Every access token issued so far is expired; the refresh tokens still work."""
        self.tokens.expire_all()

    def revoke_app_password(self) -> None:
        """The app password was revoked: its sessions end and it signs in no more."""
        self.account.password_revoked = True

    def fail_next(self, nsid: str, how: str, *, times: int = 1, **options: Any) -> None:
        """The next ``times`` calls of ``nsid`` answer ``how`` (a ``FAULTS`` name) or, for
        ``how="timeout"``, answer nothing for ``delay`` seconds (default 10)."""
        if how == "timeout":
            delay = options.pop("delay", TIMEOUT_HOLD_SECONDS)
            self.inject_fault(nsid, delay=delay, times=times, **options)
            return
        status, error, message = FAULTS[how]
        self.inject_fault(nsid, status=status, error=error, message=message, times=times, **options)

    def inject_fault(
        self,
        nsid: str,
        *,
        status: int | None = None,
        error: str | None = None,
        message: str | None = None,
        headers: dict[str, str] | None = None,
        delay: float | None = None,
        deliver: bool = False,
        times: int = 1,
    ) -> None:
        """Make the next ``times`` calls of ``nsid`` misbehave.

        ``status`` answers that error (``error``/``message`` its body; a 429 carries the
        window's ``ratelimit-*`` headers, its reset 30 s away, unless ``headers`` say
        otherwise); ``delay`` waits first. Without ``deliver`` a faulted call is not carried
        out, except a pure delay whose client is still there when it ends; with ``deliver`` it
        is carried out first: "accepted, but the client never heard".
        """
        if nsid not in self.account.handlers:
            raise ValueError(f"unknown method {nsid!r}; one of {sorted(self.account.handlers)}")
        if status is None and delay is None:
            raise ValueError("give status or delay")
        answer = None
        if status is not None:
            check_error_status(status)
            default = "RateLimitExceeded" if status == 429 else "InternalServerError"
            named = error or default
            answer = partial(self._fault_error, status, named, message or named, headers or {})
        self._queue_fault(nsid, Fault(answer, delay, deliver), times)

    def _fault_error(
        self, status: int, error: str, message: str, headers: dict[str, str]
    ) -> XrpcError:
        if status == 429:  # the window as it stands when the fault is served, spent
            reset = str(int(self._clock()) + 30)
            spent = {"ratelimit-reset": reset, "ratelimit-remaining": "0"}
            headers = {**self.account.window.headers(), **spent, **headers}
        return XrpcError(status, error, message, headers)

    # --- HTTP plumbing ------------------------------------------------------------------------
    async def _handle(self, request: web.Request) -> web.StreamResponse:
        nsid = request.match_info["nsid"]
        handler = self.account.handlers.get(nsid)
        if handler is None:
            body = {"error": "MethodNotImplemented", "message": "Method Not Implemented"}
            return web.json_response(body, status=501)
        self.method_calls[nsid] += 1
        try:
            # The whole body is read before answering, even an error: a client still uploading
            # an image would otherwise see a reset connection instead of the answer.
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return self._error(XrpcError(413, "PayloadTooLarge", "request entity too large"))
        expected = "GET" if nsid in QUERIES else "POST"
        if request.method != expected:
            return self._error(
                invalid_request(f"Incorrect HTTP method ({request.method}) expected {expected}")
            )
        call = Call(request.query, body, request.content_type, request.headers.get("Authorization"))
        return await self._answer_call(nsid, request, lambda: self._run(nsid, call))

    async def _run(self, nsid: str, call: Call) -> web.Response:
        try:
            answer: Answer = await self.account.handlers[nsid](call)
        except XrpcError as exc:
            return self._error(exc)
        except Exception:  # a sandbox bug shows as the PDS's own 500, and in the test's log
            log.exception("bluesky sandbox: %s failed", nsid)
            return self._error(internal_error())
        return web.json_response(answer.body, headers=answer.headers)


class BlueskySandboxThread(BaseSandboxThread[BlueskySandbox]):
    """``with BlueskySandboxThread(**BlueskySandbox kwargs) as bsky:`` then ``bsky.posts()``,
    from synchronous code (the sandboxes' thread runner, building a Bluesky one)."""

    sandbox_class = BlueskySandbox

    def posts(self) -> list[dict[str, Any]]:
        return list(self.call("posts"))

    def fail_next(self, nsid: str, how: str, **options: Any) -> None:
        self.call("fail_next", nsid, how, **options)
