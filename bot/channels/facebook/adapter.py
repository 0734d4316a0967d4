"""Facebook Page adapter, on the Graph API over httpx: public posts on the campaign's Page
(outbound only). It also owns the Graph API client and error mapping that the Instagram
adapter (``bot.channels.instagram.adapter``) shares.

Why httpx, not ``python-facebook-api`` (pyfacebook, on PyPI): that library is synchronous
(requests: a worker thread per call), sleeps on rate limits by itself unless told otherwise,
pins its own list of API versions, and sends the token as the ``access_token`` query
parameter of GETs and DELETEs, where urllib3's DEBUG log prints the URL. Here every call
carries the token in an ``Authorization: Bearer`` header, never in a URL, the transport is
injectable, and the few endpoints we use need no library.

- **Text**: ``POST /{page-id}/feed`` with ``message`` (at most 63,206 characters).
- **One image**: ``POST /{page-id}/photos`` with the file as multipart ``source`` (no public
  URL needed), ``caption`` and ``alt_text_custom``; its ``post_id`` is the receipt.
- **Several images** (up to 10): each uploaded with ``published=false`` and its alt text, then
  one ``/feed`` post with ``attached_media``. An image without alt text is refused
  (``require_alt_text``), as is one over ``max_image_bytes`` (4 MiB, the Pages limit).
- **Delete** (a withdrawn update, when ``delete_on_withdraw``): ``DELETE /{post-id}``; a post
  already gone (code 100, subcode 33) counts as deleted.
- **Threads**: the Page's limit is never reached by our templates (``LIMITS`` never splits);
  a part replying to another (``reply_to``) is refused rather than posted out of order.

Idempotency: the Graph API has no idempotency key. Facebook refuses a text post identical to
the Page's latest with code 506 ("Duplicate status message") and never checks photo posts. So
a message that may have gone out before a crash (``maybe_sent``) is first looked for among
the Page's 25 latest posts (same message): found, it was sent, and its id is the receipt. A
506 on such a resend means the same (the post is looked up again); a 506 on a first send is
a real duplicate: ``Rejected``.

Errors (``{"error": {"message", "type", "code", "error_subcode", "fbtrace_id"}}``, mostly
HTTP 400), in ``graph_error``: codes 4, 17, 32, 613, 80000-80014, Instagram's 9/2207042 and
HTTP 429 → ``RateLimited`` (wait: ``x-business-use-case-usage``'s
``estimated_time_to_regain_access``, else ``Retry-After``, else 5 minutes, an hour for posts a
day), held for every process, as is any usage header at ``usage_threshold`` % (95) *before* an
error; 190 (token expired or invalid), 102, 3, 10, 200-299 (permissions) and 368 (blocked) →
``ChannelUnauthorized``: the dispatcher pauses the channel and raises the staff alert
``unauthorized:facebook`` until the token is renewed and ``pledgebot resume --channel
facebook`` is run; 1, 2, ``is_transient``, 5xx, timeouts, connection errors →
``TransientError`` (a timeout once sent: ``maybe_delivered``); 100 (invalid parameter), 506
(duplicate) and any other refusal → ``Rejected``.
"""

from __future__ import annotations

import json
import logging
import mimetypes
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from bot.channels.base import Capabilities, OutboundMessage, Receipt
from bot.channels.ratelimit import Limits
from bot.core.env import EnvVarName
from bot.core.errors import (
    ChannelUnauthorized,
    DeliveryError,
    RateLimited,
    Rejected,
    TransientError,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

GRAPH_URL = "https://graph.facebook.com"
API_VERSION = "v24.0"
MAX_MESSAGE = 63_206
MAX_IMAGES = 10
DEFAULT_WAIT = 300.0  # a rate limit that does not say for how long: Graph's windows are hourly
PUBLISH_LIMIT_WAIT = 3600.0  # Instagram's posts-a-day limit rolls over 24 hours
RATE_CODES = frozenset({4, 17, 32, 613})
TOKEN_CODES = frozenset({102, 190})
DUPLICATE = 506
MISSING_OBJECT = 33  # subcode of code 100: no such object (already deleted)
PUBLISH_LIMIT = (9, 2207042)  # Instagram: the posts-a-day limit is reached

__all__ = ["FacebookChannel", "FacebookSettings", "GraphClient", "GraphRefusal", "graph_error"]


class GraphRefusal(Rejected):
    """A Graph API refusal for good, with its ``code`` and ``subcode``."""

    def __init__(self, message: str, code: int, subcode: int) -> None:
        self.code, self.subcode = code, subcode
        super().__init__(message)


def graph_error(platform: str, status: int, body: Any, headers: Mapping[str, str]) -> DeliveryError:
    """The typed error for a Graph API answer that is not a success (see the module)."""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        text = f"{platform}: HTTP {status} without a Graph error body"
        if status == 429:
            return RateLimited(_wait(headers), text)
        if status < 400:  # a success whose body did not parse: it may well be done
            return TransientError(text, maybe_delivered=True)
        return TransientError(text) if status >= 500 or status == 408 else Rejected(text)
    code, subcode = _int(error.get("code")), _int(error.get("error_subcode"))
    text = _describe(platform, status, error, code, subcode)
    if (code, subcode) == PUBLISH_LIMIT:
        return RateLimited(_wait(headers, PUBLISH_LIMIT_WAIT), text)
    if status == 429 or code in RATE_CODES or 80000 <= code <= 80014:
        return RateLimited(_wait(headers), text)
    if code in TOKEN_CODES:
        return ChannelUnauthorized(f"{text} (the access token expired or was revoked: renew it)")
    if code in (3, 10, 368) or 200 <= code <= 299:
        return ChannelUnauthorized(f"{text} (a permission is missing, or the account is blocked)")
    if code in (1, 2) or error.get("is_transient") is True or status >= 500:
        return TransientError(text)
    return GraphRefusal(text, code, subcode)


def _describe(platform: str, status: int, error: dict[str, Any], code: int, sub: int) -> str:
    words = str(error.get("message") or "no message")
    if error.get("error_user_msg"):
        words += f" — {error['error_user_msg']}"
    where = f"code {code}" + (f", subcode {sub}" if sub else "")
    trace = f", fbtrace_id {error['fbtrace_id']}" if error.get("fbtrace_id") else ""
    return f"{platform}: {words} (HTTP {status}, {where}{trace})"


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _wait(headers: Mapping[str, str], default: float = DEFAULT_WAIT) -> float:
    """Seconds to wait: the usage header's estimate, else ``Retry-After``, else ``default``."""
    _, regain = usage_of(headers)
    if regain > 0:
        return regain
    try:
        return max(1.0, float(headers.get("retry-after", "")))
    except ValueError:
        return default


def usage_of(headers: Mapping[str, str]) -> tuple[float, float]:
    """The highest share (percent) any Graph usage header reports, and the seconds until
    access is regained that ``x-business-use-case-usage`` estimates (0: not said)."""
    top, regain = 0.0, 0.0
    for name in ("x-app-usage", "x-page-usage"):
        shares = _json_header(headers.get(name))
        if isinstance(shares, dict):
            top = max(top, *(_share(v) for v in shares.values()), 0.0)
    by_object = _json_header(headers.get("x-business-use-case-usage"))
    for entries in by_object.values() if isinstance(by_object, dict) else ():
        for entry in entries if isinstance(entries, list) else ():
            if isinstance(entry, dict):
                shares = (entry.get(k) for k in ("call_count", "total_cputime", "total_time"))
                top = max(top, *(_share(v) for v in shares))
                regain = max(regain, 60.0 * _share(entry.get("estimated_time_to_regain_access")))
    return top, regain


def _json_header(value: str | None) -> Any:
    try:
        return json.loads(value) if value else None
    except ValueError:
        return None


def _share(value: Any) -> float:
    return float(value) if isinstance(value, int | float) else 0.0


class GraphClient:
    """One token on one Graph API version. ``call`` returns the JSON answer or raises a
    ``bot.core.errors`` type; ``guarded`` adds the shared posting hold."""

    def __init__(
        self,
        platform: str,
        *,
        graph_url: str,
        api_version: str,
        token: SecretStr,
        timeout: float,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.platform = platform
        self._token = token  # revealed only in the Authorization header
        self.http = httpx.AsyncClient(
            base_url=f"{graph_url.rstrip('/')}/{api_version}/",
            timeout=timeout,
            transport=transport,
            headers={"user-agent": "pledgebot"},
        )
        self.usage, self.regain = 0.0, 0.0  # from the latest answer's usage headers

    async def aclose(self) -> None:
        await self.http.aclose()

    async def call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        data: Mapping[str, str] | None = None,
        files: Mapping[str, tuple[str, bytes, str]] | None = None,
    ) -> dict[str, Any]:
        auth = {"authorization": f"Bearer {self._token.get_secret_value()}"}
        try:
            response = await self.http.request(
                method, path.lstrip("/"), params=params, data=data, files=files, headers=auth
            )
        except httpx.TimeoutException as exc:
            sent = not isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout)
            detail = f"{self.platform}: no answer in time ({type(exc).__name__})"
            raise TransientError(detail, maybe_delivered=sent) from exc
        except httpx.TransportError as exc:
            sent = not isinstance(exc, httpx.ConnectError)
            detail = f"{self.platform}: {type(exc).__name__}: {exc}"
            raise TransientError(detail, maybe_delivered=sent) from exc
        usage, regain = usage_of(response.headers)
        self.usage, self.regain = max(self.usage, usage), max(self.regain, regain)
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.is_success and isinstance(body, dict) and "error" not in body:
            return body
        raise graph_error(self.platform, response.status_code, body, response.headers)

    async def guarded(
        self, limits: Limits, key: str, threshold: float, act: Callable[[], Awaitable[T]]
    ) -> T:
        """Run ``act`` unless posting on ``key`` is held; a rate limit, or usage at
        ``threshold`` % or more, holds it for every process."""
        held = await limits.held_for(key)
        if held > 0:
            raise RateLimited(held, f"{self.platform}: rate limited; resumes in {held:.0f} s")
        self.usage, self.regain = 0.0, 0.0
        try:
            return await act()
        except RateLimited as exc:
            await limits.hold(key, time.time() + exc.retry_after)
            raise
        finally:
            if self.usage >= threshold:
                wait = self.regain or DEFAULT_WAIT
                log.warning(
                    "%s: API usage at %.0f %%: held %.0f s", self.platform, self.usage, wait
                )
                await limits.hold(key, time.time() + wait)


@dataclass(frozen=True)
class LocalImage:
    """One image of a message, read and checked: ``stored`` is the path as the message has it."""

    stored: str
    data: bytes
    mime: str
    alt: str

    @property
    def name(self) -> str:
        return Path(self.stored).name


def read_image(
    platform: str, item: Mapping[str, Any], *, require_alt: bool, max_bytes: int
) -> LocalImage:
    """An image of the message, refused (``Rejected``) before any request if unfit."""
    stored = str(item.get("path") or "")
    path = Path(stored)
    alt = str(item.get("alt_text") or "").strip()
    if not stored or not path.is_file():
        raise Rejected(f"{platform}: the media file is missing: {path.name or '(none)'}")
    if not alt and require_alt:
        raise Rejected(f"{platform}: image {path.name} has no alt text")
    size = path.stat().st_size
    if size > max_bytes:
        raise Rejected(f"{platform}: image {path.name} is {size:,} bytes; at most {max_bytes:,}")
    data = path.read_bytes()
    mime = image_type(data) or mimetypes.guess_type(path.name)[0] or "unknown"
    if not mime.startswith("image/"):
        raise Rejected(f"{platform}: {path.name} is not an image ({mime})")
    return LocalImage(stored, data, mime, alt)


def image_type(data: bytes) -> str | None:
    """The type of an image from its first bytes (what the platform itself will find)."""
    for magic, mime in (
        (b"\xff\xd8\xff", "image/jpeg"),
        (b"\x89PNG\r\n\x1a\n", "image/png"),
        (b"GIF8", "image/gif"),
    ):
        if data.startswith(magic):
            return mime
    return "image/webp" if data[:4] == b"RIFF" and data[8:12] == b"WEBP" else None


class FacebookSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    enabled: bool = False
    page_id: str = Field(default="", pattern=r"^[0-9]*$")  # the campaign's Page
    page_token_env: EnvVarName = "FACEBOOK_PAGE_TOKEN"  # a Page access token (long-lived)
    api_version: str = Field(default=API_VERSION, pattern=r"^v[0-9]+\.[0-9]+$")
    graph_url: str = Field(default=GRAPH_URL, pattern=r"^https?://[^\s/]+\S*$")  # the sandbox
    request_timeout: float = Field(default=30, gt=0)
    usage_threshold: float = Field(default=95, gt=0, le=100)  # % of a usage header: hold
    max_image_bytes: int = Field(default=4 * 1024 * 1024, gt=0)
    require_alt_text: bool = True  # an image without alt text is refused
    delete_on_withdraw: bool = False  # take posts down when a pledgemaker withdraws consent

    @model_validator(mode="after")
    def _page_when_enabled(self) -> FacebookSettings:
        if self.enabled and not self.page_id:
            raise ValueError("page_id: the Page's numeric id is required")
        return self


class FacebookChannel:
    name: ClassVar[str] = "facebook"
    Settings: ClassVar[type[BaseModel]] = FacebookSettings
    capabilities: ClassVar[Capabilities] = Capabilities(max_length=MAX_MESSAGE)

    def __init__(
        self,
        settings: FacebookSettings,
        secrets: Mapping[str, SecretStr],
        *,
        limits: Limits | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.settings = settings
        self.limits = limits or Limits()
        self.graph = GraphClient(
            "Facebook",
            graph_url=settings.graph_url,
            api_version=settings.api_version,
            token=secrets["page_token"],
            timeout=settings.request_timeout,
            transport=transport,
        )

    @property
    def page(self) -> str:
        return self.settings.page_id

    async def start(self) -> None:
        """Check the token against the Page (a refused one pauses the channel at once)."""
        page = await self.graph.call("GET", self.page, params={"fields": "id,name"})
        log.info("facebook: posting on the Page %r (%s)", page.get("name"), self.page)

    async def aclose(self) -> None:
        await self.graph.aclose()

    async def send(self, message: OutboundMessage) -> Receipt:
        key = f"facebook:{self.page}:post"
        return await self.graph.guarded(
            self.limits, key, self.settings.usage_threshold, lambda: self._post(message)
        )

    async def _post(self, message: OutboundMessage) -> Receipt:
        text = message.text
        if message.reply_to:
            raise Rejected("Facebook: a Page post is never split into a thread (reply_to)")
        if len(text) > MAX_MESSAGE:
            raise Rejected(f"Facebook: too long ({len(text):,} > {MAX_MESSAGE:,} characters)")
        images = [
            read_image(
                "Facebook",
                item,
                require_alt=self.settings.require_alt_text,
                max_bytes=self.settings.max_image_bytes,
            )
            for item in message.media[:MAX_IMAGES]
        ]
        if len(message.media) > MAX_IMAGES:
            log.warning("facebook: message %s: only the first %d images", message.id, MAX_IMAGES)
        if message.maybe_sent and (found := await self._find_recent(text)):
            log.info("facebook: message %s was posted before the crash: %s", message.id, found)
            return Receipt(external_id=found)
        try:
            return Receipt(external_id=await self._create(text, images))
        except GraphRefusal as exc:
            if exc.code != DUPLICATE or not message.maybe_sent:
                raise
            found = await self._find_recent(text)  # sent before the crash, not yet listed?
            if found is None:
                raise
            return Receipt(external_id=found)

    async def _create(self, text: str, images: list[LocalImage]) -> str:
        """Post and return the post's id."""
        if len(images) == 1:
            photo = await self._photo(images[0], caption=text, published=True)
            return str(photo.get("post_id") or photo["id"])
        data = {"message": text}
        for number, image in enumerate(images):
            photo = await self._photo(image, caption="", published=False)
            data[f"attached_media[{number}]"] = json.dumps({"media_fbid": str(photo["id"])})
        created = await self.graph.call("POST", f"{self.page}/feed", data=data)
        return str(created["id"])

    async def _photo(self, image: LocalImage, *, caption: str, published: bool) -> dict[str, Any]:
        data = {"published": "true" if published else "false"}
        if caption:
            data["caption"] = caption
        if image.alt:
            data["alt_text_custom"] = image.alt
        files = {"source": (image.name, image.data, image.mime)}
        return await self.graph.call("POST", f"{self.page}/photos", data=data, files=files)

    async def _find_recent(self, text: str) -> str | None:
        """The id of one of the Page's 25 latest posts that says exactly ``text``."""
        params = {"fields": "id,message", "limit": "25"}
        recent = await self.graph.call("GET", f"{self.page}/feed", params=params)
        for post in recent.get("data") or []:
            if isinstance(post, dict) and post.get("message") == text:
                return str(post["id"])
        return None

    async def delete(self, message: OutboundMessage) -> None:
        """Take down the post whose id is the message's text (consent was withdrawn)."""
        post_id = message.text
        owner, _, _ = post_id.partition("_")
        if not post_id.replace("_", "").isdigit() or ("_" in post_id and owner != self.page):
            raise Rejected(f"Facebook: {post_id!r} is not one of this Page's posts")

        async def delete() -> None:
            try:
                await self.graph.call("DELETE", post_id)
            except GraphRefusal as exc:
                if (exc.code, exc.subcode) != (100, MISSING_OBJECT):
                    raise
                log.info("facebook: post %s was already deleted", post_id)

        key = f"facebook:{self.page}:post"
        await self.graph.guarded(self.limits, key, self.settings.usage_threshold, delete)
