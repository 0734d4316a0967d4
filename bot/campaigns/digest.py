"""The ``digest`` kind: the comms team's own summary, to a Telegram chat and/or email addresses.

Each figure counts in the period from the campaign's previous recorded firing (default: 7 days
before) to this fire time:

- journey updates received, by pillar and kind; updates waiting for moderation, the oldest's age;
- outbox messages that failed (their last attempt due in the period), with the commonest reasons;
- pledgemakers with an active contact who have not written for over ``silent_after`` (counted
  from their last reply, else from when their chat was bound), the longest silent first;
- the best match suggestions still open (``bot.community.introductions``; a recorded run looks for
  new
  ones first, in ``prepare``: planning itself only reads);
- posts whose first part went out, per channel, with links where the channel has them.

One message per destination: an email (HTML and plain text from the same HTML) to each address
with the chart attached; on Telegram the text (split between sections past 4,096 characters),
then the chart as a photo replying to it, captioned with its alt text. The text goes first so a
photo Telegram refuses never holds the figures back (a part after a failed one is not sent).
The chart is a PNG written under ``[media] dir`` by a recorded run only (``RunContext.media_dir``);
previews and dry runs plan the text alone and write nothing.
"""

from __future__ import annotations

import functools
import hashlib
import html
import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.campaigns.base import Plan, RunContext
from bot.campaigns.schedule_models import DigestCampaign, parse_duration
from bot.community import digest_chart
from bot.community.closing import public_link
from bot.core.models import (
    Contact,
    JourneyUpdate,
    MatchSuggestion,
    OutboxMessage,
    Pledgemaker,
    Post,
    Reply,
    Run,
)
from bot.delivery.messages import PlannedMessage
from bot.text.templates import Templates

log = logging.getLogger(__name__)
DEFAULT_PERIOD = timedelta(days=7)  # the first firing, with no previous one to count from
KINDS = ("progress", "challenge", "solution")
FEW_NAMES, FEW_REASONS, FEW_SUGGESTIONS, FEW_LINKS = 8, 3, 3, 5
TELEGRAM_TEXT, TELEGRAM_CAPTION = 4096, 1024


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


def _span(delta: timedelta) -> str:
    """A duration as people say it: "9 days", "5 hours", "under an hour"."""
    if delta >= timedelta(days=2):
        return f"{delta.days} days"
    hours = int(delta.total_seconds() // 3600)
    if hours >= 2:
        return f"{hours} hours"
    return "1 hour" if hours == 1 else "under an hour"


def _short(text: str, most: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= most else text[: most - 1].rstrip() + "…"


# -- the figures ------------------------------------------------------------------------------
def period_start(session: Session, spec: DigestCampaign, until: datetime) -> datetime:
    """The previous recorded firing of the campaign (not a missed one), else 7 days before."""
    previous = session.scalar(
        select(func.max(Run.fire_time)).where(
            Run.campaign_id == spec.id, Run.fire_time < until, Run.trigger != "missed"
        )
    )
    return previous or until - DEFAULT_PERIOD


def figures(session: Session, spec: DigestCampaign, until: datetime) -> Figures:
    since = period_start(session, spec, until)
    pending, oldest = session.execute(
        select(func.count(), func.min(JourneyUpdate.created_at)).where(
            JourneyUpdate.moderation == "pending", JourneyUpdate.created_at < until
        )
    ).one()
    silence = parse_duration(spec.silent_after)
    silent, names = _silent(session, until - silence)
    failed = _failed(session, since, until)
    return Figures(
        since=since,
        until=until,
        zone=spec.timezone,
        updates=_updates(session, since, until),
        pending=int(pending),
        oldest_pending=_span(until - oldest) if oldest else "",
        failed=sum(failed.values()),
        failed_reasons=failed.most_common(FEW_REASONS),
        silent=silent,
        silent_names=names,
        silent_after=_span(silence),
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
            digest_chart.PILLAR_NAMES[pillar], {kind: found[pillar, kind] for kind in KINDS}
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
        reasons[_short(error or "(no reason recorded)", 120)] += int(count)
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
    return int(count), [_short(name, 60) for name in names]


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
                _short(seeker.name if seeker else row.seeker_id, 60),
                _short(helper.name if helper else row.helper_id, 60),
                round(row.score, 2),
                _short(row.reason, 200),
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
        link = public_link(channel, destination, external_id or "")
        if link is not None and len(shown) < FEW_LINKS:  # where the post's id makes one
            shown.append(link)
    return [ChannelPosts(channel, counts[channel], links[channel]) for channel in sorted(counts)]


# -- the messages -----------------------------------------------------------------------------
def prepare(session: Session) -> None:
    """Before a recorded run plans: store new match suggestions, so the digest lists them with
    the ids `pledgebot matches accept` takes. Previews skip this and show the stored ones."""
    from bot.community import introductions  # scikit-learn: only when a digest really fires

    try:
        with session.begin_nested():
            introductions.refresh(session)
    except Exception:  # the digest still goes out, with the suggestions already stored
        log.exception("digest: looking for new match suggestions failed")


def plan(spec: DigestCampaign, run: RunContext, session: Session, templates: Templates) -> Plan:
    if run.only is not None:
        return Plan([], {"a digest goes to its 'to', not to one pledgemaker": 1})
    found = figures(session, spec, run.fire_time)
    replies = digest_chart.weekly_replies(session, run.fire_time, spec.timezone)
    alt_text = digest_chart.describe(replies)
    media: tuple[dict[str, Any], ...] = ()
    if run.media_dir is not None:
        chart = digest_chart.save(replies, run.media_dir, run.campaign_id, run.fire_time)
        media = ({"path": str(chart), "alt_text": alt_text},)
    context = {"digest": found, "campaign_id": spec.id, "chart": alt_text if media else ""}
    slot = run.fire_time.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    prefix = f"digest:{spec.id}:{slot}"
    messages: list[PlannedMessage] = []
    message = functools.partial(PlannedMessage, parse_mode="HTML")  # key, channel, to, text
    for channel, address in spec.destinations():
        text = templates.render(f"{spec.template}/{channel}", spec.language, **context)
        key = _key(prefix, channel, address)
        if channel == "email":
            messages.append(message(key, channel, address, text, media=media))
            continue
        previous = None
        for number, part in enumerate(split_sections(text, TELEGRAM_TEXT), start=1):
            messages.append(message(f"{key}:{number}", channel, address, part, follows=previous))
            previous = f"{key}:{number}"
        if media:  # the chart replies to the figures; the caption says it in words
            caption = html.escape(_short(alt_text, TELEGRAM_CAPTION), quote=False)
            messages.append(
                message(f"{key}:chart", channel, address, caption, media=media, follows=previous)
            )
    return Plan(messages, {})


def _key(prefix: str, channel: str, address: str) -> str:
    """The idempotency key of one destination's digest; a long address is hashed (≤ 300)."""
    key = f"{prefix}:{channel}:{address}"
    if len(key) <= 280:  # room for ":<part>"
        return key
    return f"{prefix}:{channel}:sha256:{hashlib.sha256(address.encode()).hexdigest()[:32]}"


def split_sections(text: str, limit: int) -> list[str]:
    """Parts of at most ``limit`` characters (UTF-16 units, as Telegram counts; tags included,
    so the count is never short), split between sections (blank lines), else between lines:
    each line of a digest template closes its own tags, so no part breaks the HTML."""

    def size(piece: str) -> int:
        return len(piece.encode("utf-16-le")) // 2

    if size(text) <= limit:
        return [text]
    parts: list[str] = []
    current = ""
    for section in text.split("\n\n"):
        lines = [section] if size(section) <= limit else section.split("\n")
        for index, line in enumerate(lines):
            line = line if size(line) <= limit else _short(line, limit // 2)
            glue = "\n" if index else "\n\n"  # lines of one section, or a new section
            joined = f"{current}{glue}{line}" if current else line
            if size(joined) <= limit:
                current = joined
            else:
                parts.append(current)
                current = line
    return [*parts, current] if current else parts


def sample_context() -> dict[str, Any]:
    """Figures of every sort, for ``schedules check`` to render the templates against."""
    until = datetime(2026, 3, 9, 7, tzinfo=UTC)
    sample = Figures(
        since=until - DEFAULT_PERIOD,
        until=until,
        zone="Europe/Zurich",
        updates=[
            PillarUpdates(name, {"progress": 2, "challenge": 1, "solution": 0})
            for name in digest_chart.PILLAR_NAMES.values()
        ],
        pending=2,
        oldest_pending="9 days",
        failed=1,
        failed_reasons=[("rejected: Bad Request: chat not found", 1)],
        silent=1,
        silent_names=["Sample Organisation"],
        silent_after="60 days",
        suggestions=[Suggested(1, "Coop CI", "Ecole Plus", 0.61, "both on cocoa", new=True)],
        posts=[ChannelPosts("x", 1, ["https://x.com/i/web/status/1"])],
    )
    return {"digest": sample, "campaign_id": "sample", "chart": "Stacked bar chart …"}
