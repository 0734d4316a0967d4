"""``/posts/new``: the comms team writes a post, previews how each network will show it (split
into a thread where it is too long), and schedules it (``bot.service.composer``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bot.community import staff
from bot.service import composer
from bot.service.app import App
from bot.service.calendar import as_seen
from bot.web.pages import back, in_thread, new_token, page


def routes(app: App) -> list[Route]:
    return [
        Route("/posts/new", in_thread(app, compose), methods=["GET"]),
        Route("/posts/new", in_thread(app, submit), methods=["POST"]),
    ]


def compose(
    request: Request,
    app: App,
    form: FormData | None = None,
    *,
    values: dict[str, Any] | None = None,
    problems: list[str] | None = None,
    preview: dict[str, list[str]] | None = None,
    note: str = "",
    status: int = 200,
) -> Response:
    destinations = app.destinations()
    chosen = values or {
        "text": "",
        "channels": list(destinations),
        "when": "",
        "tz": app.config.timezone,
        "alt_text": "",
        "nonce": new_token(),
    }
    return page(
        request,
        app,
        "compose.html",
        status,
        title="New post",
        destinations=destinations,
        chosen=chosen,
        problems=problems or [],
        preview=preview,
        note=note,
    )


def _when(value: str, zone_name: str) -> datetime:
    try:
        zone = ZoneInfo(zone_name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {zone_name!r}") from None
    if not value.strip():
        return datetime.now(zone)
    return datetime.fromisoformat(value.strip()).replace(tzinfo=zone)


def submit(request: Request, app: App, form: FormData | None) -> Response:
    assert form is not None
    upload = form.get("image")
    image = None
    if isinstance(upload, UploadFile) and upload.filename:
        image = upload.file.read() or None
    text, when = str(form.get("text", "")), str(form.get("when", ""))
    tz = str(form.get("tz", "")) or app.config.timezone
    channels = [str(c) for c in form.getlist("channels")]
    alt_text = str(form.get("alt_text", ""))
    nonce = str(form.get("nonce", ""))[:64] or new_token()
    values = {
        "text": text,
        "channels": channels,
        "when": when,
        "tz": tz,
        "alt_text": alt_text,
        "nonce": nonce,
        "tz_given": True,
    }
    try:
        at = _when(when, tz)
    except ValueError as exc:
        return compose(request, app, values=values, problems=[f"The time: {exc}."], status=400)
    draft = composer.Draft(text, tuple(channels), at, image, alt_text)
    destinations = app.destinations()
    problems = composer.check(draft, destinations, app.config.media.max_bytes)
    if form.get("action") == "preview" or problems:
        shown = {
            channel: [as_seen(part.text, channel) for part in planned]
            for channel, planned in composer.parts(draft, destinations).items()
        }
        note = ""
        if image is not None and not problems:
            note = "Browsers do not keep a chosen file: choose the image again to schedule."
        return compose(
            request,
            app,
            values=values,
            problems=problems,
            preview=shown if text.strip() else None,
            note=note,
            status=400 if problems else 200,
        )
    with app.db.session() as session:
        ids = composer.schedule(session, draft, destinations, app.config.path("media"), nonce)
        if ids:
            staff.audit(
                session,
                request.scope["state"]["user"],
                "post.schedule",
                ",".join(map(str, ids)),
                f"{', '.join(draft.channels)} at {at.isoformat()}: {draft.text[:200]}",
            )
    if not ids:
        return back("/outbox?campaign=manual", "That post was already scheduled.")
    local = at.strftime("%Y-%m-%d %H:%M")
    return back(
        "/outbox?campaign=manual",
        f"Post scheduled on {', '.join(draft.channels)} for {local} ({values['tz']}).",
    )
