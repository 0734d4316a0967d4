"""Staff alerts: something needs a person (a broken schedule edit, a missed run).

Every alert is logged at WARNING. If ``[alerts] telegram_chat_id`` is set it also goes there
through the outbox (durable, retried like any message), once per ``key``: the same problem
reported again does not flood the staff chat.
"""

from __future__ import annotations

import html
import logging

from sqlalchemy.orm import Session

from bot import outbox
from bot.campaigns.base import PlannedMessage
from bot.config import AlertSettings
from bot.db import Database

log = logging.getLogger(__name__)


class Alerts:
    def __init__(self, db: Database, settings: AlertSettings) -> None:
        self.db, self.settings = db, settings

    def raise_alert(self, key: str, text: str, session: Session | None = None) -> bool:
        """Log and (once per key) send ``text``; returns whether it was new. Pass the caller's
        ``session`` when inside a transaction (a second writer would wait on SQLite's lock)."""
        log.warning("ALERT %s", text)
        if self.settings.telegram_chat_id is None:
            return True
        message = PlannedMessage(
            idempotency_key=f"alert:{key}"[:300],
            channel="telegram",
            recipient=str(self.settings.telegram_chat_id),
            text="⚠️ pledgebot: " + html.escape(text),
            parse_mode="HTML",
        )
        if session is not None:
            return outbox.enqueue(session, [message]) == 1
        with self.db.session() as own:
            return outbox.enqueue(own, [message]) == 1
