"""A webhook receiver that checks pledgebot's signatures: for the demo and the tests.

``POST /hook`` with a valid ``X-Pledgebot-Signature`` is stored and answered ``{"id": …}``;
the same ``Idempotency-Key`` again gets the same id and is not stored twice. A bad or missing
signature gets 401. ``inject_fault(status, times=1, retry_after=None)`` makes the next answers
fail (429 with ``Retry-After``, 5xx, …).
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from bot.channels.webhook.adapter import verify
from pledgebot_sandbox._server import serve


class WebhookReceiver:
    def __init__(self, secret: str = "sandbox-webhook-secret", host: str = "127.0.0.1") -> None:
        self.secret, self.host = secret, host
        self.received: list[dict[str, Any]] = []  # the documents, in order
        self.refused = 0  # requests whose signature did not verify
        self._ids: dict[str, str] = {}
        self._faults: list[tuple[int, float | None]] = []
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/hook"

    def inject_fault(
        self, status: int, *, times: int = 1, retry_after: float | None = None
    ) -> None:
        self._faults += [(status, retry_after)] * times

    async def start(self) -> None:
        app = web.Application(client_max_size=50 * 1024 * 1024)
        app.router.add_post("/hook", self._hook)
        self._runner, self.port = await serve(app, self.host, 0)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _hook(self, request: web.Request) -> web.Response:
        if self._faults:
            status, wait = self._faults.pop(0)
            headers = {"Retry-After": f"{wait:g}"} if wait is not None else {}
            return web.json_response({"error": "injected"}, status=status, headers=headers)
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
