"""Starting a sandbox's aiohttp application on a local port (shared by every sandbox)."""

from __future__ import annotations

from aiohttp import web


async def serve(app: web.Application, host: str, port: int) -> tuple[web.AppRunner, int]:
    """Start ``app``; returns its runner and the port it got (``port=0`` picks a free one)."""
    # Sandboxes wake their waiters before cleanup, so a short shutdown timeout loses nothing.
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner, runner.addresses[0][1]
