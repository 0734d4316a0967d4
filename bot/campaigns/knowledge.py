"""The ``knowledge`` kind: facts the comms team keeps in ``data/knowledge/*.toml``, posted in turn.

Each posting slot takes the fact posted least recently (never posted first, then in file order),
and never one posted within ``repeat_after``. A fact: an ``id``, ``text.<language>`` (English
required), a ``source`` URL; optionally ``image`` (relative to its file) with ``alt.<language>``.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.campaigns import posts
from bot.campaigns.base import Kind, Plan, RunContext, TemplateCheck, line_of
from bot.campaigns.spec import CampaignBase, parse_duration
from bot.channels.base import Media
from bot.core.errors import Problem, ScheduleError
from bot.core.models import OutboxMessage, Post
from bot.text.templates import Templates


class KnowledgeCampaign(CampaignBase):
    """Facts from ``data/knowledge/*.toml`` posted in rotation."""

    cadence_refused: ClassVar[str | None] = "knowledge posts in slots: use cron, interval or once"
    kind: Literal["knowledge"]
    facts: Path = Path("data/knowledge")  # relative to the config file's folder
    language: Literal["en", "fr", "es"] = "en"
    template: str = "knowledge"  # templates/knowledge/<channel>.<language>.j2
    hashtags: list[str] = Field(default_factory=list)
    repeat_after: str = "90d"  # never the same fact twice within this window

    @field_validator("repeat_after")
    @classmethod
    def _window(cls, value: str) -> str:
        parse_duration(value)
        return value


@dataclass(frozen=True)
class Fact:
    id: str
    text: dict[str, str]
    source: str
    image: Path | None = None
    alt: dict[str, str] = field(default_factory=dict)


def load_facts(folder: Path) -> list[Fact]:
    """Every fact in the folder's TOML files, in file order; every problem reported at once."""
    problems: list[Problem] = []
    facts: list[Fact] = []
    seen: set[str] = set()
    files = sorted(folder.glob("*.toml")) if folder.is_dir() else []
    if not files:
        raise ScheduleError([Problem(str(folder), None, "no fact files (*.toml) here")])
    for path in files:
        try:
            entries = tomllib.loads(path.read_text(encoding="utf-8")).get("fact", [])
        except (tomllib.TOMLDecodeError, OSError) as exc:
            problems.append(Problem(str(path), None, f"cannot read facts: {exc}"))
            continue
        for number, entry in enumerate(entries, start=1):
            fact, why = _fact(path, entry)
            where = f"fact {number} ({entry.get('id', 'no id')})"
            if fact is None:
                problems.append(Problem(str(path), None, f"{where}: {why}"))
            elif fact.id in seen:
                problems.append(Problem(str(path), None, f"{where}: the id is used twice"))
            else:
                seen.add(fact.id)
                facts.append(fact)
    if problems:
        raise ScheduleError(problems)
    return facts


def check_facts(
    spec: KnowledgeCampaign, base_dir: Path, file: str, where: Mapping[str, int]
) -> list[Problem]:
    """The fact files: resolved against the config folder, inside it (an editor of schedules
    must not make the bot read, or name, files elsewhere on the server), and readable."""
    given = spec.facts
    spec.facts = base_dir / given  # an absolute path stays itself
    # Judged as written ('..' folded, links not followed): what an editor can type must stay in
    # the folder, while a link the administrator put there (data/ on another disk) is theirs.
    written = Path(os.path.normpath(spec.facts))
    if not written.is_relative_to(Path(os.path.normpath(base_dir.absolute()))):
        return [
            Problem(
                file,
                line_of(where, "facts"),
                f"facts: {str(given)!r} is outside the project folder (where the config file "
                "is): keep fact files inside it, e.g. 'data/knowledge'",
            )
        ]
    try:
        load_facts(spec.facts)
    except ScheduleError as exc:
        return list(exc.problems)
    return []


def _fact(path: Path, entry: dict[str, Any]) -> tuple[Fact | None, str]:
    text = entry.get("text") or {}
    if not entry.get("id"):
        return None, "an id is required"
    if not isinstance(text, dict) or not text.get("en"):
        return None, "text.en is required (text.fr and text.es are recommended)"
    source = str(entry.get("source", ""))
    if not source.startswith(("https://", "http://")):
        return None, f"source must be a URL (got {source!r})"
    image = path.parent / entry["image"] if entry.get("image") else None
    alt = entry.get("alt") or {}
    if image is not None and not (image.exists() and alt.get("en")):
        return None, "an image must exist and have alt.en"
    return Fact(str(entry["id"]), dict(text), source, image, dict(alt)), ""


def plan(spec: KnowledgeCampaign, run: RunContext, session: Session, templates: Templates) -> Plan:
    facts = load_facts(spec.facts)
    posted = select(Post.fact_id, func.max(Post.created_at)).where(
        Post.campaign_id == spec.id,
        Post.first_outbox_id.in_(
            select(OutboxMessage.id).where(OutboxMessage.state.not_in(("failed", "cancelled")))
        ),
    )
    last = dict(session.execute(posted.group_by(Post.fact_id)).tuples().all())
    window = parse_duration(spec.repeat_after)
    fresh = [f for f in facts if f.id not in last or run.fire_time - last[f.id] >= window]
    if not fresh:
        return Plan([], {f"every fact was posted within {spec.repeat_after}": 1})
    order = {fact.id: index for index, fact in enumerate(facts)}
    fact = min(fresh, key=lambda f: (f.id in last, last.get(f.id) or run.fire_time, order[f.id]))
    text_for = fact.text.get(spec.language) or fact.text["en"]
    context = {
        "text": text_for,
        "source": fact.source,
        "hashtags": " ".join(spec.hashtags),
        "fact": fact,
    }
    media: tuple[Media, ...] = ()
    if fact.image is not None:
        alt = fact.alt.get(spec.language) or fact.alt["en"]
        media = (Media(str(fact.image), alt),)
    return posts.plan_post(
        kind="knowledge",
        campaign_id=spec.id,
        channels=spec.channels,
        template=spec.template,
        language=spec.language,
        context=context,
        run=run,
        templates=templates,
        media=media,
        post={"fact_id": fact.id, "created_at": run.fire_time},
    )


def samples(spec: KnowledgeCampaign, where: Mapping[str, int]) -> list[TemplateCheck]:
    """Each channel's post template, with a sample fact."""
    sample = {
        "text": "160 million children…",
        "source": "https://www.ilo.org",
        "hashtags": " ".join(spec.hashtags),
        "fact": SimpleNamespace(id="sample"),
    }
    line = line_of(where, "template", "channels")
    return [TemplateCheck(f"{spec.template}/{channel}", line, sample) for channel in spec.channels]


KIND = Kind(KnowledgeCampaign, plan, samples, check_files=check_facts)
