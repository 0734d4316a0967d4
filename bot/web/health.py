"""``/healthz`` (JSON, 503 when the database is unreachable), ``/healthz/details`` and
``/metrics`` (Prometheus).

``/healthz`` is public, so it says the status and counts only: no database URL, no names, no
error text (a channel's last error may quote an upstream body or a mail server). The same
figures with those details are at ``/healthz/details``, which, like ``/metrics``, needs a
session or the scraper's bearer token (see ``bot.web.auth``). None carries message text.
Figures are read from the database, so any process's endpoint describes the whole deployment.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import func, select
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot.core.models import ChannelState, OutboxMessage, Run, utcnow
from bot.service.app import App
from bot.service.status import watched

log = logging.getLogger(__name__)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def figures(app: App) -> dict[str, Any]:
    """The numbers an operator watches, in one read transaction."""
    with app.db.session() as session:
        by_state = session.execute(
            select(OutboxMessage.channel, OutboxMessage.state, func.count()).group_by(
                OutboxMessage.channel, OutboxMessage.state
            )
        ).all()
        oldest_due = session.scalar(
            select(func.min(OutboxMessage.next_attempt_at)).where(
                OutboxMessage.state.in_(("pending", "retry_wait")),
                OutboxMessage.next_attempt_at <= utcnow(),
            )
        )
        watch = watched(session)
        runs = dict(
            session.execute(select(Run.trigger, func.count()).group_by(Run.trigger)).tuples().all()
        )
        channels = {
            state.channel: {
                "last_ok_at": _iso(state.last_ok_at),
                "last_error_at": _iso(state.last_error_at),
                "last_error": state.last_error,
                # held by the outage breaker: messages wait, one probe at a time
                "down_since": _iso(state.down_since),
                "next_probe_at": _iso(state.probe_at),
            }
            for state in session.scalars(select(ChannelState))
        }
    outbox: dict[str, dict[str, int]] = {}
    for channel, state, count in by_state:
        outbox.setdefault(channel, {})[state] = int(count)
    lag = (utcnow() - oldest_due).total_seconds() if oldest_due is not None else 0.0
    return {
        "outbox": outbox,
        "outbox_oldest_due_seconds": max(0.0, lag),
        "possible_duplicates": watch.possible_duplicates,
        "inbox_unprocessed": watch.inbox_unprocessed,
        "runs": {str(k): int(v) for k, v in runs.items()},
        "paused": watch.paused,
        "channels": channels,
    }


def counts_only(data: dict[str, Any]) -> dict[str, Any]:
    """What anyone may read of ``figures``: numbers, and no name or text."""
    channels = data["channels"].values()
    return {
        "outbox": data["outbox"],
        "outbox_oldest_due_seconds": data["outbox_oldest_due_seconds"],
        "possible_duplicates": data["possible_duplicates"],
        "inbox_unprocessed": data["inbox_unprocessed"],
        "runs": data["runs"],
        "paused": len(data["paused"]),
        "channels_failing": sum(1 for state in channels if _failing(state)),
        "channels_down": sum(1 for state in channels if state.get("down_since")),
    }


def _failing(state: dict[str, Any]) -> bool:
    """The channel's last contact with its platform was an error (ISO times compare in order)."""
    error, ok = state["last_error_at"], state["last_ok_at"]
    return error is not None and (ok is None or error > ok)


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


class _Collector:
    def __init__(self, app: App) -> None:
        self.app = app

    def collect(self) -> Any:
        data = figures(self.app)
        queue = GaugeMetricFamily(
            "pledgebot_outbox_messages",
            "Outbox messages by channel and state",
            labels=["channel", "state"],
        )
        for channel, states in data["outbox"].items():
            for state, count in states.items():
                queue.add_metric([channel, state], count)
        yield queue
        yield GaugeMetricFamily(
            "pledgebot_outbox_oldest_due_seconds",
            "How long the oldest due message has waited",
            value=data["outbox_oldest_due_seconds"],
        )
        yield GaugeMetricFamily(
            "pledgebot_outbox_possible_duplicates",
            "Messages resent after a crash or timeout (may have been delivered twice)",
            value=data["possible_duplicates"],
        )
        yield GaugeMetricFamily(
            "pledgebot_inbox_unprocessed",
            "Inbound events stored, not yet processed",
            value=data["inbox_unprocessed"],
        )
        runs = GaugeMetricFamily(
            "pledgebot_runs",
            "Campaign runs recorded, by trigger (missed: not fired)",
            labels=["trigger"],
        )
        for trigger, count in data["runs"].items():
            runs.add_metric([trigger], count)
        yield runs
        paused = GaugeMetricFamily(
            "pledgebot_paused", "Paused campaigns and channels", labels=["what"]
        )
        for what in data["paused"]:
            paused.add_metric([what], 1)
        yield paused


def routes(app: App) -> list[Route]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(app))

    async def read(details: bool) -> JSONResponse:
        try:
            data = await asyncio.to_thread(figures, app)
        except Exception as exc:  # the database is down: say so, without a traceback
            log.warning("healthz: %s", exc)
            why = f"unreachable: {type(exc).__name__}" if details else "unreachable"
            return JSONResponse({"status": "error", "database": why}, status_code=503)
        if details:
            return JSONResponse({"status": "ok", "database": app.db.describe(), **data})
        return JSONResponse({"status": "ok", "database": "ok", **counts_only(data)})

    async def healthz(_: Request) -> JSONResponse:
        return await read(details=False)

    async def healthz_details(_: Request) -> JSONResponse:
        return await read(details=True)

    async def metrics(_: Request) -> Response:
        try:
            body = await asyncio.to_thread(generate_latest, registry)
        except Exception:
            return Response("database unreachable\n", status_code=503, media_type="text/plain")
        return Response(body, media_type=CONTENT_TYPE)

    return [
        Route("/healthz", healthz),
        Route("/healthz/details", healthz_details),
        Route("/metrics", metrics),
    ]
