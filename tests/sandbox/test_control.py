"""The base every platform sandbox shares (``pledgebot_sandbox._control``): faults served the same
way whatever the platform, and the same ``/_sandbox/<action>`` control routes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from aiohttp import web

from pledgebot_sandbox._control import ControlAction, Fault, Refusal, SandboxServer, ready
from pledgebot_sandbox.bluesky import BlueskySandbox
from pledgebot_sandbox.facebook import GraphSandbox
from pledgebot_sandbox.linkedin import LinkedInSandbox
from pledgebot_sandbox.synapse_proxy import FaultyProxy
from pledgebot_sandbox.telegram import TelegramSandbox
from pledgebot_sandbox.webhook import WebhookReceiver
from pledgebot_sandbox.x import XSandbox


class Counter(SandboxServer):
    """The smallest platform: ``POST /count`` adds one and answers the total."""

    def __init__(self) -> None:
        super().__init__("127.0.0.1", 0)
        self.count = 0

    def _add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_post("/count", self._count)

    def _control_actions(self) -> dict[str, ControlAction]:
        return {
            "GET count": lambda _: {"count": self.count},
            "POST fault": lambda body: self._queue_fault(
                body.get("key"), Fault(ready(Refusal(int(body["status"]), {"no": True}))), 1
            ),
        }

    async def _count(self, request: web.Request) -> web.StreamResponse:
        return await self._answer_call("count", request, self._add_one)

    async def _add_one(self) -> web.Response:
        self.count += 1
        return web.json_response({"count": self.count})


@pytest.fixture
async def server() -> AsyncIterator[Counter]:
    made = Counter()
    await made.start()
    yield made
    await made.stop()


async def test_a_delivered_fault_is_carried_out_and_its_error_answered(server: Counter) -> None:
    server._queue_fault("count", Fault(ready(Refusal(429, {"slow": "down"})), deliver=True), 2)
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        answers = [await http.post("/count") for _ in range(3)]
    assert [a.status_code for a in answers] == [429, 429, 200]
    assert answers[2].json() == {"count": 3} and server.rate_limited == 2


async def test_a_hold_without_error_is_carried_out_for_a_client_that_waited(
    server: Counter,
) -> None:
    server._queue_fault("count", Fault(None, delay=0.2), 1)
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        answer = await http.post("/count")
        server._queue_fault("count", Fault(None, delay=0.3), 1)
        with pytest.raises(httpx.ReadTimeout):
            await http.post("/count", timeout=0.1)
    await asyncio.sleep(0.5)  # the hold is over: a client that gave up gets nothing done
    assert answer.json() == {"count": 1}
    assert server.count == 1


async def test_a_fault_for_any_call_comes_after_the_calls_own(server: Counter) -> None:
    server._queue_fault(None, Fault(ready(Refusal(503, {}))), 1)
    server._queue_fault("count", Fault(ready(Refusal(502, {}))), 1)
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        statuses = [(await http.post("/count")).status_code for _ in range(3)]
    assert statuses == [502, 503, 200]


async def test_the_control_routes_answer_alike(server: Counter) -> None:
    async with httpx.AsyncClient(base_url=server.control_url) as http:
        assert (await http.post("/fault", json={"status": 500})).json() == {"ok": True}
        assert (await http.get("/count")).json() == {"count": 0}
        unknown = await http.get("/fault")  # the action exists, but as a POST
        assert (unknown.status_code, unknown.json()) == (404, {"error": "unknown control action"})
        assert (await http.post("/fault", json=[1])).status_code == 400
        missing = await http.post("/fault", json={})
        assert (missing.status_code, missing.json()) == (400, {"error": "KeyError: 'status'"})


@pytest.mark.parametrize(
    "sandbox",
    [
        lambda: XSandbox(),
        lambda: BlueskySandbox(),
        lambda: LinkedInSandbox(),
        lambda: GraphSandbox(),
        lambda: TelegramSandbox(),
        lambda: WebhookReceiver(),
        lambda: FaultyProxy("http://127.0.0.1:9"),
    ],
    ids=["x", "bluesky", "linkedin", "graph", "telegram", "webhook", "synapse_proxy"],
)
async def test_every_sandbox_has_the_same_control_routes(sandbox: Any) -> None:
    made: SandboxServer = sandbox()
    await made.start()
    try:
        async with httpx.AsyncClient(base_url=made.control_url) as http:
            answer = await http.post("/no-such-action")
        assert (answer.status_code, answer.json()) == (404, {"error": "unknown control action"})
    finally:
        await made.stop()
