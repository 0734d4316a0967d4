"""The Bot API methods the Telegram sandbox implements, with the checks Telegram makes.

Owns each method's parameters, errors and result (``getMe``, ``sendMessage``, ``getUpdates``,
``answerCallbackQuery``, ``editMessageReplyMarkup``, ``getFile``, ``setMyCommands``,
``getMyCommands``, ``deleteWebhook``) and flood control on sending. A method either returns
the ``result`` value or raises ``ApiError``; HTTP and fault injection live in ``telegram.py``.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Awaitable, Callable
from typing import Any

from pledgebot_sandbox._telegram_rules import (
    MAX_CAPTION_LENGTH,
    MAX_TEXT_LENGTH,
    ApiError,
    TokenBucket,
    bad_request,
    clamp,
    param_bool,
    param_chat_id,
    param_float,
    param_int,
    param_json,
    param_str,
    parse_allowed_updates,
    parse_reply_markup,
    retry_after_seconds,
)
from pledgebot_sandbox._telegram_state import Chat, SandboxState, now
from pledgebot_sandbox._telegram_text import parse_text

Handler = Callable[[dict[str, Any]], Awaitable[Any]]

LONG_POLL_MAX_SECONDS = 50.0
NOT_MODIFIED = (
    "message is not modified: specified new message content and reply markup are exactly "
    "the same as a current content and reply markup of the message"
)


def forbidden(chat: Chat) -> ApiError:
    reason = {
        "private": "bot was blocked by the user",
        "group": "bot was kicked from the group chat",
        "supergroup": "bot was kicked from the supergroup chat",
    }.get(chat.type, "bot is not a member of the channel chat")
    return ApiError(403, f"Forbidden: {reason}")


class BotApi:
    """The methods, keyed by their canonical names in ``handlers``."""

    def __init__(
        self, state: SandboxState, *, overall_rate: float, chat_rate: float, chat_burst: int
    ) -> None:
        self.state = state
        self.chat_rate = chat_rate
        self.chat_burst = chat_burst
        self._overall_bucket = TokenBucket(overall_rate, overall_rate)
        self._chat_buckets: dict[int, TokenBucket] = {}
        self.handlers: dict[str, Handler] = {
            "getMe": self.get_me,
            "sendMessage": self.send_message,
            "sendPhoto": self.send_photo,
            "getUpdates": self.get_updates,
            "answerCallbackQuery": self.answer_callback_query,
            "editMessageReplyMarkup": self.edit_message_reply_markup,
            "deleteMessage": self.delete_message,
            "getFile": self.get_file,
            "setMyCommands": self.set_my_commands,
            "getMyCommands": self.get_my_commands,
            "deleteWebhook": self.delete_webhook,
        }

    # --- shared checks ------------------------------------------------------------------------
    def target_chat(self, params: dict[str, Any]) -> Chat:
        chat_ref = param_chat_id(params)
        if isinstance(chat_ref, str):  # "@username" names public groups and channels, not users
            named = (
                c
                for c in self.state.chats.values()
                if c.type != "private" and (c.username or "").lower() == chat_ref
            )
            chat = next(named, None)
        else:
            chat = self.state.chats.get(chat_ref)
        if chat is None:
            raise bad_request("chat not found")
        return chat

    def reply_target(self, params: dict[str, Any], chat: Chat) -> int | None:
        reply = param_json(params, "reply_parameters", "can't parse reply parameters JSON object")
        if reply is not None:
            if not isinstance(reply, dict) or "message_id" not in reply:
                raise bad_request("can't parse reply parameters JSON object")
            message_id = param_int(reply, "message_id")
            allow_missing = param_bool(reply, "allow_sending_without_reply")
        else:
            message_id = param_int(params, "reply_to_message_id")
            allow_missing = param_bool(params, "allow_sending_without_reply")
        if message_id is None or (chat.id, message_id) in self.state.messages:
            return message_id
        if allow_missing:
            return None
        raise bad_request("message to be replied not found")

    def check_flood(self, chat_id: int) -> None:
        """Both buckets must hold a token; a rejected call takes none and sends nothing."""
        bucket = self._chat_buckets.get(chat_id)
        if bucket is None:
            bucket = self._chat_buckets[chat_id] = TokenBucket(self.chat_burst, self.chat_rate)
        wait = max(self._overall_bucket.wait_time(), bucket.wait_time())
        if wait > 0:
            seconds = retry_after_seconds(wait)
            raise ApiError(
                429, f"Too Many Requests: retry after {seconds}", {"retry_after": seconds}
            )
        self._overall_bucket.take()
        bucket.take()

    # --- methods ------------------------------------------------------------------------------
    async def get_me(self, params: dict[str, Any]) -> dict[str, Any]:
        return {
            **self.state.bot_user(),
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    async def send_message(self, params: dict[str, Any]) -> dict[str, Any]:
        # tdlib's order: the text, then the markup, then the chat, then sending itself.
        text = param_str(params, "text")
        if text is None or not text.strip():
            raise bad_request("message text is empty")
        parse_mode = param_str(params, "parse_mode")
        parsed = parse_text(text, parse_mode)
        if not parsed.text.strip():
            raise bad_request("message text is empty")
        if len(parsed.text) > MAX_TEXT_LENGTH:  # code points of the text the user would see
            raise bad_request("message is too long")
        markup = parse_reply_markup(params)
        chat = self.target_chat(params)
        reply_to = self.reply_target(params, chat)
        if chat.blocked:
            raise forbidden(chat)
        self.check_flood(chat.id)
        message = self.state.new_message(chat, self.state.bot_user())
        if reply_to is not None:
            message["reply_to_message"] = self.state.reply_copy(chat.id, reply_to)
        message["text"] = parsed.text
        if parsed.entities:
            message["entities"] = parsed.entities
        if markup is not None and markup.get("inline_keyboard"):
            message["reply_markup"] = markup  # only inline keyboards belong to the message
        key = (chat.id, message["message_id"])
        self.state.messages[key] = message
        record = {
            "chat_id": chat.id,
            "message_id": message["message_id"],
            "text": text,
            "plain_text": parsed.text,
            "parse_mode": parse_mode,
            "reply_markup": copy.deepcopy(markup),
            "reply_to_message_id": reply_to,
            "date": message["date"],
        }
        self.state.sent.append(record)
        self.state.sent_index[key] = record
        return copy.deepcopy(message)

    async def send_photo(self, params: dict[str, Any]) -> dict[str, Any]:
        """A photo (uploaded, or a known file_id) with an optional caption of ≤ 1024 characters."""
        photo = params.get("photo")
        if isinstance(photo, str) and photo in self.state.files:
            data = self.state.files[photo].data
        elif hasattr(photo, "file"):  # a multipart upload
            data = photo.file.read()
        else:
            raise bad_request("there is no photo in the request")
        if not data:
            raise bad_request("file must be non-empty")
        caption = param_str(params, "caption") or ""
        parse_mode = param_str(params, "parse_mode")
        parsed = parse_text(caption, parse_mode) if caption else None
        if parsed is not None and len(parsed.text) > MAX_CAPTION_LENGTH:
            raise bad_request("message caption is too long")
        chat = self.target_chat(params)
        if chat.blocked:
            raise forbidden(chat)
        self.check_flood(chat.id)
        stored = self.state.store_file(data, "photos", "jpg", "AgAC")
        message = self.state.new_message(chat, self.state.bot_user())
        message["photo"] = [
            {
                "file_id": stored.file_id,
                "file_unique_id": stored.file_unique_id,
                "width": 1280,
                "height": 960,
                "file_size": len(data),
            }
        ]
        if parsed is not None:
            message["caption"] = parsed.text
        key = (chat.id, message["message_id"])
        self.state.messages[key] = message
        record = {
            "chat_id": chat.id,
            "message_id": message["message_id"],
            "text": caption,
            "plain_text": parsed.text if parsed else "",
            "parse_mode": parse_mode,
            "reply_markup": None,
            "reply_to_message_id": None,
            "date": message["date"],
            "photo": {"file_id": stored.file_id, "size": len(data)},
        }
        self.state.sent.append(record)
        self.state.sent_index[key] = record
        return copy.deepcopy(message)

    async def get_updates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        queue = self.state.queue
        offset = param_int(params, "offset", 0) or 0
        limit = int(clamp(param_int(params, "limit", 100) or 0, 1, 100))
        wait = clamp(param_float(params, "timeout", 0.0), 0.0, LONG_POLL_MAX_SECONDS)
        with contextlib.suppress(ApiError):  # tdlib ignores an unparsable allowed_updates
            allowed = parse_allowed_updates(param_json(params, "allowed_updates", ""))
            if allowed is not None:
                queue.allowed = allowed
        return await queue.fetch(offset, limit, wait)

    async def answer_callback_query(self, params: dict[str, Any]) -> bool:
        query_id = param_str(params, "callback_query_id")
        if not query_id or query_id not in self.state.open_callbacks:
            raise bad_request(
                "query is too old and response timeout expired or query ID is invalid"
            )
        self.state.open_callbacks.discard(query_id)  # a query can be answered once
        self.state.answered_callbacks.append(
            {
                "callback_query_id": query_id,
                "text": param_str(params, "text"),
                "show_alert": param_bool(params, "show_alert"),
                "url": param_str(params, "url"),
                "cache_time": param_int(params, "cache_time", 0),
            }
        )
        return True

    async def delete_message(self, params: dict[str, Any]) -> bool:
        chat = self.target_chat(params)
        key = (chat.id, param_int(params, "message_id") or 0)
        if key not in self.state.messages:
            raise bad_request("message to delete not found")
        del self.state.messages[key]
        record = self.state.sent_index.get(key)
        if record is not None:
            record["deleted"] = True
        return True

    async def edit_message_reply_markup(self, params: dict[str, Any]) -> dict[str, Any]:
        if params.get("inline_message_id"):
            raise bad_request("inline messages are not supported by the sandbox")
        markup = parse_reply_markup(params)
        if markup is not None and "inline_keyboard" not in markup:
            raise bad_request("inline keyboard expected")
        chat = self.target_chat(params)
        message_id = param_int(params, "message_id")
        if message_id is None:
            raise bad_request("message identifier is not specified")
        message = self.state.messages.get((chat.id, message_id))
        if message is None:
            raise bad_request("message to edit not found")
        if not self.state.is_from_bot(message):
            raise bad_request("message can't be edited")
        if chat.blocked:
            raise forbidden(chat)
        new_markup = markup if markup and markup["inline_keyboard"] else None
        if new_markup == message.get("reply_markup"):
            raise bad_request(NOT_MODIFIED)
        if new_markup is None:
            message.pop("reply_markup", None)
        else:
            message["reply_markup"] = new_markup
        message["edit_date"] = now()
        self.state.sent_index[(chat.id, message_id)]["reply_markup"] = copy.deepcopy(new_markup)
        return copy.deepcopy(message)

    async def get_file(self, params: dict[str, Any]) -> dict[str, Any]:
        stored = self.state.files.get(param_str(params, "file_id") or "")
        if stored is None:
            raise bad_request("invalid file_id")
        return {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": len(stored.data),
            "file_path": stored.file_path,
        }

    async def set_my_commands(self, params: dict[str, Any]) -> bool:
        commands = param_json(params, "commands", "can't parse commands JSON object")
        if not isinstance(commands, list) or len(commands) > 100:
            raise bad_request("can't parse commands JSON object")
        for command in commands:
            if not isinstance(command, dict):
                raise bad_request("can't parse BotCommand JSON object")
            name = command.get("command")
            description = command.get("description")
            valid_name = (
                isinstance(name, str)
                and 1 <= len(name) <= 32
                and all(c.isascii() and (c.islower() or c.isdigit() or c == "_") for c in name)
            )
            if not valid_name:
                raise bad_request("BOT_COMMAND_INVALID")
            if not isinstance(description, str) or not 1 <= len(description) <= 256:
                raise bad_request("command description must be 1-256 characters long")
        self.state.commands = commands
        return True

    async def get_my_commands(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        return copy.deepcopy(self.state.commands)

    async def delete_webhook(self, params: dict[str, Any]) -> bool:
        if param_bool(params, "drop_pending_updates"):
            self.state.queue.updates.clear()
        return True
