"""The durable outbox: enqueue once per idempotency key, claim due rows, record each outcome.

States: pending → sending → sent | retry_wait → sending … | failed | cancelled.
A row found in ``sending`` whose lease has expired was in flight at a crash: it is claimed
again and flagged ``possible_duplicate`` (Telegram gives bots no idempotency key, so a message
the platform accepted just before the crash may arrive twice; that bound is counted).

A failed or cancelled row says why in one word (``failure_class``): only what failed for a
passing reason (the platform kept failing) may be resent in bulk (``retry_failed``); nothing
stopped by an opt-out, an unsubscribe, an erasure or a withdrawal is ever resent
(``retry_refusal`` decides, for the dashboard's button and ``pledgebot outbox retry`` alike).

A channel that fails again and again (``Breaker``) is *down*: its messages are not claimed
(they use no attempts) except one probe at growing intervals; the first success lifts it. The
state is a ``channel_state`` row, so every worker sees it.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row, Select, bindparam, func, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from bot.channels.base import OutboundMessage
from bot.errors import UserInputError
from bot.localtime import SendWindow
from bot.messages import PlannedMessage
from bot.models import (
    CampaignControl,
    ChannelState,
    Contact,
    OutboxMessage,
    Post,
    Prompt,
    Run,
    UTCDateTime,
    utcnow,
)

CONTACT_STOPPED = "contact_stopped"
ERASED_RECIPIENT = "erased"  # the recipient of a message to someone erased
# Answers to what a person has just sent (their /stop is confirmed): not held by an opt-out.
ANSWER_KEYS = ("event:", "onboarding:")

# -- why a message was not sent (outbox.failure_class) --------------------------------------
TRANSIENT = "transient"  # the platform kept failing (5xx, timeouts) until the retry budget ran out
REJECTED = "rejected"  # the platform refused this message
GONE = "recipient_gone"  # they blocked the bot, left, or the mail bounced
OPTED_OUT = "opted_out"  # their contact stopped (/stop, STOP), or the address opted out
UNSUBSCRIBED = "unsubscribed"  # the email's one-click unsubscribe
ERASED = "erased"  # the pledgemaker was erased on request
WITHDRAWN = "withdrawn"  # consent to publish was withdrawn
ANSWERED = "answered"  # a reminder no longer needed
STAFF = "cancelled_by_staff"
THREAD_BROKEN = "thread_broken"  # an earlier part of its thread was not sent
INTERNAL = "internal"  # an error of ours (see the log)
# Never resent, by anyone: the person said no, or is gone.
NEVER_RETRY = {
    OPTED_OUT: "the recipient opted out",
    UNSUBSCRIBED: "the address unsubscribed",
    ERASED: "the pledgemaker was erased",
    WITHDRAWN: "consent was withdrawn",
    GONE: "the recipient blocked the bot, left or bounced",
    ANSWERED: "no longer needed (the prompt was answered)",
}
# Resent on request for one message (the dashboard), not in bulk: sending it again as it is
# would most likely fail the same way, or staff stopped it on purpose.
ON_REQUEST = {
    REJECTED: "the platform rejected it (it would be refused again)",
    STAFF: "cancelled by staff",
    INTERNAL: "an internal error (see the log)",
    THREAD_BROKEN: "an earlier part of its thread was not sent",
}
# Rows failed before failure_class existed, or by code that words the reason only.
_LEGACY_WORDING = (
    ("gave up after", TRANSIENT),
    ("rejected", REJECTED),
    ("recipient_gone", GONE),
    (CONTACT_STOPPED, OPTED_OUT),
    ("cancelled: the address unsubscribed", UNSUBSCRIBED),
    ("cancelled by staff: pledgemaker erased", ERASED),
    ("cancelled by staff", STAFF),
    ("consent withdrawn", WITHDRAWN),
    ("prompt answered", ANSWERED),
    ("thread broken", THREAD_BROKEN),
    ("internal error", INTERNAL),
)
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
    first_attempt_at: datetime | None = None  # None: this is the first


@dataclass(frozen=True)
class Breaker:
    """When a channel is down, and how often it is probed while it is."""

    after: int = 10  # transient failures in a row, across messages
    first_probe: float = 30.0  # seconds after it went down; then doubling
    max_probe: float = 900.0

    def next_probe(self, down_since: datetime, now: datetime) -> datetime:
        """Doubling intervals: the wait so far, between ``first_probe`` and ``max_probe``."""
        waited = (now - down_since).total_seconds()
        return now + timedelta(seconds=min(self.max_probe, max(self.first_probe, waited)))


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
        if session.execute(_TAKE_PROBE, probe).rowcount:  # type: ignore[attr-defined]
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
        media=list(row.media or []),
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
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def cancel_run(session: Session, run_id: int) -> int:
    result = session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.run_id == run_id, OutboxMessage.state.in_(("pending", "retry_wait")))
        .values(state="cancelled", last_error="cancelled by staff", failure_class=STAFF)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


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
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def state_counts(session: Session) -> dict[str, int]:
    rows = session.execute(select(OutboxMessage.state, func.count()).group_by(OutboxMessage.state))
    return {state: int(count) for state, count in rows}


def record_health(session: Session, channel: str, *, error: str | None = None) -> ChannelState:
    """Remember when a channel last worked, or last failed and why (for `pledgebot status`)."""
    state = session.get(ChannelState, channel)
    if state is None:  # made race-free: two workers may write the first health note at once
        _channel_row(session, channel)
        state = session.get(ChannelState, channel)
        assert state is not None
    if error is None:
        state.last_ok_at = utcnow()
    else:
        state.last_error_at, state.last_error = utcnow(), error
    return state


# -- the outage breaker ---------------------------------------------------------------------------
def _channel_row(session: Session, channel: str) -> None:
    """The channel's state row exists (two workers may create it at once: one wins)."""
    insert_ = (
        postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    )
    session.execute(
        insert_(_STATES).values(channel=channel, consecutive_failures=0).on_conflict_do_nothing()
    )


def lift_hold(session: Session, channel: str) -> bool:
    """Staff say the platform is back (``pledgebot resume --channel``): the channel's messages
    flow at once instead of waiting for the next probe. Returns whether it was held."""
    lifted = session.execute(
        update(_STATES)
        .where(_STATES.c.channel == channel, _STATES.c.down_since.is_not(None))
        .values(consecutive_failures=0, down_since=None, probe_at=None)
    ).rowcount  # type: ignore[attr-defined]
    return bool(lifted)


def note_outcomes(
    session: Session,
    channel: str,
    *,
    failures: int,
    worked: bool,
    breaker: Breaker,
    now: datetime | None = None,
) -> str | None:
    """Count what just happened on ``channel``: a send that worked resets the count and lifts
    a hold; ``failures`` transient failures (and nothing that worked) add up, and at
    ``breaker.after`` in a row the channel is down. Returns "down" or "up" when that changed."""
    now = now or utcnow()
    if worked:
        lifted = session.execute(
            update(_STATES)
            .where(_STATES.c.channel == channel, _STATES.c.down_since.is_not(None))
            .values(consecutive_failures=0, down_since=None, probe_at=None)
        ).rowcount  # type: ignore[attr-defined]
        if not lifted:
            session.execute(
                update(_STATES)
                .where(_STATES.c.channel == channel, _STATES.c.consecutive_failures > 0)
                .values(consecutive_failures=0)
            )
        return "up" if lifted else None
    if not failures:
        return None
    _channel_row(session, channel)
    count, down_since = session.execute(
        update(_STATES)
        .where(_STATES.c.channel == channel)
        .values(consecutive_failures=_STATES.c.consecutive_failures + failures)
        .returning(_STATES.c.consecutive_failures, _STATES.c.down_since)
    ).one()
    if down_since is not None or count < breaker.after:
        return None
    session.execute(
        update(_STATES)
        .where(_STATES.c.channel == channel, _STATES.c.down_since.is_(None))
        .values(down_since=now, probe_at=now + timedelta(seconds=breaker.first_probe))
    )
    return "down"


@dataclass(frozen=True)
class ChannelDown:
    since: datetime
    failures: int
    next_probe: datetime | None


def channels_down(session: Session) -> dict[str, ChannelDown]:
    """Channels held by the breaker (for `pledgebot status` and /healthz)."""
    query = select(
        _STATES.c.channel, _STATES.c.down_since, _STATES.c.consecutive_failures, _STATES.c.probe_at
    ).where(_STATES.c.down_since.is_not(None))
    return {
        channel: ChannelDown(since, int(failures or 0), probe)
        for channel, since, failures, probe in session.execute(query)
    }


# -- resending what failed ---------------------------------------------------------------------
def failure_of(last_error: str | None, failure_class: str | None) -> str | None:
    """The class of a failure: the stored one, else read from how the reason is worded."""
    if failure_class:
        return failure_class
    error = last_error or ""
    for wording, failure in _LEGACY_WORDING:
        if error.startswith(wording):
            return failure
    return None


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
    changed = session.execute(  # only from the state read: one sent meanwhile stays sent
        update(_OUTBOX)
        .where(_OUTBOX.c.id == message_id, _OUTBOX.c.state == row.state)
        .values(**_AGAIN, next_attempt_at=now or utcnow())
    ).rowcount  # type: ignore[attr-defined]
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
        result.retried += session.execute(
            update(_OUTBOX)
            .where(_OUTBOX.c.id.in_(again[start : start + 500]), _OUTBOX.c.state == "failed")
            .values(**_AGAIN, next_attempt_at=moment)
        ).rowcount  # type: ignore[attr-defined]
    return result
