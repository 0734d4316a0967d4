"""``/updates``: the comms team approves, edits or rejects journey updates
(``bot.community.review``).

The pledgemaker's words are always shown beside a staff edit. Bulk approve and reject work on
the ticked updates in one transaction: if any of them cannot be approved (an image without alt
text), none is, and the page says which one and why.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import date
from urllib.parse import urlencode

from anyio import to_thread
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bot.community import review, staff
from bot.core.errors import UserInputError
from bot.core.models import Pledgemaker
from bot.core.vocab import PILLARS
from bot.service.app import App
from bot.web.pages import back, page

PAGE_SIZE = 50


def routes(app: App) -> list[Route]:
    async def listing(request: Request) -> Response:
        return await to_thread.run_sync(lambda: updates_page(request, app))

    def action(kind: str) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            form = await request.form()
            return await to_thread.run_sync(lambda: moderate(request, app, kind, form))

        endpoint.__name__ = f"update_{kind}"
        return endpoint

    return [
        Route("/updates", listing, methods=["GET"]),
        Route("/updates/bulk", action("bulk"), methods=["POST"]),
        *(
            Route(f"/updates/{{id:int}}/{kind}", action(kind), methods=["POST"])
            for kind in ("approve", "reject", "edit", "alt-text", "agreement")
        ),
    ]


def updates_page(request: Request, app: App, *, problem: str = "", status: int = 200) -> Response:
    state = request.query_params.get("state", "pending")
    state = state if state in (*review.STATES, "all") else "pending"
    pillar = request.query_params.get("pillar", "")
    pillar = pillar if pillar in PILLARS else ""
    given = request.query_params.get("page", "1")
    number = int(given) if given.isdigit() and 0 < int(given) < 100_000 else 1
    query = review.listing_query(state, pillar)
    with app.db.session() as session:
        total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
        updates = list(session.scalars(query.offset((number - 1) * PAGE_SIZE).limit(PAGE_SIZE)))
        ids = {u.pledgemaker_id for u in updates}
        names = dict(
            session.execute(select(Pledgemaker.id, Pledgemaker.name).where(Pledgemaker.id.in_(ids)))
            .tuples()
            .all()
        )
    return page(
        request,
        app,
        "updates.html",
        status,
        title="Journey updates",
        updates=updates,
        names=names,
        states=(*review.STATES, "all"),
        chosen_state=state,
        pillars=PILLARS,
        chosen_pillar=pillar,
        problem=problem,
        total=total,
        pages=_pages(number, total, state, pillar),
    )


def _pages(number: int, total: int, state: str, pillar: str) -> dict[str, str]:
    """Links to the previous and next page of the queue, keeping its filters."""

    def link(to: int) -> str:
        return "/updates?" + urlencode({"state": state, "pillar": pillar, "page": to})

    found = {}
    if number > 1:
        found["previous"] = link(number - 1)
    if number * PAGE_SIZE < total:
        found["next"] = link(number + 1)
    return found


def moderate(request: Request, app: App, kind: str, form: FormData) -> Response:
    actor = request.scope["state"]["user"]
    reason = str(form.get("reason", "")).strip()
    try:
        with app.db.session() as session:  # all or nothing, bulk included
            if kind == "bulk":
                verb = str(form.get("action", ""))
                ids = [int(i) for i in form.getlist("ids") if isinstance(i, str) and i.isdigit()]
                if not ids:
                    raise UserInputError("Tick at least one update first.")
                for update_id in ids:
                    _one(session, app, verb, update_id, reason, "")
                    staff.audit(session, actor, f"update.{verb}", str(update_id), reason)
                done = f"{len(ids)} update(s) {'approved' if verb == 'approve' else 'rejected'}."
            elif kind == "agreement":
                update_id = int(request.path_params["id"])
                done = _agreement(session, update_id, form, actor)
                note = f"{form.get('agreed_by', '')} · {form.get('how', '')}"
                staff.audit(session, actor, "update.agreement", str(update_id), note[:200])
            else:
                update_id = int(request.path_params["id"])
                text = str(form.get("text", form.get("alt_text", "")))
                done = _one(session, app, kind, update_id, reason, text)
                staff.audit(session, actor, f"update.{kind}", str(update_id), reason or text[:200])
    except UserInputError as exc:
        return updates_page(request, app, problem=str(exc), status=400)
    return back("/updates", done)


def _agreement(session: Session, update_id: int, form: FormData, email: str) -> str:
    try:
        day = date.fromisoformat(str(form.get("agreed_on", "")))
    except ValueError:
        raise UserInputError("Give the day they agreed (a date).") from None
    review.record_agreement(
        session,
        update_id,
        agreed_by=str(form.get("agreed_by", "")),
        agreed_on=day,
        how=str(form.get("how", "")),
        recorded_by=email,
    )
    return f"Their agreement to update {update_id} is recorded."


def _one(session: Session, app: App, kind: str, update_id: int, reason: str, text: str) -> str:
    if kind == "approve":
        try:
            review.approve(session, update_id)
        except UserInputError as exc:  # worded for the terminal: keep the reason, not the command
            raise UserInputError(str(exc).split("; add it first")[0] + ": add it first.") from None
        return f"Update {update_id} approved."
    if kind == "reject":
        if not reason:
            raise UserInputError("A reason is needed to reject (it is kept for the record).")
        review.reject(session, update_id, reason)
        return f"Update {update_id} rejected."
    if kind == "edit":
        outcome = review.edit(session, update_id, text, app.templates)
        return f"Update {update_id} edited: {review.SAID[outcome]}."
    if kind == "alt-text":
        count = review.set_alt_text(session, update_id, text)
        return f"Alt text saved for {count} image(s) of update {update_id}."
    raise UserInputError(f"unknown action {kind!r}")
