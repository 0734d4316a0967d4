"""What a campaign kind is made of (``Kind``: its model, its planner, the samples its templates
are checked against) and what a plan produces: messages for the outbox
(``bot.delivery.messages.PlannedMessage``), some of them prompts awaiting answers."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from bot.campaigns.spec import Audience, CampaignBase
from bot.core.errors import Problem
from bot.core.models import Contact, Pledgemaker
from bot.delivery.messages import PlannedMessage
from bot.text.templates import Templates


class Destinations(dict[str, str]):
    """Channel → where its posts go (``App.destinations``). ``limits``: a channel's configured
    post length where it differs from the planner's default (a Mastodon instance's own limit)."""

    def __init__(
        self, found: Mapping[str, str] | None = None, limits: Mapping[str, int] | None = None
    ) -> None:
        super().__init__(found or {})
        self.limits = dict(limits or {})


def post_limit(destinations: Mapping[str, str], channel: str) -> int | None:
    return getattr(destinations, "limits", {}).get(channel)


@dataclass(frozen=True)
class RunContext:
    """One firing: which campaign, at which instant, and for whom if it was aimed at one."""

    campaign_id: str
    fire_time: datetime
    only: str | None = None  # a pledgemaker id: `campaign fire --to`, ignoring the audience
    manual: bool = False  # `campaign fire`: no quiet hours or blackout dates (opt-outs still)
    destinations: Mapping[str, str] = field(default_factory=dict)  # channel → where posts go
    # Where a recorded run writes the files it sends (the digest's chart): ``[media] dir``.
    # None in previews and dry runs, which write nothing.
    media_dir: Path | None = None


@dataclass
class Plan:
    messages: list[PlannedMessage]
    skipped: dict[str, int]  # reason → number of pledgemakers left out


class TemplateCheck(NamedTuple):
    """A template a campaign renders, the schedule-file line that names it, and sample data to
    render it with (``schedules check`` renders it in every language its readers use)."""

    name: str
    line: int
    context: dict[str, Any]


Planner = Callable[[Any, RunContext, Session, Templates], Plan]


@dataclass(frozen=True)
class Kind:
    """One campaign kind as the rest of pledgebot sees it; ``bot.campaigns.registry`` lists them.

    The callables take the kind's own model (``model``), validated from its ``[[campaign]]``.
    """

    model: type[CampaignBase]  # the keys of its [[campaign]] table
    plan: Planner  # one run → messages; reads only (previews and dry runs call it too)
    samples: Callable[[Any, Mapping[str, int]], list[TemplateCheck]]  # see TemplateCheck
    prepare: Callable[[Session], None] | None = None  # a recorded run's writes before it plans
    # Files the campaign reads, resolved against the config folder and checked: a problem list.
    check_files: Callable[[Any, Path, str, Mapping[str, int]], list[Problem]] | None = None
    messages_audience: bool = False  # writes to its audience: `schedules check` warns if empty


def line_of(where: Mapping[str, int], *keys: str) -> int:
    """The line of the first of ``keys`` in a schedule entry, else its ``[[campaign]]`` line."""
    for key in keys:
        if key in where:
            return where[key]
    return where.get("", 1)


# What `schedules check` renders templates against: a pledgemaker and a journey update.
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
    handles={"x": "@sample"},
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


def audience_query(audience: Audience) -> Select[tuple[Pledgemaker]]:
    query = select(Pledgemaker).where(Pledgemaker.erased_at.is_(None)).order_by(Pledgemaker.id)
    for column, values in (
        (Pledgemaker.country, audience.country),
        (Pledgemaker.region, audience.region),
        (Pledgemaker.sector, audience.sector),
        (Pledgemaker.language, audience.language),
    ):
        if values:
            query = query.where(column.in_(values))
    return query


def contacts_by_pledgemaker(
    session: Session, pledgemaker_ids: list[str], channels: list[str]
) -> dict[str, list[Contact]]:
    """Every contact on the given channels, newest binding first, grouped by pledgemaker."""
    found: dict[str, list[Contact]] = {}
    for start in range(0, len(pledgemaker_ids), 500):
        chunk = pledgemaker_ids[start : start + 500]
        rows = session.scalars(
            select(Contact)
            .where(Contact.pledgemaker_id.in_(chunk), Contact.channel.in_(channels))
            .order_by(Contact.bound_at.desc(), Contact.id.desc())
        )
        for contact in rows:
            found.setdefault(contact.pledgemaker_id, []).append(contact)
    return found


def choose_contact(contacts: list[Contact], channels: list[str]) -> tuple[Contact | None, str]:
    """The first active contact in the campaign's channel order, or why there is none."""
    for channel in channels:
        for contact in contacts:
            if contact.channel == channel and contact.status == "active":
                return contact, ""
    if any(contact.status == "stopped" for contact in contacts):
        return None, "opted out"
    if contacts:
        return None, "contact gone"
    return None, "no contact"


def reachable(
    spec: Any, run: RunContext, session: Session
) -> tuple[list[tuple[Pledgemaker, Contact]], dict[str, int]]:
    """The campaign's audience (or ``run.only``), each with the contact that reaches them (the
    first active one in the campaign's channel order), and how many cannot be reached, by
    reason. ``run.only`` unreachable is an error (someone asked for them by name)."""
    from bot.core.errors import UserInputError

    if run.only is not None:
        pledgemaker = session.get(Pledgemaker, run.only)
        if pledgemaker is None:
            raise UserInputError(f"no pledgemaker with id {run.only!r}")
        pledgemakers = [pledgemaker]
    else:
        pledgemakers = list(session.scalars(audience_query(spec.audience)))
    contacts = contacts_by_pledgemaker(session, [p.id for p in pledgemakers], spec.channels)
    found: list[tuple[Pledgemaker, Contact]] = []
    skipped: dict[str, int] = {}
    for pledgemaker in pledgemakers:
        contact, why = choose_contact(contacts.get(pledgemaker.id, []), spec.channels)
        if contact is None:
            if run.only is not None:
                raise UserInputError(
                    f"pledgemaker {pledgemaker.id!r} cannot be reached on "
                    f"{', '.join(spec.channels)}: {why}"
                )
            skipped[why] = skipped.get(why, 0) + 1
            continue
        found.append((pledgemaker, contact))
    return found, skipped
