"""The durable outbox: enqueue once per idempotency key, claim due rows, record each outcome.

States: pending → sending → sent | retry_wait → sending … | failed | cancelled.
A row found in ``sending`` whose lease has expired was in flight at a crash: it is claimed
again and flagged ``possible_duplicate`` (Telegram gives bots no idempotency key, so a message
the platform accepted just before the crash may arrive twice; that bound is counted).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, func, or_, select, update
from sqlalchemy.orm import Session, aliased

from bot.campaigns.base import PlannedMessage
from bot.channels.base import OutboundMessage
from bot.localtime import SendWindow
from bot.models import (
    CampaignControl,
    ChannelState,
    Contact,
    OutboxMessage,
    Post,
    Prompt,
    utcnow,
)

CONTACT_STOPPED = "contact_stopped"
CLAIM_ROUNDS = 3
CHANNEL_PAUSE = "channel:"  # a CampaignControl id "channel:x" holds every message on that channel
OPEN_STATES = ("pending", "retry_wait", "sending")


@dataclass(frozen=True)
class Claimed:
    message: OutboundMessage
    channel: str
    attempts: int


def enqueue(
    session: Session,
    planned: list[PlannedMessage],
    *,
    run_id: int | None = None,
    campaign_id: str | None = None,
) -> int:
    """Insert the messages whose idempotency key is new; returns how many were inserted."""
    existing: set[str] = set()
    keys = [m.idempotency_key for m in planned]
    for start in range(0, len(keys), 500):
        existing.update(
            session.scalars(
                select(OutboxMessage.idempotency_key).where(
                    OutboxMessage.idempotency_key.in_(keys[start : start + 500])
                )
            )
        )
    now = utcnow()
    rows: list[tuple[OutboxMessage, PlannedMessage]] = []
    for message in planned:
        if message.idempotency_key in existing:
            continue
        existing.add(message.idempotency_key)
        row = OutboxMessage(
            idempotency_key=message.idempotency_key,
            run_id=run_id,
            campaign_id=campaign_id,
            channel=message.channel,
            recipient=message.recipient,
            contact_id=message.contact_id,
            pledgemaker_id=message.pledgemaker_id,
            text=message.text,
            parse_mode=message.parse_mode,
            buttons=message.buttons,
            send_window=message.window.to_record() if message.window else None,
            media=list(message.media),
            action=message.action,
            state="pending",
            next_attempt_at=message.window.next_allowed(now) if message.window else now,
            created_at=now,
        )
        session.add(row)
        rows.append((row, message))
    session.flush()
    _link_threads(session, rows)
    for row, message in rows:
        if message.post is not None:
            session.add(
                Post(
                    campaign_id=campaign_id or "",
                    run_id=run_id,
                    channel=row.channel,
                    first_outbox_id=row.id,
                    pledgemaker_id=message.pledgemaker_id,
                    **{"created_at": now, **message.post},  # the planner may set the slot time
                )
            )
        if message.pillar is not None and message.contact_id is not None and message.pledgemaker_id:
            session.add(
                Prompt(
                    outbox_id=row.id,
                    contact_id=message.contact_id,
                    pledgemaker_id=message.pledgemaker_id,
                    campaign_id=campaign_id or "",
                    pillar=message.pillar,
                    created_at=now,
                )
            )
    return len(rows)


def _link_threads(session: Session, rows: list[tuple[OutboxMessage, PlannedMessage]]) -> None:
    """Each part that ``follows`` another (by idempotency key) gets it as its thread parent."""
    wanted = {m.follows for _, m in rows if m.follows}
    if not wanted:
        return
    ids = dict(
        session.execute(
            select(OutboxMessage.idempotency_key, OutboxMessage.id).where(
                OutboxMessage.idempotency_key.in_(wanted)
            )
        ).all()
    )
    for row, message in rows:
        if message.follows:
            row.thread_parent_id = ids[message.follows]


def claim(
    session: Session,
    *,
    channels: list[str],
    limit: int,
    lease: timedelta,
    now: datetime | None = None,
    break_threads: bool = True,
) -> list[Claimed]:
    """Take up to ``limit`` due messages for sending. Run inside one (immediate) transaction.

    At most one message per recipient is taken, none for a recipient with a message on the
    wire in any process (a live lease): messages to one chat go out one after another, in order.
    """
    now = now or utcnow()
    paused = set(session.scalars(select(CampaignControl.campaign_id).where(CampaignControl.paused)))
    if "*" in paused:
        return []
    if break_threads:  # a part never goes out after a failed one; this marks them failed too
        _break_threads(session)
    # A chat with a message on the wire in any worker (a live lease) waits its turn.
    skip = set(
        session.scalars(
            select(OutboxMessage.recipient).where(
                OutboxMessage.state == "sending", OutboxMessage.claimed_until >= now
            )
        )
    )
    parent = aliased(OutboxMessage)
    filters = [
        OutboxMessage.channel.in_(channels),
        # A thread's part waits for the part before it, and replies to it.
        or_(parent.id.is_(None), parent.state == "sent"),
    ]
    if paused:
        held = {p.removeprefix(CHANNEL_PAUSE) for p in paused if p.startswith(CHANNEL_PAUSE)}
        filters += [
            or_(OutboxMessage.campaign_id.is_(None), OutboxMessage.campaign_id.not_in(paused)),
            OutboxMessage.channel.not_in(held),
        ]
    found: list[Any] = []
    rows: list[OutboxMessage] = []
    # Rounds: a page taken up by one chat's backlog yields one message for it; the next round
    # leaves that chat out, so one busy chat never keeps the others waiting.
    for _ in range(CLAIM_ROUNDS):
        wanted = limit - len(rows)
        page = _due_page(session, parent, [*filters, *_not_to(skip)], wanted, now)
        found += page
        rows = _one_per_recipient(row for row, _ in found)
        if len(rows) >= limit or len(page) < wanted:
            break  # enough, or nothing more is due
        skip = skip | {row.recipient for row in rows}
    reply_to = {row.id: parent_id for row, parent_id in found}
    contact_ids = {row.contact_id for row in rows if row.contact_id is not None}
    status = (
        dict(
            session.execute(
                select(Contact.id, Contact.status).where(Contact.id.in_(contact_ids))
            ).all()
        )
        if contact_ids
        else {}
    )
    claimed: list[Claimed] = []
    for row in rows:
        if row.send_window is not None:  # quiet hours and blackout dates hold at send time too
            allowed = SendWindow.from_record(row.send_window).next_allowed(now)
            if allowed > now:
                row.next_attempt_at = allowed
                if row.state == "sending":  # a lease expired inside quiet hours: still uncertain
                    row.state, row.possible_duplicate, row.claimed_until = "pending", True, None
                continue
        if row.contact_id is not None and status.get(row.contact_id) != "active":
            row.state, row.last_error, row.claimed_until = "failed", CONTACT_STOPPED, None
            continue
        claimed.append(
            Claimed(
                OutboundMessage(
                    id=row.id,
                    recipient=row.recipient,
                    text=row.text,
                    parse_mode=row.parse_mode,
                    buttons=row.buttons,
                    idempotency_key=row.idempotency_key,
                    # A lease that expired: the process died with the message on the wire.
                    maybe_sent=row.possible_duplicate or row.state == "sending",
                    reply_to=reply_to.get(row.id),
                    media=list(row.media or []),
                    action=row.action,
                ),
                row.channel,
                row.attempts + 1,
            )
        )
    if claimed:  # one statement for the batch
        table = OutboxMessage.__table__
        session.execute(
            update(table)
            .where(table.c.id.in_([item.message.id for item in claimed]))
            .values(
                state="sending",
                claimed_until=now + lease,
                attempts=table.c.attempts + 1,
                possible_duplicate=or_(table.c.possible_duplicate, table.c.state == "sending"),
            )
        )
    return claimed


def _not_to(recipients: set[str]) -> list[Any]:
    return [OutboxMessage.recipient.not_in(recipients)] if recipients else []


def _due_page(
    session: Session, parent: Any, filters: list[Any], limit: int, now: datetime
) -> list[Any]:
    """Up to ``limit`` due rows (with their thread parent's external id), oldest first.

    One query per state, each an ordered range of the (state, time) index: no sort of the whole
    backlog, however many thousands a campaign has just queued.
    """
    found: list[Any] = []
    for state, moment in (
        ("sending", OutboxMessage.claimed_until),  # leases that expired: their process died
        ("retry_wait", OutboxMessage.next_attempt_at),
        ("pending", OutboxMessage.next_attempt_at),
    ):
        query = (
            select(OutboxMessage, parent.external_id)
            .outerjoin(parent, OutboxMessage.thread_parent_id == parent.id)
            .where(OutboxMessage.state == state, moment <= now, *filters)
            .order_by(moment, OutboxMessage.id)
            .limit(limit - len(found))
            # PostgreSQL; SQLite relies on BEGIN IMMEDIATE.
            .with_for_update(of=OutboxMessage, skip_locked=True)
        )
        found += session.execute(query).all()
        if len(found) >= limit:
            break
    return found


def _break_threads(session: Session) -> None:
    """A part whose earlier part failed or was cancelled cannot be sent: the thread is broken."""
    broken = select(OutboxMessage.id).where(OutboxMessage.state.in_(("failed", "cancelled")))
    session.execute(
        update(OutboxMessage)
        .where(
            OutboxMessage.thread_parent_id.in_(broken),
            OutboxMessage.state.in_(("pending", "retry_wait")),
        )
        .values(state="failed", last_error="thread broken: an earlier part was not sent")
    )


def _one_per_recipient(rows: Iterable[OutboxMessage]) -> list[OutboxMessage]:
    taken: dict[tuple[str, str], OutboxMessage] = {}
    for row in rows:
        taken.setdefault((row.channel, row.recipient), row)
    return list(taken.values())


def mark_sent_many(session: Session, sent: list[tuple[int, str]], now: datetime) -> None:
    """Record many deliveries in one statement (executemany): ``(message id, external id)``."""
    if not sent:
        return
    table = OutboxMessage.__table__
    session.execute(
        update(table)
        .where(table.c.id == bindparam("message_id"))
        .values(
            state="sent",
            external_id=bindparam("external"),
            sent_at=now,
            claimed_until=None,
            last_error=None,
        ),
        [{"message_id": mid, "external": ext} for mid, ext in sent],
    )


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


def mark_failed(session: Session, message_id: int, reason: str) -> None:
    session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == message_id)
        .values(state="failed", claimed_until=None, last_error=reason)
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
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def cancel_run(session: Session, run_id: int) -> int:
    result = session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.run_id == run_id, OutboxMessage.state.in_(("pending", "retry_wait")))
        .values(state="cancelled", last_error="cancelled by staff")
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def state_counts(session: Session) -> dict[str, int]:
    rows = session.execute(select(OutboxMessage.state, func.count()).group_by(OutboxMessage.state))
    return {state: int(count) for state, count in rows}


def record_health(session: Session, channel: str, *, error: str | None = None) -> ChannelState:
    """Remember when a channel last worked, or last failed and why (for `pledgebot status`)."""
    state = session.get(ChannelState, channel)
    if state is None:
        state = ChannelState(channel=channel)
        session.add(state)
    if error is None:
        state.last_ok_at = utcnow()
    else:
        state.last_error_at, state.last_error = utcnow(), error
    return state
