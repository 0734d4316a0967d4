"""What a mail that reached the campaign's mailbox stands for, as ``InboundEvent``s:

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
"""

from __future__ import annotations

import hashlib
import logging
import re
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage, Message
from email.parser import BytesParser
from email.utils import parseaddr, parsedate_to_datetime
from typing import Any

from bot.channels.base import InboundEvent
from bot.channels.email import replies, tokens
from bot.channels.email.settings import UNSUBSCRIBE_TAG, EmailSettings
from bot.channels.email.text import html_to_text

log = logging.getLogger(__name__)

PARSER = BytesParser(policy=policy.default)
RAW_TEXT_LIMIT = 200_000  # characters of a message's text kept in ``raw``


class MailReader:
    """Reads received mail for the mailbox of ``settings``, whose tokens ``key`` signed."""

    def __init__(self, settings: EmailSettings, key: bytes) -> None:
        self.settings = settings
        self._key = key

    def events(self, data: bytes, *, uid: int = 0, validity: int = 0) -> list[InboundEvent]:
        """The events one received mail stands for: one message, one per bounced recipient, or
        none (an automatic reply, a delay notice, a copy of our own mail)."""
        mail = PARSER.parsebytes(data)
        message_id = str(mail.get("Message-ID") or "").strip()
        if not message_id:
            message_id = f"<{hashlib.sha256(data).hexdigest()[:32]}@pledgebot.invalid>"
        domain = self.settings.domain()
        sender = parseaddr(str(mail.get("From") or ""))[1].lower()
        own = tokens.outbox_id_in_message_ids(self._key, message_id, domain) is not None
        if own or sender == self.settings.mailbox():
            log.info("email: uid %s is our own mail; ignored", uid)
            return []
        tags = [
            tag
            for header in ("Delivered-To", "X-Original-To", "To", "Cc")
            for address in replies.addresses(", ".join(map(str, mail.get_all(header, []))))
            if (tag := self.settings.tag_of(address)) is not None
        ]
        prompt = next(
            (found for tag in tags if (found := tokens.read_reply_token(self._key, tag))),
            None,
        )
        if prompt is None:
            thread = f"{mail.get('In-Reply-To', '')} {mail.get('References', '')}"
            prompt = tokens.outbox_id_in_message_ids(self._key, thread, domain)
        headers = [[name, str(value)] for name, value in mail.items()]
        date = _date(mail)
        bounces = replies.bounced_recipients(mail)
        if bounces is not None:
            if prompt is None and bounces and bounces[0].original_message_id:
                prompt = tokens.outbox_id_in_message_ids(
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
        if replies.is_auto_reply(mail):
            log.info("email: uid %s is an automatic reply (out of office); ignored", uid)
            return []
        full_text = _body_text(mail)
        text = replies.strip_reply(full_text)
        subject = str(mail.get("Subject") or "")
        bare_subject = re.sub(r"^\s*((re|aw|sv|rv|tr|fw|fwd|wg)\s*:\s*)+", "", subject, flags=re.I)
        raw: dict[str, Any] = {
            "uid": uid,
            "uidvalidity": validity,
            "headers": headers,
            "subject": subject,
            "text": full_text[:RAW_TEXT_LIMIT],
            "opt_out": UNSUBSCRIBE_TAG in tags
            or replies.is_opt_out(text)
            or replies.is_opt_out(bare_subject),
        }
        code = tokens.find_invite_code(subject) or tokens.find_invite_code(text)
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
            token = tokens.read_invite_code(self._key, code, datetime.now(UTC))
        except tokens.InviteCodeError as exc:
            return {"status": exc.reason}
        return {"status": "valid", "token": token}

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
        return html_to_text(content, keep_newlines=False)
    return content.replace("\r\n", "\n")


def _date(mail: Message) -> int | None:
    try:
        return int(parsedate_to_datetime(str(mail.get("Date"))).timestamp())
    except (TypeError, ValueError, IndexError):
        return None


def attachment(data: bytes, index: int) -> bytes | None:
    """The content of a received mail's ``index``-th MIME part (an image's ``file_id``)."""
    for number, part in enumerate(PARSER.parsebytes(data).walk()):
        if number == index:
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                return payload
    return None
