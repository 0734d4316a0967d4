"""Messages that answer a prompt: a reply becomes (or joins) a journey update; a photo's
description becomes its alt text; an edited reply refreshes its update."""

from __future__ import annotations

import unicodedata
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.campaigns.reminders import cancel_reminders
from bot.channels.base import InboundEvent
from bot.community import consent
from bot.core.models import JourneyUpdate, OutboxMessage, Prompt, Reply
from bot.inbound.turn import Turn

ACKNOWLEDGEMENTS = {
    "ok",
    "okay",
    "k",
    "kk",
    "thanks",
    "thank you",
    "thx",
    "ty",
    "great",
    "cool",
    "noted",
    "merci",
    "merci beaucoup",
    "d'accord",
    "daccord",
    "bien reçu",
    "gracias",
    "muchas gracias",
    "vale",
    "de acuerdo",
    "recibido",
    "yes",
    "oui",
    "sí",
    "si",
}


def is_acknowledgement(event: InboundEvent) -> bool:
    """A bare "ok", "thanks", an emoji or a sticker: stored, but not an answer."""
    if event.media:
        return False
    if event.sticker and not event.text.strip():
        return True
    text = event.text.strip().lower().rstrip("!.… ")
    if not text:
        return True
    if text in ACKNOWLEDGEMENTS:
        return True
    return not any(unicodedata.category(ch)[0] in "LN" for ch in text)  # only emoji/punctuation


def message(turn: Turn, media: list[dict[str, Any]]) -> str:
    if turn.contact is None:
        return turn.onboarding()
    reply = Reply(
        inbound_event_id=turn.event_id,
        channel=turn.channel,
        chat_id=turn.event.chat_id,
        external_id=turn.event.message_id or "",
        contact_id=turn.contact.id,
        pledgemaker_id=turn.contact.pledgemaker_id,
        text=turn.event.text,
        media=media,
        media_group_id=turn.event.media_group_id,
        acknowledgement=is_acknowledgement(turn.event),
        received_at=turn.at,
    )
    turn.session.add(reply)
    if turn.contact.status != "active":
        return "reply stored: contact has opted out"
    explicit = turn.prompt_for(turn.event.reply_to) if turn.event.reply_to else None
    reply.prompt_id = explicit.id if explicit else None
    if reply.acknowledgement:
        return "reply stored: acknowledgement"
    pending = pending_updates(turn)  # most messages come from a contact with none
    described = awaiting_description(turn, pending)
    if described is not None and not media:
        return describe(turn, described, reply)
    group = open_answer(turn, explicit, pending)
    if group is not None:
        reply.prompt_id = group.prompt_id
        attach(turn, reply, group)
        ask_description(turn, group)
        consent.text_changed(turn.session, group, turn.conv.templates)
        return f"reply added to update {group.id}"
    prompt = explicit or turn.latest_open_prompt()
    if prompt is None:
        return "reply stored: no open prompt"
    reply.prompt_id = prompt.id
    update = JourneyUpdate(
        pledgemaker_id=turn.contact.pledgemaker_id,
        prompt_id=prompt.id,
        contact_id=turn.contact.id,
        pillar=prompt.pillar,
        kind=prompt.requested_kind or "progress",
        source="reply",
        source_ref=f"event:{turn.event_id}",
        moderation="pending",
        created_at=turn.now,
    )
    turn.session.add(update)
    attach(turn, reply, update)
    prompt.state, prompt.closed_at = "answered", turn.now
    cancel_reminders(turn.session, prompt)
    turn.say("thanks", key=f"thanks:{turn.channel}:{turn.event_id}", name=turn.name())
    ask_description(turn, update)
    consent.ask(turn.session, update, turn.conv.templates)
    return f"update {update.id} created for prompt {prompt.id}"


def ask_description(turn: Turn, update: JourneyUpdate) -> None:
    """A photo needs a one-line description before it can be published: ask, once."""
    if any(item.get("path") and not item.get("alt_text") for item in update.media or []):
        turn.say("ask_alt_text", key=f"alt-ask:{update.id}")


def pending_updates(turn: Turn) -> list[JourneyUpdate]:
    """This contact's updates still awaiting moderation, newest first (usually none)."""
    assert turn.contact is not None
    if turn.known is not None:
        return turn.known.pending_updates
    return list(
        turn.session.scalars(
            select(JourneyUpdate)
            .where(
                JourneyUpdate.contact_id == turn.contact.id,
                JourneyUpdate.moderation == "pending",
            )
            .order_by(JourneyUpdate.id.desc())
        )
    )


def awaiting_description(turn: Turn, pending: list[JourneyUpdate]) -> JourneyUpdate | None:
    """This contact's latest pending update whose photo description we asked for, if the
    description is still missing. Only an update with photos is ever asked about."""
    for update in pending:
        if not update.media:
            continue
        asked = turn.session.scalar(
            select(OutboxMessage.id).where(OutboxMessage.idempotency_key == f"alt-ask:{update.id}")
        )
        if asked is not None:
            return update if any(not m.get("alt_text") for m in update.media) else None
    return None


def describe(turn: Turn, update: JourneyUpdate, reply: Reply) -> str:
    """Their next message is the description: it becomes the photos' alt text."""
    text = " ".join(turn.event.text.split())[:1000]
    update.media = [
        {**item, "alt_text": item.get("alt_text") or text} for item in update.media or []
    ]
    reply.prompt_id = update.prompt_id
    turn.say("alt_text_thanks")
    return f"alt text for update {update.id}"


def attach(turn: Turn, reply: Reply, update: JourneyUpdate) -> None:
    """The reply joins the answer. It is the answer's newest reply, so the text and media
    grow by its own, just as ``refresh_update`` would recompute them."""
    turn.session.flush()  # the ids of a new update and of the reply
    reply.journey_update_id = update.id
    update.last_reply_at = max(filter(None, [update.last_reply_at, reply.received_at]))
    update.text = "\n\n".join(part for part in (update.text or "", reply.text.strip()) if part)
    update.media = [*(update.media or []), *(reply.media or [])]


def open_answer(
    turn: Turn, explicit: Prompt | None, pending: list[JourneyUpdate]
) -> JourneyUpdate | None:
    """The answer this message continues: same album, or a reply minutes ago."""
    assert turn.contact is not None
    window = timedelta(minutes=turn.conv.settings.answer_window_minutes)
    if turn.event.media_group_id:
        album = turn.session.scalar(
            select(JourneyUpdate)
            .join(Reply, Reply.journey_update_id == JourneyUpdate.id)
            .where(
                Reply.contact_id == turn.contact.id,
                Reply.media_group_id == turn.event.media_group_id,
            )
        )
        if album is not None:
            return album
    answers = [u for u in pending if u.source == "reply" and u.last_reply_at is not None]
    latest = max(answers, key=lambda u: (u.last_reply_at, u.id), default=None)
    if latest is None or latest.last_reply_at is None:
        return None
    if turn.at - latest.last_reply_at > window:
        return None
    if explicit is not None and latest.prompt_id != explicit.id:
        return None
    return latest


def edit(turn: Turn) -> str:
    reply = turn.session.scalar(
        select(Reply).where(
            Reply.channel == turn.channel,
            Reply.chat_id == turn.event.chat_id,
            Reply.external_id == (turn.event.message_id or ""),
        )
    )
    if reply is None:
        return "ignored: edit of a message that is not a stored reply"
    if reply.original_text is None:
        reply.original_text = reply.text
    reply.text, reply.edited_at = turn.event.text, turn.now
    update = turn.session.get(JourneyUpdate, reply.journey_update_id or -1)
    if update is None or update.moderation != "pending":
        return f"reply {reply.id} edited"
    refresh_update(turn.session, update)
    consent.text_changed(turn.session, update, turn.conv.templates)
    return f"reply {reply.id} edited; update {update.id} refreshed"


def refresh_update(session: Session, update: JourneyUpdate) -> None:
    """An answer's text and media are those of its replies, in the order they came. The
    photos' descriptions (alt text, kept on the update) stay with their photos."""
    replies = list(
        session.scalars(
            select(Reply).where(Reply.journey_update_id == update.id).order_by(Reply.id)
        )
    )
    described = {
        item.get("file_unique_id"): item["alt_text"]
        for item in update.media or []
        if item.get("alt_text")
    }
    update.text = "\n\n".join(r.text.strip() for r in replies if r.text.strip())
    update.media = [
        {**item, "alt_text": described[key]}
        if (key := item.get("file_unique_id")) in described
        else item
        for r in replies
        for item in (r.media or [])
    ]
