"""The Graph API over httpx, shared by the Facebook and Instagram adapters: one client per
token, and the mapping of Graph's answers onto ``bot.core.errors``.

Why httpx, not ``python-facebook-api`` (pyfacebook, on PyPI): that library is synchronous
(requests: a worker thread per call), sleeps on rate limits by itself unless told otherwise,
pins its own list of API versions, and sends the token as the ``access_token`` query
parameter of GETs and DELETEs, where urllib3's DEBUG log prints the URL. Here every call
carries the token in an ``Authorization: Bearer`` header, never in a URL, the transport is
injectable, and the few endpoints we use need no library.

Errors (``{"error": {"message", "type", "code", "error_subcode", "fbtrace_id"}}``, mostly
HTTP 400), in ``graph_error``: codes 4, 17, 32, 613, 80000-80014, Instagram's 9/2207042 and
HTTP 429 → ``RateLimited`` (wait: ``x-business-use-case-usage``'s
``estimated_time_to_regain_access``, else ``Retry-After``, else 5 minutes, an hour for posts a
day), held for every process, as is any usage header at ``usage_threshold`` % (95) *before* an
error; 190 (token expired or invalid), 102, 3, 10, 200-299 (permissions) and 368 (blocked) →
``ChannelUnauthorized``: the dispatcher pauses the channel and raises the staff alert
``unauthorized:<channel>`` until the token is renewed and ``pledgebot resume --channel
<channel>`` is run; 1, 2, ``is_transient``, 5xx, timeouts, connection errors →
``TransientError`` (a timeout once sent: ``maybe_delivered``); 100 (invalid parameter), 506
(duplicate) and any other refusal → ``Rejected``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import httpx
from pydantic import SecretStr

from bot.channels.facebook.settings import GraphSettings
from bot.channels.holds import unless_held
from bot.channels.ratelimit import Limits
from bot.core.errors import (
    ChannelUnauthorized,
    DeliveryError,
    RateLimited,
    Rejected,
    TransientError,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

DEFAULT_WAIT = 300.0  # a rate limit that does not say for how long: Graph's windows are hourly
PUBLISH_LIMIT_WAIT = 3600.0  # Instagram's posts-a-day limit rolls over 24 hours
RATE_CODES = frozenset({4, 17, 32, 613})
TOKEN_CODES = frozenset({102, 190})
PUBLISH_LIMIT = (9, 2207042)  # Instagram: the posts-a-day limit is reached


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
        settings: GraphSettings,
        token: SecretStr,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.platform = platform
        self._token = token  # revealed only in the Authorization header
        self.threshold = settings.usage_threshold
        self.http = httpx.AsyncClient(
            base_url=f"{settings.graph_url.rstrip('/')}/{settings.api_version}/",
            timeout=settings.request_timeout,
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

    async def find_recent(self, edge: str, field: str, value: str) -> str | None:
        """The id of one of the 25 latest objects on ``edge`` whose ``field`` is ``value``."""
        recent = await self.call("GET", edge, params={"fields": f"id,{field}", "limit": "25"})
        for found in recent.get("data") or []:
            if isinstance(found, dict) and found.get(field) == value:
                return str(found["id"])
        return None

    async def guarded(self, limits: Limits, key: str, act: Callable[[], Awaitable[T]]) -> T:
        """Run ``act`` unless posting on ``key`` is held; a rate limit, or usage at
        ``usage_threshold`` % or more, holds it for every process."""
        self.usage, self.regain = 0.0, 0.0
        refusal = f"{self.platform}: rate limited; resumes in {{wait:.0f}} s"
        return await unless_held(limits, key, act, refusal=refusal, spent_until=self._spent_until)

    def _spent_until(self) -> float | None:
        """Until when posting waits, if the answers' usage reached the threshold."""
        if self.usage < self.threshold:
            return None
        wait = self.regain or DEFAULT_WAIT
        log.warning("%s: API usage at %.0f %%: held %.0f s", self.platform, self.usage, wait)
        return time.time() + wait
