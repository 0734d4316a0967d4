"""Staff alerts: something needs a person (a broken schedule edit, a missed run).

Every alert is logged at WARNING and listed on the dashboard until acknowledged, once per
``key``: the same problem reported again does not flood anyone. If ``[alerts]
telegram_chat_id`` is set it also goes there through the outbox (durable, retried like any
message).
"""

from __future__ import annotations

import html
import logging

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.core.db import Database
from bot.core.models import utcnow
from bot.core.staff_models import StaffAlert
from bot.delivery import outbox
from bot.delivery.messages import PlannedMessage
from bot.settings.config import AlertSettings

log = logging.getLogger(__name__)


class Alerts:
    def __init__(self, db: Database, settings: AlertSettings) -> None:
        self.db, self.settings = db, settings

    def raise_alert(self, key: str, text: str, session: Session | None = None) -> bool:
        """Log, list on the dashboard and (once per key) send ``text``; returns whether it was
        new. Pass the caller's ``session`` when inside a transaction (a second writer would
        wait on SQLite's lock)."""
        log.warning("ALERT %s", text)
        if session is not None:
            return self._record(session, key, text)
        with self.db.session() as own:
            return self._record(own, key, text)

    def _record(self, session: Session, key: str, text: str) -> bool:
        key, now = key[:300], utcnow()
        alert = session.scalar(select(StaffAlert).where(StaffAlert.key == key))
        if alert is not None and alert.acknowledged_at is None:
            return False  # still listed: once is enough
        if alert is None:
            session.add(StaffAlert(key=key, text=text, raised_at=now))
            once = f"alert:{key}"
        else:  # it happened again after someone dealt with it: listed (and sent) again
            alert.text, alert.raised_at = text, now
            alert.acknowledged_at = alert.acknowledged_by = None
            once = f"alert:{key}:{now:%Y%m%dT%H%M%S%f}"
        if self.settings.telegram_chat_id is not None:
            message = PlannedMessage(
                idempotency_key=once[:300],
                channel="telegram",
                recipient=str(self.settings.telegram_chat_id),
                text="⚠️ pledgebot: " + html.escape(text),
                parse_mode="HTML",
            )
            outbox.enqueue(session, [message])
        return True


def open_alerts(session: Session) -> list[StaffAlert]:
    return list(
        session.scalars(
            select(StaffAlert)
            .where(StaffAlert.acknowledged_at.is_(None))
            .order_by(StaffAlert.raised_at.desc())
        )
    )


def acknowledge(session: Session, alert_id: int, who: str) -> bool:
    alert = session.get(StaffAlert, alert_id)
    if alert is None or alert.acknowledged_at is not None:
        return False
    alert.acknowledged_at, alert.acknowledged_by = utcnow(), who
    return True
