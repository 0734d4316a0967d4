"""Bluesky adapter, on the ``atproto`` SDK's ``AsyncClient``: public posts on the campaign's
account (outbound only).

It signs in with ``com.atproto.server.createSession`` (the handle and an app password read from
the environment variable ``app_password_env`` names; the password is sent there and nowhere
else, never logged), then writes ``app.bsky.feed.post`` records with
``com.atproto.repo.createRecord``. The SDK refreshes the session before its access token
expires; a token the server still refuses (400 ``ExpiredToken``/``InvalidToken``) makes us sign
in again once, and a second refusal pauses the channel (``ChannelUnauthorized``).

- **Length**: 300 graphemes and 3,000 UTF-8 bytes, as ``bot.channels.bluesky.text`` counts.
- **Facets** (links, mentions, hashtags) come from the SDK's ``detect_facets``: UTF-8 byte
  offsets, mentions resolved to DIDs through ``com.atproto.identity.resolveHandle`` (a handle
  that does not resolve stays plain text).
- **Threads**: each part replies to the previous one, whose ``at://`` URI is ``reply_to``; the
  parent is read back (``com.atproto.repo.getRecord``) for its CID and its thread's root, so
  every part carries the ``root`` and ``parent`` strong refs.
- **Images**: up to 4, uploaded with ``com.atproto.repo.uploadBlob`` and embedded as
  ``app.bsky.embed.images`` with their alt text. An image over ``max_image_bytes`` (2,000,000
  bytes, the lexicon's limit since 2026; 1,000,000 before) or without alt text
  (``require_alt_text``) is refused with ``Rejected`` before anything is sent.
- **Delete** (a withdrawn update): ``com.atproto.repo.deleteRecord`` on the record key of the
  post's ``at://`` URI, which is the ``Receipt``'s ``external_id``; deleting twice is harmless.

Idempotency: Bluesky has no idempotency key. The record key is derived from the outbox
message's idempotency key instead (``record_key``: a TID, because the AppView shows posts only
under TID keys), so a resend after a crash names the same record. The reference PDS answers a
``createRecord`` on an existing key with 500 ``InternalServerError``
(bluesky-social/atproto#3718; others answer 409), so whenever creating fails — and before a
resend of a message that may have gone out (``maybe_sent``) — we look the key up with
``getRecord``: a post already there is the one we sent, and counts as sent.

Errors: 429 → ``RateLimited`` until ``ratelimit-reset`` (and posting held for every process
meanwhile; also held when a write's ``ratelimit-remaining`` cannot pay for another post);
5xx, timeouts, connection errors → ``TransientError`` (a timeout after the request went out:
``maybe_delivered``); 401/403, refused tokens, a refused app password → ``ChannelUnauthorized``;
400 ``InvalidRequest`` (too long, a bad record) and other 4xx → ``Rejected``.

The ``atproto`` SDK takes seconds to import: it is imported when an adapter is built, never
by a planner that only measures text (``bot.channels.bluesky.text``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar

import httpx
from pydantic import BaseModel, SecretStr

from bot.channels.base import Channel, Deletes, OutboundMessage, Receipt
from bot.channels.bluesky.settings import BlueskySettings
from bot.channels.bluesky.text import MAX_GRAPHEMES, MAX_TEXT_BYTES, bluesky_length, graphemes
from bot.channels.holds import unless_held
from bot.channels.images import LocalImage, image_size, read_images
from bot.channels.ratelimit import Limits
from bot.core.errors import (
    ChannelUnauthorized,
    DeliveryError,
    RateLimited,
    Rejected,
    TransientError,
)

log = logging.getLogger(__name__)

POST = "app.bsky.feed.post"
MAX_IMAGES = 4
CREATE_COST = 3  # points of the PDS's write budget a created record takes
DEFAULT_WAIT = 60.0  # a 429 that does not say until when
TOKEN_REFUSED = frozenset({"ExpiredToken", "InvalidToken"})
ACCOUNT_REFUSED = frozenset({"AccountTakedown", "AccountDeactivated", "AuthenticationRequired"})
S32 = "234567abcdefghijklmnopqrstuvwxyz"
TID_EPOCH = int(datetime(2023, 1, 1, tzinfo=UTC).timestamp() * 1_000_000)

__all__ = ["BlueskyChannel", "record_key"]


def record_key(idempotency_key: str) -> str:
    """The post's record key: a TID made from the message's idempotency key, always the same.

    A TID is 64 bits (0, 53 bits of microseconds, a 10-bit clock id) in sortable base32. Its
    time here is no posting time: 44 bits of a SHA-256 of the key, from 2023-01-01 on (never in
    the future), and 10 more bits as the clock id."""
    value = int.from_bytes(hashlib.sha256(idempotency_key.encode()).digest()[:8], "big")
    micros = TID_EPOCH + ((value >> 10) & ((1 << 44) - 1))
    tid = (micros << 10) | (value & 0x3FF)
    return "".join(S32[(tid >> shift) & 31] for shift in range(60, -5, -5))


class BlueskyChannel:
    name: ClassVar[str] = "bluesky"
    Settings: ClassVar[type[BaseModel]] = BlueskySettings

    def __init__(
        self,
        settings: BlueskySettings,
        secrets: Mapping[str, SecretStr],
        *,
        limits: Limits | None = None,
    ) -> None:
        from atproto_client import AsyncClient, models
        from atproto_client.request import AsyncRequest

        self.settings = settings
        self.limits = limits or Limits()
        self._models = models
        self._password = secrets["app_password"]  # revealed only in createSession's body
        hooks = {"response": [self._note_window]}
        request = AsyncRequest(timeout=settings.request_timeout, event_hooks=hooks)
        self.client = AsyncClient(settings.service_url, request=request)
        self.client.on_session_change(self._on_session)
        self._did: str | None = None
        self._login_lock = asyncio.Lock()
        self._write_window: tuple[int, float] | None = None  # remaining points, reset (Unix)

    async def start(self) -> None:
        """Sign in (refused credentials pause the channel at once)."""
        await self.did()
        log.info("bluesky: posting as @%s (%s)", self.settings.handle, self._did)

    async def aclose(self) -> None:
        await self.client.request.close()

    def _on_session(self, _event: Any, session: Any) -> None:
        self._did = session.did

    async def _login(self, *, again: bool = False) -> None:
        async with self._login_lock:
            if self._did is not None and not again:
                return  # another task signed in while this one waited
            await self._guarded(
                self.client.login,
                self.settings.handle,
                self._password.get_secret_value(),
                fetch_bsky_profile=False,
            )

    async def did(self) -> str:
        """The account's DID, signing in first if need be."""
        if self._did is None:
            await self._login()
        assert self._did is not None
        return self._did

    # --- sending ------------------------------------------------------------------------------
    async def send(self, message: OutboundMessage) -> Receipt:
        return await unless_held(
            self.limits,
            f"bluesky:{await self.did()}:post",
            lambda: self._post(message),
            refusal="Bluesky: rate limited; resets in {wait:.0f} s",
            spent_until=self._window_spent_until,
        )

    def _window_spent_until(self) -> float | None:
        """The reset of the write budget the last answer reported, if it cannot pay for a post."""
        window, self._write_window = self._write_window, None
        return window[1] if window is not None and window[0] < CREATE_COST else None

    async def _post(self, message: OutboundMessage) -> Receipt:
        models = self._models
        text = message.text
        if bluesky_length(text) > MAX_GRAPHEMES:
            clusters, size = graphemes(text), len(text.encode())
            raise Rejected(
                f"Bluesky: too long ({clusters} graphemes, {size} bytes; a post holds "
                f"{MAX_GRAPHEMES} graphemes and {MAX_TEXT_BYTES:,} bytes)"
            )
        images = read_images(
            "Bluesky",
            message.id,
            message.media,
            limit=MAX_IMAGES,
            require_alt=self.settings.require_alt_text,
            max_bytes=self.settings.max_image_bytes,
        )
        did = await self.did()
        rkey = record_key(message.idempotency_key) if message.idempotency_key else None
        if rkey and message.maybe_sent and (found := await self._existing(did, rkey)):
            log.info("bluesky: message %s was posted before the crash: %s", message.id, found)
            return Receipt(external_id=found)
        record = models.AppBskyFeedPost.Record(
            created_at=self.client.get_current_time_iso(),
            text=text,
            facets=await self._xrpc(self.client.detect_facets, text) or None,
            reply=await self._reply_ref(message.reply_to) if message.reply_to else None,
            embed=await self._embed(images) if images else None,
            langs=self.settings.langs or None,
        )
        try:
            created = await self._xrpc(self.client.app.bsky.feed.post.create, did, record, rkey)
        except (Rejected, TransientError):
            # The reference PDS answers an existing key with a 500: was it ours already?
            if rkey and (found := await self._existing(did, rkey, quiet=True)):
                log.info("bluesky: message %s was already posted: %s", message.id, found)
                return Receipt(external_id=found)
            raise
        return Receipt(external_id=str(created.uri))

    async def _existing(self, did: str, rkey: str, *, quiet: bool = False) -> str | None:
        """The URI of our post under ``rkey``, if there is one (``quiet``: None when unsure)."""
        try:
            found = await self._get_post(did, rkey)
        except DeliveryError:
            if quiet:
                return None
            raise
        return None if found is None else str(found.uri)

    async def _get_post(self, did: str, rkey: str) -> Any | None:
        try:
            return await self._xrpc(self.client.app.bsky.feed.post.get, did, rkey)
        except Rejected as exc:
            if _error_name(exc.__cause__) == "RecordNotFound":
                return None
            raise

    async def _reply_ref(self, parent_uri: str) -> Any:
        """Root and parent strong refs for a reply to the post at ``parent_uri``."""
        models = self._models
        did, collection, rkey = _split_uri(parent_uri)
        if collection != POST:
            raise Rejected(f"Bluesky: cannot reply to {parent_uri!r}: not a post")
        parent = await self._get_post(did, rkey)
        if parent is None:
            raise Rejected(f"Bluesky: the post this part replies to is gone: {parent_uri}")
        parent_ref = models.ComAtprotoRepoStrongRef.Main(uri=parent.uri, cid=parent.cid)
        reply = getattr(parent.value, "reply", None)
        root = reply.root if reply is not None else parent_ref
        return models.AppBskyFeedPost.ReplyRef(root=root, parent=parent_ref)

    async def _embed(self, images: list[LocalImage]) -> Any:
        models = self._models
        embedded = []
        for image in images:
            upload = await self._xrpc(
                self.client.com.atproto.repo.upload_blob,
                image.data,
                headers={"Content-Type": image.mime},
            )
            size = image_size(image.data)  # Bluesky recommends it; else the AppView works it out
            aspect = (
                models.AppBskyEmbedDefs.AspectRatio(width=size[0], height=size[1]) if size else None
            )
            embedded.append(
                models.AppBskyEmbedImages.Image(
                    alt=image.alt, image=upload.blob, aspect_ratio=aspect
                )
            )
        return models.AppBskyEmbedImages.Main(images=embedded)

    async def delete(self, message: OutboundMessage) -> None:
        """Take down the post whose ``at://`` URI is the message's text (consent withdrawn)."""
        did, collection, rkey = _split_uri(message.text)
        if collection != POST or did != await self.did():
            raise Rejected(f"Bluesky: {message.text!r} is not one of this account's posts")
        await self._xrpc(self.client.app.bsky.feed.post.delete, did, rkey)

    # --- calls and errors ---------------------------------------------------------------------
    async def _xrpc(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Call the SDK signed in; a refused session token → sign in again, once."""
        await self.did()
        try:
            return await self._guarded(fn, *args, **kwargs)
        except ChannelUnauthorized as exc:
            if _error_name(exc.__cause__) not in TOKEN_REFUSED:
                raise
            log.info("bluesky: the session was refused (%s); signing in again", exc)
        await self._login(again=True)
        return await self._guarded(fn, *args, **kwargs)

    async def _guarded(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        from atproto_core.exceptions import AtProtocolError

        try:
            return await fn(*args, **kwargs)
        except AtProtocolError as exc:
            raise _delivery_error(exc) from exc
        except httpx.HTTPError as exc:  # what the SDK lets through: a broken answer, say
            raise TransientError(f"Bluesky: {exc!r}", maybe_delivered=True) from exc

    async def _note_window(self, response: Any) -> None:
        """Remember the write budget a ``createRecord`` answer reports (``ratelimit-*``)."""
        remaining = response.headers.get("ratelimit-remaining")
        reset = response.headers.get("ratelimit-reset")
        if response.request.url.path.endswith("/com.atproto.repo.createRecord") and reset:
            with contextlib.suppress(ValueError):  # a header we cannot read: no hold
                self._write_window = (int(remaining or 0), float(reset))


def _split_uri(uri: str) -> tuple[str, str, str]:
    """``at://did/collection/rkey`` → its three parts (Rejected if it is no such URI)."""
    parts = uri.removeprefix("at://").split("/") if uri.startswith("at://") else []
    if len(parts) != 3 or not all(parts):
        raise Rejected(f"Bluesky: not a record's at:// URI: {uri!r}")
    return parts[0], parts[1], parts[2]


def _error_name(exc: BaseException | None) -> str | None:
    """The XRPC error name (``"ExpiredToken"``, ``"RecordNotFound"``) of an SDK error."""
    response = getattr(exc, "response", None)
    return getattr(getattr(response, "content", None), "error", None)


def _delivery_error(exc: Exception) -> DeliveryError:
    from atproto_client import exceptions as sdk

    response = getattr(exc, "response", None)
    if isinstance(exc, sdk.RateLimitExceededError):
        wait = _retry_after(exc)
        return RateLimited(wait, f"Bluesky: 429 rate limited; retry in {wait:.0f} s")
    if isinstance(exc, sdk.LoginRequiredError):
        return ChannelUnauthorized("Bluesky: not signed in")
    if response is None:  # no answer: a timeout or a connection that failed or broke
        cause = exc.__cause__
        unsent = isinstance(cause, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)
        detail = f"{type(exc).__name__} ({cause!r})" if cause else repr(exc)
        return TransientError(f"Bluesky: {detail}", maybe_delivered=not unsent)
    status, name = response.status_code, _error_name(exc)
    text = f"Bluesky: {exc}"
    if status in (401, 403) or name in TOKEN_REFUSED or name in ACCOUNT_REFUSED:
        return ChannelUnauthorized(f"{text} (app password revoked or account suspended?)")
    if status >= 500 or status == 408:
        return TransientError(text)
    if 400 <= status < 500:
        return Rejected(text)
    return TransientError(text, maybe_delivered=True)  # a 2xx whose body did not parse


def _retry_after(exc: Any) -> float:
    """Seconds until ``ratelimit-reset`` (Unix time), else ``retry-after``, else a minute."""
    reset: datetime | None = exc.reset_at
    if reset is not None:
        return max(1.0, reset.timestamp() - time.time())
    after = exc.retry_after
    return max(1.0, after) if after is not None else DEFAULT_WAIT


# What its spec promises, held by mypy (tests/channels/test_specs.py checks it at run time).
_AS_CHANNEL: type[Channel] = BlueskyChannel
_AS_DELETES: type[Deletes] = BlueskyChannel
