"""Invitations the bot sends itself (email, Matrix): who gets one and who is skipped, what the
mail says, what connects them (a reply from the address, a reply to the invitation from a
colleague, the confirmation link, joining the Matrix room), what does not (a stranger, an
expired invitation, a link scanner's GET), a bounce, and one-click unsubscribe (RFC 8058).

Both database backends; the conversation is driven with normalised events, as the inbox hands
them over (the adapters' own parsing is tested against real servers in tests/channels)."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from starlette.testclient import TestClient

from bot.channels.base import InboundEvent
from bot.channels.email import tokens
from bot.community import invitations
from bot.core.errors import UserInputError
from bot.core.models import Contact, InviteToken, OutboxMessage, Pledgemaker, utcnow
from bot.core.models import InboundEvent as EventRow
from bot.inbound.inbox import store_events
from bot.service.app import App
from bot.web.app import build
from tests.auxil.cli import pledgebot
from tests.conftest import TOKEN_ENV, write_config

GH = "gh-min-labour"  # English
ILO = "ilo"  # English
SIGNING_KEY = "test-signing-key-0123456789abcdef"
EMAIL = """
[channels.email]
enabled = true
from_address = "Action Pledge <pledge@example.org>"
unsubscribe_url = "https://pledge.example.org/unsubscribe/{token}"
[channels.matrix]
enabled = true
homeserver = "http://127.0.0.1:9"
user_id = "@pledgebot:example.org"
"""


@pytest.fixture
def config_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(TOKEN_ENV, "123456:TEST-TOKEN")
    monkeypatch.setenv("PLEDGEBOT_EMAIL_SIGNING_KEY", SIGNING_KEY)
    monkeypatch.setenv("PLEDGEBOT_IMAP_PASSWORD", "imap-secret")
    monkeypatch.setenv("PLEDGEBOT_MATRIX_TOKEN", "matrix-secret")
    return write_config(
        tmp_path, extra=EMAIL, dashboard='public_url = "https://pledge.example.org"'
    )


def set_address(app: App, pledgemaker_id: str, **handles: str | None) -> None:
    """Their handle per network (``email=…``, ``matrix=…``); None clears it."""
    with app.db.session() as session:
        person = session.get(Pledgemaker, pledgemaker_id)
        assert person is not None
        for network, value in handles.items():
            if value is None:
                person.handles.pop(network, None)
            else:
                person.handles[network] = value


def invite(app: App, ids: list[str], channel: str = "email") -> invitations.Invitations:
    with app.db.session() as session:
        return invitations.send(
            session,
            app.templates,
            ids,
            channel,
            public_url=app.config.dashboard.public_url,
        )


def queued(app: App, **where: Any) -> list[OutboxMessage]:
    with app.db.session() as session:
        query = select(OutboxMessage).filter_by(**where).order_by(OutboxMessage.id)
        return list(session.scalars(query))


def handle(app: App, channel: str, **fields: Any) -> str:
    """One inbound event, stored and handled as the inbox processor does."""
    fields.setdefault("kind", "message")
    fields.setdefault("key", f"test:{fields['kind']}:{fields['chat_id']}:{fields.get('text')}")
    event = InboundEvent(**fields)
    with app.db.session() as session:
        store_events(session, channel, [event], None)
        number = session.scalar(select(EventRow.id).where(EventRow.event_key == event.key))
        return app.conversation().handle(session, channel, number, event, [])


def contact(app: App, channel: str, address: str) -> Contact | None:
    with app.db.session() as session:
        return session.scalar(
            select(Contact).where(Contact.channel == channel, Contact.address == address)
        )


# -- who is invited ------------------------------------------------------------------------------
def test_an_invitation_is_queued_to_each_address_and_the_rest_are_skipped_with_a_reason(
    app: App,
) -> None:
    set_address(app, GH, email="ana@ministry.example")
    set_address(app, ILO, email="info@ilo.example")
    with app.db.session() as session:
        session.add(
            Contact(
                pledgemaker_id=ILO, channel="email", address="info@ilo.example", status="stopped"
            )
        )
        no_email = next(p.id for p in session.scalars(select(Pledgemaker)) if p.id not in (GH, ILO))
    result = invite(app, [GH, ILO, no_email])
    assert result.queued == [(GH, "ana@ministry.example")]
    assert dict(result.skipped) == {"opted out": [ILO], "no email on record": [no_email]}
    [mail] = queued(app, channel="email")
    assert mail.recipient == "ana@ministry.example" and mail.idempotency_key.startswith("invite:")
    assert mail.text.splitlines()[0] == "<b>Follow-ups on your action pledge</b>"
    token = mail.idempotency_key.removeprefix("invite:")
    assert f"https://pledge.example.org/join/{token}" in mail.text
    assert "simply reply to this email" in mail.text
    # A second run does not write again while the invitation is open.
    again = invite(app, [GH])
    assert again.queued == [] and dict(again.skipped) == {"invitation already open": [GH]}
    assert len(queued(app, channel="email")) == 1


def test_an_unknown_id_refuses_the_whole_batch(app: App) -> None:
    set_address(app, GH, email="ana@ministry.example")
    with pytest.raises(UserInputError, match="no pledgemaker with id 'nobody'"):
        invite(app, [GH, "nobody"])
    assert queued(app) == []


def test_the_invitation_speaks_their_language_and_without_a_public_url_asks_for_a_reply(
    app: App,
) -> None:
    with app.db.session() as session:
        french = session.scalars(select(Pledgemaker).where(Pledgemaker.language == "fr")).first()
        assert french is not None
        french.handles["email"] = "contact@ong.example"
        result = invitations.send(session, app.templates, [french.id], "email")
    assert result.queued == [(french.id, "contact@ong.example")]
    [mail] = queued(app, channel="email")
    assert "Le suivi de votre engagement" in mail.text
    assert "répondez simplement à cet e-mail" in mail.text and "/join/" not in mail.text


def test_the_bot_cannot_write_first_on_telegram(app: App) -> None:
    with pytest.raises(UserInputError, match="cannot write first on telegram"):
        invite(app, [GH], "telegram")


# -- what connects them ----------------------------------------------------------------------------
def test_a_reply_from_the_invited_address_connects_it(app: App) -> None:
    set_address(app, GH, email="ana@ministry.example")
    invite(app, [GH])
    outcome = handle(app, "email", chat_id="ana@ministry.example", text="Yes, please!")
    assert outcome == f"start: bound to {GH}"
    bound = contact(app, "email", "ana@ministry.example")
    assert bound is not None and (bound.pledgemaker_id, bound.status) == (GH, "active")
    welcome = queued(app, channel="email")[-1]
    assert welcome.text.startswith("Welcome, Ministry of Employment")
    assert invite(app, [GH]).skipped == {"already connected": [GH]}


def test_a_colleague_answering_the_forwarded_invitation_is_connected_by_its_reply_address(
    app: App,
) -> None:
    set_address(app, GH, email="ana@ministry.example")
    invite(app, [GH])
    [mail] = queued(app, channel="email")
    outcome = handle(
        app, "email", chat_id="kofi@ministry.example", text="I'll answer", reply_to=str(mail.id)
    )
    assert outcome == f"start: bound to {GH}"
    assert contact(app, "email", "kofi@ministry.example") is not None


def test_a_stranger_or_an_expired_invitation_connects_nothing(app: App) -> None:
    set_address(app, GH, email="ana@ministry.example")
    invite(app, [GH])
    assert handle(app, "email", chat_id="spam@elsewhere.example", text="hi") == (
        "unbound chat: onboarding hint"
    )
    with app.db.session() as session:
        for token in session.scalars(select(InviteToken)):
            token.expires_at = utcnow() - timedelta(minutes=1)
    assert handle(app, "email", chat_id="ana@ministry.example", text="yes") == (
        "unbound chat: onboarding hint"
    )
    with app.db.session() as session:
        assert session.scalar(select(func.count()).select_from(Contact)) == 0


def test_joining_the_matrix_room_connects_the_invited_user_and_only_them(app: App) -> None:
    set_address(app, GH, matrix="@ana:ministry.example")
    assert invite(app, [GH], "matrix").queued == [(GH, "@ana:ministry.example")]
    [message] = queued(app, channel="matrix")
    assert message.recipient == "@ana:ministry.example" and "Join this room" in message.text
    stranger = handle(
        app, "matrix", kind="join", chat_id="!other:example.org", sender={"id": "@eve:example"}
    )
    assert stranger == "ignored: join, not invited"
    joined = handle(
        app,
        "matrix",
        kind="join",
        chat_id="!dm:example.org",
        sender={"id": "@ana:ministry.example"},
    )
    assert joined == f"start: bound to {GH}"
    bound = contact(app, "matrix", "!dm:example.org")
    assert bound is not None and bound.pledgemaker_id == GH
    again = handle(
        app,
        "matrix",
        kind="join",
        chat_id="!dm:example.org",
        sender={"id": "@ana:ministry.example"},
    )
    assert again == "ignored: join of a bound chat"


def test_a_bounced_invitation_marks_the_address_unreachable(app: App) -> None:
    set_address(app, GH, email="old@ministry.example")
    invite(app, [GH])
    outcome = handle(
        app,
        "email",
        kind="bounce",
        chat_id="old@ministry.example",
        raw={"permanent": True, "status": "5.1.1"},
    )
    assert outcome == "bounce: invitation undeliverable, address marked gone"
    gone = contact(app, "email", "old@ministry.example")
    assert gone is not None and gone.status == "gone"
    assert invite(app, [GH]).skipped == {"address unreachable (bounced or left)": [GH]}


# -- the confirmation link and one-click unsubscribe ----------------------------------------------
@pytest.fixture
def web(app: App) -> Iterator[TestClient]:
    yield TestClient(build(app), follow_redirects=False)


def test_the_confirmation_link_asks_on_get_and_connects_on_post_once(
    app: App, web: TestClient
) -> None:
    set_address(app, GH, email="ana@ministry.example")
    invite(app, [GH])
    [mail] = queued(app, channel="email")
    link = re.search(r"https://pledge\.example\.org(/join/[\w-]+)", mail.text)
    assert link is not None
    asked = web.get(link[1])
    assert asked.status_code == 200 and "Yes, connect" in asked.text
    assert "ana@ministry.example" in asked.text
    assert contact(app, "email", "ana@ministry.example") is None, "a GET (a scanner) binds nothing"
    done = web.post(link[1])
    assert done.status_code == 200 and "Welcome, Ministry of Employment" in done.text
    bound = contact(app, "email", "ana@ministry.example")
    assert bound is not None and bound.status == "active"
    assert queued(app, channel="email")[-1].text.startswith("Welcome")
    assert web.post(link[1]).status_code == 404, "single use"
    assert web.get("/join/not-a-token").status_code == 404


def test_one_click_unsubscribe_stops_all_email_to_the_address(app: App, web: TestClient) -> None:
    with app.db.session() as session:
        session.add(Contact(pledgemaker_id=GH, channel="email", address="ana@ministry.example"))
    token = tokens.unsubscribe_token(SIGNING_KEY.encode(), "ana@ministry.example")
    page = web.get(f"/unsubscribe/{token}")
    assert page.status_code == 200 and "Stop all emails" in page.text
    assert contact(app, "email", "ana@ministry.example").status == "active"  # type: ignore[union-attr]
    # What a mail client sends for "List-Unsubscribe-Post: List-Unsubscribe=One-Click".
    done = web.post(f"/unsubscribe/{token}", data={"List-Unsubscribe": "One-Click"})
    assert done.status_code == 200 and "will not receive any more emails" in done.text
    assert contact(app, "email", "ana@ministry.example").status == "stopped"  # type: ignore[union-attr]
    forged = tokens.unsubscribe_token(b"another key", "ana@ministry.example")
    assert web.post(f"/unsubscribe/{forged}").status_code == 404


def test_an_opt_out_is_taken_where_the_mail_library_is_not_installed(
    app: App, web: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A plain install without the email extra (the channel still enabled, its mail off): the
    link in a mail sent before still unsubscribes — the token is read by the channel's spec."""
    from tests.auxil.without import NotInstalled

    monkeypatch.setattr(sys, "meta_path", [NotInstalled({"aiosmtplib"}), *sys.meta_path])
    for name in [n for n in sys.modules if n == "aiosmtplib" or n.startswith("aiosmtplib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.delitem(sys.modules, "bot.channels.email.adapter", raising=False)
    app.channels.pop("email", None)
    with app.db.session() as session:
        session.add(Contact(pledgemaker_id=GH, channel="email", address="ana@ministry.example"))
    token = tokens.unsubscribe_token(SIGNING_KEY.encode(), "ana@ministry.example")
    done = web.post(f"/unsubscribe/{token}", data={"List-Unsubscribe": "One-Click"})
    assert done.status_code == 200 and "will not receive any more emails" in done.text
    assert contact(app, "email", "ana@ministry.example").status == "stopped"  # type: ignore[union-attr]
    assert "bot.channels.email.adapter" not in sys.modules, "no adapter was needed"


def test_unsubscribing_from_an_invitation_means_no_more_invitations(
    app: App, web: TestClient
) -> None:
    set_address(app, GH, email="ana@ministry.example")
    invite(app, [GH])
    token = tokens.unsubscribe_token(SIGNING_KEY.encode(), "ana@ministry.example")
    assert web.post(f"/unsubscribe/{token}").status_code == 200
    [mail] = queued(app, channel="email")
    assert mail.state == "cancelled", "the queued invitation is not sent"
    assert handle(app, "email", chat_id="ana@ministry.example", text="hello") == (
        "reply stored: contact has opted out"
    ), "the open invitation was closed, not redeemed"
    assert invite(app, [GH]).skipped == {"opted out": [GH]}


# -- the command -------------------------------------------------------------------------------------
def test_contacts_invite_all_by_email_queues_and_reports(app: App, config_path: Path) -> None:
    set_address(app, GH, email="ana@ministry.example")
    set_address(app, ILO, email="info@ilo.example")
    folder = config_path.parent
    refused = pledgebot(folder, "contacts", "invite", "--all", "--channel", "email", token="1:T")
    assert (refused.returncode, refused.stderr) == (
        1,
        "refusing to invite everyone without --yes\n",
    )
    done = pledgebot(
        folder, "contacts", "invite", "--all", "--channel", "email", "--yes", token="1:T"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        f"{GH}\tana@ministry.example",
        f"{ILO}\tinfo@ilo.example",
    ]
    assert "2 invitation(s) queued on email" in done.stderr
    nothing = pledgebot(
        folder, "contacts", "invite", "--all", "--channel", "email", "--yes", token="1:T"
    )
    assert nothing.returncode == 0 and nothing.stdout == ""
    assert len(queued(app, channel="email")) == 2
    both = pledgebot(folder, "contacts", "invite", GH, "--all", token="1:T")
    assert (both.returncode, both.stderr) == (1, "name one pledgemaker id, or --all (not both)\n")
