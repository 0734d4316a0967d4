"""The HTTP side of pledgebot: health and metrics now, the comms team's dashboard later.

``pledgebot web`` serves it alone; ``pledgebot run`` serves it beside the other roles, on
``[dashboard] host``/``port`` (default 127.0.0.1:8080; port 0 picks a free one and logs it).
Imported only by the processes that serve it, so one-shot commands start fast.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator

import uvicorn

from bot.app import App
from bot.web.health import build

log = logging.getLogger(__name__)


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the process's handlers stop every role."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def serve_web(app: App, stop: asyncio.Event) -> None:
    """Serve until ``stop`` is set. A port already taken is logged; the other roles go on."""
    settings = app.config.dashboard
    config = uvicorn.Config(
        build(app),
        host=settings.host,
        port=settings.port,
        log_level="warning",
        access_log=False,
        lifespan="off",
    )
    server = _Server(config)
    serving = asyncio.create_task(server.serve())
    while not server.started and not serving.done():  # noqa: ASYNC110 - uvicorn has no event
        await asyncio.sleep(0.05)
    if serving.done():
        log.error("web: cannot serve on %s:%s", settings.host, settings.port)
        return
    for listener in server.servers:
        for sock in listener.sockets:
            host, port = sock.getsockname()[:2]
            log.warning("web: health on http://%s:%s/healthz, metrics on /metrics", host, port)
    await stop.wait()
    server.should_exit = True
    await serving
