"""The people on the Telegram sandbox's side of the bot's chats: a mixin of ``TelegramSandbox``.

What they do becomes updates in the sandbox's queue, as Telegram makes them: a chat is created
(``add_chat``), a user writes, edits, presses an inline button, blocks or unblocks the bot.
"""

from __future__ import annotations

from typing import Any

from pledgebot_sandbox._telegram_rules import (
    MAX_CAPTION_LENGTH,
    MAX_TEXT_LENGTH,
    inline_callback_data,
)
from pledgebot_sandbox._telegram_state import Chat, SandboxState, now
from pledgebot_sandbox._telegram_text import command_entities

CHAT_TYPES = ("private", "group", "supergroup", "channel")
STICKER_BYTES = b"RIFF\x0c\x00\x00\x00WEBPVP8 \x00\x00\x00\x00"  # a placeholder, not an image


class ChatUsers:
    """The simulated users; ``TelegramSandbox`` gives them its state and its bot's id."""

    _state: SandboxState
    bot_id: int

    def add_chat(
        self,
        chat_id: int,
        *,
        first_name: str = "User",
        username: str | None = None,
        chat_type: str = "private",
        language_code: str | None = None,
        title: str | None = None,
    ) -> None:
        """Create a chat the bot can talk to (or update its profile)."""
        if chat_type not in CHAT_TYPES:
            raise ValueError(f"chat_type must be one of {CHAT_TYPES}")
        # Telegram's sign convention: users are positive, groups and channels negative.
        if (chat_type == "private") != (chat_id > 0):
            raise ValueError("private chat ids are positive, group and channel ids negative")
        chat = self._state.chats.setdefault(chat_id, Chat(chat_id, chat_type, first_name))
        chat.type, chat.first_name, chat.username = chat_type, first_name, username
        chat.title = None if chat_type == "private" else (title or f"Chat {chat_id}")
        if chat_type == "private":
            user: dict[str, Any] = {"id": chat_id, "is_bot": False, "first_name": first_name}
            if username:
                user["username"] = username
            if language_code:
                user["language_code"] = language_code
            self._state.users[chat_id] = user

    def push_message(
        self,
        chat_id: int,
        text: str | None = None,
        *,
        reply_to_message_id: int | None = None,
        photo: bytes | None = None,
        caption: str | None = None,
        media_group_id: str | None = None,
        sticker: bool = False,
        from_id: int | None = None,
    ) -> int:
        """A user sends a message; returns its message_id. Unknown chats become private chats.

        Writing to a bot you blocked is only possible through the client's "Restart" button,
        which unblocks it, so a blocked chat is unblocked first. ``from_id`` picks the sender
        in group chats (default: a member derived from the chat id).
        """
        if chat_id not in self._state.chats:
            self.add_chat(chat_id)
        chat = self._state.chats[chat_id]
        if sum((text is not None, photo is not None, sticker)) != 1:
            raise ValueError("a message has exactly one of text, photo or sticker")
        if text is not None and not 1 <= len(text) <= MAX_TEXT_LENGTH:
            raise ValueError(f"a user's text is 1-{MAX_TEXT_LENGTH} characters")
        if caption is not None and (photo is None or len(caption) > MAX_CAPTION_LENGTH):
            raise ValueError(f"a caption goes with a photo and is <= {MAX_CAPTION_LENGTH} chars")
        reply = None
        if reply_to_message_id is not None:
            reply = self._state.reply_copy(chat_id, reply_to_message_id)
        if chat.blocked:
            self.unblock(chat_id)
        message = self._state.new_message(chat, self._state.sender(chat, from_id))
        if reply is not None:
            message["reply_to_message"] = reply
        if text is not None:
            message["text"] = text
            if entities := command_entities(text):
                message["entities"] = entities
        if photo is not None:
            message["photo"] = [self._photo_size(photo)]
            if caption is not None:
                message["caption"] = caption
                if entities := command_entities(caption):
                    message["caption_entities"] = entities
        if sticker:
            message["sticker"] = self._sticker()
        if media_group_id is not None:
            message["media_group_id"] = media_group_id
        self._state.messages[(chat_id, message["message_id"])] = message
        self._state.queue.push("channel_post" if chat.type == "channel" else "message", message)
        return int(message["message_id"])

    def push_edit(self, chat_id: int, message_id: int, text: str) -> None:
        """A user edits one of their text messages: an ``edited_message`` update."""
        message = self._state.messages.get((chat_id, message_id))
        if message is None or self._state.is_from_bot(message):
            raise ValueError(f"no user message {message_id} in chat {chat_id}")
        if "text" not in message or not 1 <= len(text) <= MAX_TEXT_LENGTH:
            raise ValueError(f"only a text message can be edited, to 1-{MAX_TEXT_LENGTH} chars")
        message["text"] = text
        message.pop("entities", None)
        if entities := command_entities(text):
            message["entities"] = entities
        message["edit_date"] = max(now(), message["date"])
        channel = self._state.chats[chat_id].type == "channel"
        self._state.queue.push("edited_channel_post" if channel else "edited_message", message)

    def press_button(
        self, chat_id: int, message_id: int, data: str, *, from_id: int | None = None
    ) -> str:
        """A user presses an inline button under a bot message; returns the callback query id.

        As in Telegram, only the ``callback_data`` of a button the message shows can be sent.
        """
        message = self._state.messages.get((chat_id, message_id))
        if message is None or not self._state.is_from_bot(message):
            raise ValueError(f"no bot message {message_id} in chat {chat_id}")
        if data not in inline_callback_data(message.get("reply_markup")):
            raise ValueError(f"message {message_id} has no button with callback_data {data!r}")
        chat = self._state.chats[chat_id]
        if chat.blocked:
            raise ValueError(f"chat {chat_id} has blocked the bot")
        query_id = self._state.new_callback_id()
        query = {
            "id": query_id,
            "from": self._state.sender(chat, from_id),
            "message": message,
            "chat_instance": str(abs(chat_id) * 7919 + self.bot_id),
            "data": data,
        }
        self._state.queue.push("callback_query", query)
        return query_id

    def block(self, chat_id: int) -> None:
        """The user blocks the bot (or removes it from a group): sending gets 403 Forbidden."""
        self._set_blocked(chat_id, True)

    def unblock(self, chat_id: int) -> None:
        self._set_blocked(chat_id, False)

    def _photo_size(self, photo: bytes) -> dict[str, Any]:
        stored = self._state.store_file(photo, "photos", "jpg", "AgAC")
        return {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "width": 1280,
            "height": 960,
            "file_size": len(photo),
        }

    def _sticker(self) -> dict[str, Any]:
        stored = self._state.store_file(STICKER_BYTES, "stickers", "webp", "CAAC")
        return {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "width": 512,
            "height": 512,
            "is_animated": False,
            "is_video": False,
            "type": "regular",
            "emoji": "👍",
            "file_size": len(STICKER_BYTES),
        }

    def _set_blocked(self, chat_id: int, blocked: bool) -> None:
        chat = self._state.chats.get(chat_id)
        if chat is None:
            raise ValueError(f"unknown chat {chat_id}")
        if chat.blocked == blocked:
            return
        chat.blocked = blocked
        if chat.type != "private":
            return
        # Telegram tells the bot with a my_chat_member update (pledgebot does not ask for it).
        old, new = ("member", "kicked") if blocked else ("kicked", "member")
        bot_user = self._state.bot_user()
        update = {
            "chat": self._state.chat_json(chat),
            "from": self._state.sender(chat, None),
            "date": now(),
            "old_chat_member": {"user": bot_user, "status": old, "until_date": 0},
            "new_chat_member": {"user": bot_user, "status": new, "until_date": 0},
        }
        self._state.queue.push("my_chat_member", update)
