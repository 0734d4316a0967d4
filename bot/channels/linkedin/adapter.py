"""LinkedIn adapter: public posts on the campaign's organisation page, through LinkedIn's Posts
API (``POST /rest/posts``) and Images API, over httpx (outbound only).

Why httpx and not LinkedIn's ``linkedin-api-client`` (0.3.0, PyPI): it does not serve. It
hard-codes ``https://api.linkedin.com/rest`` (no sandbox without rewriting its requests), sends
with a bare blocking ``requests.Session`` (no timeout; a worker thread per call), has no upload
of an image's bytes (the third step of the Images API is a plain ``PUT``), has had no release
since 2023 and its licence is LinkedIn's own, not an open-source one. What it adds over four
JSON calls — Rest.li encoding of complex keys and query tunnelling — these calls do not need.

Every call carries ``Authorization: Bearer <token>`` (the token from the environment variable
``access_token_env`` names; never logged, never put in an error), ``LinkedIn-Version``
(``api_version``, YYYYMM: LinkedIn serves a version about a year, then answers 426
``NONEXISTENT_VERSION`` — that pauses the channel like a refused token, and the alert says to
raise the setting) and ``X-Restli-Protocol-Version: 2.0.0``.

- **Commentary** is LinkedIn's "little" text format, and its length (3,000) is counted in it:
  ``bot.channels.linkedin.text``.
- **Images** (JPEG, PNG, GIF; up to 20): ``POST /rest/images?action=initializeUpload`` (owner:
  the page), ``PUT`` the bytes to the ``uploadUrl`` it returns (the token goes with them only
  to LinkedIn's own hosts or the API's), then wait until the image is ``AVAILABLE``; one image
  is ``content.media``, several ``content.multiImage``, each with its ``altText``.
- **Threads**: LinkedIn posts have none. A part that continues a split text (``reply_to``) is
  posted on its own (split_thread has already numbered it).
- **Receipt**: the post's URN, from the ``x-restli-id`` header of the 201.
- **Delete** (a withdrawn update): ``DELETE /rest/posts/{encoded URN}``; a 404 means already
  gone.

Idempotency: LinkedIn has no idempotency key (as with Telegram). What it has is a refusal of
the same commentary twice: 422 "Content is a duplicate of urn:li:share:…" (``DUPLICATE_POST``).
For a message that may have gone out before a crash or a lost answer (``maybe_sent``) that
refusal means "already sent": the URN it names is the receipt, once ``GET /rest/posts/{urn}``
finds it live (a 404 there: the earlier post was deleted, and the message is refused). Other
duplicates are ``Rejected``. So every 5xx or timeout on creating a post is counted as possibly
delivered: the retry is flagged, and LinkedIn's refusal turns it into the receipt.

Errors: ``bot.channels.linkedin.errors`` maps LinkedIn's answers (a 429 holds posting for
every process meanwhile); timeouts and connection errors → ``TransientError``.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import quote, urlsplit

import httpx
from pydantic import BaseModel, SecretStr

from bot.channels.base import Channel, Deletes, Media, OutboundMessage, Receipt
from bot.channels.holds import unless_held
from bot.channels.linkedin.errors import Duplicate, NotFound, delivery_error
from bot.channels.linkedin.settings import LinkedInSettings
from bot.channels.linkedin.text import MAX_COMMENTARY, linkedin_length, little_text
from bot.channels.ratelimit import Limits
from bot.core.errors import ChannelUnauthorized, Rejected, TransientError

log = logging.getLogger(__name__)

MAX_IMAGES = 20  # content.multiImage holds 2 to 20
MAX_ALT_TEXT = 4086
POST_URN = re.compile(r"^urn:li:(?:share|ugcPost):\d+$")
IMAGE_TYPES = {b"\x89PNG": "image/png", b"\xff\xd8\xff": "image/jpeg", b"GIF8": "image/gif"}
DISTRIBUTION = {
    "feedDistribution": "MAIN_FEED",
    "targetEntities": [],
    "thirdPartyDistributionChannels": [],
}

__all__ = ["LinkedInChannel"]


class LinkedInChannel:
    name: ClassVar[str] = "linkedin"
    Settings: ClassVar[type[BaseModel]] = LinkedInSettings

    def __init__(
        self,
        settings: LinkedInSettings,
        secrets: Mapping[str, SecretStr],
        *,
        limits: Limits | None = None,
    ) -> None:
        self.settings = settings
        self.limits = limits or Limits()
        self._token = secrets["access_token"]  # revealed only in the Authorization header
        self.author = f"urn:li:organization:{settings.organization_id}"
        self.client = httpx.AsyncClient(
            base_url=settings.api_base_url.rstrip("/") + "/",
            timeout=settings.request_timeout,
            headers={
                "LinkedIn-Version": settings.api_version,
                "X-Restli-Protocol-Version": "2.0.0",
                "User-Agent": "pledgebot",
            },
        )

    async def start(self) -> None:
        """Nothing to ask LinkedIn: a page token with only ``w_organization_social`` can read
        nothing cheap, so the first post checks it (a refusal then pauses the channel)."""
        if not self._token.get_secret_value().strip():
            raise ChannelUnauthorized("LinkedIn: the access token is empty")
        log.info(
            "linkedin: posting as %s (LinkedIn-Version %s)", self.author, self.settings.api_version
        )

    async def aclose(self) -> None:
        await self.client.aclose()

    # --- sending ------------------------------------------------------------------------------
    async def send(self, message: OutboundMessage) -> Receipt:
        # A 429 holds posting for every process until it may pass, instead of each one
        # spending a request to learn it.
        return await unless_held(
            self.limits,
            f"linkedin:{self.settings.organization_id}:post",
            lambda: self._post(message),
            refusal="LinkedIn: rate limited; posting again in {wait:.0f} s",
        )

    async def _post(self, message: OutboundMessage) -> Receipt:
        commentary = little_text(message.text)
        length = linkedin_length(message.text)
        if length > MAX_COMMENTARY:
            raise Rejected(f"LinkedIn: too long ({length} > {MAX_COMMENTARY} characters)")
        images = [self._image(item) for item in message.media[:MAX_IMAGES]]
        if len(message.media) > MAX_IMAGES:
            log.warning("linkedin: message %s: only the first %d images", message.id, MAX_IMAGES)
        if message.reply_to:
            log.info(
                "linkedin: message %s continues %s: posted on its own", message.id, message.reply_to
            )
        body: dict[str, Any] = {
            "author": self.author,
            "commentary": commentary,
            "visibility": "PUBLIC",
            "distribution": DISTRIBUTION,
            "lifecycleState": "PUBLISHED",
            "isReshareDisabledByAuthor": False,
        }
        if images:
            media = [
                {"id": await self._upload(*image[:2]), "altText": image[2]} for image in images
            ]
            body["content"] = (
                {"media": media[0]} if len(media) == 1 else {"multiImage": {"images": media}}
            )
        try:
            response = await self._call("POST", "posts", "posts.create", writes=True, json=body)
        except Duplicate as exc:
            if message.maybe_sent and exc.urn and await self._is_live(exc.urn):
                log.info("linkedin: message %s was already posted: %s", message.id, exc.urn)
                return Receipt(external_id=exc.urn)
            raise
        urn = response.headers.get("x-restli-id")
        if not urn:  # made, but unnamed: the retry learns its URN from the duplicate refusal
            raise TransientError("LinkedIn: 201 without x-restli-id", maybe_delivered=True)
        return Receipt(external_id=urn)

    async def _is_live(self, urn: str) -> bool:
        """Whether the post LinkedIn's duplicate refusal names is still there (LinkedIn also
        names posts deleted in the last day or so). A token that may not read posts
        (no ``r_organization_social``) cannot tell: LinkedIn's word stands."""
        try:
            await self._call("GET", _path("posts", urn), "posts.get")
        except NotFound:
            return False
        except (ChannelUnauthorized, Rejected):
            return True
        return True

    def _image(self, item: Media) -> tuple[bytes, str, str]:
        """One image's bytes, type and alt text, refused before any request if unfit."""
        path = Path(item.path)
        alt = item.alt_text.strip()[:MAX_ALT_TEXT]
        if not path.is_file():
            raise Rejected(f"LinkedIn: the media file is missing: {path.name}")
        if not alt and self.settings.require_alt_text:
            raise Rejected(f"LinkedIn: image {path.name} has no alt text")
        data = path.read_bytes()
        mime = next((kind for magic, kind in IMAGE_TYPES.items() if data.startswith(magic)), None)
        if mime is None:
            raise Rejected(f"LinkedIn: {path.name} is not a JPEG, PNG or GIF image")
        return data, mime, alt

    async def _upload(self, data: bytes, mime: str) -> str:
        """The Images API's three steps; returns the image's URN once it is AVAILABLE."""
        request = {"initializeUploadRequest": {"owner": self.author}}
        started = await self._call(
            "POST",
            "images",
            "images.initializeUpload",
            params={"action": "initializeUpload"},
            json=request,
        )
        value = started.json()["value"]
        upload_url, urn = str(value["uploadUrl"]), str(value["image"])
        await self._call(
            "PUT",
            upload_url,
            "images.upload",
            content=data,
            headers={"Content-Type": mime},
            authorized=self._ours(upload_url),
        )
        waited, pause = 0.0, 0.2
        while True:  # a fresh upload is PROCESSING for a moment; a post may name it once AVAILABLE
            status = (await self._call("GET", _path("images", urn), "images.get")).json()["status"]
            if status == "AVAILABLE":
                return urn
            if status == "PROCESSING_FAILED":
                raise Rejected(f"LinkedIn: image {urn} failed processing")
            if waited + pause > self.settings.image_processing_timeout:
                raise TransientError(f"LinkedIn: image {urn} still {status} after {waited:.1f} s")
            await asyncio.sleep(pause)
            waited, pause = waited + pause, min(pause * 2, 2.0)

    def _ours(self, url: str) -> bool:
        """Whether the token may go to ``url``: LinkedIn's own hosts, or the API's."""
        target, api = urlsplit(url), urlsplit(self.settings.api_base_url)
        if (target.scheme, target.netloc) == (api.scheme, api.netloc):
            return True
        host = target.hostname or ""
        return target.scheme == "https" and (
            host == "linkedin.com" or host.endswith(".linkedin.com")
        )

    async def delete(self, message: OutboundMessage) -> None:
        """Take down the post whose URN is the message's text (consent was withdrawn)."""
        urn = message.text.strip()
        if not POST_URN.match(urn):
            raise Rejected(f"LinkedIn: {urn!r} is not a post's URN")
        try:
            await self._call(
                "DELETE", _path("posts", urn), "posts.delete", headers={"X-RestLi-Method": "DELETE"}
            )
        except NotFound:
            log.info("linkedin: %s was already deleted", urn)

    # --- calls and errors ---------------------------------------------------------------------
    async def _call(
        self,
        method: str,
        url: str,
        what: str,
        *,
        writes: bool = False,
        authorized: bool = True,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        sent = dict(headers or {})
        if authorized:
            sent["Authorization"] = f"Bearer {self._token.get_secret_value()}"
        try:
            response = await self.client.request(method, url, headers=sent, **kwargs)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise TransientError(f"LinkedIn: {what}: {type(exc).__name__}") from exc
        except httpx.TimeoutException as exc:
            raise TransientError(f"LinkedIn: {what}: timed out", maybe_delivered=writes) from exc
        except httpx.HTTPError as exc:  # the connection broke mid-answer
            raise TransientError(
                f"LinkedIn: {what}: {type(exc).__name__}", maybe_delivered=writes
            ) from exc
        if response.is_error:
            raise delivery_error(response, what, writes)
        return response


def _path(resource: str, urn: str) -> str:
    return f"{resource}/{quote(urn, safe='')}"


# What its spec promises, held by mypy (tests/channels/test_specs.py checks it at run time).
_AS_CHANNEL: type[Channel] = LinkedInChannel
_AS_DELETES: type[Deletes] = LinkedInChannel
