"""A webhook receiver that checks pledgebot's signatures: for the demo and the tests.

``POST /hook`` with a valid ``X-Pledgebot-Signature`` is stored and answered ``{"id": …}``;
the same ``Idempotency-Key`` again gets the same id and is not stored twice. A bad or missing
signature gets 401. ``inject_fault(status, times=1, retry_after=None)`` makes the next answers
fail (429 with ``Retry-After``, 5xx, …), before the signature is even read. Control actions:
``GET received``, ``POST fault`` (``{"status", "times"?, "retry_after"?}``).
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from bot.channels.webhook.adapter import verify
from pledgebot_sandbox._control import (
    ControlAction,
    Fault,
    Refusal,
    SandboxServer,
    check_error_status,
    ready,
)

HOOK = "hook"


class WebhookReceiver(SandboxServer):
    client_max_size = 50 * 1024 * 1024

    def __init__(self, secret: str = "sandbox-webhook-secret", host: str = "127.0.0.1") -> None:
        super().__init__(host, 0)
        self.secret = secret
        self.received: list[dict[str, Any]] = []  # the documents, in order
        self.refused = 0  # requests whose signature did not verify
        self._ids: dict[str, str] = {}

    @property
    def url(self) -> str:
        return f"{self.base_url}/{HOOK}"

    def inject_fault(
        self, status: int, *, times: int = 1, retry_after: float | None = None
    ) -> None:
        check_error_status(status)
        headers = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else {}
        error = Refusal(status, {"error": "injected"}, headers)
        self._queue_fault(HOOK, Fault(ready(error)), times)

    def _add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_post(f"/{HOOK}", self._hook)

    def _control_actions(self) -> dict[str, ControlAction]:
        return {
            "GET received": lambda _: self.received,
            "POST fault": lambda body: self.inject_fault(body.pop("status"), **body),
        }

    async def _hook(self, request: web.Request) -> web.StreamResponse:
        self.method_calls[HOOK] += 1
        return await self._answer_call(HOOK, request, lambda: self._receive(request))

    async def _receive(self, request: web.Request) -> web.Response:
        body = await request.read()
        if not verify(self.secret, request.headers, body):
            self.refused += 1
            return web.json_response({"error": "bad signature"}, status=401)
        key = request.headers.get("Idempotency-Key", "")
        if key and key in self._ids:
            return web.json_response({"id": self._ids[key], "duplicate": True})
        document = json.loads(body)
        self.received.append(document)
        given = f"wh-{len(self.received)}"
        if key:
            self._ids[key] = given
        return web.json_response({"id": given}, status=201)
