"""The comms team's schedule files: ``schedules/*.toml`` → validated campaigns, or file:line errors.

Each file holds ``[[campaign]]`` entries. Loading is all or nothing: any problem in any file is
reported (every problem, with its file and line) and no campaign from the set is used.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from types import SimpleNamespace
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
    ValidationError,
    field_validator,
    model_validator,
)

from bot.errors import Problem, ScheduleError
from bot.localtime import QuietHours, SendWindow, is_blackout, parse_blackout, parse_clock
from bot.templates import TemplateProblem, Templates
from bot.vocab import LANGUAGES, REGIONS, SECTORS, country_codes, require_known, time_zones

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
# Campaign kinds by name; a new kind is one model here and one planner in bot/runs.py.
KINDS: dict[str, type[Campaign]] = {
    "followup": FollowupCampaign,
    "amplify": AmplifyCampaign,
    "knowledge": KnowledgeCampaign,
    "digest": DigestCampaign,
    "announce": AnnounceCampaign,
}


@dataclass
class LoadedCampaign:
    spec: Campaign
    file: str
    line: int
    lines: dict[str, int] = field(default_factory=dict)  # each key's line ('audience.sector')


@dataclass
class ScheduleSet:
    campaigns: dict[str, LoadedCampaign] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)  # e.g. a missing translation

    def get(self, campaign_id: str) -> LoadedCampaign:
        if campaign_id not in self.campaigns:
            hint = difflib.get_close_matches(campaign_id, list(self.campaigns), n=1)
            known = f"did you mean {hint[0]!r}?" if hint else f"known: {', '.join(self.campaigns)}"
            raise ScheduleError(
                [Problem("schedules", None, f"no campaign {campaign_id!r} ({known})")]
            )
        return self.campaigns[campaign_id]


def schedule_files(paths: list[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        files.extend(sorted(path.glob("*.toml")) if path.is_dir() else [path])
    return files


def load_schedules(
    paths: list[Path],
    templates: Templates,
    *,
    default_timezone: str = "UTC",
    base_dir: Path | None = None,
) -> ScheduleSet:
    """Read and validate schedule files; raise ScheduleError listing every problem."""
    problems: list[Problem] = []
    result = ScheduleSet()
    for path in schedule_files(paths):
        shown = str(path)
        result.files.append(shown)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(Problem(shown, None, f"cannot read: {exc}"))
            continue
        for loaded in _load_file(
            shown, text, templates, default_timezone, problems, result.warnings
        ):
            _check_facts(loaded, base_dir or Path.cwd(), problems)
            previous = result.campaigns.get(loaded.spec.id)
            if previous is not None:
                problems.append(
                    Problem(
                        shown,
                        loaded.line,
                        f"duplicate campaign id {loaded.spec.id!r} "
                        f"(first defined at {previous.file}:{previous.line})",
                    )
                )
            else:
                result.campaigns[loaded.spec.id] = loaded
    if problems:
        raise ScheduleError(problems)
    return result


def _load_file(
    shown: str,
    text: str,
    templates: Templates,
    default_tz: str,
    problems: list[Problem],
    warnings: list[Problem],
) -> list[LoadedCampaign]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = re.search(r"\(at line (\d+), column \d+\)", str(exc))
        message = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(exc))
        problems.append(
            Problem(shown, int(match.group(1)) if match else None, f"invalid TOML: {message}")
        )
        return []
    lines = _key_lines(text)
    for key in data:
        if key != "campaign":
            problems.append(
                Problem(
                    shown, _top_line(text, key), f"unknown table {key!r} (expected [[campaign]])"
                )
            )
    entries = data.get("campaign", [])
    if not isinstance(entries, list):
        problems.append(
            Problem(shown, _top_line(text, "campaign"), "use [[campaign]] (an array of tables)")
        )
        return []
    loaded: list[LoadedCampaign] = []
    for index, entry in enumerate(entries):
        where = lines[index] if index < len(lines) else {}
        header = where.get("", 1)
        entry = {"timezone": default_tz, **entry}
        spec = _validate(shown, entry, where, header, problems)
        if spec is None:
            continue
        before = len(problems)
        _check_templates(shown, spec, where, templates, problems, warnings)
        _check_fires(shown, spec, where, warnings)
        if len(problems) == before:
            loaded.append(LoadedCampaign(spec, shown, header, where))
    return loaded


def _check_fires(
    shown: str, spec: Campaign, where: dict[str, int], warnings: list[Problem]
) -> None:
    """A cron that never fires within the campaign's active window (``0 10 31 2 *``), or a
    ``once`` already past, is valid but surely a mistake (a copied example): warn."""
    zone = ZoneInfo(spec.timezone)
    if spec.once is not None:
        once = spec.once if spec.once.tzinfo else spec.once.replace(tzinfo=zone)
        if once < datetime.now(zone) - spec.grace_period:
            line = where.get("once", where.get("", 1))
            warnings.append(
                Problem(shown, line, f"{spec.id}: once {spec.once} is past: it sends nothing")
            )
        return
    if not spec.cron:
        return
    window = spec.active
    today = datetime.now(zone).date()
    start = datetime.combine(max(window.start or today, today), time(0), zone)
    first = CronTrigger.from_crontab(spec.cron, timezone=zone).get_next_fire_time(None, start)
    if first is not None and (window.until is None or first.date() <= window.until):
        return
    span = f"from {start.date()}" + (f" to {window.until}" if window.until else "")
    line = where.get("cron", where.get("", 1))
    warnings.append(
        Problem(shown, line, f"{spec.id}: cron {spec.cron!r} never fires {span}: it sends nothing")
    )


def audience_warnings(schedules: ScheduleSet, session: Any) -> list[str]:
    """Campaigns whose audience matches no pledgemaker in the database (a typo in a filter, or
    pledgemakers not imported yet): they would send nothing, so ``schedules check`` says so."""
    from sqlalchemy import func, select

    from bot.campaigns.base import audience_query
    from bot.models import Pledgemaker

    if not session.scalar(select(func.count()).select_from(Pledgemaker)):
        return ["no pledgemakers in the database yet, so every audience is empty (import them)"]
    found: list[str] = []
    for loaded in schedules.campaigns.values():
        spec = loaded.spec
        if not isinstance(spec, FollowupCampaign | AnnounceCampaign):
            continue
        query = audience_query(spec.audience).with_only_columns(func.count()).order_by(None)
        if not session.scalar(query):
            line = loaded.lines.get("audience", loaded.line)
            why = f"{spec.id}: the audience matches no pledgemaker, so it sends nothing"
            found.append(str(Problem(loaded.file, line, why)))
    return found


def _validate(
    shown: str, entry: dict[str, Any], where: dict[str, int], header: int, problems: list[Problem]
) -> Campaign | None:
    kind = entry.get("kind")
    if kind not in KINDS:
        line = where.get("kind", header)
        got = "missing" if kind is None else f"got {kind!r}"
        problems.append(Problem(shown, line, f"kind must be one of {', '.join(KINDS)} ({got})"))
        return None
    try:
        return KINDS[kind].model_validate(entry)
    except ValidationError as exc:
        model = KINDS[kind]
        for error in exc.errors():
            loc = [str(part) for part in error["loc"] if part != kind]
            if not loc:  # a rule across fields names its key first: "every: …"
                named = str(error["msg"]).removeprefix("Value error, ").split(":")[0]
                loc = [named] if named in model.model_fields else []
            key = loc[0] if loc else ""
            line = where.get(".".join(loc[:2]), where.get(key, header))
            problems.append(Problem(shown, line, _message(error, loc, model)))
        return None


def _message(error: Any, loc: list[str], model: type[BaseModel]) -> str:
    name = ".".join(loc)
    if error["type"] == "extra_forbidden":
        nested = {
            "audience": Audience,
            "active": ActiveWindow,
            "reminders": Reminders,
            "to": DigestDestinations,
        }
        owner = model if len(loc) == 1 else nested.get(loc[0], model)
        fields = [info.alias or field for field, info in owner.model_fields.items()]
        hint = difflib.get_close_matches(loc[-1], fields, n=1)
        return f"unknown field {loc[-1]!r}" + (f" (did you mean {hint[0]!r}?)" if hint else "")
    if error["type"] == "missing":
        return f"{name} is required"
    if error["type"] == "literal_error":
        expected = error["ctx"]["expected"].replace("'", "")
        return f"{name} must be one of {expected} (got {error['input']!r})"
    message = str(error["msg"]).removeprefix("Value error, ")
    return message if message.startswith(f"{name}:") else f"{name}: {message}"


SAMPLE_PLEDGEMAKER = SimpleNamespace(
    pledge_date=date(2021, 1, 15),
    id="sample",
    name="Sample Organisation",
    country="GH",
    region="africa",
    sector="ngo",
    language="en",
    timezone="Africa/Accra",
    pledge_title="End child labour in our supply chain",
    pledge_text="We pledge to act.",
    x_handle="@sample",
    website="https://example.org",
)


SAMPLE_UPDATE = SimpleNamespace(
    id=1,
    pillar="act",
    kind="progress",
    text="We trained 120 labour inspectors.",
    edited_text=None,
    media=[],
    created_at=datetime(2021, 6, 1, tzinfo=ZoneInfo("UTC")),
)


def _check_facts(loaded: LoadedCampaign, base_dir: Path, problems: list[Problem]) -> None:
    """A knowledge campaign's fact files: resolved against the config folder, inside it (an
    editor of schedules must not make the bot read, or name, files elsewhere on the server), and
    readable."""
    spec = loaded.spec
    if not isinstance(spec, KnowledgeCampaign):
        return
    given = spec.facts
    spec.facts = base_dir / given  # an absolute path stays itself
    # Judged as written ('..' folded, links not followed): what an editor can type must stay in
    # the folder, while a link the administrator put there (data/ on another disk) is theirs.
    written = Path(os.path.normpath(spec.facts))
    if not written.is_relative_to(Path(os.path.normpath(base_dir.absolute()))):
        line = loaded.lines.get("facts", loaded.line)
        problems.append(
            Problem(
                loaded.file,
                line,
                f"facts: {str(given)!r} is outside the project folder (where the config file "
                "is): keep fact files inside it, e.g. 'data/knowledge'",
            )
        )
        return
    from bot.campaigns.knowledge import load_facts

    try:
        load_facts(spec.facts)
    except ScheduleError as exc:
        problems.extend(exc.problems)


def _template_checks(
    spec: Campaign, where: dict[str, int]
) -> list[tuple[str, int, dict[str, Any]]]:
    """Each template the campaign uses, the line that names it, and a sample context."""
    header = where.get("", 1)
    if isinstance(spec, DigestCampaign):
        from bot.campaigns.digest import sample_context

        line = where.get("template", where.get("to", header))
        used = dict.fromkeys(channel for channel, _ in spec.destinations())
        return [(f"{spec.template}/{channel}", line, sample_context()) for channel in used]
    if isinstance(spec, KnowledgeCampaign):
        sample = {
            "text": "160 million children…",
            "source": "https://www.ilo.org",
            "hashtags": " ".join(spec.hashtags),
            "fact": SimpleNamespace(id="sample"),
        }
        line = where.get("template", where.get("channels", header))
        return [(f"{spec.template}/{channel}", line, sample) for channel in spec.channels]
    if isinstance(spec, AmplifyCampaign):
        from bot.campaigns.amplify import post_context

        context = post_context(spec, SAMPLE_UPDATE, SAMPLE_PLEDGEMAKER)  # type: ignore[arg-type]
        line = where.get("template", where.get("channels", header))
        return [(f"{spec.template}/{channel}", line, context) for channel in spec.channels]
    if isinstance(spec, AnnounceCampaign):
        sample = {"pledgemaker": SAMPLE_PLEDGEMAKER, "campaign_id": spec.id}
        return [(spec.template, where.get("template", header), sample)]
    from bot.campaigns.followup import prompt_context

    context = prompt_context(spec, SAMPLE_PLEDGEMAKER)
    checks = [(spec.template_name(), where.get("template", header), context)]
    if spec.reminders is not None:
        from bot.reminders import reminder_context

        line = where.get("reminders", header)
        # The first reminder and the last: templates say something different for each.
        for number in sorted({1, spec.reminders.times}):
            sample = reminder_context(spec, SAMPLE_PLEDGEMAKER, number)
            checks.append((spec.reminders.template, line, sample))
    return checks


def _check_templates(
    shown: str,
    spec: Campaign,
    where: dict[str, int],
    templates: Templates,
    problems: list[Problem],
    warnings: list[Problem],
) -> None:
    """Render every template the campaign uses, in every language, against a sample context."""
    # A digest is read by staff in its one language, not in each pledgemaker's.
    languages = (spec.language,) if isinstance(spec, DigestCampaign) else LANGUAGES
    for name, line, context in _template_checks(spec, where):
        if not templates.exists(name):
            missing = templates.root / (name + ".en.j2")
            problems.append(Problem(shown, line, f"unknown template {name!r} (no {missing})"))
            continue
        warnings.extend(
            Problem(shown, line, f"template {name!r} has no {lang} translation; English is used")
            for lang in templates.untranslated(name)
            if lang in languages
        )
        for language in languages:
            try:
                templates.render(name, language, **context)
            except TemplateProblem as exc:
                found = Problem(shown, line, f"template {name!r} ({language}): {exc.problem}")
                if found not in problems:  # the same template checked with two contexts
                    problems.append(found)


def _key_lines(text: str) -> list[dict[str, int]]:
    """Line numbers of each [[campaign]] header ('') and its keys ('audience.sector' too)."""
    entries: list[dict[str, int]] = []
    current: dict[str, int] | None = None
    prefix = ""
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if re.match(r"^\[\[\s*campaign\s*\]\]", line):
            current, prefix = {"": number}, ""
            entries.append(current)
        elif sub := re.match(r"^\[\s*campaign\.([A-Za-z0-9_-]+)\s*\]", line):
            prefix = sub.group(1) + "."
            if current is not None:
                current.setdefault(sub.group(1), number)
        elif line.startswith("["):
            current = None
        elif current is not None and (match := re.match(r'^"?([A-Za-z0-9_.-]+)"?\s*=', line)):
            key = prefix + match.group(1).replace(" ", "")
            current.setdefault(key, number)
            current.setdefault(key.split(".")[0], number)
            for inner in re.findall(r"([A-Za-z0-9_-]+)\s*=", line[match.end() :]):
                current.setdefault(f"{key}.{inner}", number)
    return entries


def _top_line(text: str, key: str) -> int | None:
    for number, raw in enumerate(text.splitlines(), start=1):
        if re.match(rf"^\s*(\[+\s*{re.escape(key)}\b|{re.escape(key)}\s*=)", raw):
            return number
    return None
