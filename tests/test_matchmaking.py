"""Matchmaking's scorer: the labelled set (written before the scorer, never edited to fit it)
and the rules a coordinator relies on — the same language, never oneself, a pair skipped, a
reason that names what the two share."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.community import matchmaking
from bot.community.matchmaking import Doc, rank
from bot.community.matchmaking_eval import evaluate
from bot.text import i18n
from tests.conftest import ROOT

SET = ROOT / "tests" / "data" / "matchmaking"


def test_top_three_suggestions_hold_a_good_match_for_at_least_80_percent_of_challenges() -> None:
    result = evaluate(SET)
    assert result.challenges >= 30
    assert result.precision >= 0.8, f"precision@3 {result.precision:.2f}; missed {result.missed}"
    for language, precision in result.per_language.items():
        assert precision >= 0.7, f"{language}: {precision:.2f}"


def doc(id: str, who: str, text: str, kind: str = "solution", **facts: str) -> Doc:
    values = {
        "country": "CI",
        "region": "africa",
        "sector": "ngo",
        "language": "en",
        "pillar": "act",
        **facts,
    }
    return Doc(id, who, who.title(), text=text, kind=kind, **values)  # type: ignore[arg-type]


CHALLENGE = doc(
    "c1",
    "coop",
    "During the cocoa harvest many kids drop out of school to work on their parents' farms.",
    "challenge",
    sector="business",
)
SCHOOL = doc(
    "s1",
    "ecole",
    "We moved the school calendar around the cocoa harvest and added catch-up classes.",
)
MINES = doc("s2", "minesafe", "Cash transfers took 200 children out of gold mines.", country="GH")


def test_the_closest_offer_comes_first_with_a_reason_a_person_can_check() -> None:
    [first, *rest] = rank([CHALLENGE], [MINES, SCHOOL])["c1"]
    assert first.offer.id == "s1"
    assert first.reason == (
        "both on cocoa, agriculture and schooling, in Côte d’Ivoire; Ecole reported a solution"
    )
    assert all(s.score <= first.score for s in rest)


def test_never_oneself_never_another_language_never_a_skipped_pair() -> None:
    own = doc("s3", "coop", SCHOOL.text)
    french = doc("s4", "ong", "Calendrier scolaire adapté à la récolte du cacao.", language="fr")
    assert [s.offer.id for s in rank([CHALLENGE], [own, french])["c1"]] == []
    assert rank([CHALLENGE], [SCHOOL], skip=frozenset({("ecole", "coop")}))["c1"] == []


def test_words_are_compared_in_any_form_and_accents_do_not_matter() -> None:
    assert matchmaking.stems("Écoles, l'école et les écoliers", "fr")[:2] == ["ecol", "ecol"]
    assert matchmaking.topics_in(matchmaking.stems("registro civil tardío", "es"), "es") == [
        "birth_registration"
    ]


def test_every_topic_has_a_label_and_words_in_each_language() -> None:
    for topic in matchmaking.topics():
        assert set(topic.labels) == {"en", "fr", "es"}, topic.id
        assert all(topic.phrases[lang] for lang in ("en", "fr", "es")), topic.id


# -- the translations check ---------------------------------------------------------------------------
def test_the_repository_templates_pass_the_translations_check() -> None:
    assert i18n.check(ROOT / "templates") == []


def test_a_missing_version_or_a_changed_variable_is_reported(tmp_path: Path) -> None:
    (tmp_path / "followup").mkdir()
    (tmp_path / "bot").mkdir()
    (tmp_path / "followup" / "act.en.j2").write_text("Hello {{ pledgemaker.name }}", "utf-8")
    (tmp_path / "followup" / "act.fr.j2").write_text("Bonjour {{ nom }}", "utf-8")
    for language, text in (("en", 'a = "{{ name }}"'), ("fr", 'a = "x"'), ("es", "")):
        (tmp_path / "bot" / f"{language}.toml").write_text(text, "utf-8")
    found = sorted(str(p) for p in i18n.check(tmp_path))
    assert found == sorted(
        [
            f"{tmp_path}/followup/act.es.j2: missing: followup/act has no es",
            f"{tmp_path}/followup/act.fr.j2: followup/act (fr): lacks pledgemaker; "
            "uses nom that en does not",
            f"{tmp_path}/bot/es.toml: missing: phrase 'a' has no es",
            f"{tmp_path}/bot/fr.toml: phrase 'a' (fr): lacks name",
        ]
    )


@pytest.mark.parametrize("broken", ["{{ name", "{% if %}"])
def test_a_template_that_does_not_parse_is_reported_with_its_line(
    tmp_path: Path, broken: str
) -> None:
    (tmp_path / "bot").mkdir()
    for language in ("en", "fr", "es"):
        (tmp_path / "bot" / f"{language}.toml").write_text('a = "x"', "utf-8")
        (tmp_path / f"note.{language}.j2").write_text("ok\n" + broken, "utf-8")
    [problem, *_] = i18n.check(tmp_path)
    assert problem.line == 2 and "template syntax" in problem.message
