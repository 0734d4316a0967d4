"""Claiming due messages for sending: at most one per recipient, none for a chat with a message
on the wire, held back by pauses, quiet hours, opt-outs, broken threads and channels that are
down (``bot.delivery.outage``: one probe message each, when it is due).

A row found in ``sending`` whose lease has expired was in flight at a crash: it is claimed
again and flagged ``possible_duplicate``. What happens to a claimed message next is recorded
by ``bot.delivery.outbox`` (``mark_sent_many``, ``mark_retry``, ``mark_failed``).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row, Select, bindparam, func, or_, select, update
from sqlalchemy.orm import Session

from bot.channels.base import Media, OutboundMessage
from bot.core.db import rows_changed
from bot.core.localtime import SendWindow
from bot.core.models import (
    CampaignControl,
    ChannelState,
    Contact,
    OutboxMessage,
    UTCDateTime,
    utcnow,
)
from bot.delivery.failures import CONTACT_STOPPED, ERASED, GONE, OPTED_OUT, THREAD_BROKEN
from bot.delivery.outage import Breaker
from bot.delivery.outbox import CHANNEL_PAUSE, ERASED_RECIPIENT, mark_failed

# Answers to what a person has just sent (their /stop is confirmed): not held by an opt-out.
ANSWER_KEYS = ("event:", "onboarding:")
CLAIM_ROUNDS = 3
_OUTBOX = OutboxMessage.__table__
_PARENT = _OUTBOX.alias("parent")  # the part a thread's part follows
_CONTACTS = Contact.__table__
_CONTROLS = CampaignControl.__table__


@dataclass(frozen=True)
class Claimed:
    message: OutboundMessage
    channel: str
    attempts: int
    first_attempt_at: datetime | None = None  # None: this is the first


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
_ADDRESS_STATUS = select(_CONTACTS.c.channel, _CONTACTS.c.address, _CONTACTS.c.status).where(
    _CONTACTS.c.address.in_(bindparam("addresses", expanding=True))
)
_STATES = ChannelState.__table__
_DOWN = select(_STATES.c.channel, _STATES.c.down_since, _STATES.c.probe_at).where(
    _STATES.c.down_since.is_not(None)
)
_TAKE_PROBE = (  # one worker wins the probe: the row is locked, and probe_at moves on
    update(_STATES)
    .where(
        _STATES.c.channel == bindparam("probe_channel"),
        _STATES.c.down_since.is_not(None),
        _STATES.c.probe_at <= bindparam("now", type_=UTCDateTime()),
    )
    .values(probe_at=bindparam("next_probe", type_=UTCDateTime()))
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
        first_attempt_at=func.coalesce(
            _OUTBOX.c.first_attempt_at, bindparam("now", type_=UTCDateTime())
        ),
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
    breaker: Breaker | None = None,
) -> list[Claimed]:
    """Take up to ``limit`` due messages for sending. Run inside one (immediate) transaction.

    At most one message per recipient is taken, none for a recipient with a message on the
    wire in any process (a live lease): messages to one chat go out one after another, in order.
    A channel that is down gives at most its one probe message, when the probe is due.
    """
    now = now or utcnow()
    paused = set(session.scalars(_PAUSED))
    if "*" in paused:
        return []
    if break_threads:  # a part never goes out after a failed one; this marks them failed too
        _break_threads(session)
    held = {p.removeprefix(CHANNEL_PAUSE) for p in paused if p.startswith(CHANNEL_PAUSE)}
    # Down (the breaker), not paused by staff: these give their one probe, if it is due.
    down = {
        row.channel: row
        for row in session.execute(_DOWN)
        if row.channel in channels and row.channel not in held
    }
    held |= set(down)
    # A chat with a message on the wire in any worker (a live lease) waits its turn.
    skip = set(session.scalars(_ON_THE_WIRE, {"now": now}))
    params: dict[str, Any] = {"now": now, "channels": channels, "paused": paused, "held": held}
    probes = _probes(session, down, held, params, skip, breaker or Breaker(), now)
    found: list[Row[Any]] = list(probes)
    rows: list[Row[Any]] = _one_per_recipient(found)
    skip = skip | {row.recipient for row in rows}
    # Rounds: a page taken up by one chat's backlog yields one message for it; the next round
    # leaves that chat out, so one busy chat never keeps the others waiting.
    for _ in range(CLAIM_ROUNDS if len(rows) < limit else 0):
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
    refused = _refused_addresses(session, rows)
    claimed = [
        item for row in rows if (item := _claimed(session, row, status, refused, now)) is not None
    ]
    if claimed:  # one statement for the batch
        ids = [item.message.id for item in claimed]
        session.execute(_TAKE, {"ids": ids, "lease_until": now + lease, "now": now})
    return claimed


def _probes(
    session: Session,
    down: dict[str, Row[Any]],
    held: set[str],
    params: dict[str, Any],
    skip: set[str],
    breaker: Breaker,
    now: datetime,
) -> list[Row[Any]]:
    """For each channel that is down and due a probe: its one due message, if this claim wins
    the probe (another worker may have; then probe_at has moved on and this one takes none)."""
    found: list[Row[Any]] = []
    # In channel order, as the breaker's updates lock them: two workers never deadlock.
    for channel, state in sorted(down.items()):
        if state.probe_at is not None and state.probe_at > now:
            continue
        wanted = {**params, "channels": [channel], "held": held - {channel}, "skip": skip}
        page = _due_page(session, wanted, 1)
        if not page:
            continue
        probe = {
            "probe_channel": channel,
            "now": now,
            "next_probe": breaker.next_probe(state.down_since, now),
        }
        if rows_changed(session.execute(_TAKE_PROBE, probe)):
            found += page
    return found


def _refused_addresses(session: Session, rows: list[Row[Any]]) -> dict[tuple[str, str], str]:
    """(channel, address) → its contact's status, for addresses that opted out, bounced or
    left: a message without a contact (an invitation, a one-click unsubscribe's address) must
    not go to them either. Answers to what the person just sent are not held."""
    unbound = [
        row
        for row in rows
        if row.contact_id is None
        and row.action == "send"
        and not row.idempotency_key.startswith(ANSWER_KEYS)
    ]
    if not unbound:
        return {}
    wanted = {(row.channel, row.recipient) for row in unbound}
    query = session.execute(_ADDRESS_STATUS, {"addresses": [row.recipient for row in unbound]})
    return {
        (channel, address): state
        for channel, address, state in query
        if (channel, address) in wanted and state != "active"
    }


def _claimed(
    session: Session,
    row: Row[Any],
    status: dict[int, str],
    refused: dict[tuple[str, str], str],
    now: datetime,
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
        failure = GONE if status.get(row.contact_id) == "gone" else OPTED_OUT
        mark_failed(session, row.id, CONTACT_STOPPED, failure)
        return None
    if row.action == "send" and row.recipient == ERASED_RECIPIENT:
        mark_failed(session, row.id, "erased: the recipient's data was erased", ERASED)
        return None
    address_status = refused.get((row.channel, row.recipient))
    if address_status is not None:
        failure = GONE if address_status == "gone" else OPTED_OUT
        mark_failed(session, row.id, f"{CONTACT_STOPPED}: the address is {address_status}", failure)
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
        media=tuple(Media.from_json(item) for item in row.media or ()),
        action=row.action,
    )
    return Claimed(message, row.channel, row.attempts + 1, row.first_attempt_at)


def _due_page(session: Session, params: dict[str, Any], limit: int) -> list[Row[Any]]:
    """Up to ``limit`` due rows, oldest first: expired leases, then retries, then new ones.

    One query per state, each an ordered range of the (state, time) index: no sort of the whole
    backlog, however many thousands a campaign has just queued.
    """
    found: list[Row[Any]] = []
    held = bool(params["paused"] or params["held"])
    for state in ("sending", "retry_wait", "pending"):
        query = _due_query(state, paused=held, skip=bool(params["skip"]))
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
            _OUTBOX.c.first_attempt_at,
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
            .values(
                state="failed",
                last_error="thread broken: an earlier part was not sent",
                failure_class=THREAD_BROKEN,
            )
        )


def _one_per_recipient(rows: Iterable[Row[Any]]) -> list[Row[Any]]:
    taken: dict[tuple[str, str], Row[Any]] = {}
    for row in rows:
        taken.setdefault((row.channel, row.recipient), row)
    return list(taken.values())
