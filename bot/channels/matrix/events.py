"""Matrix room events as ``InboundEvent``s: messages, edits, replies (a thread answers its
root), images and files (``mxc://``), someone joining a room; commands written "!start" as the
"/start" the conversation understands."""

from __future__ import annotations

import re
from typing import Any

from bot.channels.base import InboundEvent

# Matrix clients send "/…" to their own command parser: commands to a bot are written "!…".
# These are passed on as the "/…" the conversation already understands.
COMMANDS = ("start", "stop", "withdraw", "language", "help")


def to_event(
    room_id: str, raw: dict[str, Any], *, me: str, chat_type: str = "private"
) -> InboundEvent | None:
    """Normalise one room event; None for what we do not handle (our own messages, state,
    notices from other bots, redacted and encrypted events). Someone joining a room (accepting
    the bot's invitation) is a ``join`` event: it redeems an invitation sent to their id."""
    if raw.get("sender") == me:
        return None
    if raw.get("type") == "m.room.member":
        return _join(room_id, raw, chat_type)
    if raw.get("type") != "m.room.message":
        return None
    content = raw.get("content") or {}
    relates = content.get("m.relates_to") or {}
    event_id = str(raw.get("event_id") or "")
    if not content or not event_id:
        return None
    edited = relates.get("rel_type") == "m.replace"
    body = (content.get("m.new_content") or {}) if edited else content
    if body.get("msgtype") == "m.notice":  # bots answer with notices: never a pledgemaker
        return None
    reply_to = None
    if not edited:
        if relates.get("rel_type") == "m.thread":  # a thread answers its root
            reply_to = relates.get("event_id")
        else:
            reply_to = (relates.get("m.in_reply_to") or {}).get("event_id")
    text = str(body.get("body") or "")
    media = _media(body)
    if media and body.get("filename") in (None, text):  # the body is only a file name
        text = ""
    if reply_to and not edited:
        text = _without_reply_fallback(text)
    sender = str(raw.get("sender") or "")
    stamp = raw.get("origin_server_ts")
    return InboundEvent(
        key=f"mx:{event_id}",
        kind="edit" if edited else "message",
        chat_id=room_id,
        chat_type=chat_type,
        message_id=str(relates.get("event_id") or event_id) if edited else event_id,
        text=_as_command(text),
        reply_to=str(reply_to) if reply_to else None,
        media=media,
        sender={"id": sender, "username": sender},
        date=int(stamp) // 1000 if isinstance(stamp, int) else None,
        raw=raw,
    )


def _join(room_id: str, raw: dict[str, Any], chat_type: str) -> InboundEvent | None:
    """A user's own join (not a profile change, which is also "join" after "join")."""
    user = str(raw.get("state_key") or "")
    content = raw.get("content") or {}
    before = ((raw.get("unsigned") or {}).get("prev_content") or {}).get("membership")
    if raw.get("sender") != user or content.get("membership") != "join" or before == "join":
        return None
    stamp = raw.get("origin_server_ts")
    return InboundEvent(
        key=f"mx:{raw.get('event_id')}",
        kind="join",
        chat_id=room_id,
        chat_type=chat_type,
        message_id=str(raw.get("event_id") or ""),
        sender={"id": user, "username": user},
        date=int(stamp) // 1000 if isinstance(stamp, int) else None,
        raw=raw,
    )


def _media(content: dict[str, Any]) -> list[dict[str, Any]]:
    kind = {"m.image": "photo", "m.file": "document"}.get(str(content.get("msgtype")))
    url = content.get("url")
    if kind is None or not isinstance(url, str) or not url.startswith("mxc://"):
        return []
    return [{"type": kind, "file_id": url, "file_unique_id": re.sub(r"[^\w-]", "_", url[6:])}]


def _without_reply_fallback(body: str) -> str:
    """Older clients quote the message replied to ("> <@bot:…> …" lines, then a blank line)."""
    lines = body.split("\n")
    quoted = 0
    while quoted < len(lines) and lines[quoted].startswith(">"):
        quoted += 1
    if quoted and quoted < len(lines) and lines[quoted] == "":
        return "\n".join(lines[quoted + 1 :])
    return body


def _as_command(text: str) -> str:
    """ "!start TOKEN" → "/start TOKEN" (only our commands; other text stays as written)."""
    word = text.split(maxsplit=1)[0] if text.strip() else ""
    if word[:1] == "!" and word[1:].lower() in COMMANDS:
        return "/" + text.lstrip()[1:]
    return text


def someone_left(raw: dict[str, Any], me: str) -> bool:
    return (
        raw.get("type") == "m.room.member"
        and raw.get("state_key") != me
        and (raw.get("content") or {}).get("membership") in ("leave", "ban")
    )
