"""``/matches``: matchmaking's suggested introductions — who has a challenge, who may help, why —
and the comms team's accept (both sides are asked in their chats) or decline. A fresh look for
suggestions is a button, not a side effect of opening the page."""

from __future__ import annotations

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bot.community import introductions, staff
from bot.core.errors import UserInputError
from bot.service.app import App
from bot.web.pages import back, in_thread, page

STATES = {
    "suggested": "suggested",
    "asking": "asked, waiting for answers",
    "introduced": "introduced",
    "ended": "ended by a no",
    "declined": "declined by the team",
}


def routes(app: App) -> list[Route]:
    return [
        Route("/matches", in_thread(app, matches), methods=["GET"]),
        Route("/matches/refresh", in_thread(app, refresh), methods=["POST"]),
        Route("/matches/{id:int}/accept", in_thread(app, accept), methods=["POST"]),
        Route("/matches/{id:int}/decline", in_thread(app, decline), methods=["POST"]),
    ]


def matches(request: Request, app: App, form: FormData | None) -> Response:
    state = request.query_params.get("state", "suggested")
    if state not in STATES:
        state = "suggested"
    with app.db.session() as session:
        found = introductions.listing(session, (state,))
        session.expunge_all()
    return page(
        request, app, "matches.html", title="Matches", found=found, state=state, states=STATES
    )


def refresh(request: Request, app: App, form: FormData | None) -> Response:
    with app.db.session() as session:
        made = introductions.refresh(session)
    return back("/matches", f"{len(made)} new suggestion(s).")


def accept(request: Request, app: App, form: FormData | None) -> Response:
    return decide(request, app, "accept")


def decline(request: Request, app: App, form: FormData | None) -> Response:
    return decide(request, app, "decline")


def decide(request: Request, app: App, verb: str) -> Response:
    number = int(request.path_params["id"])
    actor = str(request.scope["state"]["user"])
    try:
        with app.db.session() as session:
            if verb == "accept":
                row = introductions.accept(session, number, actor, app.templates)
                done = f"Asked {row.seeker_id} and {row.helper_id}; they answer in their chats."
            else:
                row = introductions.decline(session, number, actor)
                done = f"Declined: {row.seeker_id} and {row.helper_id} will not be suggested again."
            staff.audit(session, actor, f"match.{verb}", str(number), row.pair_key)
    except UserInputError as exc:
        return back("/matches", f"Not done: {exc}")
    return back("/matches", done)
