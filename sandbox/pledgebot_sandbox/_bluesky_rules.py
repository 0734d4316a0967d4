"""Bluesky's rules as the Bluesky sandbox enforces them: XRPC errors, session tokens, record keys,
CIDs, rate-limit windows and the ``app.bsky.feed.post`` record.

The limits are the lexicons' (``app.bsky.feed.post``: text ≤ 300 graphemes and ≤ 3000 UTF-8
bytes; ``app.bsky.embed.images``: ≤ 4 images, each with an ``alt`` field and at most
``maxSize`` bytes — 2,000,000 since 2026, 1,000,000 before) and the error bodies are the
reference PDS's (``{"error": "InvalidRequest", "message": "Invalid app.bsky.feed.post record:
Record/text must not be longer than 300 graphemes"}``). Two checks are stricter than the PDS,
on purpose: facets must slice the text on character boundaries (the AppView silently drops
facets that do not), and a post's record key must be a TID (the AppView never shows a post
under another key). Nothing here knows about aiohttp or the sandbox's state.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import Callable, Mapping
from typing import Any

import regex

from pledgebot_sandbox._window import Window

POST = "app.bsky.feed.post"
MAX_GRAPHEMES = 300
MAX_TEXT_BYTES = 3000
MAX_IMAGES = 4
MAX_IMAGE_BYTES = 2_000_000  # app.bsky.embed.images#image maxSize (1,000,000 until 2026)
MAX_UPLOAD_BYTES = 5 * 1024 * 1024  # the reference PDS's default PDS_BLOB_UPLOAD_LIMIT
MAX_TAG_GRAPHEMES = 64
S32 = "234567abcdefghijklmnopqrstuvwxyz"  # the sortable base32 of TIDs
TID = re.compile(r"^[234567abcdefghij][234567abcdefghijklmnopqrstuvwxyz]{12}$")
RECORD_KEY = re.compile(r"^[A-Za-z0-9_~.:-]{1,512}$")
DID = re.compile(r"^did:[a-z]+:[A-Za-z0-9._:%-]+$")
AT_URI = re.compile(r"^at://(did:[^/]+)/([a-zA-Z0-9.-]+)/([A-Za-z0-9_~.:-]+)$")
ACCESS_SCOPE = "com.atproto.appPass"  # a session made with an app password
REFRESH_SCOPE = "com.atproto.refresh"


class XrpcError(Exception):
    """An XRPC error answer: HTTP status, ``{"error", "message"}`` and extra headers."""

    def __init__(
        self, status: int, error: str, message: str, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(f"{status} {error}: {message}")
        self.status, self.error, self.message = status, error, message
        self.headers = dict(headers or {})

    @property
    def body(self) -> dict[str, str]:
        return {"error": self.error, "message": self.message}


def invalid_request(message: str, error: str = "InvalidRequest") -> XrpcError:
    return XrpcError(400, error, message)


def invalid_record(path: str, problem: str) -> XrpcError:
    return invalid_request(f"Invalid {POST} record: Record/{path} {problem}")


def auth_required(
    message: str = "Authentication Required", error: str = "AuthMissing"
) -> XrpcError:
    return XrpcError(401, error, message)


def internal_error() -> XrpcError:
    return XrpcError(500, "InternalServerError", "Internal Server Error")


def graphemes(text: str) -> int:
    """Extended grapheme clusters (UAX #29), as the reference implementation counts them."""
    return len(regex.findall(r"\X", text))


def cid_for(data: bytes, *, raw: bool) -> str:
    """A CIDv1 (sha2-256, base32): codec raw for a blob, dag-cbor (here: of JSON) for a record."""
    digest = hashlib.sha256(data).digest()
    binary = bytes([0x01, 0x55 if raw else 0x71, 0x12, 0x20]) + digest
    return "b" + base64.b32encode(binary).decode().lower().rstrip("=")


class Tids:
    """Server-made record keys and revisions: microseconds since 1970 and a clock id."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock, self._last = clock, 0

    def next(self) -> str:
        micros = max(int(self._clock() * 1_000_000), self._last + 1)
        self._last = micros
        return encode_tid(micros, 0)


def encode_tid(micros: int, clock_id: int) -> str:
    value = (micros << 10) | (clock_id & 0x3FF)
    return "".join(S32[(value >> shift) & 31] for shift in range(60, -5, -5))


def check_record_key(collection: str, rkey: str) -> None:
    if not RECORD_KEY.match(rkey) or rkey in (".", ".."):
        raise invalid_request(f"Invalid record key: {rkey!r}")
    if collection == POST and not TID.match(rkey):
        raise invalid_request(f"Invalid record key for {POST}: must be a TID (got {rkey!r})")


# --- session tokens -------------------------------------------------------------------------
class Tokens:
    """HS256 JWTs, as a PDS issues them for a session (access: 2 h, refresh: 90 days).

    Verifying answers as the reference PDS does: a token past its ``exp`` → 400
    ``ExpiredToken``; a bad signature, the wrong scope or a revoked token → 400 ``InvalidToken``
    (a revoked refresh token: 400 ``ExpiredToken`` "Token has been revoked").
    """

    def __init__(self, secret: bytes, clock: Callable[[], float]) -> None:
        self._secret, self._clock = secret, clock
        self._serial = 0
        self.issued: list[str] = []  # every token handed out (tests search logs for them)
        self.revoked: set[str] = set()  # jti of refresh tokens used or revoked
        self.expired_through = 0  # access tokens up to this serial count as expired

    def expire_all(self) -> None:
        """Every access token issued so far is expired (a clock jump, a long pause)."""
        self.expired_through = self._serial

    def issue(self, did: str, scope: str, lifetime: float) -> str:
        self._serial += 1
        now = self._clock()
        claims = {
            "scope": scope,
            "sub": did,
            "iat": int(now),
            "exp": int(now + lifetime),
            "jti": f"{scope}-{self._serial}",  # the serial: expire_all() compares it
        }
        header = _b64(json.dumps({"typ": "JWT", "alg": "HS256"}).encode())
        payload = _b64(json.dumps(claims).encode())
        signature = hmac.new(self._secret, f"{header}.{payload}".encode(), "sha256").digest()
        token = f"{header}.{payload}.{_b64(signature)}"
        self.issued.append(token)
        return token

    def verify(self, authorization: str | None, scope: str) -> dict[str, Any]:
        if not authorization or not authorization.startswith("Bearer "):
            raise auth_required()
        token = authorization.removeprefix("Bearer ").strip()
        try:
            header, payload, signature = token.split(".")
            expected = hmac.new(self._secret, f"{header}.{payload}".encode(), "sha256").digest()
            valid = hmac.compare_digest(_unb64(signature), expected)
            claims: dict[str, Any] = json.loads(_unb64(payload))
        except ValueError:
            valid, claims = False, {}
        if not valid or claims.get("scope") != scope:
            raise invalid_request("Token could not be verified", "InvalidToken")
        if scope == REFRESH_SCOPE and claims["jti"] in self.revoked:
            raise invalid_request("Token has been revoked", "ExpiredToken")
        serial = int(str(claims.get("jti", "-0")).rsplit("-", 1)[1])
        expired = scope != REFRESH_SCOPE and serial <= self.expired_through
        if expired or claims["exp"] <= self._clock():
            raise invalid_request("Token has expired", "ExpiredToken")
        return claims


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# --- rate limits ----------------------------------------------------------------------------
class PointsWindow(Window):
    """The PDS's repo-write limit: ``limit`` points per fixed window (a create costs 3, a
    delete 1).

    Every answer to a write carries ``ratelimit-limit``, ``-remaining``, ``-reset`` (Unix
    seconds) and ``-policy``; a write over the budget gets 429 ``RateLimitExceeded``.
    """

    def headers(self) -> dict[str, str]:
        used, ends_at = self.standing()
        return {
            "ratelimit-limit": str(self.limit),
            "ratelimit-remaining": str(max(0, self.limit - used)),
            "ratelimit-reset": str(int(ends_at)),
            "ratelimit-policy": f"{self.limit};w={int(self.seconds)}",
        }


def rate_limited(headers: Mapping[str, str]) -> XrpcError:
    return XrpcError(429, "RateLimitExceeded", "Rate Limit Exceeded", headers)


# --- the post record ------------------------------------------------------------------------
def check_post(
    record: dict[str, Any], blob_size: Callable[[str], int | None], max_image_bytes: int
) -> None:
    """Refuse a post the PDS (or, where stricter, the AppView) would refuse; see the module."""
    text = record.get("text")
    if not isinstance(text, str):
        raise invalid_record("text", "must be a string")
    if len(text.encode()) > MAX_TEXT_BYTES:
        raise invalid_record("text", f"must not be longer than {MAX_TEXT_BYTES} characters")
    if graphemes(text) > MAX_GRAPHEMES:
        raise invalid_record("text", f"must not be longer than {MAX_GRAPHEMES} graphemes")
    if not isinstance(record.get("createdAt"), str):
        raise invalid_record("createdAt", "must be a valid datetime")
    _check_facets(text, record.get("facets"))
    if "reply" in record:
        for side in ("root", "parent"):
            ref = record["reply"].get(side) if isinstance(record["reply"], dict) else None
            if not isinstance(ref, dict) or not AT_URI.match(str(ref.get("uri", ""))):
                raise invalid_record(f"reply/{side}", "must be a strong ref (uri and cid)")
            if not isinstance(ref.get("cid"), str):
                raise invalid_record(f"reply/{side}", 'must have the property "cid"')
    embed = record.get("embed")
    if isinstance(embed, dict) and embed.get("$type") == "app.bsky.embed.images":
        _check_images(embed, blob_size, max_image_bytes)


def _check_facets(text: str, facets: Any) -> None:
    if facets is None:
        return
    if not isinstance(facets, list):
        raise invalid_record("facets", "must be an array")
    encoded = text.encode()
    for n, facet in enumerate(facets):
        index = facet.get("index") if isinstance(facet, dict) else None
        start = index.get("byteStart") if isinstance(index, dict) else None
        end = index.get("byteEnd") if isinstance(index, dict) else None
        if not isinstance(start, int) or not isinstance(end, int) or not 0 <= start < end:
            raise invalid_record(f"facets/{n}/index", "must have 0 <= byteStart < byteEnd")
        if end > len(encoded) or not _boundary(encoded, start) or not _boundary(encoded, end):
            raise invalid_record(f"facets/{n}/index", "must slice the text on UTF-8 characters")
        features = facet.get("features")
        if not isinstance(features, list) or not features:
            raise invalid_record(f"facets/{n}/features", "must be a non-empty array")
        for feature in features:
            _check_feature(n, feature)


def _check_feature(n: int, feature: Any) -> None:
    kind = feature.get("$type") if isinstance(feature, dict) else None
    if kind == "app.bsky.richtext.facet#link":
        if not str(feature.get("uri", "")).startswith(("http://", "https://")):
            raise invalid_record(f"facets/{n}/features/0/uri", "must be a valid uri")
    elif kind == "app.bsky.richtext.facet#mention":
        if not DID.match(str(feature.get("did", ""))):
            raise invalid_record(f"facets/{n}/features/0/did", "must be a valid did")
    elif kind == "app.bsky.richtext.facet#tag":
        tag = feature.get("tag")
        if not isinstance(tag, str) or not tag or graphemes(tag) > MAX_TAG_GRAPHEMES:
            raise invalid_record(f"facets/{n}/features/0/tag", "must be 1 to 64 graphemes")


def _boundary(encoded: bytes, at: int) -> bool:
    return at == len(encoded) or (encoded[at] & 0xC0) != 0x80  # not a continuation byte


def _check_images(
    embed: dict[str, Any], blob_size: Callable[[str], int | None], max_image_bytes: int
) -> None:
    images = embed.get("images")
    if not isinstance(images, list) or not images:
        raise invalid_record("embed/images", "must be a non-empty array")
    if len(images) > MAX_IMAGES:
        raise invalid_record("embed/images", f"must not have more than {MAX_IMAGES} elements")
    for n, image in enumerate(images):
        if not isinstance(image, dict) or "image" not in image:
            raise invalid_record(f"embed/images/{n}", 'must have the property "image"')
        if not isinstance(image.get("alt"), str):
            raise invalid_record(f"embed/images/{n}", 'must have the property "alt"')
        blob = image["image"]
        link = blob.get("ref", {}).get("$link") if isinstance(blob, dict) else None
        size = blob_size(str(link))
        if size is None:
            raise invalid_request(f"Could not find blob: {link}", "BlobNotFound")
        if not str(blob.get("mimeType", "")).startswith("image/"):
            raise invalid_request("Wrong type of file. It is not an image.", "InvalidMimeType")
        if size > max_image_bytes:
            raise invalid_request(
                f"This file is too large. It is {size / 1e6:.2f}MB but the maximum size is "
                f"{max_image_bytes / 1e6:.2f}MB.",
                "BlobTooLarge",
            )
