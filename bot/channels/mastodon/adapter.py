"""Mastodon adapter, on Mastodon.py: public statuses on the account's own timeline.

A long post is a thread (each part replies to the one before, through ``reply_to``); images go
up first with their alt text as the media description; a content warning (``spoiler_text``) is
off unless configured. Mastodon.py blocks: every call runs in a worker thread. It is built with
``ratelimit_method="throw"`` so that it never sleeps on a 429 itself: the dispatcher decides.

Idempotency: unlike Telegram, Mastodon gives us a key. Every status is posted with the outbox
message's idempotency key as ``Idempotency-Key``; the instance answers a repeat with the status
it already made, so a message in flight at a crash is simply sent again (Mastodon remembers a
key for one hour: only a resend later than that could post twice).

Errors: 429 → ``RateLimited`` until ``X-RateLimit-Reset`` (ISO 8601 on Mastodon, Unix time on
some servers), and posting is held for every process meanwhile; 401/403 → ``ChannelUnauthorized``
(the dispatcher pauses the channel and alerts staff); 422 (too long, invalid) and other 4xx →
``Rejected``; 5xx, timeouts, connection errors → ``TransientError`` (a timeout after the request
went out: ``maybe_delivered``). A 404 when deleting means the status is already gone.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Mapping
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar
from urllib.parse import urlsplit

import requests
from mastodon import (
    Mastodon,
    MastodonAPIError,
    MastodonError,
    MastodonIllegalArgumentError,
    MastodonIOError,
    MastodonNetworkError,
    MastodonNotFoundError,
    MastodonRatelimitError,
    MastodonServerError,
    MastodonUnauthorizedError,
)
from pydantic import BaseModel, SecretStr

from bot.channels.base import Channel, Deletes, Media, OutboundMessage, Receipt
from bot.channels.holds import unless_held
from bot.channels.mastodon.settings import MastodonSettings
from bot.channels.mastodon.text import mastodon_length
from bot.channels.ratelimit import Limits
from bot.core.errors import ChannelUnauthorized, RateLimited, Rejected, TransientError

log = logging.getLogger(__name__)

MAX_IMAGES = 4
MAX_ALT_TEXT = 1500  # Mastodon's limit on a media description
DEFAULT_WAIT = 60.0  # a 429 that does not say until when

__all__ = ["MastodonChannel"]


class MastodonChannel:
    name: ClassVar[str] = "mastodon"
    Settings: ClassVar[type[BaseModel]] = MastodonSettings

    def __init__(
        self,
        settings: MastodonSettings,
        secrets: Mapping[str, SecretStr],
        *,
        limits: Limits | None = None,
    ) -> None:
        self.settings = settings
        self.limits = limits or Limits()
        self.client = Mastodon(
            access_token=secrets["access_token"].get_secret_value(),
            api_base_url=settings.api_base_url,
            ratelimit_method="throw",  # never sleep in a worker thread: raise, and let it wait
            request_timeout=settings.request_timeout,
            version_check_mode="none",
            user_agent="pledgebot",
        )
        self._responses = threading.local()  # each worker thread's last response (429 headers)
        self.client.session.hooks["response"].append(self._note_response)
        self._account_id: str | None = None

    async def start(self) -> None:
        """Check the token (a refused one pauses the channel at once) and learn the instance's
        version, which decides Mastodon.py's media endpoint."""
        account = await self._call(self.client.account_verify_credentials)
        self._account_id = str(account["id"])
        await self._call(self.client.retrieve_mastodon_version)
        log.info("mastodon: posting as @%s on %s", account.get("acct"), self.settings.api_base_url)

    async def aclose(self) -> None:
        self.client.session.close()

    async def account_id(self) -> str:
        if self._account_id is None:
            account = await self._call(self.client.account_verify_credentials)
            self._account_id = str(account["id"])
        return self._account_id

    async def _posting_key(self) -> str:
        host = urlsplit(self.settings.api_base_url).netloc
        return f"mastodon:{host}:{await self.account_id()}:post"

    async def send(self, message: OutboundMessage) -> Receipt:
        # A 429 holds posting for every process until the reset, instead of each one
        # spending a request to learn it.
        return await unless_held(
            self.limits,
            await self._posting_key(),
            lambda: self._post(message),
            refusal="Mastodon: rate limited; resets in {wait:.0f} s",
        )

    async def _post(self, message: OutboundMessage) -> Receipt:
        warning = self.settings.spoiler_text or None
        length = mastodon_length((warning or "") + message.text)  # a warning counts too
        if length > self.settings.max_characters:
            raise Rejected(
                f"Mastodon: too long ({length} > {self.settings.max_characters} characters)"
            )
        media_ids = [await self._upload(item) for item in message.media[:MAX_IMAGES]]
        status = await self._call(
            self.client.status_post,
            message.text,
            in_reply_to_id=message.reply_to,
            media_ids=media_ids or None,
            visibility=self.settings.visibility,
            spoiler_text=warning,
            idempotency_key=message.idempotency_key or None,
        )
        return Receipt(external_id=str(status["id"]))

    async def _upload(self, item: Media) -> str:
        """Upload one image with its alt text; returns the media id."""
        alt = item.alt_text[:MAX_ALT_TEXT] or None
        media = await self._call(self.client.media_post, item.path, description=alt)
        return str(media["id"])

    async def delete(self, message: OutboundMessage) -> None:
        """Take down the status whose id is the message's text (consent was withdrawn)."""

        def delete() -> None:
            try:
                self.client.status_delete(message.text)
            except MastodonNotFoundError:
                log.info("mastodon: status %s was already deleted", message.text)

        await self._call(delete)

    def _note_response(self, response: requests.Response, *_: Any, **__: Any) -> None:
        self._responses.last = response

    async def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        def call() -> Any:
            self._responses.last = None
            try:
                return fn(*args, **kwargs)
            except MastodonRatelimitError as exc:
                wait = _retry_after(self._responses.last)
                raise RateLimited(
                    wait, f"Mastodon: 429 rate limited; retry in {wait:.0f} s"
                ) from exc

        try:
            return await asyncio.to_thread(call)
        except MastodonError as exc:
            raise _delivery_error(exc) from exc


def _retry_after(response: requests.Response | None) -> float:
    """Seconds until ``X-RateLimit-Reset`` (counted on the server's clock when it says the
    time), else ``Retry-After``, else a minute."""
    headers = response.headers if response is not None else {}
    reset = headers.get("X-RateLimit-Reset")
    if reset:
        try:
            until = float(reset)  # Unix time (GoToSocial and others)
        except ValueError:
            try:  # Mastodon: "2026-04-20T06:00:00.000000Z"
                until = datetime.fromisoformat(reset.replace("Z", "+00:00")).timestamp()
            except ValueError:
                until = None
        if until is not None:
            try:
                now = parsedate_to_datetime(headers["Date"]).timestamp()
            except (KeyError, TypeError, ValueError):
                now = time.time()
            return max(1.0, until - now)
    try:
        return max(1.0, float(headers.get("Retry-After", "")))
    except ValueError:
        return DEFAULT_WAIT


def _delivery_error(exc: MastodonError) -> Exception:
    text = f"Mastodon: {_describe(exc)}"
    if isinstance(exc, MastodonUnauthorizedError):
        return ChannelUnauthorized(f"{text} (token expired or revoked?)")
    if isinstance(exc, MastodonServerError):
        return TransientError(text)
    if isinstance(exc, MastodonNetworkError):
        cause = exc.__cause__ or exc.__context__  # Mastodon.py keeps requests' error here
        sent = isinstance(cause, requests.Timeout) and not isinstance(
            cause, requests.ConnectTimeout
        )
        return TransientError(text, maybe_delivered=sent)
    if isinstance(exc, MastodonIOError | MastodonIllegalArgumentError):
        return Rejected(f"{text} (the media file is missing or not an image)")
    if isinstance(exc, MastodonAPIError):
        status = exc.args[1] if len(exc.args) > 1 and isinstance(exc.args[1], int) else None
        if status is None:  # a 2xx whose body did not parse: the status may well exist
            return TransientError(text, maybe_delivered=True)
        if status == 403:
            return ChannelUnauthorized(f"{text} (the account or token lacks permission?)")
        if status == 408:
            return TransientError(text)
        return Rejected(text)
    return TransientError(text)


def _describe(exc: MastodonError) -> str:
    """Mastodon.py's error args read ("Mastodon API returned error", 422, "Unprocessable
    Entity", "Validation failed: …"): keep the status and the instance's own words."""
    args = exc.args
    if len(args) >= 4 and isinstance(args[1], int):
        return f"{args[1]} {args[2]}: {args[3]}" if args[3] else f"{args[1]} {args[2]}"
    return str(exc)


# What its spec promises, held by mypy (tests/channels/test_specs.py checks it at run time).
_AS_CHANNEL: type[Channel] = MastodonChannel
_AS_DELETES: type[Deletes] = MastodonChannel
