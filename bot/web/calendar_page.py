"""``/calendar``: what will go out and what went out, by day, in the viewer's time zone; and each
user's secret iCalendar feed (``/calendar/<token>.ics``, public by its token, revocable)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from itertools import groupby
from urllib.parse import quote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bot.community import calendar_feeds, staff
from bot.service import calendar
from bot.service.app import App
from bot.web.pages import back, in_thread, page

FEED_PAST, FEED_AHEAD = timedelta(days=14), timedelta(days=60)


def routes(app: App) -> list[Route]:
    return [
        Route("/calendar", in_thread(app, calendar_page), methods=["GET"]),
        Route("/calendar/feed", in_thread(app, replace_feed), methods=["POST"]),
        Route("/calendar/feed/revoke", in_thread(app, revoke_feed), methods=["POST"]),
        Route("/calendar/{token}.ics", in_thread(app, feed), methods=["GET"]),
    ]


def _zone(name: str, default: str) -> ZoneInfo:
    try:
        return ZoneInfo(name or default)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo(default)


def calendar_page(request: Request, app: App, _form: FormData | None) -> Response:
    params = request.query_params
    zone = _zone(params.get("tz", ""), app.config.timezone)
    view = "month" if params.get("view") == "month" else "week"
    try:
        first = date.fromisoformat(params.get("start", ""))
    except ValueError:
        first = datetime.now(zone).date()
    if view == "week":
        first -= timedelta(days=first.weekday())
        days = 7
    else:
        first = first.replace(day=1)
        days = ((first + timedelta(days=32)).replace(day=1) - first).days
    start = datetime.combine(first, datetime.min.time(), zone).astimezone(UTC)
    found = calendar.entries(app, start, start + timedelta(days=days))
    chosen = {k: params.get(k, "") for k in ("channel", "campaign")}
    channels = sorted({e.channel for e in found})
    campaigns = sorted({e.campaign for e in found})
    found = [
        e
        for e in found
        if chosen["channel"] in ("", e.channel) and chosen["campaign"] in ("", e.campaign)
    ]
    by_day = [
        (day, list(items))
        for day, items in groupby(found, key=lambda e: e.start.astimezone(zone).date())
    ]
    with app.db.session() as session:
        feed_on = calendar_feeds.has_feed(session, staff.find_user(session, _me(request)))
    step = timedelta(days=7) if view == "week" else timedelta(days=days)
    return page(
        request,
        app,
        "calendar.html",
        title="Calendar",
        view=view,
        zone=zone.key,
        first=first,
        last=first + timedelta(days=days - 1),
        earlier=(first - (step if view == "week" else timedelta(days=1))).isoformat(),
        later=(first + step).isoformat(),
        by_day=by_day,
        local=lambda moment: moment.astimezone(zone),
        seen=calendar.as_seen,
        feed_on=feed_on,
        new_feed=request.query_params.get("feed", ""),
        chosen=chosen,
        channels=channels,
        campaigns=campaigns,
        keep="".join(f"&{k}={quote(v)}" for k, v in chosen.items() if v),
    )


def _me(request: Request) -> str:
    return str(request.scope["state"]["user"])  # StaffAuth let the request in: they exist


def replace_feed(request: Request, app: App, _form: FormData | None) -> Response:
    """A new feed URL for the signed-in user (any editor or viewer may follow the calendar)."""
    with app.db.session() as session:
        token = calendar_feeds.new_feed(session, staff.find_user(session, _me(request)))
    url = f"{request.base_url}calendar/{token}.ics"
    return back("/calendar", "Your calendar feed (keep it secret): " + url)


def revoke_feed(request: Request, app: App, _form: FormData | None) -> Response:
    with app.db.session() as session:
        calendar_feeds.revoke_feeds(session, staff.find_user(session, _me(request)))
    return back("/calendar", "Your calendar feed is switched off.")


def feed(request: Request, app: App, _form: FormData | None) -> Response:
    with app.db.session() as session:
        owner = calendar_feeds.feed_owner(session, request.path_params["token"])
    if owner is None:
        return Response("No such calendar.", status_code=404, media_type="text/plain")
    now = datetime.now(UTC)
    body = calendar.ics(calendar.entries(app, now - FEED_PAST, now + FEED_AHEAD))
    # The URL is the credential: no shared or browser cache keeps a copy of what it shows.
    return Response(
        body, media_type="text/calendar; charset=utf-8", headers={"cache-control": "no-store"}
    )
