"""``FaultyProxy``: a reverse proxy on loopback in front of a homeserver (``synapse``), which
can spoil the next request whose path contains a marker: a status with a JSON body (or a load
balancer's HTML page), or an answer that comes too late — what a load balancer in front of
Synapse does on a bad day. Its faults are served as every sandbox's are (``_control``).
"""

from __future__ import annotations

from typing import Any

from aiohttp import ClientSession, ClientTimeout, web

from pledgebot_sandbox._control import ErrorAnswer, Fault, Refusal, SandboxServer, ready

# The headers of the homeserver's answer that a client reads through the proxy.
PASSED_HEADERS = ("content-type", "content-disposition", "retry-after")


class FaultyProxy(SandboxServer):
    """``FaultyProxy(homeserver_url)``; ``await start()``, then talk to ``base_url``."""

    client_max_size = 1 << 24

    def __init__(self, upstream: str) -> None:
        super().__init__("127.0.0.1", 0)
        self.upstream = upstream
        self._session: ClientSession | None = None

    def fail_next(
        self,
        marker: str,
        status: int = 502,
        body: dict[str, Any] | None = None,
        *,
        delay: float = 0.0,
    ) -> None:
        """The next request whose path contains ``marker`` gets ``status`` (with ``body`` as
        JSON, else an HTML page). With ``delay`` it is forwarded first and the answer comes
        that many seconds later: the homeserver did it, the client may never hear."""
        error = ready(Refusal(status, body or {}))
        self._queue_fault(marker, Fault(error, delay or None, deliver=bool(delay)), 1)

    async def _open(self) -> None:
        self._session = ClientSession(timeout=ClientTimeout(total=120))

    async def _close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_route("*", "/{tail:.*}", self._forward)

    def _next_fault(self, key: str) -> Fault | None:
        """The oldest fault of the first marker found in the path (``key``)."""
        for marker, faults in self._faults.items():
            if faults and marker is not None and marker in key:
                return faults.popleft()
        return None

    def _error(self, error: ErrorAnswer) -> web.Response:
        if error.body:
            return super()._error(error)
        return web.Response(
            status=error.status, text="<html>Bad Gateway</html>", content_type="text/html"
        )

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        return await self._answer_call(request.path_qs, request, lambda: self._pass(request))

    async def _pass(self, request: web.Request) -> web.Response:
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() != "host"}
        async with self._session.request(
            request.method,
            self.upstream + request.path_qs,
            data=await request.read(),
            headers=headers,
        ) as answer:
            payload = await answer.read()
            kept = {k: v for k, v in answer.headers.items() if k.lower() in PASSED_HEADERS}
            return web.Response(status=answer.status, body=payload, headers=kept)
