"""The web app: dashboard pages, health and metrics, static files — all behind ``StaffAuth``,
itself behind ``BodyLimit`` (no request body is read past its limit, before any routing)."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from bot.service.app import App
from bot.web import (
    calendar_page,
    composer_page,
    feed,
    health,
    inbox,
    matches_page,
    media,
    moderation,
    pledgemakers,
    public,
    reports_page,
    routes,
    schedule_editor,
    users,
)
from bot.web.auth import StaffAuth
from bot.web.limits import BodyLimit
from bot.web.pages import HERE


def build(app: App) -> BodyLimit:
    web = Starlette(
        routes=[
            *health.routes(app),
            *public.routes(app),
            *feed.routes(app),
            *media.routes(app),
            *routes.routes(app),
            *moderation.routes(app),
            *calendar_page.routes(app),
            *schedule_editor.routes(app),
            *users.routes(app),
            *pledgemakers.routes(app),
            *inbox.routes(app),
            *matches_page.routes(app),
            *composer_page.routes(app),
            *reports_page.routes(app),
            Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
        ]
    )
    return BodyLimit(StaffAuth(web, app))
