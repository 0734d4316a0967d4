"""The public journey feed: approved journey updates whose pledgemaker consents to publishing
them, as Atom 1.0 (built with feedgen) and JSON Feed 1.1 (a plain dict, per
https://www.jsonfeed.org/version/1.1/), for the campaign's website.

Served at ``/feed.atom`` and ``/feed.json`` (``bot.web.feed``) and written by ``pledgebot
export feed`` for static hosting. An entry carries what a post would carry and nothing more:
the published text (the comms team's edit once the pledgemaker consented to it), the credit
line, the pillar, the organisation's country, the date and the language. The query is the gate:
moderation "approved", consent given now (a withdrawal sets it false at once), pledgemaker not
erased. Ids derive from the update id alone, never from chat data.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape
from typing import Any

from feedgen.ext.base import BaseEntryExtension
from feedgen.feed import FeedGenerator
from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from bot.community.consent import credit_line, published_text
from bot.core.errors import UserInputError
from bot.core.models import Consent, JourneyUpdate, Pledgemaker
from bot.core.vocab import PILLAR_NAMES
from bot.service.app import App

MEDIA_TYPES = {
    "atom": "application/atom+xml; charset=utf-8",
    "json": "application/feed+json; charset=utf-8",
}
PATHS = {"atom": "/feed.atom", "json": "/feed.json"}
DEFAULT_LIMIT, MAX_LIMIT = 50, 200
TITLE = "Action Pledge journeys"
SUBTITLE = "How pledgemakers act on their pledge, in their own words, shared with their consent."
FEED_LANGUAGE = "en"  # of the feed's own words; each entry names its own language
# Fixed forever: every id in the feed derives from it, and a changed id is a new entry to readers.
ID_NAMESPACE = uuid.UUID("5b0f6c1e-3d7a-4b8e-9a51-2f4c8d0e7a13")
COUNTRY_SCHEME = "urn:iso:std:iso:3166"
EMPTY_UPDATED = datetime(1970, 1, 1, tzinfo=UTC)  # Atom requires <updated>, even with no entry
# Characters XML 1.0 cannot carry (lxml refuses them): one stray control character in a reply
# must not take the whole feed down.
NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")


@dataclass(frozen=True)
class FeedEntry:
    """One published journey update, as every format shows it."""

    id: str
    title: str
    text: str
    credit: str
    pillar: str  # the code: act | inspire | scale_up
    country: str  # ISO 3166-1 alpha-2
    published: datetime  # approved (or, never moderated in place, created)
    updated: datetime  # the latest of that and the last "yes" to the text
    language: str

    @property
    def pillar_name(self) -> str:
        return PILLAR_NAMES["en"].get(self.pillar, self.pillar)

    @property
    def country_name(self) -> str:
        from babel import Locale

        return str(Locale("en").territories.get(self.country, self.country))


@dataclass(frozen=True)
class Feed:
    body: bytes
    media_type: str
    etag: str  # strong, quoted: the body's hash
    updated: datetime | None  # the newest entry's; None for an empty feed


def check_format(fmt: str) -> str:
    if fmt not in MEDIA_TYPES:
        raise UserInputError(f"--format must be atom or json (got {fmt!r})")
    return fmt


def check_limit(limit: int) -> int:
    if not 1 <= limit <= MAX_LIMIT:
        raise UserInputError(f"--limit must be between 1 and {MAX_LIMIT} (got {limit})")
    return limit


def entry_id(update_id: int) -> str:
    return f"urn:uuid:{uuid.uuid5(ID_NAMESPACE, f'journey-update:{update_id}')}"


def entries(session: Session, limit: int = DEFAULT_LIMIT) -> list[FeedEntry]:
    """The newest ``limit`` publishable updates, newest first."""
    published_at = func.coalesce(JourneyUpdate.moderated_at, JourneyUpdate.created_at)
    last_yes = (
        select(Consent.journey_update_id, func.max(Consent.created_at).label("at"))
        .where(Consent.answer == "yes")
        .group_by(Consent.journey_update_id)
        .subquery()
    )
    rows = session.execute(
        select(JourneyUpdate, Pledgemaker, last_yes.c.at)
        .join(Pledgemaker, JourneyUpdate.pledgemaker_id == Pledgemaker.id)
        .outerjoin(last_yes, last_yes.c.journey_update_id == JourneyUpdate.id)
        .where(
            JourneyUpdate.moderation == "approved",
            JourneyUpdate.consent_to_publish.is_(True),
            Pledgemaker.erased_at.is_(None),
        )
        .order_by(published_at.desc(), JourneyUpdate.id.desc())
        .limit(limit)
        .options(selectinload(Pledgemaker.handle_rows))  # the credit line's X handle
    ).all()
    found = []
    for update, pledgemaker, consented_at in rows:
        text = _plain(published_text(update)).strip()
        if not text:
            continue
        published = update.moderated_at or update.created_at
        name = PILLAR_NAMES["en"].get(update.pillar, update.pillar)
        found.append(
            FeedEntry(
                id=entry_id(update.id),
                title=_plain(f"{name}: {pledgemaker.name}"),
                text=text,
                credit=_plain(credit_line(pledgemaker)),
                pillar=update.pillar,
                country=pledgemaker.country,
                published=published,
                updated=max(published, consented_at) if consented_at else published,
                language=pledgemaker.language,
            )
        )
    return found


def _plain(text: str) -> str:
    return NOT_XML.sub("", text)


def base_url(app: App) -> str:
    """The dashboard's public address (``[dashboard] public_url``), or "" for relative links."""
    return (app.config.dashboard.public_url or "").rstrip("/")


# feedgen has no type hints: its base class is Any to mypy.
class _ContentLanguage(BaseEntryExtension):  # type: ignore[misc]
    """Sets ``xml:lang`` on an Atom entry's content (feedgen has no field for it): the words
    are the pledgemaker's; the title (pillar and name) stays in the feed's language."""

    language = ""

    def extend_atom(self, entry: Any) -> Any:
        content = entry.find("content")  # feedgen writes unprefixed names under xmlns
        if self.language and content is not None:
            content.set("{http://www.w3.org/XML/1998/namespace}lang", self.language)
        return entry


def atom(found: list[FeedEntry], base: str = "") -> bytes:
    generator = FeedGenerator()
    generator.id(f"urn:uuid:{uuid.uuid5(ID_NAMESPACE, 'journey-feed')}")
    generator.title(TITLE)
    generator.subtitle(SUBTITLE)
    generator.language(FEED_LANGUAGE)
    generator.link(href=f"{base}{PATHS['atom']}", rel="self", type="application/atom+xml")
    generator.updated(max((entry.updated for entry in found), default=EMPTY_UPDATED))
    generator.generator("pledgebot")
    for entry in found:
        item = generator.add_entry(order="append")  # the default prepends: newest must stay first
        item.register_extension("pledgebot_lang", _ContentLanguage, atom=True, rss=False)
        item.pledgebot_lang.language = entry.language
        item.id(entry.id)
        item.title(entry.title)
        item.content(entry.text, type="text")  # text, not html: escaped by the XML writer
        item.author(name=entry.credit)
        item.category(term=entry.pillar_name)
        item.category(term=entry.country, scheme=COUNTRY_SCHEME, label=entry.country_name)
        item.published(entry.published)
        item.updated(entry.updated)
    body: bytes = generator.atom_str(pretty=True)
    return body


def json_feed(found: list[FeedEntry], base: str = "") -> bytes:
    document = {
        "version": "https://jsonfeed.org/version/1.1",
        "title": TITLE,
        "description": SUBTITLE,
        "feed_url": f"{base}{PATHS['json']}",
        "language": FEED_LANGUAGE,
        "items": [
            {
                "id": entry.id,
                "title": entry.title,
                "content_text": entry.text,
                "content_html": _html(entry.text),
                "date_published": entry.published.isoformat(),
                "date_modified": entry.updated.isoformat(),
                "authors": [{"name": entry.credit}],
                "tags": [entry.pillar_name],
                "language": entry.language,
                "_pledgebot": {"pillar": entry.pillar, "country": entry.country},
            }
            for entry in found
        ],
    }
    text = json.dumps(document, ensure_ascii=False, indent=2) + "\n"
    # Still the same JSON, but safe to inline in a page's <script> (no "</script>", no U+2028).
    for char in ("<", ">", "&", "\u2028", "\u2029"):
        text = text.replace(char, f"\\u{ord(char):04x}")
    return text.encode()


def _html(text: str) -> str:
    paragraphs = (part.strip() for part in re.split(r"\n\s*\n", text))
    return "".join(f"<p>{escape(part).replace(chr(10), '<br>')}</p>" for part in paragraphs if part)


def build(app: App, fmt: str, limit: int = DEFAULT_LIMIT) -> Feed:
    check_format(fmt)
    with app.db.session() as session:
        found = entries(session, check_limit(limit))
    body = (atom if fmt == "atom" else json_feed)(found, base_url(app))
    return Feed(
        body=body,
        media_type=MEDIA_TYPES[fmt],
        etag='"' + hashlib.sha256(body).hexdigest()[:32] + '"',
        updated=max((entry.updated for entry in found), default=None),
    )
