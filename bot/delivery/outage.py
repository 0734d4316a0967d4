"""Channel health and the outage breaker.

``record_health`` notes when a channel last worked or failed (for `pledgebot status`). A channel
that fails again and again (``Breaker``) is *down*: its messages are not claimed (they use no
attempts) except one probe at growing intervals; the first success lifts it. The state is a
``channel_state`` row, so every worker sees it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from bot.core.db import rows_changed
from bot.core.models import ChannelState, utcnow

_STATES = ChannelState.__table__


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
    lifted = rows_changed(
        session.execute(
            update(_STATES)
            .where(_STATES.c.channel == channel, _STATES.c.down_since.is_not(None))
            .values(consecutive_failures=0, down_since=None, probe_at=None)
        )
    )
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
        lifted = rows_changed(
            session.execute(
                update(_STATES)
                .where(_STATES.c.channel == channel, _STATES.c.down_since.is_not(None))
                .values(consecutive_failures=0, down_since=None, probe_at=None)
            )
        )
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
