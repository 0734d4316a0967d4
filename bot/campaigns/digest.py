"""The ``digest`` kind: the comms team's own summary, to a Telegram chat and/or email addresses.

Its figures (``bot.campaigns.digest_figures``) count the period from the campaign's previous
recorded firing (default: 7 days before) to this fire time. A recorded run looks for new match
suggestions first, in ``prepare``: planning itself only reads.

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
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.campaigns.base import Kind, Plan, RunContext, TemplateCheck, line_of
from bot.campaigns.digest_figures import (
    ChannelPosts,
    Figures,
    PillarUpdates,
    Suggested,
    count,
    shorten,
)
from bot.campaigns.spec import CampaignBase, Strict, parse_duration
from bot.channels.base import Media
from bot.community import digest_chart
from bot.core.models import Run
from bot.delivery.messages import PlannedMessage
from bot.text.templates import Templates

log = logging.getLogger(__name__)
DEFAULT_PERIOD = timedelta(days=7)  # the first firing, with no previous one to count from
TELEGRAM_TEXT, TELEGRAM_CAPTION = 4096, 1024
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
    and/or email addresses; English is enough (staff read it)."""

    cadence_refused: ClassVar[str | None] = "a digest fires in slots: use cron, interval or once"
    kind: Literal["digest"]
    to: DigestDestinations
    silent_after: str = "60d"  # pledgemakers with no reply for longer are listed
    language: Literal["en", "fr", "es"] = "en"  # templates/digest/*.en.j2 is used if missing
    template: str = "digest"  # templates/digest/<telegram|email>.<language>.j2

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

    def destinations(self) -> list[tuple[str, str]]:
        """(channel, address) for each destination, Telegram first, each address once."""
        chat = [("telegram", self.to.telegram)] if self.to.telegram else []
        return chat + [("email", address) for address in dict.fromkeys(self.to.email)]

    def reader_languages(self) -> tuple[str, ...]:
        """Staff read it in its one language, not in each pledgemaker's."""
        return (self.language,)


def period_start(session: Session, spec: DigestCampaign, until: datetime) -> datetime:
    """The previous recorded firing of the campaign (not a missed one), else 7 days before."""
    previous = session.scalar(
        select(func.max(Run.fire_time)).where(
            Run.campaign_id == spec.id, Run.fire_time < until, Run.trigger != "missed"
        )
    )
    return previous or until - DEFAULT_PERIOD


def figures(session: Session, spec: DigestCampaign, until: datetime) -> Figures:
    """The figures of the period up to ``until`` that this campaign's digest reports."""
    since = period_start(session, spec, until)
    silence = parse_duration(spec.silent_after)
    return count(session, since, until, zone=spec.timezone, silence=silence)


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
    media: tuple[Media, ...] = ()
    if run.media_dir is not None:  # no chart without matplotlib: save says so in one line
        chart = digest_chart.save(replies, run.media_dir, run.campaign_id, run.fire_time)
        media = (Media(str(chart), alt_text),) if chart else ()
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
            caption = html.escape(shorten(alt_text, TELEGRAM_CAPTION), quote=False)
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
            line = line if size(line) <= limit else shorten(line, limit // 2)
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


def samples(spec: DigestCampaign, where: Mapping[str, int]) -> list[TemplateCheck]:
    """The template of each channel it goes to, with figures of every sort."""
    line, context = line_of(where, "template", "to"), sample_context()
    used = dict.fromkeys(channel for channel, _ in spec.destinations())
    return [TemplateCheck(f"{spec.template}/{channel}", line, context) for channel in used]


KIND = Kind(DigestCampaign, plan, samples, prepare=prepare)
