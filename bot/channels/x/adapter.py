"""X adapter, on tweepy's ``Client`` (OAuth 1.0a user context; X API v2).

tweepy hard-codes ``https://api.twitter.com``; ``[channels.x] api_base_url`` points us elsewhere
(the sandbox) through a ``requests`` adapter that rewrites the host *after* signing, so the
OAuth 1.0a signature stays computed for the real URL. tweepy blocks: every call runs in a
worker thread. tweepy 4.17 has no v2 media upload, so ``POST /2/media/upload`` and
``POST /2/media/metadata`` (alt text) are called directly on tweepy's signed session.

Errors: 429 → ``RateLimited`` until ``x-rate-limit-reset``; 401 → ``ChannelUnauthorized`` (the
dispatcher pauses the channel and alerts staff); X's duplicate-content 403 for a message that was
in flight at a crash → the post already exists: its id is found among the account's recent posts.
X does not return a post's text as sent: every link is wrapped in t.co (``entities.urls`` give
the URL as sent), a post with media ends with a t.co link to it, and ``&``, ``<``, ``>`` come
back as HTML entities, so a post is recognised by its text with the media link dropped, the
links set aside and whitespace collapsed, its links expanded, and — for a thread part — the
post it replies to. What X documents, and what the sandbox does:
``docs/platforms/x.md``.
"""

from __future__ import annotations

import asyncio
import html
import re
import time
import unicodedata
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar, TypeVar
from urllib.parse import urlsplit

import requests
import tweepy
from pydantic import BaseModel, SecretStr
from requests.adapters import HTTPAdapter
from twitter_text import extract_urls_with_indices

from bot.channels.base import Channel, Deletes, Media, OutboundMessage, Receipt
from bot.channels.holds import unless_held
from bot.channels.ratelimit import Limits
from bot.channels.x.settings import X_API, XSettings
from bot.core.errors import ChannelUnauthorized, RateLimited, Rejected, TransientError

DUPLICATE = "duplicate content"
MAX_IMAGES = 4
RECENT_POSTS = 100  # how far back a post in flight at a crash is looked for
_LINK = "\x00link\x00"  # stands for a URL in a post's text while it is compared
_TCO = re.compile(r"https?://t\.co/", re.IGNORECASE)
_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)
# expanded_url of the link X appends to a post's media: .../status/<the post's id>/photo/1
_MEDIA_PAGE = re.compile(r"/status/(\d+)/(?:photo|video)/\d+/?$")
T = TypeVar("T")  # what a tweepy call returns

__all__ = ["XChannel"]


class _ToBaseUrl(HTTPAdapter):
    """Sends requests meant for X_API to another base URL (signature already computed)."""

    def __init__(self, base_url: str, timeout: float) -> None:
        super().__init__()
        self.base_url, self.timeout = base_url.rstrip("/"), timeout

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: float | tuple[float | None, float | None] | None = None,
        verify: bool | str = True,
        cert: str | tuple[str, str] | None = None,
        proxies: dict[str, str] | None = None,
    ) -> requests.Response:
        if request.url and request.url.startswith(X_API):
            request.url = self.base_url + request.url[len(X_API) :]
        timeout = timeout or self.timeout  # tweepy sets none
        return super().send(request, stream, timeout, verify, cert, proxies)


class XChannel:
    name: ClassVar[str] = "x"
    Settings: ClassVar[type[BaseModel]] = XSettings

    def __init__(
        self,
        settings: XSettings,
        secrets: Mapping[str, SecretStr],
        *,
        limits: Limits | None = None,
    ) -> None:
        self.settings = settings
        self.limits = limits or Limits()
        self._post_window: tuple[int, float] | None = None  # remaining, reset (Unix time)
        keys = {
            name: secrets[name].get_secret_value()
            for name in ("consumer_key", "consumer_secret", "access_token", "access_token_secret")
        }
        self.client = tweepy.Client(**keys, wait_on_rate_limit=False)
        self._auth = tweepy.OAuth1UserHandler(*keys.values()).apply_auth()
        self.client.session.mount(
            X_API, _ToBaseUrl(settings.api_base_url, settings.request_timeout)
        )
        self.client.session.hooks["response"].append(self._note_window)
        self._user_id: str | None = None

    async def start(self) -> None:
        await self.user_id()

    async def aclose(self) -> None:
        self.client.session.close()

    async def user_id(self) -> str:
        if self._user_id is None:
            me = await self._call(self.client.get_me, user_auth=True)
            self._user_id = str(me.data.id)
        return self._user_id

    def _note_window(self, response: requests.Response, *_: Any, **__: Any) -> None:
        """Remember X's posting window from a create-post response's ``x-rate-limit-*``."""
        request = response.request
        remaining = response.headers.get("x-rate-limit-remaining")
        reset = response.headers.get("x-rate-limit-reset")
        posting = request.method == "POST" and str(request.path_url).endswith("/2/tweets")
        if posting and remaining is not None and reset is not None:
            self._post_window = (int(remaining), float(reset))

    async def _posting_key(self) -> str:
        return f"x:{await self.user_id()}:post"

    async def send(self, message: OutboundMessage) -> Receipt:
        # The per-user 15-minute window is shared: once any process has used it up, every
        # process waits for its reset instead of spending a request on a 429.
        return await unless_held(
            self.limits,
            await self._posting_key(),
            lambda: self._post(message),
            refusal="X: posting window used up; resets in {wait:.0f} s",
            spent_until=self._window_spent_until,
        )

    def _window_spent_until(self) -> float | None:
        """The reset of the posting window the last answer reported, if it is used up."""
        window, self._post_window = self._post_window, None
        return window[1] if window is not None and window[0] <= 0 else None

    async def _post(self, message: OutboundMessage) -> Receipt:
        media_ids = [await self._upload(item) for item in message.media[:MAX_IMAGES]]
        try:
            created = await self._call(
                self.client.create_tweet,
                text=message.text,
                in_reply_to_tweet_id=message.reply_to,
                media_ids=media_ids or None,
                user_auth=True,
            )
        except Rejected as exc:
            if DUPLICATE in str(exc).lower() and message.maybe_sent:
                found = await self._find_recent(message)
                if found is not None:  # accepted before the crash: the post is already out
                    return Receipt(external_id=found)
                raise Rejected(f"{exc}; no recent post of ours matches it") from exc
            raise
        return Receipt(external_id=str(created.data["id"]))

    async def delete(self, message: OutboundMessage) -> None:
        """Take down the post whose id is the message's text (consent was withdrawn). A post
        already gone (X answers 404: deleted by staff on X, or by this delete before a crash)
        is what was wanted: done, not a failure."""
        try:
            await self._call(self.client.delete_tweet, message.text, user_auth=True)
        except Rejected as exc:
            if not isinstance(exc.__cause__, tweepy.errors.NotFound):
                raise

    async def _find_recent(self, message: OutboundMessage) -> str | None:
        """The id of our recent post that is ``message`` as X stored it, if there is one."""
        recent = await self._call(
            self.client.get_users_tweets,
            await self.user_id(),
            max_results=RECENT_POSTS,
            tweet_fields=["entities", "referenced_tweets"],
            exclude=["retweets"],
            user_auth=True,
        )
        for post in recent.data or []:
            if is_same_post(message.text, message.reply_to, post.data):
                return str(post.id)
        return None

    async def _upload(self, item: Media) -> str:
        """Upload one image and set its alt text; returns the media id."""
        path = Path(item.path)
        media_type = "image/png" if path.suffix.lower() == ".png" else "image/jpeg"

        def upload() -> str:
            with path.open("rb") as handle:
                response = self.client.session.post(
                    f"{X_API}/2/media/upload",
                    files={"media": (path.name, handle, media_type)},
                    data={"media_category": "tweet_image", "media_type": media_type},
                    auth=self._auth,
                )
            _raise_for(response)
            media_id = str(response.json()["data"]["id"])
            alt = item.alt_text
            if alt:
                response = self.client.session.post(
                    f"{X_API}/2/media/metadata",
                    json={"id": media_id, "metadata": {"alt_text": {"text": alt[:1000]}}},
                    auth=self._auth,
                )
                _raise_for(response)
            return media_id

        return await self._call(upload)

    async def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        try:
            return await asyncio.to_thread(fn, *args, **kwargs)
        except tweepy.errors.TweepyException as exc:
            raise _delivery_error(exc) from exc
        except requests.Timeout as exc:
            raise TransientError(f"X: timed out ({exc})", maybe_delivered=True) from exc
        except requests.RequestException as exc:
            raise TransientError(f"X: {exc}") from exc


def is_same_post(text: str, reply_to: str | None, post: Mapping[str, Any]) -> bool:
    """Whether ``post`` (X API v2 post data) is ``text`` as X stored it, replying to ``reply_to``.

    A thread part must reply to the same post (``referenced_tweets``); the text must be the
    same once the link X appends to the post's media is dropped, each link is set aside and
    whitespace collapsed (NFC), and each link, expanded through ``entities.urls``, the same URL
    (scheme and host case aside). A t.co link that ``entities`` do not expand matches any link.
    X's text is tried HTML-unescaped and as is.
    """
    if reply_to is not None and _replied_to(post) != str(reply_to):
        return False
    ours, our_links = _set_links_aside(text)
    urls = (post.get("entities") or {}).get("urls") or []
    expanded = {
        str(url.get("url")): str(url.get("expanded_url"))
        for url in urls
        if url.get("url") and url.get("expanded_url")
    }
    media = {str(url["url"]) for url in urls if url.get("url") and _is_media_link(url, post)}
    stored = _without_trailing(str(post.get("text") or ""), media)
    for variant in dict.fromkeys((html.unescape(stored), stored)):
        theirs, their_links = _set_links_aside(variant)
        if theirs == ours and len(their_links) == len(our_links):
            links = zip(our_links, their_links, strict=True)
            if all(_same_link(mine, expanded.get(link, link)) for mine, link in links):
                return True
    return False


def _is_media_link(url: Mapping[str, Any], post: Mapping[str, Any]) -> bool:
    """Whether an ``entities.urls`` entry is X's link to the post's own photo or video."""
    if url.get("media_key"):
        return True
    page = _MEDIA_PAGE.search(str(url.get("expanded_url") or ""))
    return page is not None and page.group(1) == str(post.get("id"))


def _without_trailing(text: str, links: set[str]) -> str:
    """``text`` without the ``links`` it ends with (the media link X appends)."""
    text = text.rstrip()
    while ending := next((link for link in links if text.endswith(link)), None):
        text = text[: -len(ending)].rstrip()
    return text


def _replied_to(post: Mapping[str, Any]) -> str | None:
    for ref in post.get("referenced_tweets") or []:
        if ref.get("type") == "replied_to":
            return str(ref.get("id"))
    return None


def _set_links_aside(text: str) -> tuple[str, list[str]]:
    """``text`` (NFC, whitespace collapsed) with each URL twitter-text finds as a marker."""
    text = unicodedata.normalize("NFC", text)
    pieces: list[str] = []
    links: list[str] = []
    last = 0
    for found in extract_urls_with_indices(text):
        begin, end = found["indices"]
        pieces += [text[last:begin], _LINK]
        links.append(str(found["url"]))
        last = end
    pieces.append(text[last:])
    return " ".join("".join(pieces).split()), links


def _same_link(ours: str, theirs: str) -> bool:
    if _TCO.match(theirs) and not _TCO.match(ours):
        return True  # X did not say what it wraps: the rest of the post decides
    return _canonical_url(ours) == _canonical_url(theirs)


def _canonical_url(url: str) -> str:
    parts = urlsplit(url if _SCHEME.match(url) else "http://" + url)
    canonical = parts.netloc.lower() + parts.path.rstrip("/")
    if parts.query:
        canonical += "?" + parts.query
    if parts.fragment:
        canonical += "#" + parts.fragment
    return canonical


def _raise_for(response: requests.Response) -> None:
    """The same errors tweepy raises, for the calls we make on its session ourselves."""
    if response.status_code < 400:
        return
    kind = {
        400: tweepy.errors.BadRequest,
        401: tweepy.errors.Unauthorized,
        403: tweepy.errors.Forbidden,
        404: tweepy.errors.NotFound,
        429: tweepy.errors.TooManyRequests,
    }.get(response.status_code)
    if kind is None:
        kind = (
            tweepy.errors.TwitterServerError
            if response.status_code >= 500
            else tweepy.errors.HTTPException
        )
    raise kind(response)


def _delivery_error(exc: tweepy.errors.TweepyException) -> Exception:
    text = f"X: {exc}"
    if isinstance(exc, tweepy.errors.TooManyRequests):
        reset = exc.response.headers.get("x-rate-limit-reset")
        wait = max(1.0, int(reset) - time.time()) if reset else 60.0
        return RateLimited(wait, text)
    if isinstance(exc, tweepy.errors.Unauthorized):
        return ChannelUnauthorized(f"{text} (token expired or revoked?)")
    if isinstance(exc, tweepy.errors.BadRequest | tweepy.errors.Forbidden | tweepy.errors.NotFound):
        return Rejected(text)
    return TransientError(text)


# What its spec promises, held by mypy (tests/channels/test_specs.py checks it at run time).
_AS_CHANNEL: type[Channel] = XChannel
_AS_DELETES: type[Deletes] = XChannel
