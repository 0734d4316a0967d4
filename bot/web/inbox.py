"""``/inbox``: every message pledgemakers sent, newest first, with what it became (an update,
its moderation and consent), its pillar and media; each links to the conversation, where staff
reply."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from sqlalchemy import select
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bot.core.models import JourneyUpdate, Pledgemaker, Prompt, Reply
from bot.core.vocab import PILLARS
from bot.service.app import App
from bot.web.pages import in_thread, page

PAGE_SIZE = 100
SHOWING = {
    "": "everything",
    "updates": "journey updates",
    "unlinked": "not an answer to a prompt",
    "thanks": "acknowledgements (“thanks”)",
}


def routes(app: App) -> list[Route]:
    return [Route("/inbox", in_thread(app, inbox), methods=["GET"])]


def inbox(request: Request, app: App, form: FormData | None) -> Response:
    params = request.query_params
    chosen = {k: params.get(k, "") for k in ("pillar", "channel", "show")}
    before = params.get("before", "")
    query = (
        select(Reply, Prompt.pillar, JourneyUpdate, Pledgemaker.name)
        .outerjoin(Prompt, Reply.prompt_id == Prompt.id)
        .outerjoin(JourneyUpdate, Reply.journey_update_id == JourneyUpdate.id)
        .outerjoin(Pledgemaker, Reply.pledgemaker_id == Pledgemaker.id)
        .where(Reply.chat_id != "erased")
        .order_by(Reply.id.desc())
        .limit(PAGE_SIZE + 1)
    )
    if chosen["pillar"]:
        query = query.where(Prompt.pillar == chosen["pillar"])
    if chosen["channel"]:
        query = query.where(Reply.channel == chosen["channel"])
    if chosen["show"] == "updates":
        query = query.where(Reply.journey_update_id.is_not(None))
    elif chosen["show"] == "unlinked":
        query = query.where(Reply.prompt_id.is_(None))
    elif chosen["show"] == "thanks":
        query = query.where(Reply.acknowledgement.is_(True))
    if before.isdigit():
        query = query.where(Reply.id < int(before))
    with app.db.session() as session:
        rows: list[Any] = list(session.execute(query).tuples())
        channels = sorted(session.scalars(select(Reply.channel).distinct()))
        session.expunge_all()
    more = ""
    if len(rows) > PAGE_SIZE:
        rows = rows[:PAGE_SIZE]
        kept = {k: v for k, v in chosen.items() if v}
        more = "/inbox?" + urlencode({**kept, "before": str(rows[-1][0].id)})
    return page(
        request,
        app,
        "inbox.html",
        title="Inbox",
        rows=rows,
        chosen=chosen,
        pillars=PILLARS,
        channels=channels,
        showing=SHOWING,
        more=more,
    )
