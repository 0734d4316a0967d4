"""The digest's chart: replies per pillar per week (the figures, a PNG drawn by matplotlib with
the Agg backend, and the alt text that says the same in words).

A reply counts on the pillar of the prompt it answered, or of the journey update it became; a
bare acknowledgement ("ok", "thanks") and a message tied to neither are not counted.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.core.extras import ExtraMissing, needs
from bot.core.models import JourneyUpdate, Prompt, Reply

log = logging.getLogger(__name__)

PILLARS = ("act", "inspire", "scale_up")
PILLAR_NAMES = {"act": "Act", "inspire": "Inspire", "scale_up": "Scale up"}
# The Okabe–Ito palette (told apart without colour vision), as in the report charts.
COLOURS = {"act": "#0072B2", "inspire": "#E69F00", "scale_up": "#009E73"}
WEEK = timedelta(weeks=1)


@dataclass(frozen=True)
class WeeklyReplies:
    starts: list[datetime]  # each week's first instant (UTC); the last week ends at ``until``
    until: datetime
    zone: str  # the campaign's: how weeks are labelled
    counts: dict[str, list[int]]  # pillar → replies in each week

    def first_days(self) -> list[date]:
        return [start.astimezone(ZoneInfo(self.zone)).date() for start in self.starts]

    def total(self, pillar: str | None = None) -> int:
        pillars = [pillar] if pillar else list(PILLARS)
        return sum(sum(self.counts[p]) for p in pillars)


def weekly_replies(session: Session, until: datetime, zone: str, weeks: int = 12) -> WeeklyReplies:
    """Replies per pillar in each of the ``weeks`` weeks that end at ``until``."""
    first = until - weeks * WEEK
    pillar = func.coalesce(Prompt.pillar, JourneyUpdate.pillar)
    rows = session.execute(
        select(Reply.received_at, pillar)
        .select_from(Reply)
        .outerjoin(Prompt, Reply.prompt_id == Prompt.id)
        .outerjoin(JourneyUpdate, Reply.journey_update_id == JourneyUpdate.id)
        .where(
            Reply.received_at >= first,
            Reply.received_at < until,
            Reply.acknowledgement.is_(False),
            pillar.is_not(None),
        )
    )
    counts = {p: [0] * weeks for p in PILLARS}
    for received_at, on in rows:
        if on in counts:
            counts[on][(received_at - first) // WEEK] += 1
    return WeeklyReplies([first + n * WEEK for n in range(weeks)], until, zone, counts)


def _day(day: date) -> str:
    return f"{day.day} {day:%b %Y}"


def describe(replies: WeeklyReplies) -> str:
    """The chart in words: its alt text, and the Telegram photo's caption."""
    days = replies.first_days()
    last_day = (replies.until - timedelta(microseconds=1)).astimezone(ZoneInfo(replies.zone))
    said = (
        f"Stacked bar chart of replies per pillar per week, {len(days)} weeks from "
        f"{_day(days[0])} to {_day(last_day.date())}"
    )
    total = replies.total()
    if not total:
        return said + ": no replies in these weeks."
    each = ", ".join(f"{PILLAR_NAMES[p]} {replies.total(p)}" for p in PILLARS)
    latest = ", ".join(f"{PILLAR_NAMES[p]} {replies.counts[p][-1]}" for p in PILLARS)
    per_week = [sum(replies.counts[p][n] for p in PILLARS) for n in range(len(days))]
    busiest = max(range(len(days)), key=lambda n: (per_week[n], n))
    return (
        f"{said}: {total} replies in all ({each}). Last week: {latest}. "
        f"Busiest week: from {_day(days[busiest])}, {per_week[busiest]} replies."
    )


def png(replies: WeeklyReplies) -> bytes:
    """The chart as PNG bytes: one stacked bar per week, the pillars in legend order.
    ``ExtraMissing`` without matplotlib (the reports extra)."""
    from bot.community.reports import (
        CHARTING,  # one lock for every chart: matplotlib caches are shared
        NO_CHART,
    )

    with needs("reports", NO_CHART):  # here, not at the top: only a digest run draws
        import matplotlib
        from matplotlib.figure import Figure
        from matplotlib.ticker import MaxNLocator
    matplotlib.use("Agg")

    days = replies.first_days()
    places = list(range(len(days)))
    with CHARTING:
        figure = Figure(figsize=(8, 4.2), layout="constrained")
        axes = figure.add_subplot()
        below = [0] * len(days)
        for pillar in PILLARS:
            values = replies.counts[pillar]
            axes.bar(
                places,
                values,
                bottom=below,
                width=0.7,
                label=PILLAR_NAMES[pillar],
                color=COLOURS[pillar],
            )
            below = [b + v for b, v in zip(below, values, strict=True)]
        axes.set_xticks(places, labels=[f"{d.day} {d:%b}" for d in days], rotation=45, size=8)
        axes.yaxis.set_major_locator(MaxNLocator(integer=True))
        axes.set_xlabel("Week starting")
        axes.set_ylabel("Replies")
        axes.set_title(f"Replies per pillar per week, last {len(days)} weeks")
        if replies.total():
            figure.legend(loc="outside lower center", ncols=len(PILLARS), frameon=False)
        else:
            axes.text(0.5, 0.5, "No replies in these weeks", ha="center", transform=axes.transAxes)
            axes.set_ylim(0, 1)
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=120, metadata={"Software": None})
    return buffer.getvalue()


def save(
    replies: WeeklyReplies, media_dir: Path, campaign_id: str, fire_time: datetime
) -> Path | None:
    """``<media_dir>/digest/<campaign>-<fire time>.png``, written whole (a re-plan of the same
    firing writes the same file). None without matplotlib (the reports extra): the digest goes
    out without its chart, and one line says which extra draws it."""
    try:
        drawn = png(replies)
    except ExtraMissing as exc:
        log.warning("digest %s: %s", campaign_id, exc)
        return None
    stamp = fire_time.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = media_dir / "digest" / f"{campaign_id}-{stamp}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".png.part")
    partial.write_bytes(drawn)
    partial.replace(path)
    return path
