"""Campaign figures per pillar, country, campaign or channel, and their CSV, JSON and chart.

One row per group: prompts sent, how many were answered (reply rate), the median time to the
first reply, journey updates approved and posts published; then an "All" row. Each figure is
counted in its own period: a prompt when its message was sent, an update when it was approved,
a post when its first part was sent. Only ids, times, states, pillars, campaign ids, channels
and countries are read — never a name or a text — so the figures survive the erasure of a
pledgemaker's personal data.

Shared by ``pledgebot report`` (bot/cli/report.py) and the dashboard's /reports page.
"""

from __future__ import annotations

import io
import json
import re
import statistics
import threading
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import IO, Any

from sqlalchemy import ColumnElement, Select, case, func, select
from sqlalchemy.orm import Session

from bot.core.csv_safety import write_records  # every CSV a person opens: no formula runs
from bot.core.errors import UserInputError
from bot.core.extras import needs
from bot.core.models import Contact, JourneyUpdate, OutboxMessage, Pledgemaker, Post, Prompt, Reply

DIMENSIONS = ("pillar", "country", "campaign", "channel")
TOTAL = "All"
IMPORTED = "(imported)"  # an update that came from no prompt (a CSV import)
NO_VALUE = "(none)"  # a post with no pillar or no pledgemaker (a knowledge post)
CHART_FORMATS = ("svg", "png")
# Output columns after the group's own (named after the dimension), in CSV and JSON.
FIELDS = (
    "prompts_sent",
    "answered",
    "reply_rate_percent",
    "median_hours_to_reply",
    "updates_approved",
    "posts_published",
)
HEADINGS = (
    "Prompts sent",
    "Answered",
    "Reply rate",
    "Median hours to reply",
    "Updates approved",
    "Posts published",
)
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
CHARTING = threading.Lock()  # matplotlib's font and text caches are shared by its figures
NO_CHART = "chart omitted: its library is not installed"  # the one line then names the extra


@dataclass
class ReportRow:
    group: str
    prompts_sent: int = 0
    answered: int = 0
    reply_rate: float | None = None  # answered / sent, 0..1; None when nothing was sent
    median_hours_to_reply: float | None = None  # 1 decimal; None when nothing was answered
    updates_approved: int = 0
    posts_published: int = 0
    total: bool = False  # the "All" row


# -- choosing -----------------------------------------------------------------------------------
def check_by(by: str) -> str:
    if by not in DIMENSIONS:
        raise UserInputError(f"cannot group by {by!r}; one of {', '.join(DIMENSIONS)}")
    return by


def parse_day(value: str | None, what: str) -> date | None:
    """A YYYY-MM-DD date, or None for nothing given."""
    value = (value or "").strip()
    if not value:
        return None
    try:
        if not _DAY.fullmatch(value):
            raise ValueError
        return date.fromisoformat(value)
    except ValueError:
        raise UserInputError(f"{what}: {value!r} is not a date (YYYY-MM-DD)") from None


def check_period(since: date | None, until: date | None) -> None:
    if since and until and since > until:
        raise UserInputError(f"the period starts ({since}) after it ends ({until})")


def describe_period(since: date | None, until: date | None) -> str:
    if since and until:
        return f"{since} to {until} (UTC)"
    if since:
        return f"from {since} (UTC)"
    if until:
        return f"until {until} (UTC)"
    return "all time"


# -- counting -----------------------------------------------------------------------------------
def figures(
    session: Session, by: str, since: date | None = None, until: date | None = None
) -> list[ReportRow]:
    """One row per group value (sorted), then the "All" row. Dates are whole UTC days."""
    check_by(by)
    check_period(since, until)
    rows: dict[str, ReportRow] = {}

    def row(value: str | None, missing: str) -> ReportRow:
        key = missing if value is None else str(value)
        return rows.setdefault(key, ReportRow(key))

    sent = _prompts_sent(by, since, until)
    answered = func.sum(case((Prompt.state == "answered", 1), else_=0))
    counted = sent.with_only_columns(sent.selected_columns[0], func.count(), answered)
    for value, count, replied in session.execute(counted.group_by(sent.selected_columns[0])):
        found = row(value, NO_VALUE)
        found.prompts_sent, found.answered = int(count), int(replied or 0)

    # The narrow rows of answered prompts: their group, send time and first reply.
    first = (
        select(Reply.prompt_id, func.min(Reply.received_at).label("at"))
        .where(Reply.prompt_id.is_not(None))
        .group_by(Reply.prompt_id)
        .subquery()
    )
    delays = (
        sent.add_columns(OutboxMessage.sent_at, first.c.at)
        .join(first, first.c.prompt_id == Prompt.id)
        .where(Prompt.state == "answered")
    )
    hours: dict[str, list[float]] = defaultdict(list)
    for value, sent_at, replied_at in session.execute(delays):
        # A reply stored a moment before the send was recorded counts as at once.
        waited = max((replied_at - sent_at).total_seconds(), 0.0) / 3600
        hours[row(value, NO_VALUE).group].append(waited)

    for value, count in session.execute(_updates_approved(by, since, until)):
        row(value, IMPORTED).updates_approved = int(count)
    for value, count in session.execute(_posts_published(by, since, until)):
        row(value, NO_VALUE).posts_published = int(count)

    ordered = [rows[key] for key in sorted(rows)]
    total = ReportRow(
        TOTAL,
        prompts_sent=sum(r.prompts_sent for r in ordered),
        answered=sum(r.answered for r in ordered),
        updates_approved=sum(r.updates_approved for r in ordered),
        posts_published=sum(r.posts_published for r in ordered),
        total=True,
    )
    for each in ordered:
        _finish(each, hours.get(each.group, []))
    _finish(total, [h for waits in hours.values() for h in waits])
    return [*ordered, total]


def _finish(row: ReportRow, hours: list[float]) -> None:
    row.reply_rate = row.answered / row.prompts_sent if row.prompts_sent else None
    row.median_hours_to_reply = round(statistics.median(hours), 1) if hours else None


def _window(column: Any, since: date | None, until: date | None) -> list[ColumnElement[bool]]:
    """``column`` within whole UTC days, both ends included."""
    where = []
    if since:
        where.append(column >= datetime.combine(since, time(), UTC))
    if until and until < date.max:  # the last day there is has no day after it
        where.append(column < datetime.combine(until + timedelta(days=1), time(), UTC))
    return where


def _prompts_sent(by: str, since: date | None, until: date | None) -> Select[Any]:
    """Prompts whose message was sent in the period, with their group as the first column."""
    group = {
        "pillar": Prompt.pillar,
        "country": Pledgemaker.country,
        "campaign": Prompt.campaign_id,
        "channel": OutboxMessage.channel,
    }[by]
    query = (
        select(group)
        .select_from(Prompt)
        .join(OutboxMessage, OutboxMessage.id == Prompt.outbox_id)
        .where(OutboxMessage.state == "sent", *_window(OutboxMessage.sent_at, since, until))
    )
    if by == "country":
        query = query.join(Pledgemaker, Pledgemaker.id == Prompt.pledgemaker_id)
    return query


def _updates_approved(by: str, since: date | None, until: date | None) -> Select[Any]:
    group = {
        "pillar": JourneyUpdate.pillar,
        "country": Pledgemaker.country,
        "campaign": Prompt.campaign_id,
        "channel": Contact.channel,
    }[by]
    query = select(group, func.count()).select_from(JourneyUpdate)
    if by == "country":
        query = query.join(Pledgemaker, Pledgemaker.id == JourneyUpdate.pledgemaker_id)
    elif by == "campaign":
        query = query.outerjoin(Prompt, Prompt.id == JourneyUpdate.prompt_id)
    elif by == "channel":
        query = query.outerjoin(Contact, Contact.id == JourneyUpdate.contact_id)
    return query.where(
        JourneyUpdate.moderation == "approved",
        *_window(JourneyUpdate.moderated_at, since, until),
    ).group_by(group)


def _posts_published(by: str, since: date | None, until: date | None) -> Select[Any]:
    group = {
        "pillar": Post.pillar,
        "country": Pledgemaker.country,
        "campaign": Post.campaign_id,
        "channel": Post.channel,
    }[by]
    query = (
        select(group, func.count())
        .select_from(Post)
        .join(OutboxMessage, OutboxMessage.id == Post.first_outbox_id)
    )
    if by == "country":
        query = query.outerjoin(Pledgemaker, Pledgemaker.id == Post.pledgemaker_id)
    return query.where(
        OutboxMessage.state == "sent", *_window(OutboxMessage.sent_at, since, until)
    ).group_by(group)


# -- rendering ----------------------------------------------------------------------------------
def percent(rate: float | None) -> str:
    return "—" if rate is None else f"{rate * 100:.1f}%"


def hours(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}"


def record(row: ReportRow, by: str) -> dict[str, Any]:
    """A row as plain values: numbers as numbers, None where there is no figure."""
    rate = None if row.reply_rate is None else round(row.reply_rate * 100, 1)
    return {
        by: row.group,
        "prompts_sent": row.prompts_sent,
        "answered": row.answered,
        "reply_rate_percent": rate,
        "median_hours_to_reply": row.median_hours_to_reply,
        "updates_approved": row.updates_approved,
        "posts_published": row.posts_published,
    }


def to_csv(rows: Iterable[ReportRow], by: str, stream: IO[str]) -> None:
    """A header (the dimension's name, then ``FIELDS``) and one line per row; empty = none."""
    records = (record(row, by) for row in rows)
    write_records(stream, [by, *FIELDS], records, lineterminator="\n")


def to_json(rows: Iterable[ReportRow], by: str) -> str:
    """An array of objects, keyed like the CSV; null where there is no figure."""
    return json.dumps([record(row, by) for row in rows], ensure_ascii=False, indent=2)


def summary(rows: list[ReportRow], by: str) -> str:
    """The chart in words (its alt text)."""
    groups = [r for r in rows if not r.total]
    total = next((r for r in rows if r.total), ReportRow(TOTAL))
    said = (
        f"Bar chart per {by} of prompts sent, answered, updates approved and posts published"
        f" ({len(groups)} {by if len(groups) == 1 else 'groups'})."
        f" In all: {total.prompts_sent} prompts sent, {total.answered} answered,"
        f" {total.updates_approved} updates approved, {total.posts_published} posts published."
    )
    if any(r.prompts_sent for r in groups):
        most = max(groups, key=lambda r: r.prompts_sent)
        said += f" Most prompts sent: {most.group} ({most.prompts_sent})."
    return said


SERIES = (  # (field, legend, colour): the Okabe–Ito palette, told apart without colour vision
    ("prompts_sent", "Prompts sent", "#0072B2"),
    ("answered", "Answered", "#56B4E9"),
    ("updates_approved", "Updates approved", "#009E73"),
    ("posts_published", "Posts published", "#E69F00"),
)


def chart(rows: list[ReportRow], by: str, fmt: str = "svg", *, period: str = "") -> bytes:
    """Grouped horizontal bars, one group per row (not the "All" row); the same input gives
    the same bytes. ``fmt`` is "svg" or "png". Without matplotlib (the reports extra):
    ``ExtraMissing`` — the figures are there all the same, only their chart is not."""
    if fmt not in CHART_FORMATS:
        raise ValueError(f"chart format {fmt!r}; one of {', '.join(CHART_FORMATS)}")
    with needs("reports", NO_CHART):  # here, not at the top: `pledgebot --help` stays fast
        import matplotlib
        from matplotlib.figure import Figure
        from matplotlib.ticker import MaxNLocator
    matplotlib.use("Agg")

    groups = [r for r in rows if not r.total]
    slots = max(len(groups), 1)
    bar = 0.8 / len(SERIES)
    with CHARTING, matplotlib.rc_context({"svg.hashsalt": "pledgebot-report"}):
        figure = Figure(figsize=(9, 1.8 + 0.5 * slots), layout="constrained")
        axes = figure.add_subplot()
        # The first group at the top, and within a group the series in legend order.
        places = [slots - 1 - i for i in range(len(groups))]
        for k, (field, legend, colour) in enumerate(SERIES):
            values = [getattr(r, field) for r in groups]
            offset = (len(SERIES) - 1) / 2 * bar - k * bar
            bars = axes.barh(
                [p + offset for p in places], values, height=bar, label=legend, color=colour
            )
            axes.bar_label(bars, labels=[str(v) if v else "" for v in values], padding=2, size=7)
        axes.set_yticks(places, labels=[_short(r.group) for r in groups])
        axes.set_ylim(-0.6, slots - 0.4)
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.set_xlabel("Count")
        axes.set_ylabel(by.capitalize())
        axes.set_title(f"Campaign figures per {by}" + (f", {period}" if period else ""))
        if groups:
            figure.legend(loc="outside lower center", ncols=len(SERIES), frameon=False)
        else:
            axes.text(0.5, 0.5, "Nothing in this period", ha="center", transform=axes.transAxes)
            axes.set_xticks([])
        buffer = io.BytesIO()
        metadata = {"Date": None} if fmt == "svg" else None
        figure.savefig(buffer, format=fmt, dpi=120, metadata=metadata)
    return buffer.getvalue()


def _short(label: str, most: int = 32) -> str:
    return label if len(label) <= most else label[: most - 1] + "…"
