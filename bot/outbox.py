"""The durable outbox: enqueue once per idempotency key, claim due rows, record each outcome.

States: pending → sending → sent | retry_wait → sending … | failed | cancelled.
A row found in ``sending`` whose lease has expired was in flight at a crash: it is claimed
again and flagged ``possible_duplicate`` (Telegram gives bots no idempotency key, so a message
the platform accepted just before the crash may arrive twice; that bound is counted).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row, Select, bindparam, func, insert, or_, select, update
from sqlalchemy.orm import Session

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
    UTCDateTime,
    utcnow,
)

CONTACT_STOPPED = "contact_stopped"
CLAIM_ROUNDS = 3
CHANNEL_PAUSE = "channel:"  # a CampaignControl id "channel:x" holds every message on that channel
OPEN_STATES = ("pending", "retry_wait", "sending")
_OUTBOX = OutboxMessage.__table__
_PARENT = _OUTBOX.alias("parent")  # the part a thread's part follows
_CONTACTS = Contact.__table__
_CONTROLS = CampaignControl.__table__


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
        "media": list(message.media),
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


# -- claiming ------------------------------------------------------------------------------------
# The dispatcher claims several times a second, so its statements are built once (values come
# in as bound parameters): building and fingerprinting a fresh statement costs more Python time
# than SQLite takes to run it. Rows come back as plain rows, not ORM objects, for the same reason.
_PAUSED = select(_CONTROLS.c.campaign_id).where(_CONTROLS.c.paused)
_ON_THE_WIRE = select(_OUTBOX.c.recipient).where(
    _OUTBOX.c.state == "sending", _OUTBOX.c.claimed_until >= bindparam("now", type_=UTCDateTime())
)
_CONTACT_STATUS = select(_CONTACTS.c.id, _CONTACTS.c.status).where(
    _CONTACTS.c.id.in_(bindparam("ids", expanding=True))
)
_PARTS_AFTER_FAILED = (  # or cancelled: a thread part that will never be sent
    select(_OUTBOX.c.id, _OUTBOX.c.state)
    .select_from(_OUTBOX.join(_PARENT, _OUTBOX.c.thread_parent_id == _PARENT.c.id))
    .where(_PARENT.c.state.in_(("failed", "cancelled")))
)
_TAKE = (
    update(_OUTBOX)
    .where(_OUTBOX.c.id.in_(bindparam("ids", expanding=True)))
    .values(
        state="sending",
        claimed_until=bindparam("lease_until", type_=UTCDateTime()),
        attempts=_OUTBOX.c.attempts + 1,
        possible_duplicate=or_(_OUTBOX.c.possible_duplicate, _OUTBOX.c.state == "sending"),
    )
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
    )
)


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
    paused = set(session.scalars(_PAUSED))
    if "*" in paused:
        return []
    if break_threads:  # a part never goes out after a failed one; this marks them failed too
        _break_threads(session)
    held = {p.removeprefix(CHANNEL_PAUSE) for p in paused if p.startswith(CHANNEL_PAUSE)}
    # A chat with a message on the wire in any worker (a live lease) waits its turn.
    skip = set(session.scalars(_ON_THE_WIRE, {"now": now}))
    params: dict[str, Any] = {"now": now, "channels": channels, "paused": paused, "held": held}
    found: list[Row[Any]] = []
    rows: list[Row[Any]] = []
    # Rounds: a page taken up by one chat's backlog yields one message for it; the next round
    # leaves that chat out, so one busy chat never keeps the others waiting.
    for _ in range(CLAIM_ROUNDS):
        wanted = limit - len(rows)
        page = _due_page(session, {**params, "skip": skip}, wanted)
        found += page
        rows = _one_per_recipient(found)
        if len(rows) >= limit or len(page) < wanted:
            break  # enough, or nothing more is due
        skip = skip | {row.recipient for row in rows}
    contact_ids = [row.contact_id for row in rows if row.contact_id is not None]
    status: dict[int, str] = {}
    if contact_ids:  # an opt-out since planning holds the message back
        status.update(session.execute(_CONTACT_STATUS, {"ids": contact_ids}).tuples().all())
    claimed = [item for row in rows if (item := _claimed(session, row, status, now)) is not None]
    if claimed:  # one statement for the batch
        ids = [item.message.id for item in claimed]
        session.execute(_TAKE, {"ids": ids, "lease_until": now + lease})
    return claimed


def _claimed(
    session: Session, row: Row[Any], status: dict[int, str], now: datetime
) -> Claimed | None:
    """The message to send for a due row, or None when it must wait or cannot go at all."""
    if row.send_window is not None:  # quiet hours and blackout dates hold at send time too
        allowed = SendWindow.from_record(row.send_window).next_allowed(now)
        if allowed > now:
            values: dict[str, Any] = {"next_attempt_at": allowed}
            if row.state == "sending":  # a lease expired inside quiet hours: still uncertain
                values.update(state="pending", possible_duplicate=True, claimed_until=None)
            session.execute(update(_OUTBOX).where(_OUTBOX.c.id == row.id).values(**values))
            return None
    if row.contact_id is not None and status.get(row.contact_id) != "active":
        mark_failed(session, row.id, CONTACT_STOPPED)
        return None
    message = OutboundMessage(
        id=row.id,
        recipient=row.recipient,
        text=row.text,
        parse_mode=row.parse_mode,
        buttons=row.buttons,
        idempotency_key=row.idempotency_key,
        # A lease that expired: the process died with the message on the wire.
        maybe_sent=bool(row.possible_duplicate) or row.state == "sending",
        reply_to=row.parent_external_id or row.reply_to,
        media=list(row.media or []),
        action=row.action,
    )
    return Claimed(message, row.channel, row.attempts + 1)


def _due_page(session: Session, params: dict[str, Any], limit: int) -> list[Row[Any]]:
    """Up to ``limit`` due rows, oldest first: expired leases, then retries, then new ones.

    One query per state, each an ordered range of the (state, time) index: no sort of the whole
    backlog, however many thousands a campaign has just queued.
    """
    found: list[Row[Any]] = []
    for state in ("sending", "retry_wait", "pending"):
        query = _due_query(state, paused=bool(params["paused"]), skip=bool(params["skip"]))
        found += session.execute(query, {**params, "limit": limit - len(found)}).all()
        if len(found) >= limit:
            break
    return found


@functools.cache
def _due_query(state: str, *, paused: bool, skip: bool) -> Select[Any]:
    """Due rows in ``state``, with the platform id of the thread part each one replies to."""
    # A lease that expired means its process died; the others are due at next_attempt_at.
    moment = _OUTBOX.c.claimed_until if state == "sending" else _OUTBOX.c.next_attempt_at
    now = bindparam("now", type_=UTCDateTime())
    query = (
        select(
            _OUTBOX.c.id,
            _OUTBOX.c.channel,
            _OUTBOX.c.recipient,
            _OUTBOX.c.text,
            _OUTBOX.c.parse_mode,
            _OUTBOX.c.buttons,
            _OUTBOX.c.idempotency_key,
            _OUTBOX.c.media,
            _OUTBOX.c.action,
            _OUTBOX.c.state,
            _OUTBOX.c.attempts,
            _OUTBOX.c.possible_duplicate,
            _OUTBOX.c.send_window,
            _OUTBOX.c.contact_id,
            _OUTBOX.c.reply_to,
            _PARENT.c.external_id.label("parent_external_id"),
        )
        .select_from(_OUTBOX.outerjoin(_PARENT, _OUTBOX.c.thread_parent_id == _PARENT.c.id))
        .where(
            _OUTBOX.c.state == state,
            moment <= now,
            _OUTBOX.c.channel.in_(bindparam("channels", expanding=True)),
            # A thread's part waits for the part before it, and replies to it.
            or_(_PARENT.c.id.is_(None), _PARENT.c.state == "sent"),
        )
    )
    if paused:
        query = query.where(
            or_(
                _OUTBOX.c.campaign_id.is_(None),
                _OUTBOX.c.campaign_id.not_in(bindparam("paused", expanding=True)),
            ),
            _OUTBOX.c.channel.not_in(bindparam("held", expanding=True)),
        )
    if skip:  # chats on the wire, or that this claim has already taken a message for
        query = query.where(_OUTBOX.c.recipient.not_in(bindparam("skip", expanding=True)))
    return (
        query.order_by(moment, _OUTBOX.c.id)
        .limit(bindparam("limit"))
        # PostgreSQL; SQLite relies on BEGIN IMMEDIATE.
        .with_for_update(of=_OUTBOX, skip_locked=True)
    )


def _break_threads(session: Session) -> None:
    """A part whose earlier part failed or was cancelled cannot be sent: the thread is broken."""
    # Led by the failed parts (an index range) down to the parts that follow them: a query led
    # by the queued parts would read the whole backlog, once a second.
    following = session.execute(_PARTS_AFTER_FAILED).all()
    waiting = [part.id for part in following if part.state in ("pending", "retry_wait")]
    if waiting:
        session.execute(
            update(_OUTBOX)
            .where(_OUTBOX.c.id.in_(waiting), _OUTBOX.c.state.in_(("pending", "retry_wait")))
            .values(state="failed", last_error="thread broken: an earlier part was not sent")
        )


def _one_per_recipient(rows: Iterable[Row[Any]]) -> list[Row[Any]]:
    taken: dict[tuple[str, str], Row[Any]] = {}
    for row in rows:
        taken.setdefault((row.channel, row.recipient), row)
    return list(taken.values())


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
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


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
