"""Telegram updates as ``InboundEvent``s: a message, an edit, a button pressed.

An event's key is Telegram's own identity of it (chat id and message id; a callback query's
id), not ``update_id``: after a week without updates Telegram may restart ``update_id``.
"""

from __future__ import annotations

from typing import Any

from telegram import Message, Update

from bot.channels.base import InboundEvent


def to_event(update: Update, raw: dict[str, Any] | None = None) -> InboundEvent | None:
    """Normalise one Telegram update; None for kinds we do not handle. ``raw``: the update as
    Telegram sent it (kept with the event); rebuilt from ``update`` when not given."""
    raw = raw if raw is not None else update.to_dict()
    if update.callback_query is not None:
        query = update.callback_query
        anchor = query.message
        chat_id = str(anchor.chat.id) if anchor is not None else str(query.from_user.id)
        return InboundEvent(
            key=f"cbq:{query.id}",
            kind="button",
            chat_id=chat_id,
            chat_type=anchor.chat.type if anchor is not None else "private",
            message_id=str(anchor.message_id) if anchor is not None else None,
            button_data=query.data,
            button_id=query.id,
            sender=_sender(query.from_user),
            update_id=update.update_id,
            raw=raw,
        )
    message = update.message or update.edited_message
    if message is None:
        return None
    edited = update.edited_message is not None
    chat_id = str(message.chat.id)
    key = f"msg:{chat_id}:{message.message_id}"
    if edited:
        stamp = int(message.edit_date.timestamp()) if message.edit_date else update.update_id
        key = f"edit:{chat_id}:{message.message_id}:{stamp}"
    return InboundEvent(
        key=key,
        kind="edit" if edited else "message",
        chat_id=chat_id,
        chat_type=message.chat.type,
        message_id=str(message.message_id),
        text=message.text or message.caption or "",
        reply_to=_reply_to(message),
        media=_media(message),
        media_group_id=message.media_group_id,
        sticker=message.sticker is not None,
        sender=_sender(message.from_user),
        date=int(message.date.timestamp()) if message.date else None,
        update_id=update.update_id,
        raw=raw,
    )


def _reply_to(message: Message) -> str | None:
    replied = message.reply_to_message
    return str(replied.message_id) if replied is not None else None


def _media(message: Message) -> list[dict[str, Any]]:
    if message.photo:
        biggest = message.photo[-1]
        return [
            {"type": "photo", "file_id": biggest.file_id, "file_unique_id": biggest.file_unique_id}
        ]
    if message.document is not None:
        doc = message.document
        return [{"type": "document", "file_id": doc.file_id, "file_unique_id": doc.file_unique_id}]
    return []


def _sender(user: Any) -> dict[str, Any]:
    if user is None:
        return {}
    return {
        "id": user.id,
        "first_name": user.first_name,
        "username": user.username,
        "language_code": user.language_code,
    }
