"""What the Telegram sandbox knows: chats, users, messages, files, and the update queue.

Owns the JSON shapes of Telegram's objects (User, Chat, Message) as the sandbox builds them, and
the update queue with tdlib's ``getUpdates`` semantics: confirmation by offset, negative
offsets, the "offset in the future" fallback, long polling, 409 Conflict for a second poller,
and ``allowed_updates`` applied when an update is created. Also the arrival log: when each of
the bot's messages arrived, by the server's clock — what Telegram's limits are counted on.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import itertools
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from pledgebot_sandbox._telegram_rules import DEFAULT_UPDATE_TYPES, ApiError

FIRST_UPDATE_ID = 100_000_001
FUTURE_OFFSET_SLACK = 10  # tdlib's TQueue accepts an offset at most this far past the tail
CONFLICT = (
    "Conflict: terminated by other getUpdates request; "
    "make sure that only one bot instance is running"
)


def now() -> int:
    return int(time.time())


def busiest_window(times: list[float], seconds: float = 1.0) -> int:
    """The most arrivals in any window of ``seconds`` (sliding, not aligned to the clock)."""
    ordered = sorted(times)
    most, first = 0, 0
    for last, at in enumerate(ordered):
        while at - ordered[first] >= seconds:
            first += 1
        most = max(most, last - first + 1)
    return most


def closest_in_one_chat(arrivals: list[tuple[float, int]]) -> float:
    """The shortest gap between two arrivals in one chat (infinity when no chat has two)."""
    last: dict[int, float] = {}
    closest = float("inf")
    for at, chat_id in sorted(arrivals):
        if chat_id in last:
            closest = min(closest, at - last[chat_id])
        last[chat_id] = at
    return closest


@dataclass
class Chat:
    id: int
    type: str
    first_name: str
    username: str | None = None
    title: str | None = None
    blocked: bool = False
    last_message_id: int = 0


@dataclass
class StoredFile:
    file_id: str
    file_unique_id: str
    file_path: str
    data: bytes


class UpdateQueue:
    """Pending updates, oldest first, and the one ``getUpdates`` call allowed to wait for more."""

    def __init__(self) -> None:
        self.updates: deque[dict[str, Any]] = deque()
        self.next_id = FIRST_UPDATE_ID
        self.allowed = DEFAULT_UPDATE_TYPES
        self.closing = asyncio.Event()
        self._wakeup = asyncio.Event()
        self._poller: object | None = None

    def push(self, kind: str, payload: dict[str, Any]) -> None:
        # tdlib filters by allowed_updates when an update is created, not when it is fetched.
        if kind not in self.allowed:
            return
        self.updates.append({"update_id": self.next_id, kind: copy.deepcopy(payload)})
        self.next_id += 1
        self.notify()

    def notify(self) -> None:
        self._wakeup.set()
        self._wakeup = asyncio.Event()

    def close(self) -> None:
        self.closing.set()
        self.notify()

    def reset(self, start: int) -> None:
        self.updates.clear()
        self.next_id = start

    async def fetch(self, offset: int, limit: int, wait: float) -> list[dict[str, Any]]:
        """One ``getUpdates``: confirm below ``offset``, then return or long-poll for ``wait`` s."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        me = object()
        try:
            while True:
                offset = self._resolve_offset(offset)
                while self.updates and self.updates[0]["update_id"] < offset:
                    self.updates.popleft()  # confirmed
                if self.updates or self.closing.is_set():
                    return list(itertools.islice(self.updates, limit))
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return []
                if self._poller is not me:
                    self._poller = me
                    self.notify()  # a long poll already waiting now answers 409 Conflict
                wakeup = self._wakeup
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wakeup.wait(), remaining)
                if self._poller is not me:
                    raise ApiError(409, CONFLICT)
        finally:
            if self._poller is me:
                self._poller = None

    def _resolve_offset(self, offset: int) -> int:
        """tdlib's reading of ``offset``: negative counts from the end, the far future is reset."""
        tail = self.next_id
        head = self.updates[0]["update_id"] if self.updates else tail
        if offset <= 0:
            return max(offset + tail if offset < 0 else offset, head)
        # E.g. an offset from before an update-id reset: Telegram then starts from the head.
        return head if offset > tail + FUTURE_OFFSET_SLACK else offset


class SandboxState:
    """Everything the fake Telegram remembers, and the JSON it shows the bot."""

    def __init__(self, bot_id: int, bot_username: str) -> None:
        self.bot_id = bot_id
        self.bot_username = bot_username
        self.chats: dict[int, Chat] = {}
        self.users: dict[int, dict[str, Any]] = {}
        self.messages: dict[tuple[int, int], dict[str, Any]] = {}
        self.sent: list[dict[str, Any]] = []
        self.sent_index: dict[tuple[int, int], dict[str, Any]] = {}
        self.files: dict[str, StoredFile] = {}
        self.file_paths: dict[str, StoredFile] = {}
        self.open_callbacks: set[str] = set()
        self.answered_callbacks: list[dict[str, Any]] = []
        self.commands: list[dict[str, Any]] = []
        # (seconds on a monotonic clock that time_machine leaves alone, chat id) per bot message
        self.arrivals: list[tuple[float, int]] = []
        self.queue = UpdateQueue()
        self._callback_counter = 0

    def bot_user(self) -> dict[str, Any]:
        return {
            "id": self.bot_id,
            "is_bot": True,
            "first_name": "Pledgebot Sandbox",
            "username": self.bot_username,
        }

    def chat_json(self, chat: Chat) -> dict[str, Any]:
        data: dict[str, Any] = {"id": chat.id, "type": chat.type}
        if chat.type == "private":
            data["first_name"] = chat.first_name
        else:
            data["title"] = chat.title
        if chat.username:
            data["username"] = chat.username
        return data

    def sender(self, chat: Chat, from_id: int | None) -> dict[str, Any]:
        """The user behind an action: the chat's user, or ``from_id`` (default: a member)."""
        default_member = 1_000_000 + abs(chat.id) % 10**9
        user_id = from_id or (chat.id if chat.type == "private" else default_member)
        stranger = {"id": user_id, "is_bot": False, "first_name": "User"}
        return copy.deepcopy(self.users.get(user_id, stranger))

    def new_message(self, chat: Chat, sender: dict[str, Any]) -> dict[str, Any]:
        # One counter per chat, shared by both sides, like the message ids a bot sees.
        if sender.get("id") == self.bot_id:  # accepted from the bot: it counts against limits
            self.arrivals.append((time.perf_counter(), chat.id))
        chat.last_message_id += 1
        message: dict[str, Any] = {"message_id": chat.last_message_id}
        if chat.type == "channel":
            message["sender_chat"] = self.chat_json(chat)
        else:
            message["from"] = sender
        message.update(chat=self.chat_json(chat), date=now())
        return message

    def is_from_bot(self, message: dict[str, Any]) -> bool:
        return bool(message.get("from", {}).get("id") == self.bot_id)

    def reply_copy(self, chat_id: int, message_id: int) -> dict[str, Any]:
        target = self.messages.get((chat_id, message_id))
        if target is None:
            raise ValueError(f"no message {message_id} in chat {chat_id} to reply to")
        reply = copy.deepcopy(target)
        reply.pop("reply_to_message", None)  # Telegram nests replies one level deep only
        return reply

    def store_file(self, data: bytes, folder: str, ext: str, prefix: str) -> StoredFile:
        number = len(self.files) + 1
        stored = StoredFile(
            file_id=f"{prefix}AgADSANDBOX{number:08d}",
            file_unique_id=f"AQADSBX{number:06d}",
            file_path=f"{folder}/file_{number}.{ext}",
            data=data,
        )
        self.files[stored.file_id] = stored
        self.file_paths[stored.file_path] = stored
        return stored

    def new_callback_id(self) -> str:
        self._callback_counter += 1
        query_id = str(self.bot_id * 1_000_000_000 + self._callback_counter)
        self.open_callbacks.add(query_id)
        return query_id
