"""Email adapter: prompts out over SMTP (aiosmtplib), replies in by polling an IMAP mailbox.

Sending: one ``multipart/alternative`` mail per outbox message — a plain-text part and an HTML
part, both from the same rendered template (Telegram-style HTML) — with
- ``Reply-To: pledge+<outbox id>-<mac>@example.org``: a per-prompt address signed with the
  ``signing_key`` (``tokens.reply_token``), so an answer names the prompt it answers;
- ``Message-ID`` derived from the same token and the idempotency key: a resend after a crash
  carries the same Message-ID (receiving systems keep one copy); it is the receipt's external id;
- ``List-Unsubscribe`` (a mailto, and a one-click https URL when ``unsubscribe_url`` is set);
- the envelope sender is the prompt's own reply address (VERP), so a bounce names its prompt.
SMTP replies map onto ``bot.core.errors`` in ``bot.channels.email.smtp``.

Receiving: ``poll(cursor)`` reads the mailbox (``bot.channels.email.mailbox``: read-only, the
messages whose UID is above the cursor) and turns each mail into the events it stands for
(``bot.channels.email.inbound``: a reply, a bounce, or nothing for an automatic reply).

Invitations (the intended flow, wired by the contacts and conversation layers):
1. ``pledgebot contacts invite ID --channel email`` makes the usual single-use invitation token
   (``bot.community.contacts``) and mails the pledgemaker's known address an invitation whose link
   is ``invite_link(token)``: a ``mailto:`` to ``pledge+join@…`` whose subject is a signed, expiring
   code (``tokens.invite_code``: the token, its expiry, an HMAC).
2. Clicking it opens a mail to us from their own address; ``poll`` finds the code in the
   subject (or the body, if pasted) and reports ``raw["invite"] = {"status": "valid",
   "token": …}`` — or ``"expired"`` / ``"invalid"`` — with the sender's address as ``chat_id``.
3. The conversation redeems the token for that address (``contacts.redeem``), exactly as for a
   Telegram ``/start TOKEN``, and confirms by mail.

Secrets come only from the environment (``smtp_password_env``, ``imap_password_env``,
``signing_key_env``) and are never logged.
"""

from __future__ import annotations

import asyncio
import mimetypes
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from email import policy
from email.message import EmailMessage
from email.utils import formatdate
from pathlib import Path
from typing import ClassVar
from urllib.parse import quote

import aiosmtplib
from pydantic import BaseModel, SecretStr

from bot.channels.base import ChatChannel, InboundEvent, OutboundMessage, Receipt
from bot.channels.email import tokens
from bot.channels.email.inbound import MailReader, attachment
from bot.channels.email.mailbox import Mailbox
from bot.channels.email.settings import JOIN_TAG, UNSUBSCRIBE_TAG, EmailSettings
from bot.channels.email.smtp import smtp_error
from bot.channels.email.text import html_document, html_to_text, subject_of
from bot.channels.ratelimit import Limits, per_second
from bot.core import choices
from bot.core.errors import Rejected, TransientError


class EmailChannel:
    name: ClassVar[str] = "email"
    Settings: ClassVar[type[BaseModel]] = EmailSettings

    def __init__(
        self,
        settings: EmailSettings,
        secrets: Mapping[str, SecretStr],
        *,
        limits: Limits | None = None,
    ) -> None:
        self.settings = settings
        self._key = secrets["signing_key"].get_secret_value().encode()
        self._smtp_password = secrets.get("smtp_password")
        self.mailbox = Mailbox(settings, secrets.get("imap_password"))
        self.reader = MailReader(settings, self._key)
        self.listener_key = f"email:{self.mailbox.user}@{settings.imap_host}/{settings.imap_folder}"
        self.limits = limits or Limits()
        self._rate = [per_second(settings.max_messages_per_second)]

    async def start(self) -> None:
        """Nothing to open ahead: every send and poll makes its own connection."""

    async def aclose(self) -> None:
        return None

    # -- addresses and tokens ------------------------------------------------------------------
    def reply_address(self, outbox_id: int) -> str:
        return self.settings.tagged(tokens.reply_token(self._key, outbox_id))

    def message_id(self, message: OutboundMessage) -> str:
        return tokens.message_id_for(
            self._key, message.id, message.idempotency_key, self.settings.domain()
        )

    async def invite_link(self, token: str) -> str:
        expires = datetime.now(UTC) + timedelta(days=self.settings.invite_valid_days)
        code = tokens.invite_code(self._key, token, expires)
        return f"mailto:{self.settings.tagged(JOIN_TAG)}?subject={quote(code)}"

    # -- sending -------------------------------------------------------------------------------
    def compose(self, message: OutboundMessage) -> EmailMessage:
        """The mail for one outbox message (pure: tests and previews read it)."""
        html = message.text if message.parse_mode == "HTML" else _escape_plain(message.text)
        if message.buttons:  # no buttons in mail: numbered options, answered by reply
            html += "\n\n" + _escape_plain(choices.as_text(message.buttons))
        mail = EmailMessage(policy=policy.SMTP)
        mail["Subject"] = self.settings.subject or subject_of(html) or "…"
        mail["From"] = self.settings.from_address
        mail["To"] = message.recipient
        mail["Reply-To"] = self.reply_address(message.id)
        mail["Date"] = formatdate(usegmt=True)
        mail["Message-ID"] = self.message_id(message)
        if message.reply_to and message.reply_to.startswith("<"):
            mail["In-Reply-To"] = message.reply_to
            mail["References"] = message.reply_to
        unsubscribe = [f"<mailto:{self.settings.tagged(UNSUBSCRIBE_TAG)}?subject=unsubscribe>"]
        if self.settings.unsubscribe_url:
            token = tokens.unsubscribe_token(self._key, message.recipient)
            unsubscribe.insert(0, f"<{self.settings.unsubscribe_url.replace('{token}', token)}>")
            if self.settings.unsubscribe_url.startswith("https://"):
                mail["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        mail["List-Unsubscribe"] = ", ".join(unsubscribe)
        # Asks Exchange not to answer with an out-of-office (others honour Auto-Submitted only
        # on automatic answers, which a prompt is not).
        mail["X-Auto-Response-Suppress"] = "OOF, AutoReply"
        # Quoted-printable: readable in the raw source, and what filters expect of text.
        mail.set_content(html_to_text(html) + "\n", cte="quoted-printable")
        mail.add_alternative(html_document(html), subtype="html", cte="quoted-printable")
        for item in message.media:
            path = Path(item.path)
            kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            main, _, sub = kind.partition("/")
            mail.add_attachment(path.read_bytes(), maintype=main, subtype=sub, filename=path.name)
        return mail

    async def send(self, message: OutboundMessage) -> Receipt:
        if message.action != "send":
            raise Rejected(f"email cannot {message.action} a message")
        mail = await asyncio.to_thread(self.compose, message)  # reads attached files
        await self.limits.acquire(f"{self.listener_key}:send", self._rate)
        settings = self.settings
        try:
            await aiosmtplib.send(
                mail,
                sender=self.reply_address(message.id),  # bounces come back tagged (VERP)
                recipients=[message.recipient],
                hostname=settings.smtp_host,
                port=settings.smtp_port,
                username=settings.smtp_username,
                password=(self._smtp_password.get_secret_value() if self._smtp_password else None),
                use_tls=settings.smtp_ssl,
                start_tls=settings.smtp_starttls,
                timeout=settings.request_timeout,
            )
        except aiosmtplib.SMTPException as exc:
            raise smtp_error(exc) from None
        except (OSError, TimeoutError) as exc:
            raise TransientError(f"SMTP: {exc or type(exc).__name__}") from None
        return Receipt(external_id=str(mail["Message-ID"]))

    # -- receiving -----------------------------------------------------------------------------
    async def poll(self, cursor: int | None) -> tuple[list[InboundEvent], int | None]:
        found, validity, next_cursor = await self.mailbox.new_messages(cursor or 0)
        events = [
            event
            for uid, data in found
            for event in self.reader.events(data, uid=uid, validity=validity)
        ]
        if not found and self.settings.poll_interval:
            await asyncio.sleep(self.settings.poll_interval)  # an empty mailbox: look again later
        return events, next_cursor

    async def answer_button(self, event: InboundEvent) -> None:
        return None  # no buttons in email

    async def download(self, file_id: str) -> bytes:
        match = re.fullmatch(r"(\d+)/(\d+)/(\d+)", file_id)
        if match is None:
            raise Rejected(f"not an email attachment id: {file_id!r}")
        validity, uid, index = (int(g) for g in match.groups())
        payload = attachment(await self.mailbox.message(uid, validity), index)
        if payload is None:
            raise Rejected(f"no attachment {file_id} in the mailbox")
        return payload


def _escape_plain(text: str) -> str:
    """Plain text as the Telegram-style HTML the converters read."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# What its spec promises, held by mypy (tests/channels/test_specs.py checks it at run time).
_AS_CHAT_CHANNEL: type[ChatChannel] = EmailChannel
