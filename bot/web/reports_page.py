"""``/reports``: the campaign's figures (``bot.community.reports``) per pillar, country, campaign or
channel, with a chart drawn on the server (``/reports/chart.svg``) and a CSV download
(``/reports.csv``). Read only: every signed-in user, viewers included, may see them."""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import date
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from bot.community import reports
from bot.core.errors import UserInputError
from bot.core.extras import ExtraMissing
from bot.service.app import App
from bot.web.pages import page

LABELS = {"pillar": "Pillar", "country": "Country", "campaign": "Campaign", "channel": "Channel"}
# The chart is opened on its own too: matplotlib styles with inline CSS, and it has no script.
CHART_POLICY = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"


def routes(app: App) -> list[Route]:
    def bind(handler: Callable[[Request, App], Response]) -> Callable[[Request], Response]:
        def endpoint(request: Request) -> Response:  # sync: Starlette runs it in a thread
            return handler(request, app)

        endpoint.__name__ = handler.__name__
        return endpoint

    return [
        Route("/reports", bind(reports_page), methods=["GET"]),
        Route("/reports.csv", bind(reports_csv), methods=["GET"]),
        Route("/reports/chart.svg", bind(reports_chart), methods=["GET"]),
    ]


Choice = tuple[str, date | None, date | None]


def _choice(request: Request) -> Choice:
    """The grouping and period asked for; UserInputError for a bad one."""
    params = request.query_params
    by = reports.check_by(params.get("by") or "pillar")
    since = reports.parse_day(params.get("since"), "From")
    until = reports.parse_day(params.get("until"), "Until")
    reports.check_period(since, until)
    return by, since, until


def _figures(app: App, choice: Choice) -> list[reports.ReportRow]:
    with app.db.session() as session:
        return reports.figures(session, *choice)


def _query(choice: Choice) -> str:
    by, since, until = choice
    given = {"by": by, "since": since, "until": until}
    return urlencode({k: str(v) for k, v in given.items() if v})


def reports_page(request: Request, app: App) -> Response:
    params = request.query_params
    chosen = {k: params.get(k, "") for k in ("by", "since", "until")}
    chosen["by"] = chosen["by"] or "pillar"
    context: dict[str, Any] = {"title": "Reports", "dimensions": LABELS, "chosen": chosen}
    try:
        choice = _choice(request)
    except UserInputError as exc:
        return page(request, app, "reports.html", 400, problem=_sentence(str(exc)), **context)
    by, since, until = choice
    rows = _figures(app, choice)
    return page(
        request,
        app,
        "reports.html",
        **context,
        groups=rows[:-1],
        total=rows[-1],
        by_label=LABELS[by],
        period=reports.describe_period(since, until),
        query=_query(choice),
        alt=reports.summary(rows, by),
        percent=reports.percent,
        hours=reports.hours,
    )


def reports_csv(request: Request, app: App) -> Response:
    try:
        choice = _choice(request)
    except UserInputError as exc:
        return PlainTextResponse(_sentence(str(exc)), status_code=400)
    stream = io.StringIO()
    reports.to_csv(_figures(app, choice), choice[0], stream)
    return Response(
        stream.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": f'attachment; filename="pledgebot-report-{choice[0]}.csv"'},
    )


def reports_chart(request: Request, app: App) -> Response:
    try:
        choice = _choice(request)
    except UserInputError as exc:
        return PlainTextResponse(_sentence(str(exc)), status_code=400)
    by, since, until = choice
    try:
        drawn = reports.chart(
            _figures(app, choice), by, "svg", period=reports.describe_period(since, until)
        )
    except ExtraMissing as exc:  # the page's figures stand; its <img> shows their alt text
        return PlainTextResponse(_sentence(str(exc)), status_code=404)
    return Response(
        drawn,
        media_type="image/svg+xml",
        headers={"content-security-policy": CHART_POLICY, "cache-control": "no-store"},
    )


def _sentence(message: str) -> str:
    return message[:1].upper() + message[1:] + ("" if message.endswith(".") else ".")
