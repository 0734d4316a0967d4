"""What goes out when: the comms team's calendar, on the dashboard and as an iCalendar feed.

Planned items come from ``bot.scheduling.preview`` (the planners' own code, writing nothing); what
went out
comes from the outbox. A follow-up to many pledgemakers is one entry per run and channel, at its
first send ("act-checkin → 38 pledgemakers"; each goes out in its recipient's own hours). A post
(amplify, knowledge) is one entry each, with its text. Times are UTC here; pages and feeds show
them in the viewer's time zone.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from icalendar import Calendar, Event
from sqlalchemy import func, select

from bot.campaigns.followup import FollowupCampaign
from bot.core.models import OutboxMessage, utcnow
from bot.scheduling.preview import preview
from bot.service.app import App

MAX_DAYS = 92  # a quarter: the planners walk every slot, so the range is bounded


@dataclass
class Entry:
    start: datetime  # UTC, the hour for grouped follow-ups
    campaign: str
    channel: str
    state: str  # planned | sent | failed
    count: int = 1
    texts: list[str] = field(default_factory=list)  # the rendered message(s), a few at most

    @property
    def title(self) -> str:
        who = f"{self.count} pledgemaker(s)" if self.count > 1 or not self.texts else ""
        return f"{self.campaign} → {self.channel}" + (f" · {who}" if who else "")

    @property
    def uid(self) -> str:
        return f"{self.campaign}-{self.channel}-{self.state}-{self.start:%Y%m%dT%H%M%SZ}@pledgebot"


def as_seen(text: str, channel: str) -> str:
    """The text as its reader sees it: Telegram messages are HTML (tags shown as formatting,
    entities as characters); X posts are plain text, shown as they are."""
    if channel != "telegram":
        return text
    return html.unescape(re.sub(r"<[^>]+>", "", text))


def entries(app: App, start: datetime, end: datetime) -> list[Entry]:
    """Everything planned or sent in [start, end), oldest first."""
    now = utcnow()
    end = min(end, start + timedelta(days=MAX_DAYS))
    found: list[Entry] = _sent(app, start, end)
    if end > now:
        found += _queued(app, start, end) + _planned(app, max(start, now), end)
    return sorted(found, key=lambda e: (e.start, e.campaign, e.channel))


def _planned(app: App, start: datetime, end: datetime) -> list[Entry]:
    schedules = app.schedules()
    followups = {
        cid
        for cid, loaded in schedules.campaigns.items()
        if isinstance(loaded.spec, FollowupCampaign)
    }
    days = max(1, -(-int((end - start).total_seconds()) // 86400))
    with app.db.session() as session:
        items = preview(
            session,
            schedules,
            app.templates,
            now=start,
            days=days,
            destinations=app.destinations(),
        )
    grouped: dict[tuple[datetime, str, str], Entry] = {}
    posts: list[Entry] = []
    for item in items:
        if item.skipped or not (start <= item.send_utc < end):
            continue
        if item.campaign_id in followups:  # one entry per run (its fire time), at its first send
            hour = item.due_utc.replace(minute=0, second=0, microsecond=0)
            key = (hour, item.campaign_id, item.channel)
            entry = grouped.setdefault(
                key, Entry(item.send_utc, item.campaign_id, item.channel, "planned", 0)
            )
            entry.start = min(entry.start, item.send_utc)
            entry.count += 1
            if len(entry.texts) < 1:
                entry.texts.append(item.text)
        else:
            posts.append(
                Entry(item.send_utc, item.campaign_id, item.channel, "planned", 1, [item.text])
            )
    return [*grouped.values(), *posts]


def _sent(app: App, start: datetime, end: datetime) -> list[Entry]:
    return _from_outbox(app, start, end, "sent")


def _queued(app: App, start: datetime, end: datetime) -> list[Entry]:
    """Queued and not sent yet: a post written on the dashboard, prompts held for their
    recipients' hours."""
    return _from_outbox(app, start, end, "queued")


def _from_outbox(app: App, start: datetime, end: datetime, state: str) -> list[Entry]:
    """One entry per campaign run (or dashboard post) and channel, at its first send (or due
    time); a thread's later parts follow their first and are not counted apart."""
    sent = state == "sent"
    moment = OutboxMessage.sent_at if sent else OutboxMessage.next_attempt_at
    with app.db.session() as session:
        rows = session.execute(
            select(
                OutboxMessage.campaign_id,
                OutboxMessage.channel,
                func.min(moment),
                func.count(),
                func.min(OutboxMessage.text),
            )
            .where(
                OutboxMessage.state.in_(("sent",) if sent else ("pending", "retry_wait")),
                moment >= start,
                moment < end,
                OutboxMessage.campaign_id.is_not(None),
                OutboxMessage.thread_parent_id.is_(None),
                OutboxMessage.action == "send",
            )
            .group_by(
                OutboxMessage.campaign_id,
                OutboxMessage.channel,
                # a run's messages together; a dashboard post (no run) on its own
                func.coalesce(OutboxMessage.run_id, -OutboxMessage.id),
            )
        ).all()
    return [
        Entry(first, campaign, channel, state, count, [text])
        for campaign, channel, first, count, text in rows
    ]


def ics(found: list[Entry], *, name: str = "pledgebot campaigns") -> bytes:
    """An iCalendar file (RFC 5545): one 15-minute event per entry, UTC times, stable UIDs."""
    calendar = Calendar()
    calendar.add("prodid", "-//pledgebot//campaign calendar//EN")
    calendar.add("version", "2.0")
    calendar.add("x-wr-calname", name)
    stamp = utcnow()
    for entry in found:
        event = Event()
        event.add("uid", entry.uid)
        event.add("dtstamp", stamp)
        event.add("dtstart", entry.start)
        event.add("dtend", entry.start + timedelta(minutes=15))
        event.add("summary", ("Sent: " if entry.state == "sent" else "") + entry.title)
        event.add("description", "\n\n".join(as_seen(t, entry.channel) for t in entry.texts)[:4000])
        event.add("categories", [entry.campaign, entry.channel])
        calendar.add_component(event)
    return calendar.to_ical()
