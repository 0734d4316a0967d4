"""What a ``[[campaign]]`` entry is: the validated model of each campaign kind, and ``KINDS``.

Below both the campaigns (which plan from these models) and ``bot.scheduling.schedules`` (which
reads the
files and checks them against the campaigns' templates): it imports neither.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

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


class Reminders(Strict):
    after: str = "3d"  # no answer this long after the prompt (or the last reminder): remind
    times: int = Field(default=1, ge=1, le=5)
    template: str = "followup/reminder"

    @field_validator("after")
    @classmethod
    def _after(cls, value: str) -> str:
        parse_duration(value)
        return value


class CampaignBase(Strict):
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
    reminders: Reminders | None = None
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


class FollowupCampaign(CampaignBase):
    """Pillar-based prompts to the campaign's audience (``bot.campaigns.followup``)."""

    kind: Literal["followup"]
    pillar: Literal["act", "inspire", "scale_up"]
    template: str = ""

    def template_name(self) -> str:
        return self.template or f"followup/{self.pillar}"


class AmplifyCampaign(CampaignBase):
    """Approved, consented journey updates posted to X and a Telegram channel
    (``bot.campaigns.amplify``): one update per posting slot, in fair rotation."""

    kind: Literal["amplify"]
    template: str = "amplify"  # templates/amplify/<channel>.<language>.j2
    hashtags: list[str] = Field(default_factory=list)
    max_per_org_per_month: int = Field(default=2, ge=1)
    reminders: None = None  # posts await no answer

    @field_validator("hashtags")
    @classmethod
    def _tags(cls, values: list[str]) -> list[str]:
        for value in values:
            if not re.fullmatch(r"#\w+", value):
                raise ValueError(f"{value!r} is not a hashtag like '#EndChildLabour2021'")
        return values

    @model_validator(mode="after")
    def _slots(self) -> AmplifyCampaign:
        if self.every:
            raise ValueError(
                "every: an amplify campaign posts in slots: use cron, interval or once"
            )
        return self


class KnowledgeCampaign(CampaignBase):
    """Facts from ``data/knowledge/*.toml`` posted in rotation (``bot.campaigns.knowledge``)."""

    kind: Literal["knowledge"]
    facts: Path = Path("data/knowledge")  # relative to the config file's folder
    language: Literal["en", "fr", "es"] = "en"
    template: str = "knowledge"  # templates/knowledge/<channel>.<language>.j2
    hashtags: list[str] = Field(default_factory=list)
    repeat_after: str = "90d"  # never the same fact twice within this window
    reminders: None = None

    @field_validator("repeat_after")
    @classmethod
    def _window(cls, value: str) -> str:
        parse_duration(value)
        return value

    @model_validator(mode="after")
    def _slots(self) -> KnowledgeCampaign:
        if self.every:
            raise ValueError("every: knowledge posts in slots: use cron, interval or once")
        return self


TELEGRAM_CHAT = re.compile(r"^(-?\d{1,20}|@[A-Za-z][A-Za-z0-9_]{3,31})$")
EMAIL_ADDRESS = re.compile(r"^(?=.{3,254}$)[^@\s,;<>\"]+@[^@\s,;<>\"]+\.[A-Za-z]{2,63}$")


class DigestDestinations(Strict):
    """Where a digest goes: one Telegram chat, and/or email addresses (either or both)."""

    telegram: str | None = None  # a chat id ("-100…" for a group or channel) or "@channel"
    email: list[str] = Field(default_factory=list)

    @field_validator("telegram", mode="before")
    @classmethod
    def _chat(cls, value: Any) -> Any:
        value = str(value) if isinstance(value, int) else value  # an unquoted chat id
        if isinstance(value, str) and not TELEGRAM_CHAT.match(value):
            raise ValueError(
                f"not a Telegram chat id like '-1001234567890' or '@channelname' (got {value!r})"
            )
        return value

    @field_validator("email", mode="before")
    @classmethod
    def _addresses(cls, value: Any) -> Any:
        addresses = [value] if isinstance(value, str) else value
        for address in addresses if isinstance(addresses, list) else []:
            if not isinstance(address, str) or not EMAIL_ADDRESS.match(address):
                raise ValueError(f"not an email address like 'comms@example.org' (got {address!r})")
        return addresses

    @model_validator(mode="after")
    def _somewhere(self) -> DigestDestinations:
        if self.telegram is None and not self.email:
            raise ValueError("to: name a telegram chat, email addresses, or both")
        return self


class DigestCampaign(CampaignBase):
    """The comms team's own summary of the period since the last firing, to a Telegram chat
    and/or email addresses (``bot.campaigns.digest``); English is enough (staff read it)."""

    kind: Literal["digest"]
    to: DigestDestinations
    silent_after: str = "60d"  # pledgemakers with no reply for longer are listed
    language: Literal["en", "fr", "es"] = "en"  # templates/digest/*.en.j2 is used if missing
    template: str = "digest"  # templates/digest/<telegram|email>.<language>.j2
    reminders: None = None

    @field_validator("channels", "audience", mode="before")
    @classmethod
    def _not_for_a_digest(cls, value: Any) -> Any:
        raise ValueError("a digest goes to the chat and addresses in 'to'; remove this key")

    @field_validator("to", mode="before")
    @classmethod
    def _table(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            raise ValueError(
                'write it as to = { telegram = "-100…", email = ["comms@example.org"] } '
                f"(got {value!r})"
            )
        return value

    @field_validator("silent_after")
    @classmethod
    def _silence(cls, value: str) -> str:
        parse_duration(value)
        return value

    @model_validator(mode="after")
    def _slots(self) -> DigestCampaign:
        if self.every:
            raise ValueError("every: a digest fires in slots: use cron, interval or once")
        return self

    def destinations(self) -> list[tuple[str, str]]:
        """(channel, address) for each destination, Telegram first, each address once."""
        chat = [("telegram", self.to.telegram)] if self.to.telegram else []
        return chat + [("email", address) for address in dict.fromkeys(self.to.email)]


class AnnounceCampaign(CampaignBase):
    """One message to an audience, in their language, at their local ``at``, awaiting no
    answer (``bot.campaigns.announce``)."""

    kind: Literal["announce"]
    template: str  # templates/<template>.<language>.j2, e.g. "announce/innovation-challenge"
    pillar: list[Literal["act", "inspire", "scale_up"]] = Field(default_factory=list)
    reminders: None = None  # nothing awaits an answer

    @model_validator(mode="after")
    def _once_per_firing(self) -> AnnounceCampaign:
        if self.every:
            raise ValueError(
                "every: an announcement goes out when the campaign fires: use once, cron or "
                "interval (or fire it by hand)"
            )
        return self


Campaign = (
    FollowupCampaign | AmplifyCampaign | KnowledgeCampaign | DigestCampaign | AnnounceCampaign
)
# Campaign kinds by name; a new kind is one model here and one planner in bot/scheduling/runs.py.
KINDS: dict[str, type[Campaign]] = {
    "followup": FollowupCampaign,
    "amplify": AmplifyCampaign,
    "knowledge": KnowledgeCampaign,
    "digest": DigestCampaign,
    "announce": AnnounceCampaign,
}
