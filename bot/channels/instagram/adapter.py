"""Instagram adapter: a business account's feed, through the Graph API (Instagram API with
Facebook Login, on ``graph.facebook.com``), with the Facebook adapter's Graph client.

Publishing takes three steps: create a media container (``POST /{ig-user-id}/media`` with
``image_url``, ``caption`` and ``alt_text``), wait until Instagram has fetched and processed
the image (``GET /{container-id}?fields=status_code,status``: ``IN_PROGRESS`` → wait
``poll_interval``; ``FINISHED`` → go on; ``ERROR``/``EXPIRED`` → ``Rejected`` with its
status; still in progress after ``publish_timeout`` → ``TransientError``, nothing published),
then publish it (``POST /{ig-user-id}/media_publish`` with ``creation_id``). The published
media's id is the receipt.

- **An image is required**: Instagram has no text-only post, so a message without one is
  ``Rejected`` with that reason (the planner should not make one: see the report). Only the
  first image is posted (no carousel yet); it must be a JPEG (Instagram's only still format),
  at most 8 MiB, with an aspect ratio from 4:5 to 1.91:1 and alt text (``require_alt_text``).
- **The image comes from a public URL**: Instagram downloads it. ``bot.core.media_urls`` signs the
  path stored in the message (``[media] public_base_url`` + ``/media/<HMAC>/<name>``), and the
  dashboard's public route (``bot.web.media``) serves it while it belongs to an approved,
  consented journey update. So knowledge facts' and the composer's images cannot go to
  Instagram yet (they belong to no update: the container fails, ``Rejected``).
- **Caption**: 2,200 characters, 30 hashtags, 20 @mentions at most. Over a limit the message is
  ``Rejected``, never trimmed: the pledgemaker consented to publishing exactly this text
  (``bot.community.consent``), so dropping their hashtags would publish words they did not approve.
  The campaign's own hashtags are few (the templates add them once).
- **No delete**: Instagram's API cannot delete a published post, so this adapter has no
  ``delete`` and no ``delete_on_withdraw``: after a withdrawal the post stays up and the
  staff alert lists it (``bot.community.consent.withdraw`` → ``live``), to remove in the app.

Idempotency: no key, and Instagram accepts the same caption twice. A message that may have
gone out before a crash (``maybe_sent``, e.g. a timeout on ``media_publish``) is first looked
for among the account's 25 latest media (same caption): found, it was published, and its id
is the receipt. An unpublished container costs nothing (it expires after 24 hours).

Errors: as Facebook's (``bot.channels.facebook.graph.graph_error``); the posts-a-day limit
(code 9, subcode 2207042) → ``RateLimited`` for an hour; a container whose image could not be
fetched (code 9004, subcode 2207052) → ``Rejected``.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Mapping
from typing import ClassVar

import httpx
from pydantic import BaseModel, SecretStr

from bot.channels.base import Channel, OutboundMessage, Receipt
from bot.channels.facebook.graph import GraphClient
from bot.channels.images import LocalImage, image_size, read_image
from bot.channels.instagram.settings import InstagramSettings
from bot.channels.ratelimit import Limits
from bot.core.errors import ConfigError, Rejected, TransientError
from bot.core.media_urls import MediaUrls

log = logging.getLogger(__name__)

MAX_CAPTION = 2_200
MAX_HASHTAGS = 30
MAX_MENTIONS = 20
MIN_RATIO, MAX_RATIO = 4 / 5, 1.91  # width / height
HASHTAG = re.compile(r"(?<![\w&])#\w+")  # not "&#39;" nor "C#"
MENTION = re.compile(r"(?<![\w.@])@[A-Za-z0-9_.]+")  # not the @ of an email address

__all__ = ["InstagramChannel", "caption_problem"]


def caption_problem(caption: str) -> str | None:
    """Why Instagram would refuse this caption, or None."""
    if len(caption) > MAX_CAPTION:
        return f"the caption is too long ({len(caption):,} > {MAX_CAPTION:,} characters)"
    tags = len(HASHTAG.findall(caption))
    if tags > MAX_HASHTAGS:
        return f"the caption has {tags} hashtags; Instagram allows {MAX_HASHTAGS}"
    mentions = len(MENTION.findall(caption))
    if mentions > MAX_MENTIONS:
        return f"the caption has {mentions} @mentions; Instagram allows {MAX_MENTIONS}"
    return None


class InstagramChannel:
    name: ClassVar[str] = "instagram"
    Settings: ClassVar[type[BaseModel]] = InstagramSettings

    def __init__(
        self,
        settings: InstagramSettings,
        secrets: Mapping[str, SecretStr],
        *,
        limits: Limits | None = None,
        media_urls: MediaUrls | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if media_urls is None:
            raise ConfigError(
                "config.toml",
                "channels.instagram",
                "Instagram needs public media URLs: set [media] public_base_url and "
                "PLEDGEBOT_MEDIA_URL_KEY (bot.core.media_urls.from_settings)",
            )
        self.settings = settings
        self.limits = limits or Limits()
        self.media_urls = media_urls
        self.graph = GraphClient(
            "Instagram", settings, secrets["access_token"], transport=transport
        )

    @property
    def account(self) -> str:
        return self.settings.ig_user_id

    async def start(self) -> None:
        """Check the token against the account (a refused one pauses the channel at once)."""
        found = await self.graph.call("GET", self.account, params={"fields": "id,username"})
        log.info("instagram: publishing as @%s (%s)", found.get("username"), self.account)

    async def aclose(self) -> None:
        await self.graph.aclose()

    async def send(self, message: OutboundMessage) -> Receipt:
        image = self._check(message)  # refused before anything is held or sent
        key = f"instagram:{self.account}:post"
        return await self.graph.guarded(self.limits, key, lambda: self._publish(message, image))

    def _check(self, message: OutboundMessage) -> LocalImage:
        if message.reply_to:
            raise Rejected("Instagram: a post is never split into a thread (reply_to)")
        problem = caption_problem(message.text)
        if problem:
            raise Rejected(f"Instagram: {problem}")
        if not message.media:
            raise Rejected(
                "Instagram: a post needs an image, and this message has none "
                "(Instagram has no text-only posts)"
            )
        if len(message.media) > 1:
            log.warning("instagram: message %s: only the first image is posted", message.id)
        image = read_image(
            "Instagram",
            message.media[0],
            require_alt=self.settings.require_alt_text,
            max_bytes=self.settings.max_image_bytes,
        )
        if image.mime != "image/jpeg":
            raise Rejected(f"Instagram: {image.name} is {image.mime}; Instagram takes JPEG only")
        size = image_size(image.data)  # unreadable here: Instagram's own check decides
        ratio = size[0] / size[1] if size is not None and size[1] else None
        if ratio is not None and not MIN_RATIO - 0.005 <= ratio <= MAX_RATIO + 0.005:
            raise Rejected(
                f"Instagram: {image.name} has an aspect ratio of {ratio:.2f}; "
                "Instagram takes 4:5 (0.80) to 1.91:1"
            )
        return image

    async def _publish(self, message: OutboundMessage, image: LocalImage) -> Receipt:
        caption = message.text
        if message.maybe_sent and (found := await self._find_recent(caption)):
            log.info("instagram: message %s was published before the crash: %s", message.id, found)
            return Receipt(external_id=found)
        data = {"image_url": self.media_urls.url_for(image.stored), "caption": caption}
        if image.alt:
            data["alt_text"] = image.alt
        container = str((await self.graph.call("POST", f"{self.account}/media", data=data))["id"])
        await self._wait_until_ready(container)
        published = await self.graph.call(
            "POST", f"{self.account}/media_publish", data={"creation_id": container}
        )
        return Receipt(external_id=str(published["id"]))

    async def _wait_until_ready(self, container: str) -> None:
        """Until Instagram has fetched and processed the image, within ``publish_timeout``."""
        deadline = time.monotonic() + self.settings.publish_timeout
        while True:
            found = await self.graph.call("GET", container, params={"fields": "status_code,status"})
            state = str(found.get("status_code") or "")
            if state in ("FINISHED", "PUBLISHED"):
                return
            if state in ("ERROR", "EXPIRED"):
                detail = found.get("status") or "no detail"
                raise Rejected(f"Instagram: media container {container}: {state} ({detail})")
            if time.monotonic() + self.settings.poll_interval > deadline:
                raise TransientError(
                    f"Instagram: media container {container} is still {state or 'not ready'} "
                    f"after {self.settings.publish_timeout:g} s; nothing was published"
                )
            await asyncio.sleep(self.settings.poll_interval)

    async def _find_recent(self, caption: str) -> str | None:
        """The id of one of the account's 25 latest media whose caption is ``caption``."""
        return await self.graph.find_recent(f"{self.account}/media", "caption", caption)


# What its spec promises, held by mypy (tests/channels/test_specs.py checks it at run time).
_AS_CHANNEL: type[Channel] = InstagramChannel
