"""The HTTP side of pledgebot: the comms team's dashboard, health and metrics.

``pledgebot web`` serves it alone; ``pledgebot run`` serves it beside the other roles, on
``[dashboard] host``/``port`` (default 127.0.0.1:8080; port 0 picks a free one and logs it).
Imported only by the processes that serve it, so one-shot commands start fast.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable, Iterator

import uvicorn

from bot.core.errors import UserInputError
from bot.service.app import App
from bot.web.app import build

log = logging.getLogger(__name__)


class QuietServer(uvicorn.Server):
    """uvicorn without its own signal handling: the process's handlers stop every role."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def serve_web(
    app: App, stop: asyncio.Event, ready: Callable[[str], None] | None = None
) -> None:
    """Serve until ``stop`` is set; a port that cannot be had stops the process with an error.
    ``ready`` is told the dashboard's URL once it answers (the port may have been 0: any)."""
    settings = app.config.dashboard
    config = uvicorn.Config(
        build(app),
        host=settings.host,
        port=settings.port,
        log_level="warning",
        access_log=False,
        lifespan="off",
    )
    try:  # bound here, not by uvicorn (which exits the process when it cannot bind)
        sock = socket.create_server((settings.host, settings.port))
    except OSError as exc:
        raise UserInputError(
            f"web: cannot serve on {settings.host}:{settings.port} ({exc.strerror}); "
            "see [dashboard] host and port in the config"
        ) from None
    server = QuietServer(config)
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started and not serving.done():  # noqa: ASYNC110 - uvicorn has no event
        await asyncio.sleep(0.05)
    host, port = sock.getsockname()[:2]
    log.warning("web: dashboard on http://%s:%s/ (health: /healthz)", host, port)
    if ready is not None and not serving.done():
        ready(f"http://{host}:{port}/")
    await stop.wait()
    server.should_exit = True
    await serving
