"""Running the sandboxes' servers on loopback (shared by every sandbox): an aiohttp application
on a local port, a free port for a server that binds its own, and stopping a child server."""

from __future__ import annotations

import socket
import subprocess

from aiohttp import web


async def serve(app: web.Application, host: str, port: int) -> tuple[web.AppRunner, int]:
    """Start ``app``; returns its runner and the port it got (``port=0`` picks a free one)."""
    # Sandboxes wake their waiters before cleanup, so a short shutdown timeout loses nothing.
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner, runner.addresses[0][1]


def free_port() -> int:
    """A loopback port nobody listens on now (for a server started as another process)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def end_process(process: subprocess.Popen[bytes]) -> None:
    """Stop a child server: asked to end, then killed if it is still there after 10 s."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
