"""The durable outbox: enqueue once per idempotency key, record each outcome, cancel.

States: pending → sending → sent | retry_wait → sending … | failed | cancelled.
A row found in ``sending`` whose lease has expired was in flight at a crash: it is claimed
again (``bot.delivery.claiming``) and flagged ``possible_duplicate`` (Telegram gives bots no
idempotency
key, so a message the platform accepted just before the crash may arrive twice; that bound is
counted). Leases of messages still on the wire are extended here.

A failed or cancelled row says why in one word (``failure_class``, see ``bot.delivery.failures``);
``bot.delivery.resend`` decides what may be sent again. A channel that is down
(``bot.delivery.outage``) gives
claim only its one probe message.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.orm import Session

from bot.core.db import rows_changed
from bot.core.localtime import SendWindow
from bot.core.models import Contact, OutboxMessage, Post, Prompt, UTCDateTime, utcnow
from bot.delivery.failures import STAFF, WITHDRAWN, failure_of
from bot.delivery.messages import PlannedMessage

ERASED_RECIPIENT = "erased"  # the recipient of a message to someone erased
CHANNEL_PAUSE = "channel:"  # a CampaignControl id "channel:x" holds every message on that channel
OPEN_STATES = ("pending", "retry_wait", "sending")
_OUTBOX = OutboxMessage.__table__


def enqueue(
    session: Session,
    planned: list[PlannedMessage],
    *,
    run_id: int | None = None,
    campaign_id: str | None = None,
) -> int:
    """Insert the messages whose idempotency key is new; returns how many were inserted.

    Bulk inserts (a campaign run may queue tens of thousands): no ORM object per message.
    """
    existing = set(ids_by_key(session, [m.idempotency_key for m in planned]))
    fresh: list[PlannedMessage] = []
    for message in planned:
        if message.idempotency_key not in existing:
            existing.add(message.idempotency_key)
            fresh.append(message)
    if not fresh:
        return 0
    now = utcnow()
    session.flush()  # what the caller added (a run, a contact) exists before rows refer to it
    # One executemany; then the new ids by key (SQLite gives RETURNING rows in no set order, so
    # an ordered RETURNING would insert one row per statement).
    session.execute(
        insert(_OUTBOX), [_outbox_row(message, now, run_id, campaign_id) for message in fresh]
    )
    fresh_keys = [message.idempotency_key for message in fresh]
    new_ids = ids_by_key(session, fresh_keys)
    ids = [new_ids[key] for key in fresh_keys]
    _link_threads(session, fresh, ids)
    prompts = [
        {
            "outbox_id": outbox_id,
            "contact_id": message.contact_id,
            "pledgemaker_id": message.pledgemaker_id,
            "campaign_id": campaign_id or "",
            "pillar": message.pillar,
            "created_at": now,
        }
        for message, outbox_id in zip(fresh, ids, strict=True)
        if message.pillar is not None and message.contact_id is not None and message.pledgemaker_id
    ]
    if prompts:
        session.execute(insert(Prompt.__table__), prompts)
    for message, outbox_id in zip(fresh, ids, strict=True):
        if message.post is not None:
            session.add(
                Post(
                    campaign_id=campaign_id or "",
                    run_id=run_id,
                    channel=message.channel,
                    first_outbox_id=outbox_id,
                    pledgemaker_id=message.pledgemaker_id,
                    **{"created_at": now, **message.post},  # the planner may set the slot time
                )
            )
    return len(fresh)


def ids_by_key(session: Session, keys: list[str]) -> dict[str, int]:
    """The ids of the messages already queued under these idempotency keys."""
    found: dict[str, int] = {}
    for start in range(0, len(keys), 500):
        query = select(_OUTBOX.c.idempotency_key, _OUTBOX.c.id).where(
            _OUTBOX.c.idempotency_key.in_(keys[start : start + 500])
        )
        found.update((key, found_id) for key, found_id in session.execute(query))
    return found


def _outbox_row(
    message: PlannedMessage, now: datetime, run_id: int | None, campaign_id: str | None
) -> dict[str, Any]:
    window = message.window
    return {
        "idempotency_key": message.idempotency_key,
        "run_id": run_id,
        "campaign_id": campaign_id,
        "channel": message.channel,
        "recipient": message.recipient,
        "contact_id": message.contact_id,
        "pledgemaker_id": message.pledgemaker_id,
        "text": message.text,
        "parse_mode": message.parse_mode,
        "buttons": message.buttons,
        "send_window": window.to_record() if window else None,
        "media": [item.to_json() for item in message.media],
        "action": message.action,
        "reply_to": message.reply_to,
        "state": "pending",
        "next_attempt_at": _first_attempt(message, window, now),
        "created_at": now,
    }


def _first_attempt(message: PlannedMessage, window: SendWindow | None, now: datetime) -> datetime:
    """Now, or the message's ``not_before``; then the first moment its window allows."""
    start = max(now, message.not_before) if message.not_before else now
    return window.next_allowed(start) if window else start


def _link_threads(session: Session, fresh: list[PlannedMessage], ids: list[int]) -> None:
    """Each part that ``follows`` another (by idempotency key) gets it as its thread parent."""
    wanted = {m.follows for m in fresh if m.follows}
    if not wanted:
        return
    parents = ids_by_key(session, list(wanted))
    session.execute(
        update(_OUTBOX)
        .where(_OUTBOX.c.id == bindparam("part"))
        .values(thread_parent_id=bindparam("parent")),
        [
            {"part": outbox_id, "parent": parents[message.follows]}
            for message, outbox_id in zip(fresh, ids, strict=True)
            if message.follows
        ],
    )


_SENT = (
    update(_OUTBOX)
    .where(_OUTBOX.c.id == bindparam("message_id"))
    .values(
        state="sent",
        external_id=bindparam("external"),
        sent_at=bindparam("sent_at", type_=UTCDateTime()),
        claimed_until=None,
        last_error=None,
        failure_class=None,
    )
)


def mark_sent_many(session: Session, sent: list[tuple[int, str]], now: datetime) -> None:
    """Record many deliveries in one statement (executemany): ``(message id, external id)``."""
    if sent:
        session.execute(
            _SENT, [{"message_id": mid, "external": ext, "sent_at": now} for mid, ext in sent]
        )


def extend_leases(session: Session, ids: list[int], until: datetime) -> int:
    """These messages are still on the wire in a live process: their leases run on to
    ``until``. A process that stalls or dies stops renewing, and its leases run out."""
    if not ids:
        return 0
    result = session.execute(
        update(_OUTBOX)
        .where(_OUTBOX.c.id.in_(ids), _OUTBOX.c.state == "sending")
        .values(claimed_until=until)
    )
    return rows_changed(result)


def mark_retry(
    session: Session,
    message_id: int,
    at: datetime,
    error: str,
    *,
    counted: bool = True,
    maybe_delivered: bool = False,
) -> None:
    """Back to the queue at ``at``. ``counted=False``: this try does not use up an attempt
    (a rate limit); ``maybe_delivered``: the platform may have it already (a timeout)."""
    values: dict[str, object] = {
        "state": "retry_wait",
        "next_attempt_at": at,
        "claimed_until": None,
        "last_error": error,
    }
    if not counted:
        values["attempts"] = OutboxMessage.attempts - 1
    if maybe_delivered:
        values["possible_duplicate"] = True
    session.execute(update(OutboxMessage).where(OutboxMessage.id == message_id).values(**values))


def mark_failed(session: Session, message_id: int, reason: str, failure: str | None = None) -> None:
    """Failed for good: ``reason`` in words, ``failure`` its class (derived from the words
    when not given)."""
    session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == message_id)
        .values(
            state="failed",
            claimed_until=None,
            last_error=reason,
            failure_class=failure or failure_of(reason, None),
        )
    )


def mark_contact_gone(session: Session, channel: str, address: str) -> None:
    session.execute(
        update(Contact)
        .where(Contact.channel == channel, Contact.address == address, Contact.status == "active")
        .values(status="gone", status_changed_at=utcnow())
    )


def expire_leases(session: Session) -> int:
    """At start-up, with the run lock held: whatever is 'sending' was in flight when we died."""
    result = session.execute(
        update(OutboxMessage).where(OutboxMessage.state == "sending").values(claimed_until=utcnow())
    )
    return rows_changed(result)


def cancel_run(session: Session, run_id: int) -> int:
    result = session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.run_id == run_id, OutboxMessage.state.in_(("pending", "retry_wait")))
        .values(state="cancelled", last_error="cancelled by staff", failure_class=STAFF)
    )
    return rows_changed(result)


def cancel_posts_of(session: Session, update_ids: Collection[int], reason: str) -> int:
    """Cancel the posts of these journey updates that have not gone out yet (their first part:
    later parts then fail as "thread broken"): what they say, or the consent behind them,
    changed. Counted as withdrawn: never resent."""
    if not update_ids:
        return 0
    firsts = select(Post.first_outbox_id).where(Post.journey_update_id.in_(list(update_ids)))
    result = session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id.in_(firsts), OutboxMessage.state.in_(("pending", "retry_wait")))
        .values(state="cancelled", last_error=f"cancelled: {reason}", failure_class=WITHDRAWN)
    )
    return rows_changed(result)


def state_counts(session: Session) -> dict[str, int]:
    rows = session.execute(select(OutboxMessage.state, func.count()).group_by(OutboxMessage.state))
    return {state: int(count) for state, count in rows}
