"""Knowledge campaign: facts from data/knowledge in turn, never twice within the window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.campaigns.knowledge import KnowledgeCampaign, load_facts
from bot.core.errors import ScheduleError
from bot.core.models import OutboxMessage, Post
from bot.scheduling import runs
from bot.service.app import App
from tests.conftest import ROOT

FACTS = ROOT / "data" / "knowledge"


def knowledge(**fields: object) -> KnowledgeCampaign:
    return KnowledgeCampaign.model_validate(
        {
            "id": "facts",
            "kind": "knowledge",
            "cron": "0 11 * * wed",
            "channels": ["x"],
            "facts": FACTS,
            "repeat_after": "60d",
            **fields,
        }
    )


def test_the_shipped_facts_are_complete_and_sourced() -> None:
    facts = load_facts(FACTS)
    assert len(facts) >= 5
    assert all(set(f.text) == {"en", "fr", "es"} and f.source.startswith("https://") for f in facts)


def test_each_fact_once_then_none_until_the_window_has_passed(app: App) -> None:
    start = datetime(2026, 3, 4, 10, tzinfo=UTC)
    slots = [start + timedelta(weeks=n) for n in range(6)]
    for slot in slots:
        runs.fire(
            app.db, app.templates, knowledge(), slot, trigger="cron", destinations={"x": "timeline"}
        )
    with app.db.session() as session:
        posted = [p.fact_id for p in session.scalars(select(Post).order_by(Post.id))]
    assert len(posted) == 5 and len(set(posted)) == 5, "five facts, then none within 60 days"
    later = start + timedelta(days=61)
    runs.fire(
        app.db, app.templates, knowledge(), later, trigger="cron", destinations={"x": "timeline"}
    )
    with app.db.session() as session:
        again = session.scalars(select(Post.fact_id).order_by(Post.id.desc())).first()
    assert again == posted[0], "the least recently posted comes back first"


def test_posts_are_in_the_campaign_language_with_source_and_hashtags(app: App) -> None:
    runs.fire(
        app.db,
        app.templates,
        knowledge(language="fr", hashtags=["#FinTravailEnfants"]),
        datetime(2026, 3, 4, 10, tzinfo=UTC),
        trigger="cron",
        destinations={"x": "timeline"},
    )
    with app.db.session() as session:
        text = session.scalar(select(OutboxMessage.text))
    assert text.startswith("Au début de 2020, 160 millions d'enfants")
    assert "Source: https://www.ilo.org/" in text and text.endswith("#FinTravailEnfants")


def test_a_broken_fact_file_is_reported_by_file(tmp_path: Path) -> None:
    (tmp_path / "bad.toml").write_text(
        '[[fact]]\nid = "x"\nsource = "ilo.org"\ntext.en = "t"\n', encoding="utf-8"
    )
    with pytest.raises(ScheduleError) as caught:
        load_facts(tmp_path)
    assert (
        str(caught.value)
        == f"{tmp_path / 'bad.toml'}: fact 1 (x): source must be a URL (got 'ilo.org')"
    )
