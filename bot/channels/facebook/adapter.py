"""Facebook Page adapter, on the Graph API over httpx: public posts on the campaign's Page
(outbound only). The Graph API client and its error mapping, which the Instagram adapter
shares, are ``bot.channels.facebook.graph`` (why httpx and not a Graph library: there).

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

Errors: ``bot.channels.facebook.graph.graph_error`` (a refused token pauses the channel and
raises the staff alert ``unauthorized:facebook`` until it is renewed and ``pledgebot resume
--channel facebook`` is run).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any, ClassVar

import httpx
from pydantic import BaseModel, SecretStr

from bot.channels.base import Channel, Deletes, OutboundMessage, Receipt
from bot.channels.facebook.graph import GraphClient, GraphRefusal
from bot.channels.facebook.settings import FacebookSettings
from bot.channels.images import LocalImage, read_images
from bot.channels.ratelimit import Limits
from bot.core.errors import Rejected

log = logging.getLogger(__name__)

MAX_MESSAGE = 63_206
MAX_IMAGES = 10
DUPLICATE = 506
MISSING_OBJECT = 33  # subcode of code 100: no such object (already deleted)

__all__ = ["FacebookChannel"]


class FacebookChannel:
    name: ClassVar[str] = "facebook"
    Settings: ClassVar[type[BaseModel]] = FacebookSettings

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
        self.graph = GraphClient("Facebook", settings, secrets["page_token"], transport=transport)

    @property
    def page(self) -> str:
        return self.settings.page_id

    @property
    def _posting_key(self) -> str:
        return f"facebook:{self.page}:post"

    async def start(self) -> None:
        """Check the token against the Page (a refused one pauses the channel at once)."""
        page = await self.graph.call("GET", self.page, params={"fields": "id,name"})
        log.info("facebook: posting on the Page %r (%s)", page.get("name"), self.page)

    async def aclose(self) -> None:
        await self.graph.aclose()

    async def send(self, message: OutboundMessage) -> Receipt:
        return await self.graph.guarded(self.limits, self._posting_key, lambda: self._post(message))

    async def _post(self, message: OutboundMessage) -> Receipt:
        text = message.text
        if message.reply_to:
            raise Rejected("Facebook: a Page post is never split into a thread (reply_to)")
        if len(text) > MAX_MESSAGE:
            raise Rejected(f"Facebook: too long ({len(text):,} > {MAX_MESSAGE:,} characters)")
        images = read_images(
            "Facebook",
            message.id,
            message.media,
            limit=MAX_IMAGES,
            require_alt=self.settings.require_alt_text,
            max_bytes=self.settings.max_image_bytes,
        )
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
        return await self.graph.find_recent(f"{self.page}/feed", "message", text)

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

        await self.graph.guarded(self.limits, self._posting_key, delete)


# What its spec promises, held by mypy (tests/channels/test_specs.py checks it at run time).
_AS_CHANNEL: type[Channel] = FacebookChannel
_AS_DELETES: type[Deletes] = FacebookChannel
