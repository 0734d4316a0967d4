"""X API v2 rules as the X sandbox enforces them: errors, OAuth 1.0a, text, media, rate limits.

Owns the error bodies X answers with (RFC 7807 "problem" objects and ``errors`` arrays), the
OAuth 1.0a HMAC-SHA1 check against the real ``https://api.twitter.com`` URL, the weighted text
length, t.co link wrapping (and the link X appends for attached media) and the HTML escaping
of returned text, image sniffing and limits, the fixed rate-limit window and snowflake-like ids.
Nothing here knows about aiohttp or the sandbox's posts. What each rule follows in X's
documentation: ``docs/platforms/x.md``.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import math
import re
import string
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

import twitter_text
from oauthlib.common import Request as OAuthRequest
from oauthlib.oauth1.rfc5849 import signature, utils

from pledgebot_sandbox._images import image_type
from pledgebot_sandbox._window import Window

API_HOST = "https://api.twitter.com"  # what clients sign for, wherever the request is sent
MAX_WEIGHTED_LENGTH = 280
MAX_MEDIA_PER_POST = 4
MAX_IMAGE_BYTES = 5 * 1024 * 1024
MAX_ALT_TEXT_LENGTH = 1000
MEDIA_EXPIRES_AFTER_SECONDS = 86_400
TCO_PREFIX = "https://t.co/"
TCO_SLUG_LENGTH = 10  # https://t.co/ + 10 characters = 23, what a URL weighs in a post
DISPLAY_URL_LENGTH = 26  # a longer display_url is cut here and ends with "…"
MEDIA_PAGE_HOST = "https://x.com"  # expanded_url of the link to a post's attached media
MEDIA_DISPLAY_HOST = "pic.x.com/"  # its display_url (pic.twitter.com/ on older posts)
# How far oauth_timestamp may be from the server's clock; X answers 401 beyond its own bound.
OAUTH_TIMESTAMP_TOLERANCE_SECONDS = 300
TWITTER_EPOCH_MS = 1_288_834_974_657  # snowflake ids count milliseconds from here

TOO_LONG = (
    "Your Tweet text is too long. For more information on how Twitter determines text length "
    "see https://github.com/twitter/twitter-text."
)
DUPLICATE = "You are not allowed to create a Tweet with duplicate content."
INVALID_REQUEST_TYPE = "https://api.twitter.com/2/problems/invalid-request"
NOT_FOUND_TYPE = "https://api.twitter.com/2/problems/resource-not-found"


class XError(Exception):
    """An error answer: HTTP status, the JSON body X sends, and extra response headers."""

    def __init__(
        self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(f"{status} {body}")
        self.status = status
        self.body = body
        self.headers = dict(headers or {})


def problem(status: int, detail: str | None = None) -> XError:
    """The plain problem object X uses for 401, 403, 429 and 5xx answers."""
    phrase = HTTPStatus(status).phrase
    body = {"title": phrase, "detail": detail or phrase, "type": "about:blank", "status": status}
    return XError(status, body)


def unauthorized() -> XError:
    # X says nothing more specific, whatever is wrong with the credentials or the signature.
    return problem(401)


def forbidden(detail: str) -> XError:
    return problem(403, detail)


def invalid_request(message: str, parameters: dict[str, list[str]] | None = None) -> XError:
    error: dict[str, Any] = {"message": message}
    if parameters:
        error["parameters"] = parameters
    body = {
        "errors": [error],
        "title": "Invalid Request",
        "detail": "One or more parameters to your request was invalid.",
        "type": INVALID_REQUEST_TYPE,
    }
    return XError(400, body)


def not_found(resource_type: str, parameter: str, value: str) -> dict[str, Any]:
    """One entry of an ``errors`` array for an id that names nothing."""
    return {
        "value": value,
        "detail": f"Could not find {resource_type} with {parameter}: [{value}].",
        "title": "Not Found Error",
        "resource_type": resource_type,
        "parameter": parameter,
        "resource_id": value,
        "type": NOT_FOUND_TYPE,
    }


# --- OAuth 1.0a -------------------------------------------------------------------------------
@dataclass(frozen=True)
class OAuthCredentials:
    consumer_key: str
    consumer_secret: str
    access_token: str
    access_token_secret: str


@dataclass
class NonceCache:
    """Nonces seen within the timestamp tolerance: X refuses a request replayed verbatim."""

    seen: dict[tuple[str, str], int] = field(default_factory=dict)

    def add(self, nonce: str, timestamp: int, now: float) -> bool:
        """Remember the nonce; False when it was already used with this timestamp."""
        horizon = now - 2 * OAUTH_TIMESTAMP_TOLERANCE_SECONDS
        for key in [key for key, stamp in self.seen.items() if stamp < horizon]:
            del self.seen[key]
        key = (nonce, str(timestamp))
        if key in self.seen:
            return False
        self.seen[key] = timestamp
        return True


def verify_oauth1(
    *,
    method: str,
    raw_path: str,
    authorization: str | None,
    form_body: str | None,
    credentials: OAuthCredentials,
    nonces: NonceCache,
    now: float,
) -> None:
    """Raise 401 unless the request is signed with ``credentials`` for ``API_HOST + raw_path``.

    The signed parameters are the ``Authorization: OAuth`` header's (minus ``realm`` and the
    signature itself), the query string's, and the body's only when it is
    ``application/x-www-form-urlencoded`` (pass it as ``form_body``); JSON and multipart bodies
    are not signed (RFC 5849 section 3.4.1.3.1). ``raw_path`` is the path and query exactly as
    received, so a client that signed another host, path or query fails here.
    """
    if not authorization or authorization[:6].lower() != "oauth ":
        raise unauthorized()
    try:
        header = dict(utils.parse_authorization_header(authorization))
    except ValueError:
        raise unauthorized() from None
    oauth = {key: utils.unescape(value) for key, value in header.items()}
    try:
        timestamp = int(oauth.get("oauth_timestamp", ""))
    except ValueError:
        raise unauthorized() from None
    if (
        oauth.get("oauth_signature_method") != "HMAC-SHA1"
        or oauth.get("oauth_version", "1.0") != "1.0"
        or not oauth.get("oauth_nonce")
        or not oauth.get("oauth_signature")
        or abs(now - timestamp) > OAUTH_TIMESTAMP_TOLERANCE_SECONDS
        or not _same(oauth.get("oauth_consumer_key"), credentials.consumer_key)
        or not _same(oauth.get("oauth_token"), credentials.access_token)
    ):
        raise unauthorized()
    query = raw_path.partition("?")[2]
    headers = {"Authorization": authorization}
    request = OAuthRequest(API_HOST + raw_path, method, form_body, headers)
    request.params = signature.collect_parameters(
        uri_query=query, body=form_body, headers=headers, exclude_oauth_signature=True
    )
    request.signature = oauth["oauth_signature"]
    if not signature.verify_hmac_sha1(
        request, credentials.consumer_secret, credentials.access_token_secret
    ):
        raise unauthorized()
    # Only a correctly signed request uses up its nonce, as a forger cannot burn real ones.
    if not nonces.add(oauth["oauth_nonce"], timestamp, now):
        raise unauthorized()


def _same(given: str | None, expected: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


# --- text and media ---------------------------------------------------------------------------
def normalize_text(text: str) -> str:
    """X stores and counts text in Unicode NFC."""
    return unicodedata.normalize("NFC", text)


def weighted_length(text: str) -> int:
    """twitter-text v3: most scripts count 1, CJK and emoji 2, every URL 23."""
    return int(twitter_text.parse_tweet(normalize_text(text)).weightedLength)


_SCHEME = re.compile(r"https?://", re.IGNORECASE)
_BASE62 = string.digits + string.ascii_letters


def wrap_links(text: str, salt: str) -> tuple[str, list[dict[str, Any]]]:
    """X's t.co wrapping: the text as X stores it, and its ``entities.urls``.

    Every URL twitter-text finds — with a scheme or without (``ilo.org/report``) — becomes
    ``https://t.co/`` and ten characters, different for every post (``salt``: the post id).
    Each entity gives ``start``/``end`` (code points of the stored text), the t.co ``url``,
    ``expanded_url`` (as typed; ``http://`` added when it had no scheme) and ``display_url``.
    """
    pieces: list[str] = []
    urls: list[dict[str, Any]] = []
    last = 0
    for n, found in enumerate(twitter_text.extract_urls_with_indices(text)):
        begin, end = found["indices"]
        typed = str(found["url"])
        expanded = typed if _SCHEME.match(typed) else "http://" + typed
        tco = TCO_PREFIX + _slug(f"{salt}:{n}:{typed}")
        pieces.append(text[last:begin])
        start = sum(map(len, pieces))
        pieces.append(tco)
        urls.append(
            {
                "start": start,
                "end": start + len(tco),
                "url": tco,
                "expanded_url": expanded,
                "display_url": _display_url(expanded),
            }
        )
        last = end
    pieces.append(text[last:])
    return "".join(pieces), urls


def media_key(media_id: str) -> str:
    """X's media key: the type (3: photo) and the media id."""
    return f"3_{media_id}"


def media_link(
    stored: str, post_id: str, username: str, media_keys: list[str]
) -> tuple[str, list[dict[str, Any]]]:
    """The link X appends to the text of a post with media, and its ``entities.urls``.

    One t.co link after a space (alone when there is no text), weighing nothing against the 280;
    one entity per attached media item, each with the same ``url``/``start``/``end``,
    ``expanded_url`` ``https://x.com/<username>/status/<post id>/photo/1`` (``photo/1`` for every
    item, as X answers), ``display_url`` ``pic.x.com/`` + the t.co slug, and its ``media_key``.
    """
    slug = _slug(f"{post_id}:media")
    tco = TCO_PREFIX + slug
    start = len(stored) + 1 if stored else 0
    text = f"{stored} {tco}" if stored else tco
    page = f"{MEDIA_PAGE_HOST}/{username}/status/{post_id}/photo/1"
    urls = [
        {
            "start": start,
            "end": start + len(tco),
            "url": tco,
            "expanded_url": page,
            "display_url": MEDIA_DISPLAY_HOST + slug,
            "media_key": key,
        }
        for key in media_keys
    ]
    return text, urls


def _slug(seed: str) -> str:
    number = int.from_bytes(hashlib.sha256(seed.encode()).digest()[:8], "big")
    digits = ""
    for _ in range(TCO_SLUG_LENGTH):
        number, rest = divmod(number, len(_BASE62))
        digits += _BASE62[rest]
    return digits


def _display_url(expanded: str) -> str:
    shown = _SCHEME.sub("", expanded, count=1)
    return shown if len(shown) <= DISPLAY_URL_LENGTH else shown[:DISPLAY_URL_LENGTH] + "…"


def escape_text(text: str) -> str:
    """Post text as the API returns it: ``&``, ``<`` and ``>`` as HTML entities."""
    return html.escape(text, quote=False)


MEDIA_CATEGORIES = {
    # The one-request upload takes images only; video and long GIFs need the chunked upload.
    "tweet_image": ("image/jpeg", "image/png", "image/webp", "image/gif", "image/bmp"),
    "tweet_gif": ("image/gif",),
}


def sniff_media_type(data: bytes) -> str | None:
    return image_type(data) or ("image/bmp" if data.startswith(b"BM") else None)


def check_upload(data: bytes, category: str, declared_type: str | None) -> str:
    """The media type of an acceptable one-request upload; 400 otherwise."""
    if category not in MEDIA_CATEGORIES:
        raise invalid_request(
            f"The `media_category` value [{category}] is not supported by this upload; "
            f"use one of {sorted(MEDIA_CATEGORIES)} or the chunked upload.",
            {"media_category": [category]},
        )
    if not data:
        raise invalid_request("The `media` field is empty.", {"media": [""]})
    media_type = declared_type or sniff_media_type(data)
    if media_type not in MEDIA_CATEGORIES[category]:
        raise invalid_request(
            f"Unsupported media type [{media_type}] for media_category [{category}].",
            {"media_type": [str(media_type)]},
        )
    if len(data) > MAX_IMAGE_BYTES:
        raise invalid_request(
            f"File size exceeds {MAX_IMAGE_BYTES} bytes.", {"media": [f"{len(data)} bytes"]}
        )
    return media_type


# --- rate limits and ids ----------------------------------------------------------------------
class FixedWindow(Window):
    """X's user rate limit: ``limit`` requests per window that starts with its first request.

    A fixed window, like X's: ``x-rate-limit-reset`` is when the window ends and the full
    allowance comes back at once.
    """

    def headers(self) -> dict[str, str]:
        used, ends_at = self.standing()
        return {
            "x-rate-limit-limit": str(self.limit),
            "x-rate-limit-remaining": str(self.limit - used),
            "x-rate-limit-reset": str(math.ceil(ends_at)),
        }


class Snowflakes:
    """Increasing ids shaped like X's: milliseconds since 2010-11-04 shifted left by 22 bits."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._last = 0

    def next(self) -> str:
        stamp = (int(self._clock() * 1000) - TWITTER_EPOCH_MS) << 22
        self._last = max(self._last + 1, stamp)
        return str(self._last)
