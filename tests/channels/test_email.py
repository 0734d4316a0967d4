"""The email channel against real servers on loopback: aiosmtpd (SMTP, AUTH required) delivering
into maildirs and pymap (IMAP, maildir backend) serving the bot's mailbox (see mailserver.py).

Sending a prompt, its answer coming back once and linked to it, bounces, out-of-office replies,
images, every SMTP/IMAP failure mapped onto bot.core.errors; and the pure parts (reply stripping on
real clients' layouts in en/fr/es, opt-out words, signed tokens) as tables.
"""

from __future__ import annotations

import io
import logging
import os
import struct
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email import policy
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import unquote

import pytest
from pydantic import ValidationError

from bot.channels.base import InboundEvent, OutboundMessage
from bot.channels.email import replies, tokens
from bot.channels.email.adapter import EmailChannel
from bot.channels.email.settings import EmailSettings
from bot.channels.email.text import html_to_text
from bot.channels.registry import plain_text_channels
from bot.core.errors import (
    ChannelUnauthorized,
    RateLimited,
    RecipientGone,
    Rejected,
    TransientError,
)
from bot.text.templates import Templates
from tests.channels import mailserver
from tests.channels.mailserver import BOT_ADDRESS, MailServer, answer, free_port

ROOT = Path(__file__).resolve().parents[2]
KEY = mailserver.SIGNING_KEY.encode()
ANA = "ana@ngo.example"
PROMPT = (
    "<b>Act</b> · Ministry of Labour\n\n"
    'How is your pledge “Zero child labour in cocoa” going? See <a href="https://pledge.example.org/act">'
    "the pledge page</a>.\n\nReply to this message."
)


@pytest.fixture(scope="module")
def mail(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MailServer]:
    server = MailServer(tmp_path_factory.mktemp("mail"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def channel(mail: MailServer) -> EmailChannel:
    return mail.channel()


def prompt(
    number: int, recipient: str = ANA, text: str = PROMPT, **extra: object
) -> OutboundMessage:
    return OutboundMessage(
        id=number,
        recipient=recipient,
        text=text,
        parse_mode="HTML",
        idempotency_key=f"run:7:{recipient}:{number}",
        **extra,  # type: ignore[arg-type]
    )


async def caught_up(channel: EmailChannel) -> int:
    """The cursor past everything already in the bot's mailbox (other tests' mail)."""
    events, cursor = await channel.poll(None)
    while True:
        events, after = await channel.poll(cursor)
        if after == cursor and not events:
            return int(cursor or 0)
        cursor = after


async def new_events(channel: EmailChannel, cursor: int) -> tuple[list[InboundEvent], int]:
    events, after = await channel.poll(cursor)
    return events, int(after or 0)


def last_received(mail: MailServer, address: str = ANA) -> EmailMessage:
    return mail.received(address)[-1]


def png(size: int = 64) -> bytes:
    """A real PNG of noise (incompressible, so it is not mistaken for an icon)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    rows = b"".join(b"\x00" + os.urandom(size * 3) for _ in range(size))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


# -- sending ---------------------------------------------------------------------------------


def test_buttons_are_written_out_as_numbered_options(channel: EmailChannel) -> None:
    buttons = [
        [
            {"text": "Yes, share it", "data": "pc:yes:1"},
            {"text": "Keep <it> private", "data": "pc:no:1"},
        ]
    ]
    mail = channel.compose(prompt(1, text="May we share it?", buttons=buttons))
    plain = mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert plain.rstrip().endswith("[1] Yes, share it\n[2] Keep <it> private")
    html = mail.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert "[2] Keep &lt;it&gt; private" in html


async def test_a_prompt_goes_out_as_text_and_html_with_a_signed_reply_address(
    mail: MailServer, channel: EmailChannel
) -> None:
    receipt = await channel.send(prompt(101))
    sent = last_received(mail)
    assert sent["Message-ID"] == receipt.external_id
    assert sent["Subject"] == "Act · Ministry of Labour"
    assert sent["From"] == f"Action Pledge <{BOT_ADDRESS}>"
    assert sent["To"] == ANA
    text = sent.get_body(preferencelist=("plain",)).get_content()
    assert text.startswith("Act · Ministry of Labour\n\nHow is your pledge")
    assert "the pledge page (https://pledge.example.org/act)" in text
    assert "<b>" not in text
    html = sent.get_body(preferencelist=("html",)).get_content()
    assert "<b>Act</b>" in html and 'href="https://pledge.example.org/act"' in html
    # The answer's address names the prompt, signed; bounces come back to it too (VERP).
    local, _, domain = str(sent["Reply-To"]).partition("@")
    assert domain == "example.org" and local.startswith("pledge+")
    assert tokens.read_reply_token(KEY, local.removeprefix("pledge+")) == 101
    assert str(sent["Return-Path"]) == f"<{sent['Reply-To']}>"
    assert sent["List-Unsubscribe"] == "<mailto:pledge+unsubscribe@example.org?subject=unsubscribe>"
    assert sent["List-Unsubscribe-Post"] is None  # no https URL configured


async def test_one_click_unsubscribe_when_an_https_url_is_configured(mail: MailServer) -> None:
    channel = mail.channel(unsubscribe_url="https://pledge.example.org/unsubscribe/{token}")
    await channel.send(prompt(102))
    sent = last_received(mail)
    url, mailto = (part.strip(" <>") for part in str(sent["List-Unsubscribe"]).split(","))
    assert mailto.startswith("mailto:pledge+unsubscribe@")
    token = url.removeprefix("https://pledge.example.org/unsubscribe/")
    assert tokens.read_unsubscribe_token(KEY, token) == ANA
    assert sent["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


async def test_a_resend_after_a_crash_carries_the_same_message_id(
    mail: MailServer, channel: EmailChannel
) -> None:
    first = await channel.send(prompt(103))
    again = await channel.send(prompt(103, maybe_sent=True))
    other = await channel.send(prompt(104))
    assert first.external_id == again.external_id != other.external_id
    assert [m["Message-ID"] for m in mail.received(ANA)[-3:]] == [
        first.external_id,
        first.external_id,
        other.external_id,
    ]


async def test_a_follow_up_is_threaded_under_the_mail_it_continues(
    mail: MailServer, channel: EmailChannel
) -> None:
    first = await channel.send(prompt(105))
    await channel.send(prompt(106, text="A gentle reminder.", reply_to=first.external_id))
    sent = last_received(mail)
    assert sent["In-Reply-To"] == first.external_id == sent["References"]


@pytest.mark.parametrize(
    ("language", "subject", "words"),
    [
        (
            "en",
            "Act · Ministry of Labour",
            "How is your pledge “Zero child labour” of 2 March 2021",
        ),
        (
            "fr",
            "Agir · Ministry of Labour",
            "Où en est votre engagement « Zero child labour » du 2 mars 2021",
        ),
        (
            "es",
            "Actuar · Ministry of Labour",
            "¿Cómo avanza su compromiso «Zero child labour» del 2 de marzo de 2021",
        ),
    ],
)
async def test_the_follow_up_templates_read_well_as_email(
    mail: MailServer, channel: EmailChannel, language: str, subject: str, words: str
) -> None:
    pledgemaker = {
        "name": "Ministry of Labour & Employment",
        "pledge_title": "Zero child labour",
        "pledge_date": datetime(2021, 3, 2).date(),
    }
    rendered = Templates(ROOT / "templates", plain_text=plain_text_channels()).render(
        "followup/act", language, pledgemaker=pledgemaker, buttons=False
    )
    options = [[{"text": "Share progress", "data": "pb:progress"}]]
    await channel.send(prompt(110, text=rendered, buttons=options))
    sent = last_received(mail)
    assert sent["Subject"] == subject + " & Employment"
    text = sent.get_body(preferencelist=("plain",)).get_content()
    assert words in text and "&amp;" not in text
    assert "button" not in text and "botón" not in text and "bouton" not in text
    assert text.rstrip().endswith("[1] Share progress")


# -- receiving -------------------------------------------------------------------------------


async def test_an_answer_comes_back_once_linked_to_its_prompt(
    mail: MailServer, channel: EmailChannel
) -> None:
    cursor = await caught_up(channel)
    await channel.send(prompt(201))
    mail.submit(
        answer(
            last_received(mail),
            "We trained 40 labour inspectors in March.\n\n-- \nAna Pérez\nNGO director",
            sender="Ana Pérez <Ana@NGO.example>",
        )
    )
    events, cursor = await new_events(channel, cursor)
    [event] = events
    assert event.kind == "message"
    assert event.chat_id == ANA  # lower-case
    assert event.reply_to == "201"
    assert event.text == "We trained 40 labour inspectors in March."
    assert event.key == f"mail:{event.message_id}"
    assert event.sender == {"address": ANA, "name": "Ana Pérez"}
    assert event.date is not None
    assert "wrote:" in event.raw["text"] and "Ana Pérez" in event.raw["text"]  # kept whole
    assert ["Subject", "Re: Act · Ministry of Labour"] in event.raw["headers"]
    assert event.raw["opt_out"] is False
    assert await new_events(channel, cursor) == ([], cursor)  # acknowledged: not again


async def test_a_batch_served_again_keeps_its_event_keys(
    mail: MailServer, channel: EmailChannel
) -> None:
    cursor = await caught_up(channel)
    mail.submit(answer(last_received(mail), "Two new schools.", sender=ANA))
    first, _ = await new_events(channel, cursor)
    served_again, _ = await new_events(mail.channel(), cursor)  # not acknowledged: same batch
    assert [e.key for e in first] == [e.key for e in served_again] and len(first) == 1


async def test_a_recreated_mailbox_is_read_again_from_its_start(
    mail: MailServer, channel: EmailChannel
) -> None:
    cursor = await caught_up(channel)
    mail.submit(answer(last_received(mail), "Still here.", sender=ANA))
    [event], cursor = await new_events(channel, cursor)
    # A cursor past the mailbox's UIDNEXT belongs to an older mailbox: read it all again;
    # the event keys (Message-IDs) make what was stored before a no-op in the inbox.
    again, _ = await mail.channel(poll_batch=1000).poll(cursor + 1000)
    assert event.key in [e.key for e in again]


async def test_an_answer_without_the_plus_address_links_by_in_reply_to(
    mail: MailServer, channel: EmailChannel
) -> None:
    cursor = await caught_up(channel)
    await channel.send(prompt(202))
    reply = answer(last_received(mail), "Done.", sender=ANA, quote="none")
    reply.replace_header("To", BOT_ADDRESS)  # they wrote to the plain address
    mail.submit(reply)
    [event], _ = await new_events(channel, cursor)
    assert event.reply_to == "202"


async def test_a_forged_reply_address_links_nothing(
    mail: MailServer, channel: EmailChannel
) -> None:
    cursor = await caught_up(channel)
    forged = EmailMessage(policy=policy.SMTP)
    forged["From"] = ANA
    forged["To"] = "pledge+203-aaaaaaaaaaaaaaaa@example.org"
    forged["Subject"] = "hello"
    forged["Message-ID"] = "<forged.1@ngo.example>"
    forged.set_content("Guessing tokens.")
    mail.submit(forged)
    [event], _ = await new_events(channel, cursor)
    assert event.reply_to is None and event.text == "Guessing tokens."


async def test_an_html_only_reply_is_read_as_text_without_its_quote(
    mail: MailServer, channel: EmailChannel
) -> None:
    cursor = await caught_up(channel)
    html = EmailMessage(policy=policy.SMTP)
    html["From"] = ANA
    html["To"] = channel.reply_address(204)
    html["Subject"] = "Re: Act"
    html["Message-ID"] = "<html.1@ngo.example>"
    html.set_content(
        '<div dir="ltr">Nous avons formé <b>40</b> inspecteurs.<br><br>Awa</div><br>'
        '<div class="gmail_quote"><div dir="ltr" class="gmail_attr">Le mar. 3 mars 2026 à '
        "10:02, Action Pledge &lt;pledge@example.org&gt; a écrit :<br></div>"
        '<blockquote class="gmail_quote">Agir · ONG<br>Où en est votre engagement ?</blockquote>'
        "</div>",
        subtype="html",
    )
    mail.submit(html)
    [event], _ = await new_events(channel, cursor)
    assert event.text == "Nous avons formé 40 inspecteurs.\n\nAwa"
    assert event.reply_to == "204"


async def test_an_image_attached_to_an_answer_can_be_downloaded(
    mail: MailServer, channel: EmailChannel
) -> None:
    cursor = await caught_up(channel)
    await channel.send(prompt(205))
    reply = answer(last_received(mail), "Our new school, opened today.", sender=ANA)
    photo, logo = png(64), png(4)
    reply.add_attachment(photo, maintype="image", subtype="png", filename="school.png")
    reply.add_attachment(logo, maintype="image", subtype="png", filename="logo.png")
    mail.submit(reply)
    [event], _ = await new_events(channel, cursor)
    assert event.text == "Our new school, opened today."
    [media] = event.media  # the signature-sized logo is not a photo
    assert media["type"] == "photo" and media["file_unique_id"]
    assert "school.png" not in str(event.raw)  # raw keeps text and headers, not attachments
    assert await channel.download(media["file_id"]) == photo
    validity = media["file_id"].split("/")[0]
    with pytest.raises(Rejected, match="no longer"):
        await channel.download(f"{validity}/999999/1")
    with pytest.raises(Rejected, match="recreated"):
        await channel.download("1/1/1")


@pytest.mark.parametrize(
    ("subject", "text", "to_unsubscribe"),
    [
        ("Re: Act · Ministry of Labour", "STOP", False),
        (
            "Re: Agir",
            "Me désabonner, merci.\n\nLe mar. 3 mars 2026 à 10:02, X <p@example.org> a écrit :",
            False,
        ),
        ("Re: Actuar", "Baja", False),
        ("unsubscribe", "This message was automatically generated by Gmail.", True),
        ("Unsubscribe", "", False),
    ],
)
async def test_stop_and_unsubscribe_are_opt_outs(
    mail: MailServer, channel: EmailChannel, subject: str, text: str, to_unsubscribe: bool
) -> None:
    cursor = await caught_up(channel)
    out = EmailMessage(policy=policy.SMTP)
    out["From"] = ANA
    out["To"] = "pledge+unsubscribe@example.org" if to_unsubscribe else channel.reply_address(206)
    out["Subject"] = subject
    out["Message-ID"] = f"<optout.{subject}.{len(text)}.{to_unsubscribe}@ngo.example>".replace(
        " ", ""
    )
    out.set_content(text)
    mail.submit(out)
    [event], _ = await new_events(channel, cursor)
    assert event.kind == "message" and event.raw["opt_out"] is True


async def test_a_bounce_becomes_a_bounce_event_for_the_failed_address(
    mail: MailServer, channel: EmailChannel
) -> None:
    cursor = await caught_up(channel)
    await channel.send(prompt(301, recipient="old@ngo.example"))
    sent = last_received(mail, "old@ngo.example")
    verp = str(sent["Return-Path"]).strip("<>")
    mail.deliver(postfix_dsn(sent, action="failed", status="5.1.1"), verp, sender="")
    [event], cursor = await new_events(channel, cursor)
    assert event.kind == "bounce"
    assert event.chat_id == "old@ngo.example"
    assert event.reply_to == "301"
    assert event.raw["permanent"] is True and event.raw["status"] == "5.1.1"
    assert "User unknown" in event.text
    # A delay notice is not a bounce; nor is it an answer.
    mail.deliver(postfix_dsn(sent, action="delayed", status="4.4.1"), verp, sender="")
    assert (await new_events(channel, cursor))[0] == []


async def test_an_exim_bounce_without_a_report_names_the_failed_address(
    mail: MailServer, channel: EmailChannel
) -> None:
    cursor = await caught_up(channel)
    await channel.send(prompt(302, recipient="moved@ngo.example"))
    sent = last_received(mail, "moved@ngo.example")
    notice = (
        "From: Mail Delivery System <Mailer-Daemon@mail.ngo.example>\r\n"
        f"To: {str(sent['Return-Path']).strip('<>')}\r\n"
        "Subject: Mail delivery failed: returning message to sender\r\n"
        "Message-ID: <E1abc-0001@mail.ngo.example>\r\n"
        "Auto-Submitted: auto-replied\r\n\r\n"
        "This message was created automatically by mail delivery software.\r\n\r\n"
        "A message that you sent could not be delivered to one or more of its\r\n"
        "recipients. This is a permanent error. The following address(es) failed:\r\n\r\n"
        "  moved@ngo.example\r\n    mailbox is full: retry timeout exceeded\r\n\r\n"
        "------ This is a copy of the message, including all the headers. ------\r\n\r\n"
        + sent.as_string().replace("\n", "\r\n")
    ).encode()
    mail.deliver(notice, str(sent["Return-Path"]).strip("<>"))
    [event], _ = await new_events(channel, cursor)
    assert (event.kind, event.chat_id, event.reply_to) == ("bounce", "moved@ngo.example", "302")


@pytest.mark.parametrize(
    "headers",
    [
        {"Auto-Submitted": "auto-replied", "Subject": "Automatic reply: Act · Ministry"},
        {"Auto-Submitted": "auto-generated", "X-Auto-Response-Suppress": "All",
         "Subject": "Out of Office: Act"},
        {"Subject": "Réponse automatique : Agir · ONG"},
        {"Subject": "Respuesta automática: Actuar", "Precedence": "auto_reply"},
        {"X-Autoreply": "yes", "Subject": "Re: Act"},
    ],
)  # fmt: skip
async def test_an_out_of_office_is_not_an_answer(
    mail: MailServer, channel: EmailChannel, headers: dict[str, str]
) -> None:
    cursor = await caught_up(channel)
    away = EmailMessage(policy=policy.SMTP)
    away["From"] = ANA
    away["To"] = channel.reply_address(401)
    for name, value in headers.items():
        away[name] = value
    away["Message-ID"] = f"<away.{abs(hash(str(headers)))}@ngo.example>"
    away.set_content("I am out of the office until 16 March with limited access to email.")
    mail.submit(away)
    events, after = await new_events(channel, cursor)
    assert events == [] and after > cursor  # read, acknowledged, and not stored as a reply


async def test_an_invitation_code_comes_back_with_the_senders_address(
    mail: MailServer, channel: EmailChannel
) -> None:
    cursor = await caught_up(channel)
    link = await channel.invite_link("Tok3n_abcdefghijklmnopqrstuvwx")
    address, _, query = link.removeprefix("mailto:").partition("?subject=")
    assert address == "pledge+join@example.org"
    expired = tokens.invite_code(
        KEY, "Old_abcdefghijklmnopqrstuvwxyz12", datetime.now(UTC) - timedelta(days=1)
    )
    for number, subject in enumerate([unquote(query), expired]):
        join = EmailMessage(policy=policy.SMTP)
        join["From"] = "Kofi <kofi@labour.gov.gh>"
        join["To"] = address
        join["Subject"] = subject
        join["Message-ID"] = f"<join.{number}@labour.gov.gh>"
        join.set_content("")
        mail.submit(join)
    events, _ = await new_events(channel, cursor)
    # Two mails delivered in the same instant: the mailbox need not number them in that order.
    valid, old = sorted(events, key=lambda event: str(event.message_id))
    assert valid.chat_id == "kofi@labour.gov.gh"
    assert valid.raw["invite"] == {"status": "valid", "token": "Tok3n_abcdefghijklmnopqrstuvwx"}
    assert old.raw["invite"] == {"status": "expired"}


async def test_our_own_mail_in_the_mailbox_is_not_an_answer(
    mail: MailServer, channel: EmailChannel
) -> None:
    cursor = await caught_up(channel)
    await channel.send(prompt(501, recipient=BOT_ADDRESS))  # a copy to ourselves, e.g. a Bcc
    events, after = await new_events(channel, cursor)
    assert events == [] and after > cursor


# -- failures --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "error"),
    [
        (421, RateLimited),  # "try again in 30 seconds"
        (450, TransientError),
        (451, TransientError),
        (452, TransientError),
        (550, RecipientGone),
        (551, RecipientGone),
        (553, RecipientGone),
        (552, Rejected),
        (554, Rejected),
        (535, ChannelUnauthorized),
    ],
)
async def test_smtp_answers_map_onto_delivery_errors(
    mail: MailServer, channel: EmailChannel, code: int, error: type[Exception]
) -> None:
    before = len(mail.received("fault@ngo.example"))
    mail.fail_next(code)
    with pytest.raises(error) as caught:
        await channel.send(prompt(600 + code, recipient="fault@ngo.example"))
    assert str(code) in str(caught.value)
    if isinstance(caught.value, RateLimited):
        assert caught.value.retry_after == 30
    assert len(mail.received("fault@ngo.example")) == before  # nothing was delivered
    await channel.send(prompt(600 + code, recipient="fault@ngo.example"))  # and then it goes
    assert len(mail.received("fault@ngo.example")) == before + 1


async def test_a_rate_limit_without_a_delay_waits_a_minute(
    mail: MailServer, channel: EmailChannel
) -> None:
    mail.fail_next(451, "4.7.1 Sending rate limit exceeded for this account")
    with pytest.raises(RateLimited) as caught:
        await channel.send(prompt(700))
    assert caught.value.retry_after == 60


async def test_an_unknown_recipient_is_gone(mail: MailServer, channel: EmailChannel) -> None:
    with pytest.raises(RecipientGone, match=r"5\.1\.1"):
        await channel.send(prompt(701, recipient=mail.refuse("left@ngo.example")))


async def test_a_mail_over_the_servers_size_limit_is_rejected(
    mail: MailServer, channel: EmailChannel
) -> None:
    with pytest.raises(Rejected, match="552"):
        await channel.send(prompt(702, text="x" * (mail.max_message_bytes + 1)))


async def test_wrong_passwords_are_unauthorized_and_never_logged(
    mail: MailServer, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = mail.channel(bad_credentials=True)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(ChannelUnauthorized, match="535") as smtp:
        await wrong.send(prompt(703))
    with pytest.raises(ChannelUnauthorized, match="AUTHENTICATIONFAILED") as imap:
        await wrong.poll(None)
    said = caplog.text + str(smtp.value) + str(imap.value)
    for secret in mail.secrets(bad_credentials=True).values():
        assert secret.get_secret_value() not in said


async def test_a_server_without_starttls_is_a_setting_to_fix(mail: MailServer) -> None:
    with pytest.raises(ChannelUnauthorized, match="smtp_starttls"):
        await mail.channel(smtp_starttls=True).send(prompt(705))


async def test_servers_that_cannot_be_reached_are_transient(mail: MailServer) -> None:
    with pytest.raises(TransientError) as smtp:
        await mail.channel(smtp_port=free_port()).send(prompt(704))
    assert smtp.value.maybe_delivered is False  # never connected: nothing can have gone out
    with pytest.raises(TransientError, match="IMAP"):
        await mail.channel(imap_port=free_port()).poll(None)
    with pytest.raises(TransientError, match="IMAP"):
        await mail.channel(imap_port=free_port()).download("1/1/1")


# -- settings --------------------------------------------------------------------------------


def test_settings_name_their_secrets_by_environment_variable() -> None:
    settings = EmailSettings(enabled=True, smtp_username="bot", smtp_password_env="SMTP_PASS")
    # App.channel() reads every "<secret>_env" setting into secrets["<secret>"].
    named = {
        k.removesuffix("_env") for k, v in settings.model_dump().items() if k.endswith("_env") and v
    }
    assert named == {"smtp_password", "imap_password", "signing_key"}
    assert settings.reply_template() == "pledge+{token}@example.org"


@pytest.mark.parametrize(
    "bad",
    [
        {"smtp_password": "hunter2"},  # a secret in the file: not a known key
        {"smtp_password_env": "not a name"},
        {"reply_address": "pledge@example.org"},
        {"from_address": "Action Pledge"},
        {"smtp_ssl": True, "smtp_starttls": True},
        {"smtp_username": "bot"},
        {"unsubscribe_url": "ftp://example.org/u"},
    ],
)
def test_settings_refuse_mistakes(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        EmailSettings(enabled=True, **bad)  # type: ignore[arg-type]


# -- the pure parts --------------------------------------------------------------------------

GMAIL_EN = """Thanks for asking! We trained 40 labour inspectors in March.

On Tue, 3 Mar 2026 at 10:02, Action Pledge <pledge+42-abc@example.org> wrote:

> Act · Ministry of Labour
>
> How is your pledge going?
"""
GMAIL_FR_WRAPPED = """Nous avons formé 40 inspecteurs du travail en mars.
Merci !

Le mar. 3 mars 2026 à 10:02, Action Pledge <pledge+42-abc@example.org> a
écrit :

> Agir · Ministère du Travail
"""
GMAIL_ES = """Hemos formado a 40 inspectores.

El mar, 3 mar 2026 a las 10:02, Action Pledge (<pledge@example.org>)
escribió:

> Actuar · Ministerio de Trabajo
"""
OUTLOOK_EN = """We opened two new schools in the Ashanti region.

Best regards,
Kofi

From: Action Pledge <pledge@example.org>
Sent: Tuesday, March 3, 2026 10:02 AM
To: Kofi Mensah <kofi@labour.gov.gh>
Subject: Act · Ministry of Labour

How is your pledge going?
"""
OUTLOOK_FR = """Nous avons ouvert deux écoles.

________________________________
De : Action Pledge <pledge@example.org>
Envoyé : mardi 3 mars 2026 10:02
À : Awa Diop <awa@ong.sn>
Objet : Agir · ONG

Où en est votre engagement ?
"""
OUTLOOK_ES = """Abrimos dos escuelas.

-----Mensaje original-----
De: Action Pledge <pledge@example.org>
Enviado el: martes, 3 de marzo de 2026 10:02
Para: Ana <ana@ong.pe>
Asunto: Actuar · ONG
"""
OUTLOOK_ORIGINAL = """Our suppliers signed the code of conduct.

-----Original Message-----
From: Action Pledge [mailto:pledge@example.org]
Sent: 03 March 2026 10:02
"""
APPLE_EN = """Our first cooperative is certified child-labour free.

Sent from my iPhone

> On 3 Mar 2026, at 10:02, Action Pledge <pledge@example.org> wrote:
>
> How is your pledge going?
"""
APPLE_FR = """Notre première coopérative est certifiée.

Envoyé de mon iPhone

> Le 3 mars 2026 à 10:02, Action Pledge <pledge@example.org> a écrit :
>
> Où en est votre engagement ?
"""
APPLE_ES = """Nuestra primera cooperativa está certificada.

Enviado desde mi iPhone

> El 3 mar 2026, a las 10:02, Action Pledge <pledge@example.org> escribió:
>
> ¿Cómo avanza su compromiso?
"""
SIGNATURE = "\n".join(
    [
        "Two districts now have child labour committees.",
        "",
        "-- ",  # the signature delimiter: dash, dash, space
        "Ana Pérez",
        "Directora, ONG Niñez Libre",
        "+51 1 555 0100",
    ]
)
INTERLEAVED = """> How is your pledge going?
Well: 40 inspectors trained.
> Any obstacle?
Funding for the second phase.
"""
NOT_A_QUOTE = """On Monday we met the district committee.
They said: we will visit 12 farms.
From: our field team, Sent: weekly reports.
"""


@pytest.mark.parametrize(
    ("sample", "said"),
    [
        (GMAIL_EN, "Thanks for asking! We trained 40 labour inspectors in March."),
        (GMAIL_FR_WRAPPED, "Nous avons formé 40 inspecteurs du travail en mars.\nMerci !"),
        (GMAIL_ES, "Hemos formado a 40 inspectores."),
        (OUTLOOK_EN, "We opened two new schools in the Ashanti region.\n\nBest regards,\nKofi"),
        (OUTLOOK_FR, "Nous avons ouvert deux écoles."),
        (OUTLOOK_ES, "Abrimos dos escuelas."),
        (OUTLOOK_ORIGINAL, "Our suppliers signed the code of conduct."),
        (APPLE_EN, "Our first cooperative is certified child-labour free."),
        (APPLE_FR, "Notre première coopérative est certifiée."),
        (APPLE_ES, "Nuestra primera cooperativa está certificada."),
        (SIGNATURE, "Two districts now have child labour committees."),
        (INTERLEAVED, "Well: 40 inspectors trained.\nFunding for the second phase."),
        (NOT_A_QUOTE, NOT_A_QUOTE.strip()),
        ("> only the quote\n> of our prompt\n", ""),
    ],
    ids=[
        "gmail-en", "gmail-fr-wrapped", "gmail-es", "outlook-en", "outlook-fr", "outlook-es",
        "outlook-original-message", "apple-en", "apple-fr", "apple-es", "signature",
        "interleaved", "not-a-quote", "nothing-of-their-own",
    ],
)  # fmt: skip
def test_quoted_history_and_signatures_are_stripped(sample: str, said: str) -> None:
    assert replies.strip_reply(sample) == said
    assert replies.strip_reply(sample.replace("\n", "\r\n")) == said


@pytest.mark.parametrize(
    ("text", "opted_out"),
    [
        ("STOP", True),
        ("stop.", True),
        ("Unsubscribe please", True),
        ("Please unsubscribe me!", True),
        ("\n\n  Opt-out\n\nOn Tue … wrote:", True),
        ("Désabonner", True),
        ("Me désinscrire, merci", True),
        ("Arrêter", True),
        ("Baja", True),
        ("Darme de baja por favor", True),
        ("Cancelar suscripción", True),
        ("Stop child labour in cocoa is our goal.", False),
        ("We will stop using suppliers who employ children.", False),
        ("Nous voulons arrêter le travail des enfants.", False),
        ("Dar de baja a los proveedores que no cumplan.", False),
        ("", False),
    ],
)
def test_opt_out_words_in_three_languages(text: str, opted_out: bool) -> None:
    assert replies.is_opt_out(text) is opted_out


def test_reply_tokens_verify_only_as_signed() -> None:
    token = tokens.reply_token(KEY, 42)
    assert tokens.read_reply_token(KEY, token) == 42
    assert tokens.read_reply_token(KEY, token.upper()) == 42  # a server that upper-cases
    number, _, mac = token.partition("-")
    assert tokens.read_reply_token(KEY, f"43-{mac}") is None  # another prompt's number
    assert tokens.read_reply_token(KEY, f"{number}-{mac[:-1]}a") is None
    assert tokens.read_reply_token(b"another key", token) is None
    assert tokens.read_reply_token(KEY, "unsubscribe") is None


def test_message_ids_name_their_prompt_and_are_stable() -> None:
    one = tokens.message_id_for(KEY, 42, "run:7:ana", "example.org")
    assert one == tokens.message_id_for(KEY, 42, "run:7:ana", "example.org")
    assert one != tokens.message_id_for(KEY, 42, "run:8:ana", "example.org")
    assert tokens.outbox_id_in_message_ids(KEY, f"<a@b.c> {one}", "example.org") == 42
    assert tokens.outbox_id_in_message_ids(KEY, one, "elsewhere.org") is None


def test_invitation_codes_are_signed_and_expire() -> None:
    now = datetime(2026, 3, 3, 10, 0, tzinfo=UTC)
    token = "Tok3n_abcdefghijklmnopqrstuvwx"
    code = tokens.invite_code(KEY, token, now + timedelta(days=30))
    assert tokens.read_invite_code(KEY, code, now) == token
    assert tokens.find_invite_code(f"Re: Confirm {code} please") == code
    with pytest.raises(tokens.InviteCodeError) as expired:
        tokens.read_invite_code(KEY, code, now + timedelta(days=31))
    assert expired.value.reason == "expired"
    body, expiry, mac = code.split(".")
    later = tokens._base36(int((now + timedelta(days=3650)).timestamp()))
    for tampered in (f"{body}.{later}.{mac}", f"X{body[1:]}.{expiry}.{mac}", "nonsense"):
        with pytest.raises(tokens.InviteCodeError) as caught:
            tokens.read_invite_code(KEY, tampered, now)
        assert caught.value.reason == "invalid"
    with pytest.raises(tokens.InviteCodeError):
        tokens.read_invite_code(b"another key", code, now)


@pytest.mark.parametrize(
    "token", ["-starts_with_a_dash_0123456789ab", "ends-with-dash-", "_x_y_z_w_"]
)
def test_a_code_is_found_whole_whatever_its_token_begins_or_ends_with(token: str) -> None:
    """secrets.token_urlsafe gives "-" first one time in 64: the code must still be found."""
    now = datetime(2026, 3, 3, 10, 0, tzinfo=UTC)
    code = tokens.invite_code(KEY, token, now + timedelta(days=30))
    for text in (code, f"Re: {code}", f"({code}).", f"Subject:{code}\n"):
        assert tokens.find_invite_code(text) == code, text
    assert tokens.read_invite_code(KEY, tokens.find_invite_code(code) or "", now) == token


def test_unsubscribe_tokens_name_one_address() -> None:
    token = tokens.unsubscribe_token(KEY, "Ana@NGO.example")
    assert tokens.read_unsubscribe_token(KEY, token) == ANA
    _, _, mac = token.partition(".")
    other = tokens.unsubscribe_token(KEY, "kofi@labour.gov.gh").partition(".")[0]
    assert tokens.read_unsubscribe_token(KEY, f"{other}.{mac}") is None


def test_telegram_html_becomes_readable_text() -> None:
    html = '<b>Act</b> · <i>NGO</i>\n\nSee <a href="https://x.org/p">our page</a> &amp; <a href="https://x.org/q">https://x.org/q</a>.'
    assert html_to_text(html) == ("Act · NGO\n\nSee our page (https://x.org/p) & https://x.org/q.")


def test_the_pure_parts_log_nothing() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logging.getLogger().addHandler(handler)
    try:
        replies.strip_reply(GMAIL_EN)
        replies.is_opt_out("STOP")
    finally:
        logging.getLogger().removeHandler(handler)
    assert stream.getvalue() == ""


def postfix_dsn(original: EmailMessage, *, action: str, status: str) -> bytes:
    """A delivery status notification as Postfix writes it (RFC 3464)."""
    recipient = str(original["To"])
    headers = "".join(
        f"{name}: {original[name]}\r\n" for name in ("From", "To", "Subject", "Message-ID")
    )
    return (
        "From: MAILER-DAEMON@mx.ngo.example (Mail Delivery System)\r\n"
        f"To: {str(original['Return-Path']).strip('<>')}\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        f"Message-ID: <dsn.{action}.{abs(hash(str(original['Message-ID'])))}@mx.ngo.example>\r\n"
        "Auto-Submitted: auto-replied\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B0UND"\r\n\r\n'
        "--B0UND\r\nContent-Description: Notification\r\nContent-Type: text/plain\r\n\r\n"
        "This is the mail system at host mx.ngo.example.\r\n\r\n"
        "I'm sorry to have to inform you that your message could not\r\n"
        "be delivered to one or more recipients.\r\n\r\n"
        "--B0UND\r\nContent-Description: Delivery report\r\n"
        "Content-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.ngo.example\r\nX-Postfix-Queue-ID: 4F2A1\r\n\r\n"
        f"Final-Recipient: rfc822; {recipient}\r\nOriginal-Recipient: rfc822;{recipient}\r\n"
        f"Action: {action}\r\nStatus: {status}\r\n"
        f"Diagnostic-Code: smtp; 550 {status} <{recipient}>: Recipient address rejected: "
        "User unknown in local recipient table\r\n\r\n"
        "--B0UND\r\nContent-Description: Undelivered Message Headers\r\n"
        f"Content-Type: text/rfc822-headers\r\n\r\n{headers}\r\n"
        "--B0UND--\r\n"
    ).encode()
