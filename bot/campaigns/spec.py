"""What every ``[[campaign]]`` entry has, whatever its kind: timing (cron, interval, one date or a
cadence per pledgemaker), quiet hours, blackout dates, the active window, channels and audience.

Each kind's own model (``bot/campaigns/<kind>.py``) extends ``CampaignBase`` with its keys.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any, ClassVar, Literal
from zoneinfo import ZoneInfo

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from bot.core.localtime import QuietHours, SendWindow, is_blackout, parse_blackout, parse_clock
from bot.core.vocab import LANGUAGES, REGIONS, SECTORS, country_codes, require_known, time_zones

DURATION = re.compile(r"^\s*(\d+)\s*([smhd])\s*$")
UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_duration(value: str) -> timedelta:
    match = DURATION.match(value)
    if not match:
        raise ValueError(f"not a duration like '30d', '6h', '15m' or '45s' (got {value!r})")
    return timedelta(**{UNITS[match.group(2)]: int(match.group(1))})


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Audience(Strict):
    country: list[str] = Field(default_factory=list)
    region: list[str] = Field(default_factory=list)
    sector: list[str] = Field(default_factory=list)
    language: list[str] = Field(default_factory=list)

    @field_validator("country")
    @classmethod
    def _countries(cls, values: list[str]) -> list[str]:
        return _check_all(values, country_codes(), "country code (ISO 3166-1 alpha-2)")

    @field_validator("region")
    @classmethod
    def _regions(cls, values: list[str]) -> list[str]:
        return _check_all(values, REGIONS, "region")

    @field_validator("sector")
    @classmethod
    def _sectors(cls, values: list[str]) -> list[str]:
        return _check_all(values, SECTORS, "sector")

    @field_validator("language")
    @classmethod
    def _languages(cls, values: list[str]) -> list[str]:
        return _check_all(values, LANGUAGES, "language")


def _check_all(values: list[str], known: Any, what: str) -> list[str]:
    for value in values:
        require_known(value, known, what)
    return values


class ActiveWindow(Strict):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    start: date | None = Field(default=None, alias="from")
    until: date | None = None


class CampaignBase(Strict):
    if TYPE_CHECKING:  # each kind's model declares it last, as the Literal of its name
        kind: str
    # Why ``every`` is refused: a cadence per pledgemaker is planned by the sweeper
    # (``bot.scheduling.sweeper``), which only the follow-up's model allows (None).
    cadence_refused: ClassVar[str | None] = "this kind fires as a whole: use cron, interval or once"

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{1,62}$")
    description: str = ""
    enabled: bool = True
    # When: a cron in the campaign's zone, or a cadence per pledgemaker in their own zone.
    cron: str | None = None
    interval: str | None = None  # e.g. "7d": every 7 days from active.from (or 2026-01-01)
    once: datetime | None = None  # one date: 2026-06-12T10:00 (campaign time zone if no offset)
    timezone: str = "UTC"
    relative_to: Literal["pledge_date", "last_reply"] | None = None
    first_after: str | None = None
    every: str | None = None
    at: str = "10:00"
    quiet_hours: list[str] = Field(default_factory=list)
    blackout: list[date | str] = Field(default_factory=list)  # a date, or "12-25" every year
    active: ActiveWindow = Field(default_factory=ActiveWindow)
    skip_if_updated_within: str | None = None
    reminders: None = None  # a kind whose messages await an answer says how to remind
    grace: str = "1h"
    channels: list[str] = Field(default_factory=lambda: ["telegram"], min_length=1)
    audience: Audience = Field(default_factory=Audience)

    @field_validator("quiet_hours", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("quiet_hours")
    @classmethod
    def _quiet(cls, values: list[str]) -> list[str]:
        spans = [QuietHours.parse(v) for v in values]
        for i, span in enumerate(spans):
            for other in spans[i + 1 :]:
                if span.overlaps(other):
                    raise ValueError(f"quiet hours {values[i]!r} and the next overlap; merge them")
        return values

    @field_validator("blackout", mode="before")
    @classmethod
    def _dates(cls, values: Any) -> Any:
        days: list[date | str] = []
        for value in values if isinstance(values, list) else [values]:
            if isinstance(value, date):
                days.append(value)
                continue
            try:
                if not isinstance(value, str) or len(value) != 5:
                    raise ValueError
                days.append(parse_blackout(value))
            except ValueError:
                raise ValueError(
                    f"{value!r} is not a date; write 2026-12-25 (unquoted) for one day "
                    'or "12-25" for that day every year'
                ) from None
        return days

    @field_validator("at")
    @classmethod
    def _at(cls, value: str) -> str:
        parse_clock(value)
        return value

    @field_validator("first_after", "every", "skip_if_updated_within")
    @classmethod
    def _days(cls, value: str | None) -> str | None:
        if value is not None and parse_duration(value) % timedelta(days=1):
            raise ValueError(f"use whole days, like '30d' (got {value!r})")
        return value

    @model_validator(mode="after")
    def _timing(self) -> CampaignBase:
        forms = [name for name in ("cron", "interval", "once", "every") if getattr(self, name)]
        if len(forms) > 1:
            raise ValueError(
                f"{forms[-1]}: use one of cron, interval, once or every + relative_to "
                f"(found {' and '.join(forms)})"
            )
        if bool(self.every) != bool(self.relative_to):
            missing = "relative_to" if self.every else "every"
            raise ValueError(f"{missing}: a cadence needs both every and relative_to")
        if any(q.contains(parse_clock(self.at)) for q in self.quiet_spans()):
            raise ValueError(f"at: {self.at} falls inside the quiet hours")
        window = self.active
        if window.start and window.until and window.start > window.until:
            raise ValueError("active: 'from' is after 'until'")
        if self.every and self.cadence_refused:
            raise ValueError(f"every: {self.cadence_refused}")
        return self

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                CronTrigger.from_crontab(value)
            except ValueError as exc:
                raise ValueError(f"bad cron expression {value!r}: {exc}") from exc
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        return require_known(value, time_zones(), "time zone")

    @field_validator("grace")
    @classmethod
    def _grace(cls, value: str) -> str:
        parse_duration(value)
        return value

    @field_validator("channels")
    @classmethod
    def _channels(cls, values: list[str]) -> list[str]:
        from bot.channels.registry import known_channels

        return _check_all(values, known_channels(), "channel")

    @property
    def grace_period(self) -> timedelta:
        return parse_duration(self.grace)

    def quiet_spans(self) -> tuple[QuietHours, ...]:
        return tuple(QuietHours.parse(q) for q in self.quiet_hours)

    def send_window(self, zone: str) -> SendWindow:
        """When this campaign may reach a recipient living in ``zone``."""
        return SendWindow(zone, self.quiet_spans(), frozenset(self.blackout))

    def is_blackout(self, day: date) -> bool:
        return is_blackout(day, frozenset(self.blackout))

    def is_active_on(self, day: date) -> bool:
        window = self.active
        return (window.start is None or day >= window.start) and (
            window.until is None or day <= window.until
        )

    @field_validator("interval")
    @classmethod
    def _interval(cls, value: str | None) -> str | None:
        if value is not None:
            parse_duration(value)
        return value

    def trigger(self) -> BaseTrigger | None:
        """When the campaign fires as a whole (cron, interval, one date); None for cadences."""
        zone = ZoneInfo(self.timezone)
        if self.cron:
            return CronTrigger.from_crontab(self.cron, timezone=zone)
        if self.interval:
            anchor = datetime.combine(self.active.start or date(2026, 1, 1), time(0), zone)
            return IntervalTrigger(
                seconds=parse_duration(self.interval).total_seconds(),
                start_date=anchor,
                timezone=zone,
            )
        if self.once:
            moment = self.once if self.once.tzinfo else self.once.replace(tzinfo=zone)
            return DateTrigger(run_date=moment, timezone=zone)
        return None

    @property
    def when(self) -> str:
        """How the campaign is scheduled, for logs and listings."""
        if self.cron or self.interval:
            return f"{self.cron or 'every ' + str(self.interval)} ({self.timezone})"
        if self.once:
            return f"once at {self.once.isoformat()} ({self.timezone})"
        if self.every:
            return f"every {self.every} after {self.relative_to}, at {self.at} local"
        return "on demand"

    def reader_languages(self) -> tuple[str, ...]:
        """The languages its messages are read in, each pledgemaker's own unless the kind says
        otherwise: ``schedules check`` renders its templates in each."""
        return LANGUAGES
