"""LinkedIn's answers as ``bot.core.errors``.

429 → ``RateLimited`` (``Retry-After`` if sent; LinkedIn's daily quotas, "… DAY limit …", until
00:00 UTC; else a minute) and posting is held for every process meanwhile; 401 (expired or
revoked token), 403 (no ``w_organization_social``, or the member is no longer an admin of the
page: every post would fail alike until staff act) and 426 (``NONEXISTENT_VERSION``: the
``api_version`` LinkedIn no longer serves) → ``ChannelUnauthorized`` (the dispatcher pauses the
channel and alerts staff); a refusal of the same commentary twice (``DUPLICATE_POST``, 422
"Content is a duplicate of urn:li:share:…") → ``Duplicate``, naming the post LinkedIn already
has; 404 → ``NotFound``; 400/422 and other 4xx → ``Rejected`` with LinkedIn's message; 5xx,
408, 409 → ``TransientError``.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

import httpx

from bot.core.errors import (
    ChannelUnauthorized,
    DeliveryError,
    RateLimited,
    Rejected,
    TransientError,
)

DEFAULT_WAIT = 60.0  # a 429 that says nothing of when (LinkedIn rarely sends Retry-After)
DUPLICATE_OF = re.compile(r"duplicate of (urn:li:(?:share|ugcPost):\d+)", re.IGNORECASE)


class Duplicate(Rejected):
    """LinkedIn refused the commentary as one it already has, under ``urn``."""

    def __init__(self, message: str, urn: str) -> None:
        super().__init__(message)
        self.urn = urn


class NotFound(Rejected):
    """LinkedIn has no such post or image (404)."""


def _describe(response: httpx.Response) -> tuple[str, str]:
    """LinkedIn's error code and message (``{"status", "serviceErrorCode", "code", "message"}``,
    or the ``errorDetails.inputErrors`` of a validation or duplicate refusal)."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return "", response.reason_phrase
    message = str(body.get("message") or response.reason_phrase)[:500]
    message = re.sub(r"^com\.linkedin\.[\w.$]+Exception: ", "", message)
    details = body.get("errorDetails")
    inputs = details.get("inputErrors") if isinstance(details, dict) else None
    first = inputs[0] if isinstance(inputs, list) and inputs and isinstance(inputs[0], dict) else {}
    return str(body.get("code") or first.get("code") or ""), message


def delivery_error(response: httpx.Response, what: str, writes: bool) -> DeliveryError:
    status = response.status_code
    code, message = _describe(response)
    text = f"LinkedIn: {what}: {status} {code + ': ' if code else ''}{message}"
    if status == 429:
        wait = _retry_after(response, message)
        return RateLimited(wait, f"{text}; retry in {wait:.0f} s")
    if status == 401:
        return ChannelUnauthorized(f"{text} (renew the page's access token, then resume)")
    if status == 403:
        return ChannelUnauthorized(
            f"{text} (the token needs w_organization_social and a page admin's grant)"
        )
    if status == 426:
        return ChannelUnauthorized(
            f"{text} (raise channels.linkedin.api_version to a recent YYYYMM)"
        )
    duplicate = DUPLICATE_OF.search(message)
    if status in (400, 409, 422) and (code == "DUPLICATE_POST" or duplicate):
        return Duplicate(text, duplicate.group(1) if duplicate else "")
    if status == 404:
        return NotFound(text)
    if status in (408, 409) or status >= 500:
        return TransientError(text, maybe_delivered=writes)
    return Rejected(text)


def _retry_after(response: httpx.Response, message: str) -> float:
    """``Retry-After`` (seconds or a date), else until 00:00 UTC for a daily quota, else a
    minute."""
    header: str = response.headers.get("Retry-After", "")
    try:
        return max(1.0, float(header))
    except ValueError:
        pass
    try:
        return max(1.0, parsedate_to_datetime(header).timestamp() - time.time())
    except (TypeError, ValueError):
        pass
    if "day limit" in message.lower():
        now = datetime.now(UTC)
        midnight = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), UTC)
        return max(1.0, (midnight - now).total_seconds())
    return DEFAULT_WAIT
