"""``/media/<token>/<name>``: an approved, consented journey update's image, without signing in.

Instagram downloads the image of a post from a public URL (``bot.core.media_urls`` makes it). A
file is served only when all of these hold, and every other request gets the same 404:

- the token is the HMAC of a path stored in the ``media`` of a journey update that is
  approved *and* consented to now (a withdrawal or a rejection closes the URL at once);
- that path's file name is ``<name>``, it exists, and it lies under ``[media] dir`` (a stored
  path elsewhere, or one that escapes through ``..`` or a link, is never served);
- ``PLEDGEBOT_MEDIA_URL_KEY`` is set (read when the routes are built): unset, nothing is served.

Not served: knowledge facts' images and the composer's images (they belong to no journey
update). Answers say ``no-store``: a cache must not keep an image past a withdrawal.
"""

from __future__ import annotations

import json
import logging
import mimetypes
from pathlib import Path

from anyio import to_thread
from pydantic import SecretStr
from sqlalchemy import String, cast, select
from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, Response
from starlette.routing import Route

from bot.core import media_urls
from bot.core.models import JourneyUpdate
from bot.service.app import App

log = logging.getLogger(__name__)
HEADERS = {"cache-control": "no-store", "x-robots-tag": "noindex"}


def routes(app: App, *, key: SecretStr | None = None) -> list[Route]:
    """The route; ``key`` defaults to ``PLEDGEBOT_MEDIA_URL_KEY`` (tests pass their own)."""
    key = key if key is not None else media_urls.read_key()
    if key is None:
        log.info("public media: %s is not set, so no media is served", media_urls.KEY_ENV)

    async def serve(request: Request) -> Response:
        given, name = request.path_params["token"], request.path_params["name"]
        if key is None or len(given) != media_urls.TOKEN_LENGTH or not name or "/" in name:
            return _not_found()
        found = await to_thread.run_sync(approved_file, app, key, given, name)
        if found is None:
            return _not_found()
        kind = mimetypes.guess_type(found.name)[0] or "application/octet-stream"
        return FileResponse(found, media_type=kind, headers=HEADERS)

    serve.__name__ = "public_media"
    return [Route(media_urls.ROUTE, serve, methods=["GET", "HEAD"])]


def approved_file(app: App, key: SecretStr, given: str, name: str) -> Path | None:
    """The file ``given`` signs, if an approved, consented update holds it under the media
    folder; else None."""
    signer = media_urls.MediaUrls("", key)
    media_dir = app.config.path("media").resolve()
    # The name as the JSON column spells it: a cheap filter before the exact checks below.
    spelled = json.dumps(name)[1:-1]
    with app.db.session() as session:
        held = session.scalars(
            select(JourneyUpdate.media).where(
                JourneyUpdate.moderation == "approved",
                JourneyUpdate.consent_to_publish.is_(True),
                cast(JourneyUpdate.media, String).contains(spelled, autoescape=True),
            )
        ).all()
    for media in held:
        for item in media or []:
            stored = str(item.get("path") or "") if isinstance(item, dict) else ""
            if not stored or media_urls.file_name(stored) != name:
                continue
            if not signer.matches(given, stored):
                continue
            path = Path(stored)
            path = (path if path.is_absolute() else app.config.base_dir / path).resolve()
            if path.is_relative_to(media_dir) and path.is_file():
                return path
    return None


def _not_found() -> Response:
    return PlainTextResponse("Not found.", status_code=404, headers=HEADERS)
