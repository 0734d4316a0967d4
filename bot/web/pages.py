"""Server-rendered pages: Jinja2 with autoescaping, one helper that fills the layout.

Every page sees who is signed in, their CSRF token, the navigation, and the channels whose
sending is paused (shown at the top of every page until fixed).
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from bot import outbox, staff
from bot.app import App
from bot.models import CampaignControl

HERE = Path(__file__).parent
NAV = [
    ("/calendar", "Calendar"),
    ("/updates", "Updates"),
    ("/outbox", "Outbox"),
    ("/schedules", "Schedules"),
    ("/alerts", "Alerts"),
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
        "flash": request.query_params.get("done", ""),
        **context,
    }
    return HTMLResponse(env.get_template(template).render(values), status_code=status_code)


def back(path: str, done: str) -> RedirectResponse:
    """After a change, back to the page it was made on, saying what was done (POST-redirect-GET)."""
    from urllib.parse import urlencode

    joiner = "&" if "?" in path else "?"
    return RedirectResponse(f"{path}{joiner}{urlencode({'done': done})}", status_code=303)


def safe_next(target: str) -> str:
    """Only a path on this site: never an open redirect to another one."""
    if target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/"


def new_token() -> str:
    return secrets.token_urlsafe(24)


def not_found(request: Request, app: App, what: str) -> Response:
    return page(request, app, "error.html", 404, title="Not found", text=what)
