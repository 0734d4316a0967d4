"""``/pledgemakers`` and ``/invites``: the list (filters, CSV import and export, invitations in
bulk) and one pledgemaker's page (pledge, contacts, conversation with a reply box, updates,
posts; their data as JSON; erasure on request, by an admin)."""

from __future__ import annotations

import io
import json
from datetime import timedelta
from pathlib import Path
from typing import Any, cast
from urllib.parse import quote, urlencode

from anyio import to_thread
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload
from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bot.channels import registry
from bot.channels.base import ChatChannel
from bot.community import erasure, importer, pledgemakers, staff
from bot.core import csv_safety
from bot.core.errors import ImportRowsError, UserInputError
from bot.core.models import Contact, InviteToken, JourneyUpdate, Pledgemaker
from bot.core.vocab import SECTORS
from bot.service.app import App
from bot.web.pages import back, in_thread, new_token, not_found, page

PAGE_SIZE = 100
MAX_INVITE_DAYS = 365


def routes(app: App) -> list[Route]:
    return [
        Route("/pledgemakers", in_thread(app, listing), methods=["GET"]),
        Route("/pledgemakers.csv", in_thread(app, export_csv), methods=["GET"]),
        Route("/pledgemakers/import", in_thread(app, import_csv), methods=["POST"]),
        Route("/pledgemakers/{id}", in_thread(app, detail), methods=["GET"]),
        Route("/pledgemakers/{id}/data.json", in_thread(app, export_json), methods=["GET"]),
        Route("/pledgemakers/{id}/reply", in_thread(app, reply), methods=["POST"]),
        Route("/pledgemakers/{id}/erase", in_thread(app, erase), methods=["POST"]),
        Route("/invites", invites_endpoint(app), methods=["GET"]),
        Route("/invites.csv", invites_endpoint(app, csv=True), methods=["GET"]),
        Route("/invites", in_thread(app, create_invites), methods=["POST"]),
    ]


def invite_channels(app: App) -> list[str]:
    """The enabled channels a pledgemaker can be invited on: those that receive messages."""
    return [name for name in app.config.enabled_channels() if registry.spec(name).inbound]


# -- the list ------------------------------------------------------------------------------------
def _filters(request: Request) -> pledgemakers.Filters:
    params = request.query_params
    return pledgemakers.Filters(
        text=params.get("q", "").strip()[:100],
        country=params.get("country", "").strip()[:2],
        sector=params.get("sector", ""),
        contact=params.get("contact", ""),
    )


def listing(
    request: Request,
    app: App,
    form: FormData | None = None,
    *,
    problems: list[str] | None = None,
    status: int = 200,
) -> Response:
    chosen = _filters(request)
    after = request.query_params.get("after", "")
    with app.db.session() as session:
        found, total = pledgemakers.listing(session, chosen, after=after, limit=PAGE_SIZE + 1)
        session.expunge_all()
    more = ""
    if len(found) > PAGE_SIZE:
        found = found[:PAGE_SIZE]
        params = {"q": chosen.text, "country": chosen.country, "sector": chosen.sector}
        params = {k: v for k, v in {**params, "contact": chosen.contact}.items() if v}
        more = "/pledgemakers?" + urlencode({**params, "after": found[-1].pledgemaker.id})
    return page(
        request,
        app,
        "pledgemakers.html",
        status,
        title="Pledgemakers",
        found=found,
        total=total,
        chosen=chosen,
        sectors=SECTORS,
        contact_filters=pledgemakers.CONTACT_FILTERS,
        channels=invite_channels(app),
        more=more,
        problems=problems or [],
    )


def export_csv(request: Request, app: App, form: FormData | None) -> Response:
    stream = io.StringIO()
    with app.db.session() as session:
        importer.export_pledgemakers(session, stream)
    return _download(stream.getvalue(), "pledgemakers.csv", "text/csv; charset=utf-8")


def import_csv(request: Request, app: App, form: FormData | None) -> Response:
    """All or nothing, like ``pledgebot import pledgemakers``: every bad row is listed."""
    upload = form.get("file") if form is not None else None
    if not isinstance(upload, UploadFile) or not upload.filename:
        return listing(request, app, problems=["Choose a CSV file to import."], status=400)
    name = Path(upload.filename).name
    data = upload.file.read()
    try:
        with app.db.session() as session:
            result = importer.import_pledgemakers(session, Path(name), data=data)
            staff.audit(
                session,
                request.scope["state"]["user"],
                "pledgemakers.import",
                name,
                f"{result.created} new, {result.updated} updated",
            )
    except ImportRowsError as exc:
        return listing(
            request,
            app,
            problems=[str(p) for p in exc.problems] + ["Nothing was imported."],
            status=400,
        )
    return back(
        "/pledgemakers",
        f"Imported {name}: {result.created} new, {result.updated} updated pledgemaker(s)."
        + "".join(f" Warning: {warning}." for warning in result.warnings),
    )


def _download(body: str | bytes, filename: str, media_type: str) -> Response:
    return Response(
        body,
        media_type=media_type,
        headers={
            "content-disposition": f'attachment; filename="{quote(filename)}"',
            "cache-control": "no-store",
        },
    )


# -- one pledgemaker -------------------------------------------------------------------------------
def detail(
    request: Request, app: App, form: FormData | None = None, *, problem: str = ""
) -> Response:
    pledgemaker_id = request.path_params["id"]
    context: dict[str, Any] = {}
    with app.db.session() as session:
        person = session.get(
            Pledgemaker, pledgemaker_id, options=[selectinload(Pledgemaker.handle_rows)]
        )
        if person is not None and person.erased_at is None:
            context = _story(session, person)
        session.expunge_all()
    if not context:
        return not_found(request, app, f"No pledgemaker {pledgemaker_id!r}.")
    return page(
        request,
        app,
        "pledgemaker.html",
        400 if problem else 200,
        title=context["person"].name,
        problem=problem,
        nonce=new_token(),
        channels=invite_channels(app),
        is_admin=request.scope["state"].get("role") == "admin",
        **context,
    )


def _story(session: Session, person: Pledgemaker) -> dict[str, Any]:
    """Everything on one pledgemaker's page."""
    contacts = select(Contact).where(Contact.pledgemaker_id == person.id).order_by(Contact.id)
    updates = (
        select(JourneyUpdate)
        .where(JourneyUpdate.pledgemaker_id == person.id)
        .order_by(JourneyUpdate.id.desc())
    )
    return {
        "person": person,
        "contacts": list(session.scalars(contacts)),
        "said": pledgemakers.conversation(session, person.id),
        "updates": list(session.scalars(updates)),
        "posts": pledgemakers.posts(session, person.id),
        "invites": pledgemakers.open_invites(session, person.id),
    }


def export_json(request: Request, app: App, form: FormData | None) -> Response:
    pledgemaker_id = request.path_params["id"]
    try:
        with app.db.session() as session:
            data = erasure.export_data(session, pledgemaker_id)
            staff.audit(
                session, request.scope["state"]["user"], "pledgemaker.export", pledgemaker_id, ""
            )
    except UserInputError:
        return not_found(request, app, f"No pledgemaker {pledgemaker_id!r}.")
    body = json.dumps(data, ensure_ascii=False, indent=2)
    return _download(body, f"pledgemaker-{pledgemaker_id}.json", "application/json")


def reply(request: Request, app: App, form: FormData | None) -> Response:
    pledgemaker_id = request.path_params["id"]
    assert form is not None
    answered = str(form.get("reply_id", ""))
    try:
        if not answered.isdigit():
            raise UserInputError("choose the message to answer")
        with app.db.session() as session:
            queued = pledgemakers.queue_reply(
                session,
                pledgemaker_id,
                int(answered),
                str(form.get("text", "")),
                str(form.get("nonce", ""))[:64] or new_token(),
            )
            if queued is not None:
                staff.audit(
                    session,
                    request.scope["state"]["user"],
                    "pledgemaker.reply",
                    pledgemaker_id,
                    f"outbox message {queued}",
                )
    except UserInputError as exc:
        return detail(request, app, problem=f"The reply was not sent: {exc}.")
    said = "Reply queued" if queued else "That reply was already queued"
    return back(
        f"/pledgemakers/{quote(pledgemaker_id)}#conversation",
        f"{said}: it goes out through the outbox.",
    )


def erase(request: Request, app: App, form: FormData | None) -> Response:
    pledgemaker_id = request.path_params["id"]
    assert form is not None
    if request.scope["state"].get("role") != "admin":
        return page(
            request, app, "error.html", 403, title="Forbidden", text="Only an admin erases data."
        )
    if str(form.get("confirm", "")).strip() != pledgemaker_id:
        return detail(
            request, app, problem="Nothing was erased: type the pledgemaker's id to confirm."
        )
    conversation = app.conversation()
    try:
        with app.db.session() as session:
            done = erasure.erase(
                session, pledgemaker_id, conversation.deletable, conversation.alerts
            )
            staff.audit(
                session,
                request.scope["state"]["user"],
                "pledgemaker.erase",
                done.new_id,
                f"{done.replies} replies, {done.updates} updates blanked; "
                f"{done.messages_cancelled} messages cancelled",
            )
    except UserInputError:
        return not_found(request, app, f"No pledgemaker {pledgemaker_id!r}.")
    erasure.delete_files(done)
    said = f"Erased {pledgemaker_id}: their counts remain as {done.new_id}."
    if done.posts_left_online:
        where = ", ".join(f"{c} post {i}" for c, _, i in done.posts_left_online)
        said += f" Still online, remove by hand (see Alerts): {where}."
    return back("/pledgemakers", said)


# -- invitations --------------------------------------------------------------------------------
def create_invites(request: Request, app: App, form: FormData | None) -> Response:
    assert form is not None
    channel = str(form.get("channel", ""))
    days = str(form.get("days", "30"))
    ids = [str(i) for i in form.getlist("ids")]
    try:
        if channel not in invite_channels(app):
            raise UserInputError(f"no chat channel {channel!r} is enabled")
        if not days.isdigit() or not 1 <= int(days) <= MAX_INVITE_DAYS:
            raise UserInputError(f"days must be a whole number from 1 to {MAX_INVITE_DAYS}")
        with app.db.session() as session:
            if form.get("uninvited"):
                ids += pledgemakers.uninvited(session, channel)
            if not ids:
                raise UserInputError("tick the pledgemakers to invite")
            made = pledgemakers.invite_many(session, ids, channel, timedelta(days=int(days)))
            staff.audit(
                session,
                request.scope["state"]["user"],
                "invites.create",
                channel,
                f"{len(made)} link(s), valid {days} day(s)",
            )
    except UserInputError as exc:
        return listing(request, app, problems=[f"No invitation was made: {exc}."], status=400)
    return back(f"/invites?channel={quote(channel)}", f"{len(made)} invitation link(s) made.")


def invites_endpoint(app: App, *, csv: bool = False) -> Any:
    """Open invitations with their links; the links need the bot's name, learnt from the
    platform (async), so this one endpoint is not a thread handler."""

    async def endpoint(request: Request) -> Response:
        if not staff.role_at_least(request.scope["state"].get("role", ""), "editor"):
            # A link binds the first chat that opens it: not for every eye.
            text = "Only editors and admins see invitation links."
            return page(request, app, "error.html", 403, title="Forbidden", text=text)

        def load() -> list[tuple[InviteToken, str]]:
            with app.db.session() as session:
                names = dict(
                    session.execute(select(Pledgemaker.id, Pledgemaker.name)).tuples().all()
                )
                found = pledgemakers.open_invites(session)
                session.expunge_all()
            return [(i, names.get(i.pledgemaker_id, "")) for i in found]

        invites = await to_thread.run_sync(load)
        problem, links, refused = "", {}, set()
        for invite, _ in invites:
            if invite.channel in refused:
                continue
            try:
                chat = cast(ChatChannel, app.channel(invite.channel))  # an invite_channels one
                links[invite.token] = await chat.invite_link(invite.token)
            except Exception as exc:  # cannot learn the bot's name: say so, keep the list
                refused.add(invite.channel)
                problem = (
                    f"Cannot make {invite.channel} links ({exc}); "
                    f"set channels.{invite.channel}.bot_username in the config."
                )
        rows = [
            {"invite": invite, "name": name, "link": links.get(invite.token, "")}
            for invite, name in invites
        ]
        if csv:
            return _invites_csv(rows)
        return page(request, app, "invites.html", title="Invitations", rows=rows, problem=problem)

    endpoint.__name__ = "invites_csv" if csv else "invites"
    return endpoint


def _invites_csv(rows: list[dict[str, Any]]) -> Response:
    stream = io.StringIO()
    writer = csv_safety.writer(stream)  # names are the pledgemakers' own: no formula may run
    writer.writerow(["pledgemaker_id", "name", "channel", "link", "expires_at"])
    for row in rows:
        invite = row["invite"]
        writer.writerow(
            [invite.pledgemaker_id, row["name"], invite.channel, row["link"], invite.expires_at]
        )
    return _download(stream.getvalue(), "invitations.csv", "text/csv; charset=utf-8")
