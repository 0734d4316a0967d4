"""What every channel adapter speaks: outbound messages, receipts, inbound events.

An adapter sends one message and raises a ``bot.core.errors.DeliveryError`` subclass on failure; it
never retries on its own (the dispatcher decides). A chat channel also polls for inbound events,
which the inbox stores before the adapter acknowledges them to the platform.

What a channel is and can do (limits, markup, inbound, delete, a command menu …) is its spec's
to say (``bot.channels.spec``), not the adapter's: the core asks the registry, then uses the
matching protocol below — ``Deletes`` where ``spec.can_delete``, ``SetsCommands`` where
``spec.commands``, ``ChatChannel`` where ``spec.inbound`` (a one-click unsubscribe link's
token is read by the spec: ``spec.read_unsubscribe``). tests/channels/test_specs.py holds
every adapter to its spec.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Protocol

from pydantic import BaseModel


@dataclass(frozen=True)
class Media:
    """An image a message carries: its file as stored, and its description (alt text)."""

    path: str
    alt_text: str = ""

    def to_json(self) -> dict[str, str]:
        """As the outbox stores it (JSON)."""
        return {"path": self.path, "alt_text": self.alt_text}

    @classmethod
    def from_json(cls, item: Mapping[str, Any]) -> Media:
        """From the outbox's JSON or a journey update's stored photo. Other keys (the
        platform's file ids, a fetch error) are not needed to send it; a missing one is empty."""
        return cls(path=str(item.get("path") or ""), alt_text=str(item.get("alt_text") or ""))


@dataclass(frozen=True)
class OutboundMessage:
    id: int
    recipient: str
    text: str
    parse_mode: str | None = None
    buttons: list[list[dict[str, str]]] | None = None  # rows of {"text", "data"}
    idempotency_key: str = ""
    reply_to: str | None = None  # the platform id this continues (a thread)
    media: tuple[Media, ...] = ()
    maybe_sent: bool = False  # in flight at a crash: the platform may already have it
    action: str = "send"  # or "delete": ``text`` is the platform id of a post to take down


@dataclass(frozen=True)
class Receipt:
    external_id: str


@dataclass
class InboundEvent:
    """One platform event, normalised. ``key`` is the platform's own identity of the event."""

    key: str
    kind: str  # message | edit | button | join (a room) | bounce (a mail)
    chat_id: str
    chat_type: str = "private"
    message_id: str | None = None
    text: str = ""
    reply_to: str | None = None  # the platform message id this message replies to
    media: list[dict[str, Any]] = field(
        default_factory=list
    )  # {"type", "file_id", "file_unique_id"}
    media_group_id: str | None = None
    sticker: bool = False
    button_data: str | None = None
    button_id: str | None = None
    sender: dict[str, Any] = field(default_factory=dict)
    date: int | None = None
    update_id: int | None = None
    raw: dict[str, Any] = field(default_factory=dict)

    def to_record(self) -> dict[str, Any]:
        """The fields as stored (JSON). Shallow: ``asdict`` would deep-copy ``raw`` for nothing."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> InboundEvent:
        return cls(**record)


class Channel(Protocol):
    name: ClassVar[str]
    Settings: ClassVar[type[BaseModel]]

    async def start(self) -> None: ...

    async def send(self, message: OutboundMessage) -> Receipt: ...

    async def aclose(self) -> None: ...


class ChatChannel(Channel, Protocol):
    """A channel people write back on (``spec.inbound``)."""

    # Who may poll it: one listener at a time per account (Telegram: one getUpdates consumer).
    listener_key: str

    async def poll(self, cursor: Any) -> tuple[list[InboundEvent], Any]:
        """Wait for events after ``cursor``; return them and the cursor that acknowledges them.
        A cursor is an int or a str (stored as it is given, handed back after a restart)."""
        ...

    async def answer_button(self, event: InboundEvent) -> None: ...

    async def download(self, file_id: str) -> bytes: ...

    async def invite_link(self, token: str) -> str: ...


class InvitesByLink(Channel, Protocol):
    """A chat channel the bot cannot write on first: a pledgemaker opens the chat from a link
    naming the bot (``pledgebot contacts invite`` prints it)."""

    async def username(self) -> str: ...

    async def invite_link(self, token: str) -> str: ...


class Deletes(Protocol):
    """A channel that takes a post down (``spec.can_delete``)."""

    async def delete(self, message: OutboundMessage) -> None:
        """``message.text`` is the platform id of the post (``action == "delete"``)."""
        ...


class SetsCommands(Protocol):
    """A channel with a command menu, set when its listener starts (``spec.commands``)."""

    async def set_commands(self) -> None: ...
