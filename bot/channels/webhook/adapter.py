"""Webhook adapter: each post is a signed JSON document POSTed to a URL the comms team chose,
so that a tool of theirs (Zapier, Make, n8n, their own) can publish it to LinkedIn, Facebook
or a website.

The document is the rendered template itself — ``templates/<template>/webhook.<lang>.j2``
renders JSON (text per network, the update's and pledgemaker's ids, pillar, credit) — wrapped
with the message's identity and its media (inline, base64, with alt text)::

    {"event": "post", "id": 42, "idempotency_key": "amplify:journeys:…:webhook:1",
     "reply_to": null, "document": {…the template's JSON…},
     "media": [{"filename": "…", "content_type": "image/jpeg", "alt_text": "…",
                "data_base64": "…"}]}

A withdrawal sends ``{"event": "delete", "post_id": "<the id the receiver gave>"}``.

Every request carries ``X-Pledgebot-Timestamp`` (Unix seconds) and ``X-Pledgebot-Signature:
sha256=<hex>``, the HMAC-SHA256 of ``"<timestamp>.<body>"`` with the shared secret (from the
environment), and ``Idempotency-Key``: a resend after a crash carries the same key, so the
receiver can drop it. ``verify()`` is the receiver's side, for anyone writing one in Python.

Answers: 2xx → sent (the post's id is the JSON answer's ``id`` if any, else the idempotency
key); 429 → ``RateLimited`` (``Retry-After``); 401/403/404/410 → ``ChannelUnauthorized`` (the
URL or the secret is wrong: the channel is paused and staff told); other 4xx → ``Rejected``;
5xx, timeouts and connection errors → ``TransientError``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import mimetypes
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import httpx
from pydantic import BaseModel, SecretStr

from bot.channels.base import Channel, Deletes, Media, OutboundMessage, Receipt
from bot.channels.ratelimit import Limits
from bot.channels.webhook.settings import WebhookSettings
from bot.core.errors import ChannelUnauthorized, RateLimited, Rejected, TransientError

SIGNATURE = "X-Pledgebot-Signature"
TIMESTAMP = "X-Pledgebot-Timestamp"
MAX_DOCUMENT = 1_000_000  # characters: a document is never split into a thread
DEFAULT_WAIT = 60.0  # a 429 without Retry-After


def sign(secret: str, timestamp: str, body: bytes) -> str:
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + digest.hexdigest()


def verify(secret: str, headers: Mapping[str, str], body: bytes, *, tolerance: float = 300) -> bool:
    """The receiver's check: a valid signature, made within ``tolerance`` seconds."""
    timestamp = headers.get(TIMESTAMP, "")
    if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > tolerance:
        return False
    return hmac.compare_digest(headers.get(SIGNATURE, ""), sign(secret, timestamp, body))


class WebhookChannel:
    name: ClassVar[str] = "webhook"
    Settings: ClassVar[type[BaseModel]] = WebhookSettings

    def __init__(
        self,
        settings: WebhookSettings,
        secrets: Mapping[str, SecretStr],
        *,
        limits: Limits | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.settings = settings
        self._secret = secrets["secret"].get_secret_value()
        self.client = httpx.AsyncClient(timeout=settings.request_timeout, transport=transport)

    async def start(self) -> None:
        """Nothing to check ahead: a webhook is only known to work when it answers a post."""

    async def aclose(self) -> None:
        await self.client.aclose()

    async def send(self, message: OutboundMessage) -> Receipt:
        try:
            document = json.loads(message.text)
        except ValueError:  # a template that renders plain text: sent as the text
            document = {"text": message.text}
        body = {
            "event": "post",
            "id": message.id,
            "idempotency_key": message.idempotency_key,
            "reply_to": message.reply_to,
            "document": document,
            "media": [self._media(item) for item in message.media],
        }
        answer = await self._post(body, message.idempotency_key)
        try:
            given = answer.json().get("id") if answer.content else None
        except (ValueError, AttributeError):
            given = None
        return Receipt(external_id=str(given or message.idempotency_key))

    async def delete(self, message: OutboundMessage) -> None:
        body = {"event": "delete", "post_id": message.text}
        await self._post(body, message.idempotency_key or f"delete:{message.text}")

    def _media(self, item: Media) -> dict[str, Any]:
        path = Path(item.path)
        entry: dict[str, Any] = {
            "filename": path.name,
            "content_type": mimetypes.guess_type(path.name)[0] or "application/octet-stream",
            "alt_text": item.alt_text,
        }
        if self.settings.inline_media:
            try:
                entry["data_base64"] = base64.b64encode(path.read_bytes()).decode()
            except OSError as exc:
                raise Rejected(f"webhook: cannot read the image {path.name}: {exc}") from exc
        return entry

    async def _post(self, body: dict[str, Any], key: str) -> httpx.Response:
        data = json.dumps(body, ensure_ascii=False).encode()
        stamp = str(int(time.time()))
        headers = {
            "content-type": "application/json",
            "idempotency-key": key,
            TIMESTAMP: stamp,
            SIGNATURE: sign(self._secret, stamp, data),
        }
        try:
            answer = await self.client.post(self.settings.url, content=data, headers=headers)
        except httpx.TimeoutException as exc:
            raise TransientError(f"webhook: timed out ({exc})", maybe_delivered=True) from exc
        except httpx.HTTPError as exc:
            raise TransientError(f"webhook: {exc.__class__.__name__}: {exc}") from exc
        _raise_for(answer)
        return answer


def _raise_for(answer: httpx.Response) -> None:
    status = answer.status_code
    if status < 300:
        return
    said = answer.text[:200].strip() or answer.reason_phrase
    if status == 429:
        wait = answer.headers.get("retry-after", "")
        raise RateLimited(float(wait) if wait.isdigit() else DEFAULT_WAIT, f"webhook: {said}")
    if status in (401, 403, 404, 410):
        raise ChannelUnauthorized(f"webhook: HTTP {status} from the receiver: {said}")
    if status >= 500:
        raise TransientError(f"webhook: HTTP {status}: {said}")
    raise Rejected(f"webhook: HTTP {status}: {said}")


# What its spec promises, held by mypy (tests/channels/test_specs.py checks it at run time).
_AS_CHANNEL: type[Channel] = WebhookChannel
_AS_DELETES: type[Deletes] = WebhookChannel
