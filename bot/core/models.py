"""The database schema (SQLAlchemy 2 ORM). Portable SQL: SQLite by default, PostgreSQL by URL.

Every time is stored as UTC and read back as an aware UTC datetime (``UTCDateTime``).
Migrations live in ``bot/core/migrations``; a change here (or in ``bot.core.staff_models``, the
comms team's tables) needs a new revision there.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.ext.associationproxy import AssociationProxy, association_proxy
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    attribute_keyed_dict,
    mapped_column,
    relationship,
)


class UTCDateTime(TypeDecorator[datetime]):
    """Naive UTC in the database, aware UTC in Python, on every backend."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; pledgebot stores aware UTC times only")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return value.replace(tzinfo=UTC) if value is not None else None


def utcnow() -> datetime:
    return datetime.now(UTC)


NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    # Each model maps one plain table (no joined or subquery mapping): Core statements take it.
    __table__: ClassVar[Table]


class Pledgemaker(Base):
    __tablename__ = "pledgemakers"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(300))
    country: Mapped[str] = mapped_column(String(2), index=True)
    region: Mapped[str] = mapped_column(String(40))
    sector: Mapped[str] = mapped_column(String(40))
    language: Mapped[str] = mapped_column(String(5))
    timezone: Mapped[str] = mapped_column(String(64))
    pledge_title: Mapped[str] = mapped_column(String(300))
    pledge_text: Mapped[str] = mapped_column(Text)
    pledge_date: Mapped[date] = mapped_column(Date)
    website: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    # Erased on request (bot.community.erasure): what is left is anonymous, under a new random id;
    # the SHA-256 of the old id stops an import from bringing them back.
    erased_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    erased_ref: Mapped[str | None] = mapped_column(String(64), index=True)
    # Their address or handle per network: ``handles.get("mastodon")`` reads one, ``handles["x"]
    # = "@ilo"`` sets it, ``del`` clears it. A page listing many loads them with
    # ``selectinload(Pledgemaker.handle_rows)``.
    handle_rows: Mapped[dict[str, Handle]] = relationship(
        collection_class=attribute_keyed_dict("network"), cascade="all, delete-orphan"
    )
    handles: AssociationProxy[dict[str, str]] = association_proxy(
        "handle_rows", "value", creator=lambda network, value: Handle(network=network, value=value)
    )


class Handle(Base):
    """A pledgemaker's address or handle on one network, named as its channel is registered
    (``bot.channels.registry``): the bot invites them there (email, matrix) or mentions them in
    posts (x, mastodon, bluesky, linkedin). pledgemakers.csv names its column (the spec's
    ``handle``), so a channel with a handle needs no column and no migration of its own."""

    __tablename__ = "handles"
    pledgemaker_id: Mapped[str] = mapped_column(ForeignKey("pledgemakers.id"), primary_key=True)
    network: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[str] = mapped_column(String(300))


class Contact(Base):
    """One address of a pledgemaker on one channel, bound by a verified link."""

    __tablename__ = "contacts"
    __table_args__ = (UniqueConstraint("channel", "address"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    pledgemaker_id: Mapped[str] = mapped_column(ForeignKey("pledgemakers.id"), index=True)
    channel: Mapped[str] = mapped_column(String(32))
    address: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), default="active")  # active | stopped | gone
    language: Mapped[str | None] = mapped_column(String(5))  # set by /language; else pledgemaker's
    bound_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    status_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class InviteToken(Base):
    __tablename__ = "invite_tokens"
    __table_args__ = (Index("ix_invite_tokens_address", "channel", "address"),)
    token: Mapped[str] = mapped_column(String(64), primary_key=True)
    pledgemaker_id: Mapped[str] = mapped_column(ForeignKey("pledgemakers.id"), index=True)
    channel: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    used_by: Mapped[str | None] = mapped_column(String(200))
    # Where the bot sent it (an email address, a Matrix user id): a message from there redeems it.
    address: Mapped[str | None] = mapped_column(String(255))


class Run(Base):
    """One firing of a campaign at one instant, recorded once."""

    __tablename__ = "runs"
    __table_args__ = (UniqueConstraint("campaign_id", "fire_time"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    campaign_id: Mapped[str] = mapped_column(String(64))
    fire_time: Mapped[datetime] = mapped_column(UTCDateTime)
    trigger: Mapped[str] = mapped_column(String(16))  # cron | manual
    planned: Mapped[int] = mapped_column(Integer, default=0)
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class OutboxMessage(Base):
    """One outbound item. State machine: pending → sending → sent | retry_wait → … | failed."""

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_due", "state", "next_attempt_at"),
        Index("ix_outbox_delivered", "channel", "recipient", "external_id"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(300), unique=True)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id"), index=True)
    campaign_id: Mapped[str | None] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(32))
    recipient: Mapped[str] = mapped_column(String(200))
    # Set for messages a campaign sends to a contact: they are never sent once the contact stops.
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id"))
    # Indexed: a pledgemaker's conversation, their data export and erasure look them up.
    pledgemaker_id: Mapped[str | None] = mapped_column(String(64), index=True)
    text: Mapped[str] = mapped_column(Text)
    parse_mode: Mapped[str | None] = mapped_column(String(16))
    buttons: Mapped[list[list[dict[str, str]]] | None] = mapped_column(JSON)
    # The recipient's zone, quiet hours and blackout dates, re-checked at send time; None for
    # messages that go out at once (bot answers, a deliberate manual `campaign fire`).
    send_window: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    media: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)  # {"path", "alt_text"}
    # A thread: this part goes out only after the part before it, as a reply to it.
    thread_parent_id: Mapped[int | None] = mapped_column(ForeignKey("outbox.id"), index=True)
    # The platform id of a message of theirs this one answers (a staff reply in a chat).
    reply_to: Mapped[str | None] = mapped_column(String(100))
    # "send", or "delete": take down the post whose platform id is ``text`` (a withdrawal).
    action: Mapped[str] = mapped_column(String(16), default="send")
    state: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Resent after a crash left it in flight: Telegram may have delivered it already.
    possible_duplicate: Mapped[bool] = mapped_column(Boolean, default=False)
    external_id: Mapped[str | None] = mapped_column(String(100))
    last_error: Mapped[str | None] = mapped_column(Text)
    # Why it was not sent, in one word (bot.delivery.failures: transient, rejected, opted_out,
    # erased, …): what `outbox retry` and the dashboard's retry may resend.
    failure_class: Mapped[str | None] = mapped_column(String(32))
    # The first try: transient failures are retried until [dispatcher] retry_hours after it.
    first_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Prompt(Base):
    """A message that awaits an answer. Expiry is derived from the send time, not stored."""

    __tablename__ = "prompts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    outbox_id: Mapped[int] = mapped_column(ForeignKey("outbox.id"), unique=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id"), index=True)
    pledgemaker_id: Mapped[str] = mapped_column(ForeignKey("pledgemakers.id"), index=True)
    campaign_id: Mapped[str] = mapped_column(String(64))
    pillar: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16), default="open")  # open | answered | snoozed
    requested_kind: Mapped[str | None] = mapped_column(String(16))  # from a button press
    reminders_sent: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class InboundEvent(Base):
    """A raw event as received, stored and committed before it is acknowledged to the platform."""

    __tablename__ = "inbound_events"
    __table_args__ = (
        UniqueConstraint("channel", "event_key"),
        Index("ix_inbound_unprocessed", "processed_at", "id"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    channel: Mapped[str] = mapped_column(String(32))
    # The platform's own identity of the event, e.g. "msg:<chat>:<message id>", "cbq:<id>".
    event_key: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))  # message | edit | button
    chat_id: Mapped[str] = mapped_column(String(200))
    update_id: Mapped[int | None] = mapped_column(Integer)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    outcome: Mapped[str | None] = mapped_column(String(200))


class JourneyUpdate(Base):
    """What a pledgemaker shares on a pillar: from replies or an import; moderated before use."""

    __tablename__ = "journey_updates"
    __table_args__ = (UniqueConstraint("source", "source_ref"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    pledgemaker_id: Mapped[str] = mapped_column(ForeignKey("pledgemakers.id"), index=True)
    prompt_id: Mapped[int | None] = mapped_column(ForeignKey("prompts.id"), index=True)
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id"), index=True)
    pillar: Mapped[str] = mapped_column(String(16))
    kind: Mapped[str] = mapped_column(String(16))  # progress | challenge | solution
    text: Mapped[str] = mapped_column(Text, default="")  # the pledgemaker's own words, kept
    edited_text: Mapped[str | None] = mapped_column(Text)  # the comms team's edit, if any
    media: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    moderation: Mapped[str] = mapped_column(String(16), default="pending")
    moderation_note: Mapped[str | None] = mapped_column(Text)
    moderated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    consent_to_publish: Mapped[bool | None] = mapped_column(Boolean)
    source: Mapped[str] = mapped_column(String(16))  # reply | import
    source_ref: Mapped[str] = mapped_column(String(200))  # import id, or "reply:<first reply id>"
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_reply_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Consent(Base):
    """A pledgemaker's answer about publishing one update: who, when, which text, which answer."""

    __tablename__ = "consents"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    journey_update_id: Mapped[int] = mapped_column(ForeignKey("journey_updates.id"), index=True)
    pledgemaker_id: Mapped[str] = mapped_column(ForeignKey("pledgemakers.id"), index=True)
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id"))
    answer: Mapped[str] = mapped_column(String(16))  # yes | no | withdrawn
    text_version: Mapped[str] = mapped_column(Text)  # exactly the text they answered about
    credit: Mapped[str | None] = mapped_column(String(300))  # how they are credited
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Agreement given outside any chat (a call, a letter) and recorded by staff: by whom, who
    # agreed, on which day, how. None for an answer in their chat.
    recorded_by: Mapped[str | None] = mapped_column(String(254))
    agreed_by: Mapped[str | None] = mapped_column(String(300))
    agreed_on: Mapped[date | None] = mapped_column(Date)
    how: Mapped[str | None] = mapped_column(String(500))


class Post(Base):
    """One journey update (or knowledge item) published on one channel: one or more parts."""

    __tablename__ = "posts"
    __table_args__ = (UniqueConstraint("journey_update_id", "channel"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    journey_update_id: Mapped[int | None] = mapped_column(ForeignKey("journey_updates.id"))
    fact_id: Mapped[str | None] = mapped_column(String(100))  # a knowledge campaign's fact
    pledgemaker_id: Mapped[str | None] = mapped_column(String(64), index=True)
    campaign_id: Mapped[str] = mapped_column(String(64))
    run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id"))
    channel: Mapped[str] = mapped_column(String(32))
    first_outbox_id: Mapped[int] = mapped_column(ForeignKey("outbox.id"))
    parts: Mapped[int] = mapped_column(Integer, default=1)
    pillar: Mapped[str | None] = mapped_column(String(16))
    region: Mapped[str | None] = mapped_column(String(40))
    thanked: Mapped[bool] = mapped_column(Boolean, default=False)  # the loop closed
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Reply(Base):
    """An inbound message from a chat, stored at once; linked to its prompt when it can be."""

    __tablename__ = "replies"
    # An edit finds the reply it changes by the platform's message identity.
    __table_args__ = (Index("ix_replies_message", "channel", "chat_id", "external_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    inbound_event_id: Mapped[int] = mapped_column(ForeignKey("inbound_events.id"), unique=True)
    channel: Mapped[str] = mapped_column(String(32))
    chat_id: Mapped[str] = mapped_column(String(200))
    external_id: Mapped[str] = mapped_column(String(100))  # the platform's message id
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id"), index=True)
    pledgemaker_id: Mapped[str | None] = mapped_column(ForeignKey("pledgemakers.id"), index=True)
    prompt_id: Mapped[int | None] = mapped_column(ForeignKey("prompts.id"))
    journey_update_id: Mapped[int | None] = mapped_column(ForeignKey("journey_updates.id"))
    text: Mapped[str] = mapped_column(Text, default="")
    original_text: Mapped[str | None] = mapped_column(Text)  # set when an edit changed the text
    media: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    media_group_id: Mapped[str | None] = mapped_column(String(100))
    acknowledgement: Mapped[bool] = mapped_column(Boolean, default=False)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    edited_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Cadence(Base):
    """One pledgemaker's next slot in one cadence campaign; swept by ``bot.scheduling.sweeper``."""

    __tablename__ = "cadences"
    __table_args__ = (Index("ix_cadences_due", "campaign_id", "next_due_at"),)
    campaign_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    pledgemaker_id: Mapped[str] = mapped_column(ForeignKey("pledgemakers.id"), primary_key=True)
    next_due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_slot_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class CampaignControl(Base):
    """Pause switches set by staff; campaign_id '*' pauses all sending."""

    __tablename__ = "campaign_controls"
    campaign_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    paused: Mapped[bool] = mapped_column(Boolean, default=False)
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ChannelState(Base):
    """Small per-channel facts that must survive restarts: poll offset, health."""

    __tablename__ = "channel_state"
    channel: Mapped[str] = mapped_column(String(32), primary_key=True)
    poll_offset: Mapped[int | None] = mapped_column(Integer)  # an integer cursor (Telegram)
    # Any other: Matrix's sync token, an IMAP UID with its UIDVALIDITY.
    poll_cursor: Mapped[str | None] = mapped_column(String(500))
    last_ok_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    # The outage breaker, shared by every worker: transient failures in a row across messages;
    # once down, only one probe message goes out at ``probe_at``; the first success lifts it.
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    down_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    probe_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class MatchSuggestion(Base):
    """A suggested introduction (``bot.community.introductions``): a pledgemaker's challenge and
    another's solution or progress that may address it. A pair of pledgemakers is suggested
    once, ever: declined and introduced pairs are remembered by ``pair_key``."""

    __tablename__ = "match_suggestions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    pair_key: Mapped[str] = mapped_column(String(140), unique=True)  # "<id>|<id>", sorted
    challenge_update_id: Mapped[int] = mapped_column(ForeignKey("journey_updates.id"), index=True)
    offer_update_id: Mapped[int] = mapped_column(ForeignKey("journey_updates.id"), index=True)
    seeker_id: Mapped[str] = mapped_column(ForeignKey("pledgemakers.id"), index=True)
    helper_id: Mapped[str] = mapped_column(ForeignKey("pledgemakers.id"), index=True)
    score: Mapped[float] = mapped_column(Float)
    reason: Mapped[str] = mapped_column(Text)
    topics: Mapped[list[str]] = mapped_column(JSON, default=list)
    # suggested → declined (by staff) | asking → introduced (both said yes) | ended (a no)
    state: Mapped[str] = mapped_column(String(16), default="suggested", index=True)
    seeker_answer: Mapped[str | None] = mapped_column(String(8))  # yes | no
    helper_answer: Mapped[str | None] = mapped_column(String(8))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    decided_by: Mapped[str | None] = mapped_column(String(254))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
