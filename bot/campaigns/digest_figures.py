"""The digest's figures: what happened in a period, counted from the database.

- journey updates received, by pillar and kind; updates waiting for moderation, the oldest's age;
- outbox messages that failed (their last attempt due in the period), with the commonest reasons;
- pledgemakers with an active contact who have not written for longer than a given silence
  (counted from their last reply, else from when their chat was bound), the longest silent first;
- the best match suggestions still open (``bot.community.introductions``);
- posts whose first part went out, per channel, with links where the channel has them.

``bot.campaigns.digest`` decides the period (since the campaign's previous firing) and renders them.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.channels import registry
from bot.community import digest_chart
from bot.core.models import (
    Contact,
    JourneyUpdate,
    MatchSuggestion,
    OutboxMessage,
    Pledgemaker,
    Post,
    Reply,
)
from bot.core.vocab import UPDATE_KINDS

FEW_NAMES, FEW_REASONS, FEW_SUGGESTIONS, FEW_LINKS = 8, 3, 3, 5


@dataclass(frozen=True)
class PillarUpdates:
    name: str  # "Act", "Inspire", "Scale up"
    kinds: dict[str, int]  # progress / challenge / solution → how many

    @property
    def total(self) -> int:
        return sum(self.kinds.values())


@dataclass(frozen=True)
class Suggested:
    id: int
    seeker: str  # who reported the challenge
    helper: str  # whose solution or progress may help
    score: float
    reason: str
    new: bool  # made in this period


@dataclass(frozen=True)
class ChannelPosts:
    channel: str
    count: int
    links: list[str] = field(default_factory=list)  # the first few


@dataclass(frozen=True)
class Figures:
    since: datetime
    until: datetime
    zone: str
    updates: list[PillarUpdates]
    pending: int
    oldest_pending: str  # its age, "9 days"; "" when nothing waits
    failed: int
    failed_reasons: list[tuple[str, int]]  # the commonest, with their counts
    silent: int
    silent_names: list[str]  # the longest silent first
    silent_after: str  # "60 days"
    suggestions: list[Suggested]
    posts: list[ChannelPosts]

    @property
    def updates_total(self) -> int:
        return sum(p.total for p in self.updates)

    @property
    def posts_total(self) -> int:
        return sum(p.count for p in self.posts)

    @property
    def period(self) -> str:
        """ "2 Mar 2026 08:00 – 9 Mar 2026 08:00 (Europe/Zurich)"."""
        zone = ZoneInfo(self.zone)
        since, until = self.since.astimezone(zone), self.until.astimezone(zone)
        return f"{_day(since)} {since:%H:%M} – {_day(until)} {until:%H:%M} ({self.zone})"

    @property
    def period_short(self) -> str:
        """ "2 Mar 2026 – 9 Mar 2026", for a title or a subject."""
        zone = ZoneInfo(self.zone)
        since, until = self.since.astimezone(zone), self.until.astimezone(zone)
        return f"{_day(since)} – {_day(until)}"


def _day(moment: datetime) -> str:
    return f"{moment.day} {moment:%b %Y}"


def span(delta: timedelta) -> str:
    """A duration as people say it: "9 days", "5 hours", "under an hour"."""
    if delta >= timedelta(days=2):
        return f"{delta.days} days"
    hours = int(delta.total_seconds() // 3600)
    if hours >= 2:
        return f"{hours} hours"
    return "1 hour" if hours == 1 else "under an hour"


def shorten(text: str, most: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= most else text[: most - 1].rstrip() + "…"


def count(
    session: Session, since: datetime, until: datetime, *, zone: str, silence: timedelta
) -> Figures:
    """The figures of [since, until); ``silence``: how long without a word counts as silent."""
    pending, oldest = session.execute(
        select(func.count(), func.min(JourneyUpdate.created_at)).where(
            JourneyUpdate.moderation == "pending", JourneyUpdate.created_at < until
        )
    ).one()
    silent, names = _silent(session, until - silence)
    failed = _failed(session, since, until)
    return Figures(
        since=since,
        until=until,
        zone=zone,
        updates=_updates(session, since, until),
        pending=int(pending),
        oldest_pending=span(until - oldest) if oldest else "",
        failed=sum(failed.values()),
        failed_reasons=failed.most_common(FEW_REASONS),
        silent=silent,
        silent_names=names,
        silent_after=span(silence),
        suggestions=_suggestions(session, since),
        posts=_posts(session, since, until),
    )


def _updates(session: Session, since: datetime, until: datetime) -> list[PillarUpdates]:
    found = Counter(
        {
            (pillar, kind): int(count)
            for pillar, kind, count in session.execute(
                select(JourneyUpdate.pillar, JourneyUpdate.kind, func.count())
                .where(JourneyUpdate.created_at >= since, JourneyUpdate.created_at < until)
                .group_by(JourneyUpdate.pillar, JourneyUpdate.kind)
            )
        }
    )
    return [
        PillarUpdates(
            digest_chart.PILLAR_NAMES[pillar], {kind: found[pillar, kind] for kind in UPDATE_KINDS}
        )
        for pillar in digest_chart.PILLARS
    ]


def _failed(session: Session, since: datetime, until: datetime) -> Counter[str]:
    """Failed messages by reason. The outbox keeps no failure time: the last attempt's due
    time (``next_attempt_at``) stands for it."""
    reasons: Counter[str] = Counter()
    for error, count in session.execute(
        select(OutboxMessage.last_error, func.count())
        .where(
            OutboxMessage.state == "failed",
            OutboxMessage.next_attempt_at >= since,
            OutboxMessage.next_attempt_at < until,
        )
        .group_by(OutboxMessage.last_error)
    ):
        reasons[shorten(error or "(no reason recorded)", 120)] += int(count)
    return reasons


def _silent(session: Session, before: datetime) -> tuple[int, list[str]]:
    """Reachable pledgemakers (an active contact) whose last word — a reply, else binding
    their chat — is older than ``before``: how many, and the first few names."""
    replied = (
        select(Reply.pledgemaker_id, func.max(Reply.received_at).label("at"))
        .where(Reply.pledgemaker_id.is_not(None))
        .group_by(Reply.pledgemaker_id)
        .subquery()
    )
    bound = (
        select(Contact.pledgemaker_id, func.min(Contact.bound_at).label("at"))
        .where(Contact.status == "active")
        .group_by(Contact.pledgemaker_id)
        .subquery()
    )
    last_word = func.coalesce(replied.c.at, bound.c.at)
    query = (
        select(Pledgemaker.name)
        .join(bound, bound.c.pledgemaker_id == Pledgemaker.id)
        .outerjoin(replied, replied.c.pledgemaker_id == Pledgemaker.id)
        .where(Pledgemaker.erased_at.is_(None), last_word < before)
    )
    count = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    names = session.scalars(query.order_by(last_word, Pledgemaker.name).limit(FEW_NAMES))
    return int(count), [shorten(name, 60) for name in names]


def _suggestions(session: Session, since: datetime) -> list[Suggested]:
    rows = session.scalars(
        select(MatchSuggestion)
        .where(MatchSuggestion.state == "suggested")
        .order_by(MatchSuggestion.score.desc(), MatchSuggestion.id)
        .limit(FEW_SUGGESTIONS)
    )
    found = []
    for row in rows:
        seeker = session.get(Pledgemaker, row.seeker_id)
        helper = session.get(Pledgemaker, row.helper_id)
        found.append(
            Suggested(
                row.id,
                shorten(seeker.name if seeker else row.seeker_id, 60),
                shorten(helper.name if helper else row.helper_id, 60),
                round(row.score, 2),
                shorten(row.reason, 200),
                new=row.created_at >= since,
            )
        )
    return found


def _posts(session: Session, since: datetime, until: datetime) -> list[ChannelPosts]:
    rows = session.execute(
        select(Post.channel, OutboxMessage.recipient, OutboxMessage.external_id)
        .join(OutboxMessage, OutboxMessage.id == Post.first_outbox_id)
        .where(
            OutboxMessage.state == "sent",
            OutboxMessage.sent_at >= since,
            OutboxMessage.sent_at < until,
        )
        .order_by(Post.channel, OutboxMessage.sent_at, OutboxMessage.id)
    )
    counts: Counter[str] = Counter()
    links: dict[str, list[str]] = {}
    for channel, destination, external_id in rows:
        counts[channel] += 1
        shown = links.setdefault(channel, [])
        link = registry.spec(channel).public_link(destination, external_id or "")
        if link is not None and len(shown) < FEW_LINKS:  # where the post's id makes one
            shown.append(link)
    return [ChannelPosts(channel, counts[channel], links[channel]) for channel in sorted(counts)]
