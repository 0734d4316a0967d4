"""Matchmaking: which other pledgemakers' solutions and progress could help with a challenge.

Pure functions over ``Doc`` (an update with its organisation's facts);
``bot.community.introductions``
stores the suggestions and runs the introductions. The score of a (challenge, offer) pair is

- the cosine similarity of their TF-IDF vectors (scikit-learn), over words stemmed per language
  (Snowball) with the stop words of the ``stop-words`` package removed — texts are only compared
  within one language, since a pair has to be able to talk;
- plus, as a tie-breaker, the share of the challenge's *topics* the offer is also about
  (``bot/data/topics.toml``: cocoa, schooling, birth registration…, recognised from words in
  any form) — the topics mostly serve the reason line;
- plus small bonuses for the same country, region, sector and pillar, and for a *solution* over
  mere progress.

Each suggestion carries a one-line reason a person can check ("both on cocoa and schooling, in
Côte d'Ivoire; Ecole Plus reported a solution on school meals").

scikit-learn, the stemmers and the stop words are the ``matchmaking`` extra: without them ``rank``
suggests nothing and says so in one line (a digest still goes out).
"""

from __future__ import annotations

import logging
import re
import tomllib
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from babel import Locale

from bot.core.extras import ExtraMissing, needs

if TYPE_CHECKING:
    import snowballstemmer

log = logging.getLogger(__name__)
TOPICS_FILE = Path(__file__).parents[1] / "data" / "topics.toml"  # bot/data/
STEMMERS = {"en": "english", "fr": "french", "es": "spanish"}
CHUNK = 256  # challenges compared at once (a 256 × offers block of floats)
WORD = re.compile(r"[^\W\d_]+(?:['’-][^\W\d_]+)*|\d+", re.UNICODE)
OFF = "matchmaking is off (no new suggestions): its libraries are not installed"


@dataclass(frozen=True)
class Weights:
    text: float = 1.0
    # On tests/data/matchmaking (precision@3): text alone 0.97, topics at 0.1 0.94, at 0.5 0.89.
    # Kept small: a tie-breaker between texts equally close, and the words of the reason.
    topics: float = 0.1
    country: float = 0.08
    region: float = 0.03
    sector: float = 0.04
    pillar: float = 0.02
    solution: float = 0.04
    minimum: float = 0.12  # below this, no suggestion: a weak pair wastes the team's time


@dataclass(frozen=True)
class Doc:
    id: str
    pledgemaker_id: str
    organisation: str
    country: str
    region: str
    sector: str
    language: str
    pillar: str
    kind: str  # challenge | solution | progress
    text: str


@dataclass
class Suggestion:
    challenge: Doc
    offer: Doc
    score: float
    topics: list[str] = field(default_factory=list)  # shared topic ids, most specific first
    reason: str = ""


# -- words ---------------------------------------------------------------------------------------
def _fold(text: str) -> str:
    """Lower case without accents: "Scolarisation" and "scolarisation" are one word."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


@cache
def _stemmer(language: str) -> snowballstemmer.stemmer:
    with needs("matchmaking", OFF):
        import snowballstemmer
    return snowballstemmer.stemmer(STEMMERS.get(language, "english"))


@cache
def _stop_words(language: str) -> frozenset[str]:
    with needs("matchmaking", OFF):
        from stop_words import get_stop_words
    return frozenset(_fold(w) for w in get_stop_words(language if language in STEMMERS else "en"))


def stems(text: str, language: str) -> list[str]:
    """The text's words, stop words removed, stemmed (the stemmers want the accents), then
    folded: "l'école" → "ecol"."""
    stop = _stop_words(language)
    words = [
        part
        for match in WORD.finditer(text.casefold())
        for part in re.split(r"['’]", match.group(0))
        if part and _fold(part) not in stop
    ]
    return [_fold(stem) for stem in _stemmer(language).stemWords(words)]


# -- topics --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Topic:
    id: str
    labels: dict[str, str]
    phrases: dict[str, tuple[tuple[str, ...], ...]]  # language → stemmed phrases


@cache
def topics(path: Path = TOPICS_FILE) -> tuple[Topic, ...]:
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    found = []
    for topic_id, entry in data.items():
        phrases = {
            language: tuple(tuple(stems(phrase, language)) for phrase in entry.get(language, []))
            for language in STEMMERS
        }
        clean = {k: tuple(p for p in v if p) for k, v in phrases.items()}
        found.append(Topic(topic_id, dict(entry["label"]), clean))
    return tuple(found)


def topics_in(words: list[str], language: str) -> list[str]:
    """The topics whose words occur in ``words`` (stems), in the order of the topics file."""
    present = set(words)
    found = []
    for topic in topics():
        for phrase in topic.phrases.get(language, ()):
            if (len(phrase) == 1 and phrase[0] in present) or _contains(words, phrase):
                found.append(topic.id)
                break
    return found


def _contains(words: list[str], phrase: tuple[str, ...]) -> bool:
    if len(phrase) < 2 or phrase[0] not in words:
        return False
    n = len(phrase)
    return any(tuple(words[i : i + n]) == phrase for i in range(len(words) - n + 1))


def label(topic_id: str, language: str = "en") -> str:
    topic = next(t for t in topics() if t.id == topic_id)
    return topic.labels.get(language) or topic.labels["en"]


# -- ranking -------------------------------------------------------------------------------------
def rank(
    challenges: Iterable[Doc],
    offers: Iterable[Doc],
    *,
    top: int = 3,
    weights: Weights = Weights(),
    skip: frozenset[tuple[str, str]] = frozenset(),
) -> dict[str, list[Suggestion]]:
    """For each challenge, its ``top`` best offers from other pledgemakers in its language,
    best first. ``skip``: pairs of pledgemaker ids never to suggest (either order). Without
    the matchmaking extra: none, said in one line."""
    challenges, offers = list(challenges), list(offers)
    ranked: dict[str, list[Suggestion]] = {c.id: [] for c in challenges}
    if (off := missing()) is not None:
        log.warning("%s", off)
        return ranked
    # Imported here: scikit-learn takes a second to import, and only matchmaking needs it.
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.metrics.pairwise import linear_kernel

    for language in sorted({c.language for c in challenges}):
        mine = [c for c in challenges if c.language == language]
        theirs = [o for o in offers if o.language == language]
        if not theirs:
            continue
        words = {d.id: stems(d.text, language) for d in mine + theirs}
        # The documents are given as their stems: the analyzer only passes them through.
        vectors = TfidfVectorizer(analyzer=_as_is, sublinear_tf=True).fit_transform(
            [words[d.id] for d in mine + theirs]
        )
        about = {d.id: topics_in(words[d.id], language) for d in mine + theirs}
        offered = vectors[len(mine) :]
        for i, challenge in enumerate(mine):
            if i % CHUNK == 0:  # a dense block of similarities at a time: memory stays flat
                similarity = linear_kernel(vectors[i : i + CHUNK], offered)
            scored = []
            for j, offer in enumerate(theirs):
                pair = (challenge.pledgemaker_id, offer.pledgemaker_id)
                if offer.pledgemaker_id == challenge.pledgemaker_id or pair in skip:
                    continue
                if pair[::-1] in skip:
                    continue
                shared = [t for t in about[challenge.id] if t in about[offer.id]]
                text = float(similarity[i % CHUNK, j])
                score = _score(challenge, offer, text, shared, about, weights)
                if score >= weights.minimum:
                    scored.append(Suggestion(challenge, offer, round(score, 4), shared))
            scored.sort(key=lambda s: (-s.score, s.offer.id))
            for suggestion in scored[:top]:
                suggestion.reason = reason(suggestion, about[suggestion.offer.id])
            ranked[challenge.id] = scored[:top]
    return ranked


def missing() -> ExtraMissing | None:
    """Why matchmaking is off in this install: its libraries are not there; None when they are."""
    try:
        with needs("matchmaking", OFF):
            import sklearn  # noqa: F401
            import snowballstemmer  # noqa: F401
            import stop_words  # noqa: F401
    except ExtraMissing as exc:
        return exc
    return None


def _as_is(words: list[str]) -> list[str]:
    return words


def _score(
    challenge: Doc,
    offer: Doc,
    text: float,
    shared: list[str],
    about: dict[str, list[str]],
    w: Weights,
) -> float:
    asked = about[challenge.id]
    score = w.text * text + (w.topics * len(shared) / len(asked) if asked else 0.0)
    if challenge.country == offer.country:
        score += w.country
    elif challenge.region == offer.region:
        score += w.region
    score += w.sector if challenge.sector == offer.sector else 0.0
    score += w.pillar if challenge.pillar == offer.pillar else 0.0
    return score + (w.solution if offer.kind == "solution" else 0.0)


def reason(suggestion: Suggestion, offer_topics: list[str]) -> str:
    """One line a person can check, in English (for the comms team)."""
    challenge, offer = suggestion.challenge, suggestion.offer
    shared = suggestion.topics
    what = "both on " + _and([label(t) for t in shared[:3]]) if shared else "similar words"
    if challenge.country == offer.country:
        what += f", in {country_name(challenge.country)}"
    elif challenge.region == offer.region:
        what += ", in the same region"
    if challenge.sector == offer.sector:
        what += f" (both {challenge.sector.replace('_', ' ')})"
    own = [t for t in offer_topics if t not in shared]
    on = f" on {label(own[0])}" if own else ""
    return f"{what}; {offer.organisation} reported {_a(offer.kind)}{on}"


def _a(kind: str) -> str:
    return "progress" if kind == "progress" else f"a {kind}"


def _and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


@cache
def country_name(code: str) -> str:
    return str(Locale("en").territories.get(code.upper(), code))
