"""Email adapter: prompts out over SMTP (aiosmtplib), replies in by polling an IMAP mailbox.

Sending: one ``multipart/alternative`` mail per outbox message — a plain-text part and an HTML
part, both from the same rendered template (Telegram-style HTML) — with
- ``Reply-To: pledge+<outbox id>-<mac>@example.org``: a per-prompt address signed with the
  ``signing_key`` (``email_text.reply_token``), so an answer names the prompt it answers;
- ``Message-ID`` derived from the same token and the idempotency key: a resend after a crash
  carries the same Message-ID (receiving systems keep one copy); it is the receipt's external id;
- ``List-Unsubscribe`` (a mailto, and a one-click https URL when ``unsubscribe_url`` is set);
- the envelope sender is the prompt's own reply address (VERP), so a bounce names its prompt.
SMTP replies map onto ``bot.core.errors``: 4xx → ``TransientError`` (``RateLimited`` when the server
says to slow down), 550/551/553 to a recipient → ``RecipientGone``, 552/554 → ``Rejected``,
530/535 → ``ChannelUnauthorized``, connection problems and timeouts → ``TransientError``.

Receiving: ``poll(cursor)`` opens the mailbox read-only (``EXAMINE``: nothing is flagged or
moved) with the stdlib ``imaplib`` in a thread, and returns the messages whose UID is above the
cursor (the highest UID already stored). A mailbox whose UIDVALIDITY changed, or whose UIDNEXT is
not above the cursor (it was recreated), is read again from the start: the event key
(``mail:<Message-ID>``) makes a message seen twice one stored event. Each message becomes
- a ``message`` event: the sender's address as ``chat_id``; ``text`` the reply without quoted
  history or signature (the whole plain text is kept in ``raw``); ``reply_to`` the outbox id of
  the prompt, read from the signed plus-address it was sent to (or from ``In-Reply-To``);
  images as ``media`` (``download`` fetches them again from the mailbox);
  ``raw["opt_out"]`` when it says STOP / unsubscribe (or was sent to the List-Unsubscribe
  address) and ``raw["invite"]`` when it carries an invitation code;
- a ``bounce`` event per failed recipient of a delivery status notification (``chat_id`` the
  address that failed, ``reply_to`` the prompt it bounced, ``raw["permanent"]``);
- nothing for an automatic reply (out-of-office, ``Auto-Submitted``): it is not an answer, and
  is only logged; nor for a delay notice or a copy of our own mail.

Invitations (the intended flow, wired by the contacts and conversation layers):
1. ``pledgebot contacts invite ID --channel email`` makes the usual single-use invitation token
   (``bot.community.contacts``) and mails the pledgemaker's known address an invitation whose link
   is
   ``invite_link(token)``: a ``mailto:`` to ``pledge+join@…`` whose subject is a signed, expiring
   code (``email_text.invite_code``: the token, its expiry, an HMAC).
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
import contextlib
import hashlib
import imaplib
import logging
import mimetypes
import re
import ssl
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from email import policy
from email.message import EmailMessage, Message
from email.parser import BytesParser
from email.utils import formatdate, parseaddr, parsedate_to_datetime
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import quote

import aiosmtplib
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from bot.channels.base import Capabilities, InboundEvent, OutboundMessage, Receipt
from bot.channels.email import text as email_text
from bot.channels.ratelimit import Limits, per_second
from bot.core import choices
from bot.core.env import EnvVarName
from bot.core.errors import (
    ChannelUnauthorized,
    DeliveryError,
    RateLimited,
    RecipientGone,
    Rejected,
    TransientError,
)

log = logging.getLogger(__name__)

PARSER = BytesParser(policy=policy.default)
UNSUBSCRIBE_TAG = "unsubscribe"
JOIN_TAG = "join"
RAW_TEXT_LIMIT = 200_000  # characters of a message's text kept in ``raw``
RATE_WORDS = (
    "rate limit", "rate-limit", "ratelimit", "too many messages", "too many mails",
    "too many emails", "too many connections", "throttl", "slow down", "sending limit",
    "sending quota",
)  # fmt: skip
GONE_STATUS = re.compile(r"\b5\.(1\.[0-9]|2\.1)\b")  # bad mailbox, mailbox disabled


class EmailSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    enabled: bool = False
    from_address: str = "Action Pledge <pledge@example.org>"
    # Where answers go: "{token}" is replaced by a signed tag per prompt. Default: the From
    # mailbox with "+{token}" (plus-addressing), e.g. "pledge+{token}@example.org".
    reply_address: str | None = None
    subject: str | None = None  # one subject for every mail; default: the text's first line
    smtp_host: str = "localhost"
    smtp_port: int = Field(default=587, gt=0, lt=65536)
    smtp_starttls: bool = True
    smtp_ssl: bool = False  # implicit TLS (port 465)
    smtp_username: str | None = None
    smtp_password_env: EnvVarName | None = None
    imap_host: str = "localhost"
    imap_port: int = Field(default=993, gt=0, lt=65536)
    imap_ssl: bool = True
    imap_starttls: bool = False
    imap_username: str | None = None  # default: the From address
    imap_password_env: EnvVarName = "PLEDGEBOT_IMAP_PASSWORD"
    imap_folder: str = "INBOX"
    signing_key_env: EnvVarName = "PLEDGEBOT_EMAIL_SIGNING_KEY"
    # One-click unsubscribe (RFC 8058), e.g. "https://pledge.example.org/unsubscribe/{token}";
    # "{token}" is the recipient's signed address (email_text.unsubscribe_token).
    unsubscribe_url: str | None = None
    invite_valid_days: int = Field(default=30, gt=0)
    request_timeout: float = Field(default=20, gt=0)
    poll_interval: float = Field(default=30, ge=0)  # seconds between looks at an empty mailbox
    poll_batch: int = Field(default=50, gt=0)  # messages per poll
    max_messages_per_second: float = Field(default=5, gt=0)
    min_image_bytes: int = Field(default=4096, ge=0)  # smaller inline images: logos, icons

    @field_validator("from_address")
    @classmethod
    def _has_mailbox(cls, value: str) -> str:
        if not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", parseaddr(value)[1]):
            raise ValueError("must be an address, e.g. 'Action Pledge <pledge@example.org>'")
        return value

    @field_validator("reply_address")
    @classmethod
    def _has_token(cls, value: str | None) -> str | None:
        if value is not None and (
            value.count("{token}") != 1
            or not re.fullmatch(r"[^@\s]+@[^@\s]+", value.replace("{token}", "t"))
        ):
            raise ValueError("must be an address with {token} once, e.g. pledge+{token}@x.org")
        return value

    @field_validator("unsubscribe_url")
    @classmethod
    def _is_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("https://", "http://")):
            raise ValueError("must be an http(s) URL")
        return value

    @model_validator(mode="after")
    def _one_tls_mode(self) -> EmailSettings:
        if self.smtp_ssl and self.smtp_starttls:
            raise ValueError("smtp_ssl and smtp_starttls: choose one")
        if self.imap_ssl and self.imap_starttls:
            raise ValueError("imap_ssl and imap_starttls: choose one")
        if self.smtp_username and not self.smtp_password_env:
            raise ValueError("smtp_username needs smtp_password_env")
        return self

    def mailbox(self) -> str:
        return parseaddr(self.from_address)[1].lower()

    def domain(self) -> str:
        return self.mailbox().rpartition("@")[2]

    def reply_template(self) -> str:
        if self.reply_address:
            return self.reply_address
        local, _, domain = self.mailbox().partition("@")
        return f"{local}+{{token}}@{domain}"


class EmailChannel:
    name: ClassVar[str] = "email"
    Settings: ClassVar[type[BaseModel]] = EmailSettings
    capabilities: ClassVar[Capabilities] = Capabilities(
        max_length=500_000, parse_mode="HTML", buttons=False, inbound=True
    )

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
        self._imap_password = secrets.get("imap_password")
        self._imap_user = settings.imap_username or settings.mailbox()
        self.listener_key = f"email:{self._imap_user}@{settings.imap_host}/{settings.imap_folder}"
        self.limits = limits or Limits()
        self._rate = [per_second(settings.max_messages_per_second)]
        head, _, tail = settings.reply_template().lower().partition("{token}")
        self._reply_head, self._reply_tail = head, tail
        self._validity: int | None = None  # the mailbox's UIDVALIDITY, as last seen

    async def start(self) -> None:
        """Nothing to open ahead: every send and poll makes its own connection."""

    async def aclose(self) -> None:
        return None

    # -- addresses and tokens ------------------------------------------------------------------
    def reply_address(self, outbox_id: int) -> str:
        return self._tagged(email_text.reply_token(self._key, outbox_id))

    def _tagged(self, tag: str) -> str:
        return self.settings.reply_template().replace("{token}", tag)

    def _tag_of(self, address: str) -> str | None:
        address = address.lower()
        head, tail = self._reply_head, self._reply_tail
        long_enough = len(address) > len(head) + len(tail)
        if long_enough and address.startswith(head) and address.endswith(tail):
            return address[len(head) : len(address) - len(tail)]
        return None

    def message_id(self, message: OutboundMessage) -> str:
        return email_text.message_id_for(
            self._key, message.id, message.idempotency_key, self.settings.domain()
        )

    async def invite_link(self, token: str) -> str:
        expires = datetime.now(UTC) + timedelta(days=self.settings.invite_valid_days)
        code = email_text.invite_code(self._key, token, expires)
        return f"mailto:{self._tagged(JOIN_TAG)}?subject={quote(code)}"

    def read_invite(self, code: str, now: datetime | None = None) -> str:
        """The invitation token in a code; raises ``email_text.InviteCodeError``."""
        return email_text.read_invite_code(self._key, code, now or datetime.now(UTC))

    def read_unsubscribe(self, token: str) -> str | None:
        """The address in a one-click unsubscribe token, or None if we did not sign it."""
        return email_text.read_unsubscribe_token(self._key, token)

    # -- sending -------------------------------------------------------------------------------
    def compose(self, message: OutboundMessage) -> EmailMessage:
        """The mail for one outbox message (pure: tests and previews read it)."""
        html = message.text if message.parse_mode == "HTML" else _escape_plain(message.text)
        if message.buttons:  # no buttons in mail: numbered options, answered by reply
            html += "\n\n" + _escape_plain(choices.as_text(message.buttons))
        mail = EmailMessage(policy=policy.SMTP)
        mail["Subject"] = self.settings.subject or email_text.subject_of(html) or "…"
        mail["From"] = self.settings.from_address
        mail["To"] = message.recipient
        mail["Reply-To"] = self.reply_address(message.id)
        mail["Date"] = formatdate(usegmt=True)
        mail["Message-ID"] = self.message_id(message)
        if message.reply_to and message.reply_to.startswith("<"):
            mail["In-Reply-To"] = message.reply_to
            mail["References"] = message.reply_to
        unsubscribe = [f"<mailto:{self._tagged(UNSUBSCRIBE_TAG)}?subject=unsubscribe>"]
        if self.settings.unsubscribe_url:
            token = email_text.unsubscribe_token(self._key, message.recipient)
            unsubscribe.insert(0, f"<{self.settings.unsubscribe_url.replace('{token}', token)}>")
            if self.settings.unsubscribe_url.startswith("https://"):
                mail["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        mail["List-Unsubscribe"] = ", ".join(unsubscribe)
        # Asks Exchange not to answer with an out-of-office (others honour Auto-Submitted only
        # on automatic answers, which a prompt is not).
        mail["X-Auto-Response-Suppress"] = "OOF, AutoReply"
        # Quoted-printable: readable in the raw source, and what filters expect of text.
        mail.set_content(email_text.html_to_text(html) + "\n", cte="quoted-printable")
        mail.add_alternative(email_text.html_document(html), subtype="html", cte="quoted-printable")
        for item in message.media:
            path = Path(item["path"])
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
        try:
            found, validity, next_cursor = await asyncio.to_thread(self._fetch_new, cursor or 0)
        except DeliveryError:
            raise
        except (imaplib.IMAP4.error, OSError, TimeoutError) as exc:
            raise TransientError(f"IMAP: {exc or type(exc).__name__}") from None
        events = [
            event
            for uid, data in found
            for event in self.to_events(data, uid=uid, validity=validity)
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
        try:
            data = await asyncio.to_thread(self._fetch_one, uid, validity)
        except DeliveryError:
            raise
        except (imaplib.IMAP4.error, OSError, TimeoutError) as exc:
            raise TransientError(f"IMAP: {exc or type(exc).__name__}") from None
        for number, part in enumerate(PARSER.parsebytes(data).walk()):
            if number == index:
                payload = part.get_payload(decode=True)
                if isinstance(payload, bytes):
                    return payload
        raise Rejected(f"no attachment {file_id} in the mailbox")

    # IMAP, blocking: run in a thread.
    @contextlib.contextmanager
    def _imap(self) -> Iterator[imaplib.IMAP4]:
        settings = self.settings
        timeout = settings.request_timeout
        context = ssl.create_default_context()
        imap: imaplib.IMAP4
        if settings.imap_ssl:
            imap = imaplib.IMAP4_SSL(
                settings.imap_host, settings.imap_port, ssl_context=context, timeout=timeout
            )
        else:
            imap = imaplib.IMAP4(settings.imap_host, settings.imap_port, timeout=timeout)
        try:
            if settings.imap_starttls:
                imap.starttls(context)
            password = self._imap_password.get_secret_value() if self._imap_password else ""
            try:
                imap.login(self._imap_user, password)
            except imaplib.IMAP4.error as exc:
                raise ChannelUnauthorized(
                    f"IMAP refused the login of {self._imap_user}: {_imap_text(exc)}"
                ) from None
            status, data = imap.select(_quoted(settings.imap_folder), readonly=True)
            if status != "OK":
                raise TransientError(f"IMAP: cannot open {settings.imap_folder}: {data!r}")
            yield imap
        finally:
            with contextlib.suppress(imaplib.IMAP4.error, OSError):
                imap.logout()

    def _fetch_new(self, cursor: int) -> tuple[list[tuple[int, bytes]], int, int]:
        with self._imap() as imap:
            validity = _response_int(imap, "UIDVALIDITY") or 0
            uidnext = _response_int(imap, "UIDNEXT")
            start = cursor
            if self._validity is not None and validity != self._validity:
                log.warning("%s: UIDVALIDITY changed; reading the mailbox again", self.name)
                start = 0
            elif uidnext is not None and start >= uidnext:
                start = 0  # the mailbox was recreated: its UIDs start again
            self._validity = validity
            status, data = imap.uid("SEARCH", f"UID {start + 1}:*")
            if status != "OK":
                raise TransientError(f"IMAP search failed: {data!r}")
            # "n:*" always includes the highest UID, even below n: filter.
            uids = sorted(u for u in (int(x) for x in (data[0] or b"").split()) if u > start)
            uids = uids[: self.settings.poll_batch]
            # A message deleted between SEARCH and FETCH is simply not there any more.
            found = [(uid, data) for uid in uids if (data := self._fetch(imap, uid)) is not None]
        return found, validity, max(uids, default=start)

    def _fetch_one(self, uid: int, validity: int) -> bytes:
        with self._imap() as imap:
            if (_response_int(imap, "UIDVALIDITY") or 0) != validity:
                raise Rejected("the mailbox was recreated; the attachment is gone")
            data = self._fetch(imap, uid)
            if data is None:
                raise Rejected(f"message {uid} is no longer in the mailbox")
            return data

    @staticmethod
    def _fetch(imap: imaplib.IMAP4, uid: int) -> bytes | None:
        status, data = imap.uid("FETCH", str(uid), "(BODY.PEEK[])")
        if status != "OK":
            raise TransientError(f"IMAP: fetching message {uid} failed: {data!r}")
        for item in data:
            if isinstance(item, tuple) and len(item) == 2:
                return bytes(item[1])
        return None

    # -- normalising ---------------------------------------------------------------------------
    def to_events(self, data: bytes, *, uid: int = 0, validity: int = 0) -> list[InboundEvent]:
        """The events one received mail stands for: one message, one per bounced recipient, or
        none (an automatic reply, a delay notice, a copy of our own mail)."""
        mail = PARSER.parsebytes(data)
        message_id = str(mail.get("Message-ID") or "").strip()
        if not message_id:
            message_id = f"<{hashlib.sha256(data).hexdigest()[:32]}@pledgebot.invalid>"
        domain = self.settings.domain()
        sender = parseaddr(str(mail.get("From") or ""))[1].lower()
        own = email_text.outbox_id_in_message_ids(self._key, message_id, domain) is not None
        if own or sender == self.settings.mailbox():
            log.info("%s: uid %s is our own mail; ignored", self.name, uid)
            return []
        tags = [
            tag
            for header in ("Delivered-To", "X-Original-To", "To", "Cc")
            for address in email_text.addresses(", ".join(map(str, mail.get_all(header, []))))
            if (tag := self._tag_of(address)) is not None
        ]
        prompt = next(
            (found for tag in tags if (found := email_text.read_reply_token(self._key, tag))),
            None,
        )
        if prompt is None:
            thread = f"{mail.get('In-Reply-To', '')} {mail.get('References', '')}"
            prompt = email_text.outbox_id_in_message_ids(self._key, thread, domain)
        headers = [[name, str(value)] for name, value in mail.items()]
        date = _date(mail)
        bounces = email_text.bounced_recipients(mail)
        if bounces is not None:
            if prompt is None and bounces and bounces[0].original_message_id:
                prompt = email_text.outbox_id_in_message_ids(
                    self._key, bounces[0].original_message_id, domain
                )
            return [
                InboundEvent(
                    key=f"bounce:{message_id}:{bounce.address}",
                    kind="bounce",
                    chat_id=bounce.address,
                    message_id=message_id,
                    text=bounce.diagnostic,
                    reply_to=str(prompt) if prompt is not None else None,
                    date=date,
                    raw={
                        "uid": uid,
                        "uidvalidity": validity,
                        "headers": headers,
                        "status": bounce.status,
                        "permanent": bounce.permanent,
                        "diagnostic": bounce.diagnostic,
                    },
                )
                for bounce in bounces
            ]
        if email_text.is_auto_reply(mail):
            log.info("%s: uid %s is an automatic reply (out of office); ignored", self.name, uid)
            return []
        full_text = _body_text(mail)
        text = email_text.strip_reply(full_text)
        subject = str(mail.get("Subject") or "")
        bare_subject = re.sub(r"^\s*((re|aw|sv|rv|tr|fw|fwd|wg)\s*:\s*)+", "", subject, flags=re.I)
        raw: dict[str, Any] = {
            "uid": uid,
            "uidvalidity": validity,
            "headers": headers,
            "subject": subject,
            "text": full_text[:RAW_TEXT_LIMIT],
            "opt_out": UNSUBSCRIBE_TAG in tags
            or email_text.is_opt_out(text)
            or email_text.is_opt_out(bare_subject),
        }
        code = email_text.find_invite_code(subject) or email_text.find_invite_code(text)
        if code is not None:
            raw["invite"] = self._invite_status(code)
        name = parseaddr(str(mail.get("From") or ""))[0]
        return [
            InboundEvent(
                key=f"mail:{message_id}",
                kind="message",
                chat_id=sender,
                message_id=message_id,
                text=text,
                reply_to=str(prompt) if prompt is not None else None,
                media=self._images(mail, uid, validity),
                sender={"address": sender, "name": name},
                date=date,
                raw=raw,
            )
        ]

    def _invite_status(self, code: str) -> dict[str, str]:
        try:
            return {"status": "valid", "token": self.read_invite(code)}
        except email_text.InviteCodeError as exc:
            return {"status": exc.reason}

    def _images(self, mail: Message, uid: int, validity: int) -> list[dict[str, Any]]:
        media = []
        for index, part in enumerate(mail.walk()):
            if part.get_content_maintype() != "image":
                continue
            payload = part.get_payload(decode=True)
            if not isinstance(payload, bytes) or len(payload) < self.settings.min_image_bytes:
                continue
            media.append(
                {
                    "type": "photo",
                    "file_id": f"{validity}/{uid}/{index}",
                    "file_unique_id": hashlib.sha256(payload).hexdigest()[:32],
                }
            )
        return media


def _escape_plain(text: str) -> str:
    """Plain text as the Telegram-style HTML the converters read."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def smtp_error(exc: aiosmtplib.SMTPException) -> DeliveryError:
    """An SMTP failure as the error the dispatcher understands."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused) and exc.recipients:
        exc = exc.recipients[0]
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        code, text = exc.code, " ".join(str(exc.message).split())
        said = f"SMTP {code} {text}"
        if isinstance(exc, aiosmtplib.SMTPAuthenticationError) or code in (530, 534, 535):
            return ChannelUnauthorized(f"{said} (check smtp_username / smtp_password_env)")
        if 400 <= code < 500:
            delay = _retry_after(text)
            if delay is not None or any(word in text.lower() for word in RATE_WORDS):
                return RateLimited(delay if delay is not None else 60.0, said)
            return TransientError(said)
        recipient_refused = isinstance(exc, aiosmtplib.SMTPRecipientRefused)
        if (recipient_refused and code in (550, 551, 553)) or GONE_STATUS.search(text):
            return RecipientGone(said)
        return Rejected(said)
    plain = type(exc) is aiosmtplib.SMTPException  # aiosmtplib's own "not offered" checks
    said = str(exc).lower()
    if isinstance(exc, aiosmtplib.SMTPNotSupported) or (
        plain and ("not supported" in said or "authentication method" in said)
    ):
        # STARTTLS or AUTH not offered: a setting to fix, not a message to retry.
        return ChannelUnauthorized(f"SMTP: {exc} (check smtp_starttls / smtp_ssl / smtp_port)")
    if isinstance(exc, aiosmtplib.SMTPConnectError):
        return TransientError(f"SMTP: cannot connect ({exc})")
    if isinstance(exc, aiosmtplib.SMTPTimeoutError | aiosmtplib.SMTPServerDisconnected):
        # The mail may have been accepted just before the connection dropped.
        return TransientError(f"SMTP: {exc}", maybe_delivered=True)
    return TransientError(f"SMTP: {exc}")


def _retry_after(text: str) -> float | None:
    match = re.search(r"(\d+)\s*(s|sec|seconds?|m|min|minutes?)\b", text, re.IGNORECASE)
    if match is None:
        return None
    value = float(match[1])
    return value * 60 if match[2].lower().startswith("m") else value


def _body_text(mail: Message) -> str:
    """The message's text: its plain-text body, else its HTML body as text."""
    if not isinstance(mail, EmailMessage):
        return ""
    body = mail.get_body(preferencelist=("plain", "html"))
    if body is None:
        return ""
    try:
        content = str(body.get_content())
    except (LookupError, ValueError):  # an unknown charset or a broken encoding
        payload = body.get_payload(decode=True)
        content = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""
    if body.get_content_subtype() == "html":
        return email_text.html_to_text(content, keep_newlines=False)
    return content.replace("\r\n", "\n")


def _date(mail: Message) -> int | None:
    try:
        return int(parsedate_to_datetime(str(mail.get("Date"))).timestamp())
    except (TypeError, ValueError, IndexError):
        return None


def _response_int(imap: imaplib.IMAP4, code: str) -> int | None:
    _, data = imap.response(code)
    try:
        return int(data[0]) if data and data[0] is not None else None
    except (TypeError, ValueError):
        return None


def _quoted(folder: str) -> str:
    return f'"{folder}"' if re.search(r'[\s"]', folder) else folder


def _imap_text(exc: imaplib.IMAP4.error) -> str:
    text = exc.args[0] if exc.args else exc
    return text.decode(errors="replace") if isinstance(text, bytes) else str(text)
