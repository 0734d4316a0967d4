"""A local Graph API: the Facebook Page and Instagram endpoints pledgebot uses, for tests and
the demo.

Serves ``/<version>/<object>[/<edge>]`` as ``graph.facebook.com`` does to the real adapters:
Page posts and photos (alt text, multipart ``source`` or a ``url``), an Instagram account's
media containers (``IN_PROGRESS`` for ``in_progress_polls`` looks, then ``FINISHED``) and
publishing, reads of the latest posts and media, deletes. It checks the API version prefix
(``vN.M``, one of ``versions``), the access token (a header ``Authorization: Bearer|OAuth`` or
the ``access_token`` parameter: missing → 104, unknown → 190, expired → 190/463; the Page
token also acts for the Instagram account, the Instagram token only for it, 200 otherwise),
the limits (a Page message 63,206 characters; a caption 2,200, 30 hashtags, 20 mentions; an
Instagram image JPEG, ≤ 8 MiB, 4:5 to 1.91:1) and usage windows (``x-app-usage`` and
``x-business-use-case-usage`` on every answer; over a window: code 4, 32 or 80002 with HTTP
400, as Graph does). An ``image_url`` is really downloaded over HTTP when a container is made,
so the public media route is exercised: a 404 there is Instagram's 9004/2207052.

Faults: ``fail_next(how, endpoint)`` makes the next request (of that endpoint, or any) answer
a ``FAULTS`` error, an expired or invalid token, or nothing in time (``how="timeout"``);
``next_container("error"|"stuck"|"expired")`` decides how the next container ends. Stateful:
tests read ``posts()``, ``media()``, ``containers``, ``fetches`` and ``calls``. Rules and error
bodies live in ``_facebook_rules``, the Page and the account in ``_facebook_objects``.
"""

from __future__ import annotations

import copy
import logging
import secrets
import time
from collections.abc import Callable
from typing import Any

import aiohttp
from aiohttp import web

from pledgebot_sandbox._control import ControlAction, ErrorAnswer, SandboxServer
from pledgebot_sandbox._facebook_objects import Call, GraphObjects
from pledgebot_sandbox._facebook_rules import (
    FAULTS,
    VERSION,
    GraphError,
    UsageWindow,
    app_usage_header,
    buc_header,
    expired_token,
    fault_error,
    fetch_failed,
    invalid_token,
    missing_token,
    no_such_object,
)

__all__ = ["FAULTS", "GraphSandbox"]

log = logging.getLogger(__name__)
PAGE_ENDPOINTS = frozenset({"page", "feed", "feed_read", "photos"})
IG_ENDPOINTS = frozenset({"ig_user", "media", "media_read", "media_publish"})
FETCH_TIMEOUT = 10.0
RATE_LIMIT_CODES = frozenset({4, 17, 32, 613, 80001, 80002})  # Graph's throttling errors


class GraphSandbox(SandboxServer):
    """One fake Graph API with one Page and one Instagram account. Call it only from the
    server's event loop. Ids are digits; tokens are random unless given."""

    client_max_size = 32 * 1024 * 1024

    def __init__(
        self,
        *,
        page_id: str = "1010000000000001",
        page_name: str = "Pledgebot Sandbox Page",
        ig_user_id: str = "17841400000000001",
        ig_username: str = "pledgebot.sandbox",
        page_token: str | None = None,
        ig_token: str | None = None,
        versions: tuple[str, ...] = ("v23.0", "v24.0", "v25.0"),
        app_calls_per_hour: int = 100_000,
        page_calls_per_hour: int = 4_800,
        ig_calls_per_hour: int = 4_800,
        ig_posts_per_day: int = 50,
        in_progress_polls: int = 1,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        super().__init__(host, port)  # method_calls: calls per endpoint, answered or not
        self.page_token = page_token or "EAAPage" + secrets.token_urlsafe(24)
        self.ig_token = ig_token or "EAAInsta" + secrets.token_urlsafe(24)
        self.versions = versions
        self._clock: Callable[[], float] = time.time
        self.app_window = UsageWindow(app_calls_per_hour, 3600, self._clock)
        self.page_window = UsageWindow(page_calls_per_hour, 3600, self._clock)
        self.ig_window = UsageWindow(ig_calls_per_hour, 3600, self._clock)
        self.objects = GraphObjects(
            page_id=page_id,
            page_name=page_name,
            ig_user_id=ig_user_id,
            ig_username=ig_username,
            fetch=self._fetch,
            posts_per_day=ig_posts_per_day,
            in_progress_polls=in_progress_polls,
        )
        self.expired: set[str] = set()
        self.fetches: list[dict[str, Any]] = []  # every image_url fetched: url, status
        self._http: aiohttp.ClientSession | None = None

    # --- the Page, the account and the server ------------------------------------------------
    @property
    def page_id(self) -> str:
        return self.objects.page_id

    @property
    def ig_user_id(self) -> str:
        return self.objects.ig_user_id

    @property
    def containers(self) -> dict[str, dict[str, Any]]:
        return self.objects.containers

    async def _open(self) -> None:
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=FETCH_TIMEOUT))

    async def _close(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None

    def _add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_route("*", "/{path:.*}", self._handle)

    def _control_actions(self) -> dict[str, ControlAction]:
        """``state`` (posts, media); ``fault`` (``{"how", "endpoint"?}``), ``expire``."""
        return {
            "GET state": lambda _: self._control_state(),
            "POST fault": lambda body: self.fail_next(
                body.pop("how"), body.pop("endpoint", None), **body
            ),
            "POST expire": lambda _: self.expire_tokens(),
        }

    def _control_state(self) -> dict[str, Any]:
        posts = [{k: v for k, v in p.items() if k != "photos"} for p in self.posts()]
        media = [{k: v for k, v in m.items() if k != "data"} for m in self.media()]
        return {"posts": posts, "media": media}

    # --- what tests look at and do ------------------------------------------------------------
    def posts(self) -> list[dict[str, Any]]:
        """The Page's live posts in posting order (copies), each with its photos."""
        found = []
        for post in self.objects.posts.values():
            if not post["deleted"]:
                photos = [self._photo(p) for p in post["photos"] if p in self.objects.photos]
                found.append({**copy.deepcopy(post), "photos": photos})
        return found

    def texts(self) -> list[str]:
        return [post["message"] for post in self.posts()]

    def deleted(self) -> list[str]:
        return [p["id"] for p in self.objects.posts.values() if p["deleted"]]

    def _photo(self, photo_id: str) -> dict[str, Any]:
        photo = self.objects.photos[photo_id]
        return {k: v for k, v in photo.items() if k != "data"} | {"data": photo["data"]}

    def media(self) -> list[dict[str, Any]]:
        """The Instagram account's published media in publishing order (copies)."""
        return [copy.deepcopy(m) for m in self.objects.media.values()]

    def captions(self) -> list[str]:
        return [m["caption"] for m in self.objects.media.values()]

    def expire_tokens(self) -> None:
        """Every token is expired (190, subcode 463) until staff renew it."""
        self.expired |= {self.page_token, self.ig_token}

    def next_container(self, outcome: str) -> None:
        """How the next media container ends: "error", "expired", or "stuck" in progress."""
        if outcome not in ("error", "expired", "stuck"):
            raise ValueError("outcome is error, expired or stuck")
        self.objects.next_container.append(outcome)

    def fail_next(
        self,
        how: str,
        endpoint: str | None = None,
        *,
        times: int = 1,
        delay: float | None = None,
        deliver: bool = False,
    ) -> None:
        """The next ``times`` requests (of ``endpoint``: feed, photos, media, media_publish,
        status, delete…, or any) answer ``how``: a ``FAULTS`` name, "expired_token",
        "invalid_token", or "timeout" (nothing for ``delay`` seconds, default 10; ``deliver``:
        carried out all the same, the client never hears)."""
        self._fail_next(endpoint, how, self._named_fault, times=times, delay=delay, deliver=deliver)

    def _named_fault(self, how: str) -> Callable[[], ErrorAnswer]:
        if how not in FAULTS and how not in ("expired_token", "invalid_token"):
            raise ValueError(f"unknown fault {how!r}")
        return lambda: fault_error(how, self.page_id, regain_minutes=2)

    # --- HTTP plumbing ------------------------------------------------------------------------
    async def _handle(self, request: web.Request) -> web.StreamResponse:
        try:
            return await self._answer(request)
        except GraphError as exc:
            return self._error(exc)
        except Exception:  # a sandbox bug shows as Graph's own 500, and in the test's log
            log.exception("graph sandbox: %s %s failed", request.method, request.path)
            return self._error(GraphError(500, "An unknown error has occurred.", 1, None))

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        parts = [p for p in request.path.split("/") if p]
        version = parts[0] if parts else ""
        if not VERSION.match(version):
            raise GraphError(400, f"Unknown path components: {request.path}", 2500)
        if version not in self.versions:
            newest = self.versions[-1]
            raise GraphError(
                400,
                f"(#2635) You are calling a deprecated version of the Graph API. "
                f"Please update to the latest version: {newest}.",
                2635,
            )
        object_id = parts[1] if len(parts) > 1 else ""
        edge = "/".join(parts[2:])
        params: dict[str, str] = dict(request.query)
        files: dict[str, tuple[str, bytes]] = {}
        if request.method == "POST":  # read whole, even for an error: never a reset connection
            for name, value in (await request.post()).items():
                if isinstance(value, web.FileField):
                    files[name] = (value.filename, value.file.read())
                else:
                    params[name] = str(value)
        name = self.objects.endpoint(request.method, object_id, edge)
        if name is None:
            raise no_such_object(request.method, f"{object_id}/{edge}".rstrip("/"))
        self.method_calls[name] += 1
        call = Call(request.method, object_id, edge, params, files)
        return await self._answer_call(name, request, lambda: self._run(name, call, request))

    async def _run(self, name: str, call: Call, request: web.Request) -> web.Response:
        """Carry the call out: its token, the usage windows, then what the object answers."""
        headers: dict[str, str] = {}
        try:
            self._check_token(name, call, request)
            headers = self._count(name)
            answer = await self.objects.handle(name, call)
        except GraphError as exc:
            exc.headers = {**headers, **exc.headers}
            return self._error(exc)
        return web.json_response(answer, headers=headers)

    def _check_token(self, name: str, call: Call, request: web.Request) -> None:
        given = call.params.pop("access_token", None)
        header = request.headers.get("Authorization", "")
        for scheme in ("Bearer ", "OAuth "):
            if header.startswith(scheme):
                given = header.removeprefix(scheme).strip()
        if not given:
            raise missing_token()
        if given not in (self.page_token, self.ig_token):
            raise invalid_token()
        if given in self.expired:
            raise expired_token()
        on_page = name in PAGE_ENDPOINTS or (
            name in ("object", "delete") and call.object_id.startswith(self.page_id)
        )
        if given == self.ig_token and on_page:
            raise GraphError(
                403,
                "(#200) If posting to a page, requires both pages_read_engagement and "
                "pages_manage_posts permission",
                200,
            )

    def _count(self, name: str) -> dict[str, str]:
        """Spend one call of the app's window and the object's; the usage headers to send."""
        on_ig = name in IG_ENDPOINTS or name == "status"
        window, owner, kind = (
            (self.ig_window, self.ig_user_id, "instagram")
            if on_ig
            else (self.page_window, self.page_id, "pages")
        )
        app_ok, object_ok = self.app_window.take(), window.take()
        headers = {
            "x-app-usage": app_usage_header(self.app_window.percent()),
            "x-business-use-case-usage": buc_header(
                owner, kind, window.percent(), window.regain_minutes()
            ),
        }
        if not app_ok:
            raise GraphError(
                400, "(#4) Application request limit reached", 4, transient=True, headers=headers
            )
        if not object_ok:
            code, what = (80002, "Instagram account") if on_ig else (32, "Page")
            message = f"There have been too many calls to this {what}. Wait a bit and try again."
            if code == 32:
                message = "(#32) Page request limit reached"
            raise GraphError(400, message, code, transient=True, headers=headers)
        return headers

    async def _fetch(self, url: str) -> bytes:
        """Download an image's URL as Graph does (a failure is Instagram's 9004/2207052)."""
        assert self._http is not None
        record: dict[str, Any] = {"url": url, "status": None}
        self.fetches.append(record)
        try:
            async with self._http.get(url) as response:
                record["status"] = response.status
                data = await response.read()
        except TimeoutError:
            raise fetch_failed(url, "timed out", slow=True) from None
        except aiohttp.ClientError as exc:
            raise fetch_failed(url, type(exc).__name__) from None
        if record["status"] != 200:
            raise fetch_failed(url, f"HTTP {record['status']}")
        return data

    def _is_rate_limit(self, error: ErrorAnswer) -> bool:
        code = error.code if isinstance(error, GraphError) else None
        return code in RATE_LIMIT_CODES or error.status == 429
