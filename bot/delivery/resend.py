"""Resending what failed: the one rule for what may be sent again (``retry_refusal``), for
the dashboard's button (``retry_one``) and `pledgebot outbox retry --failed` (``retry_failed``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from bot.core.db import rows_changed
from bot.core.errors import UserInputError
from bot.core.models import OutboxMessage, Run, utcnow
from bot.delivery.failures import NEVER_RETRY, ON_REQUEST, THREAD_BROKEN, TRANSIENT, failure_of

_OUTBOX = OutboxMessage.__table__


def retry_refusal(
    state: str, last_error: str | None, failure_class: str | None, *, bulk: bool
) -> str | None:
    """Why this message may not be sent again, or None if it may. The one rule for the
    dashboard's retry button (``bulk=False``: one message a person chose) and
    `pledgebot outbox retry --failed` (``bulk=True``: only what failed for a passing reason)."""
    if state not in ("failed", "cancelled", "retry_wait"):
        return f"it is {state}" if state != "sending" else "it is being sent"
    if state == "retry_wait":
        return None  # waiting for its next try anyway: now
    failure = failure_of(last_error, failure_class)
    if failure in NEVER_RETRY:
        return NEVER_RETRY[failure]
    if failure == TRANSIENT or not bulk:
        return None
    if failure in ON_REQUEST:
        return ON_REQUEST[failure]
    return "it failed for another reason"


_AGAIN: dict[str, Any] = {
    "state": "pending",
    "attempts": 0,
    "claimed_until": None,
    "first_attempt_at": None,  # a fresh retry budget
    "failure_class": None,
}


def retry_one(session: Session, message_id: int, now: datetime | None = None) -> str | None:
    """Make one message due now, with its attempts counted afresh; returns why not, or None."""
    row = session.execute(
        select(_OUTBOX.c.state, _OUTBOX.c.last_error, _OUTBOX.c.failure_class).where(
            _OUTBOX.c.id == message_id
        )
    ).one_or_none()
    if row is None:
        return "there is no such message"
    refusal = retry_refusal(row.state, row.last_error, row.failure_class, bulk=False)
    if refusal is not None:
        return refusal
    changed = rows_changed(
        session.execute(  # only from the state read: one sent meanwhile stays sent
            update(_OUTBOX)
            .where(_OUTBOX.c.id == message_id, _OUTBOX.c.state == row.state)
            .values(**_AGAIN, next_attempt_at=now or utcnow())
        )
    )
    return None if changed else "it changed meanwhile"


@dataclass
class Retried:
    retried: int = 0
    refused: Counter[str] = field(default_factory=Counter)  # why not → how many


def retry_failed(
    session: Session,
    *,
    run_id: int | None = None,
    campaign_id: str | None = None,
    channel: str | None = None,
    known_channels: Collection[str] = (),
    known_campaigns: Collection[str] = (),
    now: datetime | None = None,
) -> Retried:
    """Send again the failed messages (of one run, campaign or channel) that failed for a
    passing reason; the parts of their threads follow them. Says how many, and why not the
    others. An unknown run, campaign or channel is a ``UserInputError``."""
    query = select(
        _OUTBOX.c.id,
        _OUTBOX.c.state,
        _OUTBOX.c.last_error,
        _OUTBOX.c.failure_class,
        _OUTBOX.c.thread_parent_id,
    ).where(_OUTBOX.c.state == "failed")
    if run_id is not None:
        if session.get(Run, run_id) is None:
            raise UserInputError(f"no run with id {run_id} (see: pledgebot runs list)")
        query = query.where(_OUTBOX.c.run_id == run_id)
    if campaign_id is not None:
        ran = session.scalar(
            select(_OUTBOX.c.id).where(_OUTBOX.c.campaign_id == campaign_id).limit(1)
        )
        if ran is None and campaign_id not in known_campaigns:
            raise UserInputError(f"no campaign {campaign_id!r} in schedules/ or in the outbox")
        query = query.where(_OUTBOX.c.campaign_id == campaign_id)
    if channel is not None:
        if channel not in known_channels:
            known = ", ".join(sorted(known_channels)) or "none"
            raise UserInputError(f"no channel {channel!r} in the config (channels: {known})")
        query = query.where(_OUTBOX.c.channel == channel)
    result = Retried()
    again: list[int] = []
    taken: set[int] = set()
    for row in session.execute(query.order_by(_OUTBOX.c.id)):
        refusal = retry_refusal(row.state, row.last_error, row.failure_class, bulk=True)
        failure = failure_of(row.last_error, row.failure_class)
        if failure == THREAD_BROKEN and row.thread_parent_id in taken:
            refusal = None  # its thread is sent again: so is this part, after the one before
        if refusal is None:
            again.append(row.id)
            taken.add(row.id)
        else:
            result.refused[refusal] += 1
    moment = now or utcnow()
    for start in range(0, len(again), 500):
        result.retried += rows_changed(
            session.execute(
                update(_OUTBOX)
                .where(_OUTBOX.c.id.in_(again[start : start + 500]), _OUTBOX.c.state == "failed")
                .values(**_AGAIN, next_attempt_at=moment)
            )
        )
    return result
