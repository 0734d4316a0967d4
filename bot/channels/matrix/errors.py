"""Matrix's answers as ``bot.core.errors``: nio returns an ``ErrorResponse`` (with the
homeserver's ``errcode`` and HTTP status) rather than raising; a transport failure raises.

429 / ``M_LIMIT_EXCEEDED`` → ``RateLimited`` (``retry_after_ms``, else ``Retry-After``, else
5 s); ``M_UNKNOWN_TOKEN``, ``M_MISSING_TOKEN``, 401 → ``ChannelUnauthorized``; ``M_FORBIDDEN``
(not, or no longer, in the room) → ``RecipientGone``, as is a user who does not exist when
inviting them; ``M_TOO_LARGE`` and other 4xx → ``Rejected``; 5xx, timeouts, connection errors →
``TransientError`` (a timeout once sent: ``maybe_delivered``).
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TypeVar

import aiohttp
import nio

from bot.core.errors import (
    ChannelUnauthorized,
    DeliveryError,
    RateLimited,
    RecipientGone,
    Rejected,
    TransientError,
)

T = TypeVar("T")


async def call(
    what: str, request: Awaitable[T], *, sending: bool = False, recipient: str | None = None
) -> T:
    """Await one nio request; its failure as a ``bot.core.errors`` delivery error."""
    response = await answer(what, request, sending=sending)
    if isinstance(response, nio.ErrorResponse):
        raise delivery_error(what, response, recipient=recipient)
    return response


async def answer(what: str, request: Awaitable[T], *, sending: bool = False) -> T:
    """Await one nio request: the homeserver's answer (an ``ErrorResponse`` too); a transport
    failure as a ``TransientError``."""
    try:
        return await request
    except TimeoutError as exc:
        raise TransientError(f"Matrix {what}: timed out", maybe_delivered=sending) from exc
    except aiohttp.ClientConnectorError as exc:  # never reached the homeserver
        raise TransientError(f"Matrix {what}: cannot connect ({exc.os_error})") from exc
    except aiohttp.ClientError as exc:
        raise TransientError(
            f"Matrix {what}: {type(exc).__name__}", maybe_delivered=sending
        ) from exc


def http_status(response: nio.ErrorResponse) -> int | None:
    transport = getattr(response, "transport_response", None)
    return int(transport.status) if transport is not None else None


def delivery_error(
    what: str, response: nio.ErrorResponse, *, recipient: str | None = None
) -> DeliveryError:
    transport = getattr(response, "transport_response", None)
    status = http_status(response)
    code = response.status_code
    text = f"Matrix {what}: {code or status}: {response.message}"
    if status == 429 or code == "M_LIMIT_EXCEEDED":
        delay = response.retry_after_ms
        if delay is None and transport is not None:
            header = transport.headers.get("Retry-After", "")
            delay = int(header) * 1000 if header.isdigit() else None
        return RateLimited((delay if delay is not None else 5000) / 1000, text)
    if code in ("M_UNKNOWN_TOKEN", "M_MISSING_TOKEN") or status == 401:
        return ChannelUnauthorized(f"{text} (token revoked or expired? check access_token_env)")
    if code == "M_FORBIDDEN":  # not (or no longer) in the room, or not allowed to write there
        return RecipientGone(text)
    if recipient is not None and (code == "M_NOT_FOUND" or status == 404):
        return RecipientGone(f"{text} (inviting {recipient})")  # no such user
    if code == "M_TOO_LARGE" or status == 413:
        return Rejected(text)
    if status is None or status >= 500:
        return TransientError(text)
    return Rejected(text)
