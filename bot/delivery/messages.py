"""A message on its way to the outbox: what a campaign plans, a conversation answers, staff send.

The lowest layer of sending: it imports neither the campaigns that plan messages nor the schedule
files that declare campaigns, so the outbox and everything that enqueues can use it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.channels.base import Media
from bot.core.localtime import SendWindow


@dataclass(frozen=True)
class PlannedMessage:
    idempotency_key: str
    channel: str
    recipient: str
    text: str
    pledgemaker_id: str | None = None
    contact_id: int | None = None
    parse_mode: str | None = None
    buttons: list[list[dict[str, str]]] | None = None
    pillar: str | None = None  # set: this message is a prompt on that pillar
    window: SendWindow | None = None  # when it may go out; None: at once
    media: tuple[Media, ...] = ()
    follows: str | None = None  # idempotency key of the thread part this one replies to
    reply_to: str | None = None  # the platform id of their message this one answers
    post: dict[str, Any] | None = None  # set on a post's first part: what it publishes
    action: str = "send"  # or "delete": ``text`` is the platform id of a post to take down
    not_before: datetime | None = None  # held until then (an announcement's local hour)
