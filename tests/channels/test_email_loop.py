"""The whole loop on email, end to end: a prompt goes out by SMTP (aiosmtpd), the pledgemaker
answers from their mail client (quoting the prompt), pledgebot reads it by IMAP (pymap), and the
answer is stored once, stripped of the quote and linked to its prompt; "unsubscribe" opts them
out; a permanent bounce marks them gone. The bot's own invitation mail, answered, connects the
address."""

from __future__ import annotations

from collections.abc import AsyncIterator
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.campaigns.followup import FollowupCampaign
from bot.community import invitations
from bot.core.models import (
    Contact,
    JourneyUpdate,
    OutboxMessage,
    Pledgemaker,
    Prompt,
    Reply,
    utcnow,
)
from bot.scheduling import runs
from tests.auxil.live import Live, eventually, start_live
from tests.channels import mailserver
from tests.channels.mailserver import MailServer, answer
from tests.channels.test_email import postfix_dsn

GH = "gh-min-labour"
ANA = "ana@ngo.example"
SPEC = FollowupCampaign.model_validate(
    {"id": "mail-checkin", "kind": "followup", "pillar": "act", "channels": ["email"]}
)


@pytest.fixture
async def mail_live(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[Live, MailServer]]:
    server = MailServer(tmp_path / "mail")
    server.start()
    for env, value in (
        ("PLEDGEBOT_TEST_SMTP_PASSWORD", mailserver.SMTP_PASSWORD),
        ("PLEDGEBOT_IMAP_PASSWORD", mailserver.IMAP_PASSWORD),
        ("PLEDGEBOT_EMAIL_SIGNING_KEY", mailserver.SIGNING_KEY),
    ):
        monkeypatch.setenv(env, value)
    extra = f"""
[channels.email]
enabled = true
from_address = "Action Pledge <{mailserver.BOT_ADDRESS}>"
smtp_host = "127.0.0.1"
smtp_port = {server.smtp_port}
smtp_starttls = false
smtp_username = "{mailserver.SMTP_USER}"
smtp_password_env = "PLEDGEBOT_TEST_SMTP_PASSWORD"
imap_host = "127.0.0.1"
imap_port = {server.imap_port}
imap_ssl = false
imap_username = "{mailserver.BOT_USER}"
poll_interval = 0.2
max_messages_per_second = 100
"""
    live = await start_live(tmp_path, monkeypatch, extra=extra)
    try:
        yield live, server
    finally:
        await live.close()
        live.app.close()
        await live.sandbox.stop()
        server.stop()


@pytest.fixture
async def mail_loop(mail_live: tuple[Live, MailServer]) -> tuple[Live, MailServer]:
    """Ana's address already connected to the pledgemaker GH."""
    live, _ = mail_live
    with live.app.db.session() as session:
        session.add(Contact(pledgemaker_id=GH, channel="email", address=ANA, bound_at=utcnow()))
    return mail_live


async def prompt_mail(live: Live, server: MailServer) -> EmailMessage:
    runs.fire(live.app.db, live.app.templates, SPEC, utcnow(), trigger="manual", only=GH)
    return await eventually(lambda: next(iter(server.received(ANA)), None), "the prompt by mail")


async def test_an_answer_by_mail_is_stored_once_and_linked_to_its_prompt(
    mail_loop: tuple[Live, MailServer],
) -> None:
    live, server = mail_loop
    prompt = await prompt_mail(live, server)
    assert "List-Unsubscribe" in prompt and prompt.get_body(("html",)) is not None
    server.submit(answer(prompt, "We trained 40 labour inspectors in Kumasi.", sender=ANA))
    reply = await eventually(
        lambda: live.scalar(select(Reply).where(Reply.channel == "email")), "the answer stored"
    )
    await live.settle()
    prompt_row = live.scalar(select(Prompt).where(Prompt.campaign_id == "mail-checkin"))
    assert reply.prompt_id == prompt_row.id, "linked to the prompt it answers"
    assert reply.text == "We trained 40 labour inspectors in Kumasi.", "the quote is stripped"
    assert live.count(Reply) == 1
    update = live.scalar(select(JourneyUpdate))
    assert update is not None and update.prompt_id == prompt_row.id and update.pillar == "act"
    thanks = [m for m in server.received(ANA)[1:]]
    assert thanks, "the bot answered by mail too (thanks / consent question)"


async def test_unsubscribe_by_mail_opts_them_out(mail_loop: tuple[Live, MailServer]) -> None:
    live, server = mail_loop
    prompt = await prompt_mail(live, server)
    server.submit(answer(prompt, "Unsubscribe", sender=ANA))
    await eventually(
        lambda: live.scalar(select(Contact.status).where(Contact.address == ANA)) == "stopped",
        "the contact to stop",
    )


async def test_a_permanent_bounce_marks_the_contact_gone(
    mail_loop: tuple[Live, MailServer],
) -> None:
    live, server = mail_loop
    server.refuse(ANA)  # their mailbox was closed: the next mail bounces
    runs.fire(live.app.db, live.app.templates, SPEC, utcnow(), trigger="manual", only=GH)
    await eventually(
        lambda: live.scalar(select(Contact.status).where(Contact.address == ANA)) == "gone",
        "the contact to be gone",
    )
    assert live.scalar(select(OutboxMessage.state).where(OutboxMessage.recipient == ANA)) == (
        "failed"
    )


async def test_a_bounce_report_arriving_later_marks_the_contact_gone(
    mail_loop: tuple[Live, MailServer],
) -> None:
    """Their server accepted the mail, then gave up: a delivery report comes back to the
    prompt's own return address and is read like any mail — not stored as their reply."""
    live, server = mail_loop
    prompt = await prompt_mail(live, server)
    notice = postfix_dsn(prompt, action="failed", status="5.1.1")
    server.deliver(notice, str(prompt["Return-Path"]).strip("<>"))
    await eventually(
        lambda: live.scalar(select(Contact.status).where(Contact.address == ANA)) == "gone",
        "the contact to be gone",
    )
    await live.settle()
    assert live.count(Reply) == 0, "a bounce is not an answer"


async def test_an_invitation_by_mail_answered_connects_the_address(
    mail_live: tuple[Live, MailServer],
) -> None:
    live, server = mail_live
    with live.app.db.session() as session:
        session.get(Pledgemaker, GH).handles["email"] = ANA  # type: ignore[union-attr]
        assert invitations.send(session, live.app.templates, [GH], "email").queued == [(GH, ANA)]
    invitation = await eventually(lambda: next(iter(server.received(ANA)), None), "the mail")
    assert invitation["Subject"] == "Follow-ups on your action pledge"
    assert "List-Unsubscribe" in invitation
    assert live.count(Contact) == 0, "invited is not connected"
    server.submit(answer(invitation, "Yes, happy to.", sender=ANA))
    contact = await eventually(
        lambda: live.scalar(select(Contact).where(Contact.address == ANA)), "the binding"
    )
    assert (contact.pledgemaker_id, contact.status) == (GH, "active")
    welcome = await eventually(lambda: server.received(ANA)[1:], "the welcome mail")
    assert "Welcome, Ministry of Employment" in welcome[0].get_body(("plain",)).get_content()
    await live.settle()
    assert live.count(Reply) == 0, "a yes to the invitation is not an answer to a prompt"
