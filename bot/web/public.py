"""The two pages a pledgemaker opens from an email, without signing in:

- ``/join/<token>``: the confirmation link of an email invitation (``bot.community.invitations``).
  GET only
  asks — mail scanners open links — and POST connects the address the invitation went to.
- ``/unsubscribe/<token>``: the ``List-Unsubscribe`` URL of every email (RFC 8058). A mail
  client's one-click POST (``List-Unsubscribe=One-Click``) or the page's button stops all email
  to the address; the token is the address signed with the email channel's key.

Both answer in the pledgemaker's language. The token in the path is the credential (single use
and expiring for an invitation, signed for an address), so there is no session and no CSRF
token: a POST with a wrong token changes nothing.
"""

from __future__ import annotations

from typing import Any

from markupsafe import Markup
from sqlalchemy import select, update
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bot.channels import registry
from bot.community import contacts
from bot.core.errors import ConfigError
from bot.core.models import Contact, InviteToken, OutboxMessage, Pledgemaker, utcnow
from bot.core.vocab import LANGUAGES
from bot.delivery import outbox
from bot.delivery.messages import PlannedMessage
from bot.service.app import App
from bot.web.pages import in_thread, page

PATHS = ("/join/{token}", "/unsubscribe/{token}")


def routes(app: App) -> list[Route]:
    return [
        Route("/join/{token}", in_thread(app, join), methods=["GET", "POST"]),
        Route("/unsubscribe/{token}", in_thread(app, unsubscribe), methods=["GET", "POST"]),
    ]


def _say(app: App, phrase: str, language: str, **context: Any) -> Markup:
    return Markup(app.templates.phrase(phrase, language, **context))  # escaped by the catalogue


def _answer(
    request: Request, app: App, language: str, status: int = 200, **context: Any
) -> Response:
    response = page(request, app, "public.html", status, language=language, **context)
    response.headers["cache-control"] = "no-store"
    return response


def join(request: Request, app: App, form: FormData | None) -> Response:
    token = str(request.path_params["token"])[:64]
    with app.db.session() as session:
        invite = session.get(InviteToken, token)
        person = session.get(Pledgemaker, invite.pledgemaker_id) if invite else None
        language = person.language if person else _browser_language(request)
        usable = (
            invite is not None
            and person is not None
            and invite.channel == "email"
            and invite.address is not None
            and invite.used_at is None
            and invite.expires_at > utcnow()
        )
        if not usable or invite is None or person is None or invite.address is None:
            text = _say(app, "link_refused", language)
            return _answer(request, app, language, 404, title=text, text="")
        if form is None:  # GET: ask; a link scanner opening it connects nothing
            return _answer(
                request,
                app,
                language,
                title=_say(app, "join_title", language),
                text=_say(
                    app,
                    "join_confirm",
                    language,
                    address=invite.address,
                    title=person.pledge_title,
                ),
                button=_say(app, "join_button", language),
            )
        address = invite.address
        contact = contacts.redeem(session, token, "email", address)
        assert contact is not None  # checked above, in this transaction
        welcome = app.templates.phrase("linked", language, name=person.name)
        outbox.enqueue(
            session,
            [
                PlannedMessage(
                    idempotency_key=f"joined:{token}",
                    channel="email",
                    recipient=address,
                    text=welcome,
                    pledgemaker_id=person.id,
                    contact_id=contact.id,
                    parse_mode="HTML",
                )
            ],
        )
        return _answer(request, app, language, title=Markup(welcome), text="")


def unsubscribe(request: Request, app: App, form: FormData | None) -> Response:
    token = str(request.path_params["token"])
    named = _unsubscribe_address(app, token)
    language = _browser_language(request)
    if named is None:
        text = _say(app, "unsubscribe_refused", language)
        return _answer(request, app, language, 404, title=text, text="")
    channel, address = named
    with app.db.session() as session:
        found = session.scalars(
            select(Contact).where(Contact.channel == channel, Contact.address == address)
        ).first()
        invited = session.scalars(
            select(InviteToken.pledgemaker_id).where(
                InviteToken.channel == channel, InviteToken.address == address
            )
        ).first()
        person = session.get(Pledgemaker, found.pledgemaker_id if found else invited or "")
        if person is not None:
            language = (found.language if found else None) or person.language
        if form is None:
            return _answer(
                request,
                app,
                language,
                title=_say(app, "unsubscribe_title", language),
                text=_say(app, "unsubscribe_confirm", language, address=address),
                button=_say(app, "unsubscribe_button", language),
            )
        now = utcnow()
        session.execute(
            update(Contact)
            .where(
                Contact.channel == channel,
                Contact.address == address,
                Contact.status == "active",
            )
            .values(status="stopped", status_changed_at=now)
        )
        if found is None and person is not None:  # only invited: remembered as opted out
            session.add(
                Contact(
                    pledgemaker_id=person.id,
                    channel=channel,
                    address=address,
                    status="stopped",
                    bound_at=now,
                    status_changed_at=now,
                )
            )
        # An open invitation to the address must not connect it again behind their back, and
        # one still queued is not sent (it has no contact whose opt-out the dispatcher checks).
        session.execute(
            update(InviteToken)
            .where(
                InviteToken.channel == channel,
                InviteToken.address == address,
                InviteToken.used_at.is_(None),
            )
            .values(expires_at=now)
        )
        session.execute(
            update(OutboxMessage)
            .where(
                OutboxMessage.channel == channel,
                OutboxMessage.recipient == address,
                OutboxMessage.state.in_(("pending", "retry_wait")),
            )
            .values(state="cancelled", last_error="cancelled: the address unsubscribed")
        )
    done = _say(app, "unsubscribed", language, address=address)
    return _answer(request, app, language, title=done, text="")


def _unsubscribe_address(app: App, token: str) -> tuple[str, str] | None:
    """The channel and address a one-click unsubscribe token names: asked of each enabled
    channel whose messages carry such links (email's List-Unsubscribe); None if none signed it."""
    for name in app.config.enabled_channels():
        if not registry.spec(name).unsubscribe_links:
            continue
        try:
            secrets = app.channel_secrets(name)
        except ConfigError:  # the signing key is not set: no token can be checked
            continue
        address = registry.spec(name).read_unsubscribe(secrets, token)
        if address is not None:
            return name, address
    return None


def _browser_language(request: Request) -> str:
    for part in request.headers.get("accept-language", "").split(","):
        code = part.split(";")[0].strip()[:2].lower()
        if code in LANGUAGES:
            return code
    return "en"
