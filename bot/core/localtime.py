"""Recipient-local time, done on the wall clock: slots, quiet hours, blackout dates.

Times are stored in UTC; slots are computed on the recipient's own calendar with ``zoneinfo``,
never by adding 24 h in UTC. ``zoneinfo`` leaves two gaps to us:
- a local time that does not exist (clocks spring forward; in America/Santiago and
  America/Havana at midnight) moves forward to the first valid minute after the gap;
- a local time that happens twice (clocks fall back) takes its first occurrence (``fold=0``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

CLOCK = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


def parse_clock(text: str) -> time:
    match = CLOCK.match(text.strip())
    if not match:
        raise ValueError(f"not a time of day like '10:00' (got {text!r})")
    return time(int(match.group(1)), int(match.group(2)))


def exists(local: datetime) -> bool:
    """Whether this wall-clock time happens at all in its zone (False inside a spring gap)."""
    round_trip = local.astimezone(UTC).astimezone(local.tzinfo)
    return round_trip.replace(tzinfo=None) == local.replace(tzinfo=None)


def to_utc(day: date, at: time, zone: str) -> datetime:
    """The instant ``at`` on ``day`` in ``zone``: the first occurrence, or just after a gap."""
    local = datetime.combine(day, at, ZoneInfo(zone)).replace(fold=0)
    while not exists(local):  # inside a spring-forward gap: the next valid minute
        local = (local + timedelta(minutes=1)).replace(second=0, microsecond=0)
    return local.astimezone(UTC)


@dataclass(frozen=True)
class QuietHours:
    """A daily span in which nothing is sent, e.g. 20:00-08:00 (it may wrap past midnight)."""

    start: time
    end: time

    @classmethod
    def parse(cls, text: str) -> QuietHours:
        start, sep, end = text.partition("-")
        if not sep:
            raise ValueError(f"quiet hours look like '20:00-08:00' (got {text!r})")
        quiet = cls(parse_clock(start), parse_clock(end))
        if quiet.start == quiet.end:
            raise ValueError(f"quiet hours {text!r} are empty (start equals end)")
        return quiet

    def contains(self, moment: time) -> bool:
        if self.start < self.end:
            return self.start <= moment < self.end
        return moment >= self.start or moment < self.end

    def overlaps(self, other: QuietHours) -> bool:
        return any(self.contains(t) and other.contains(t) for t in (self.start, other.start))


def parse_blackout(value: str) -> date | str:
    """``2026-12-25`` (that day) or ``12-25`` (that day every year; ``02-29`` in leap years)."""
    if len(value) == 5:
        date.fromisoformat(f"2024-{value}")  # a leap year: 02-29 is a real day
        return value
    return date.fromisoformat(value)


def is_blackout(day: date, blackout: frozenset[date | str]) -> bool:
    """Whether ``day`` is one of the dates, or one of the every-year days (``MM-DD``)."""
    return day in blackout or f"{day:%m-%d}" in blackout


@dataclass(frozen=True)
class SendWindow:
    """When a message to one recipient may go out: their zone, quiet hours, blackout dates
    (a date, or ``MM-DD`` for that day every year)."""

    zone: str
    quiet: tuple[QuietHours, ...] = ()
    blackout: frozenset[date | str] = frozenset()

    def to_record(self) -> dict[str, Any]:
        return {
            "zone": self.zone,
            "quiet": [f"{q.start:%H:%M}-{q.end:%H:%M}" for q in self.quiet],
            "blackout": sorted(str(d) for d in self.blackout),
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> SendWindow:
        return cls(
            record["zone"],
            tuple(QuietHours.parse(q) for q in record.get("quiet", [])),
            frozenset(parse_blackout(d) for d in record.get("blackout", [])),
        )

    def allows(self, instant: datetime) -> bool:
        local = instant.astimezone(ZoneInfo(self.zone))
        if is_blackout(local.date(), self.blackout):
            return False
        return not any(q.contains(local.time()) for q in self.quiet)

    def next_allowed(self, instant: datetime) -> datetime:
        """``instant`` if allowed, else the first allowed minute after it (UTC)."""
        zone = ZoneInfo(self.zone)
        moment = instant.astimezone(UTC)
        for _ in range(2 * 366):  # each step jumps a whole blocked span: bounded well below this
            if self.allows(moment):
                return moment
            local = moment.astimezone(zone)
            if is_blackout(local.date(), self.blackout):
                moment = to_utc(local.date() + timedelta(days=1), time(0, 0), self.zone)
                continue
            ends = [q.end for q in self.quiet if q.contains(local.time())]
            end = max(ends)  # all spans we are in; leave the latest-ending one
            day = local.date() if end > local.time() else local.date() + timedelta(days=1)
            moment = to_utc(day, end, self.zone)
        raise ValueError(f"no allowed time found after {instant} in {self.zone}")
