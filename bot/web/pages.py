"""Server-rendered pages: Jinja2 with autoescaping, one helper that fills the layout.

Every page sees who is signed in, their CSRF token, the navigation, and the channels whose
sending is paused (shown at the top of every page until fixed).
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

from anyio import to_thread
from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy import select
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from bot.community import staff
from bot.core.models import CampaignControl
from bot.delivery import outbox
from bot.service.app import App

HERE = Path(__file__).parent
FLASH = "pledgebot_done"
NAV = [
    ("/calendar", "Calendar"),
    ("/inbox", "Inbox"),
    ("/updates", "Updates"),
    ("/pledgemakers", "Pledgemakers"),
    ("/matches", "Matches"),
    ("/posts/new", "New post"),
    ("/outbox", "Outbox"),
    ("/schedules", "Schedules"),
    ("/alerts", "Alerts"),
    ("/reports", "Reports"),
]
ADMIN_NAV = [("/users", "Users")]

env = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)


def paused_channels(app: App) -> list[str]:
    with app.db.session() as session:
        ids = session.scalars(
            select(CampaignControl.campaign_id).where(
                CampaignControl.paused.is_(True),
                CampaignControl.campaign_id.startswith(outbox.CHANNEL_PAUSE),
            )
        )
        return sorted(i.removeprefix(outbox.CHANNEL_PAUSE) for i in ids)


def page(
    request: Request, app: App, template: str, status_code: int = 200, **context: Any
) -> HTMLResponse:
    state = request.scope.get("state", {})
    role = state.get("role", "")
    nav = NAV + (ADMIN_NAV if role == "admin" else [])
    values = {
        "user": state.get("user"),
        "role": role,
        "csrf": state.get("csrf", ""),
        "nav": nav,
        "active": "/" + request.url.path.strip("/").split("/")[0],
        "can_edit": bool(role) and staff.role_at_least(role, "editor"),
        "paused_channels": paused_channels(app) if state.get("user") else [],
        "flash": unquote(request.cookies.get(FLASH, "")),
        **context,
    }
    response = HTMLResponse(env.get_template(template).render(values), status_code=status_code)
    if FLASH in request.cookies:  # said once
        response.delete_cookie(FLASH)
    return response


Handler = Callable[[Request, App, FormData | None], Response]


def in_thread(app: App, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """A Starlette endpoint for ``handler(request, app, form)``: the form (of a POST) is read
    on the event loop, the handler and its database work run in a worker thread."""

    async def endpoint(request: Request) -> Response:
        form = await request.form() if request.method == "POST" else None
        return await to_thread.run_sync(lambda: handler(request, app, form))

    endpoint.__name__ = handler.__name__
    return endpoint


def back(path: str, done: str) -> RedirectResponse:
    """After a change, back to the page it was made on (POST-redirect-GET), which says what was
    done. The words travel in a short-lived cookie, not the URL: a link cannot put words of
    its own on our page, and nothing said (a feed URL) lands in the browser's history."""
    response = RedirectResponse(path, status_code=303)
    response.set_cookie(FLASH, quote(done[:500]), max_age=60, httponly=True, samesite="strict")
    return response


def safe_next(target: str) -> str:
    """Only a path on this site: never an open redirect to another one."""
    if target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/"


def new_token() -> str:
    return secrets.token_urlsafe(24)


def not_found(request: Request, app: App, what: str) -> Response:
    return page(request, app, "error.html", 404, title="Not found", text=what)
