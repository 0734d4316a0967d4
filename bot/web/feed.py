"""``/feed.atom`` and ``/feed.json``: the public journey feed (``bot.service.feed``), without
signing in.

Built from the database on every request, so an update whose consent is withdrawn is gone
from the next response; caches may keep a copy for ``max-age`` (5 minutes). ``?limit=N``
(1–200, default 50; more is capped). The ETag is the body's hash: a reader sending it back
in ``If-None-Match`` gets 304 while nothing changed. ``If-Modified-Since`` is not honoured on
its own: a withdrawal removes an entry without making anything newer.
"""

from __future__ import annotations

import re
from email.utils import format_datetime

from anyio import to_thread
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from bot.service import feed
from bot.service.app import App

PATHS = tuple(feed.PATHS.values())
CACHE_CONTROL = "public, max-age=300"


def routes(app: App) -> list[Route]:
    def endpoint(fmt: str) -> Route:
        async def serve(request: Request) -> Response:
            return await _serve(request, app, fmt)

        serve.__name__ = f"feed_{fmt}"
        return Route(feed.PATHS[fmt], serve, methods=["GET", "HEAD"])

    return [endpoint("atom"), endpoint("json")]


async def _serve(request: Request, app: App, fmt: str) -> Response:
    limit = _limit(request.query_params.get("limit"))
    if limit is None:
        return PlainTextResponse(
            f"limit must be a whole number from 1 to {feed.MAX_LIMIT}", status_code=400
        )
    built = await to_thread.run_sync(feed.build, app, fmt, limit)
    # Public words, no credentials: a website's own script may read them from another origin.
    headers = {
        "etag": built.etag,
        "cache-control": CACHE_CONTROL,
        "access-control-allow-origin": "*",
    }
    if built.updated is not None:
        headers["last-modified"] = format_datetime(built.updated, usegmt=True)
    if _matches(request.headers.get("if-none-match", ""), built.etag):
        return Response(status_code=304, headers=headers)
    return Response(built.body, media_type=built.media_type, headers=headers)


def _limit(given: str | None) -> int | None:
    if given is None or given == "":
        return feed.DEFAULT_LIMIT
    if not re.fullmatch(r"[0-9]{1,9}", given) or int(given) < 1:
        return None
    return min(int(given), feed.MAX_LIMIT)


def _matches(if_none_match: str, etag: str) -> bool:
    """RFC 9110's weak comparison, as If-None-Match uses: ``*`` or any listed tag."""
    tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    return "*" in tags or etag in tags
