"""The public journey feed: only approved, consented updates of pledgemakers not erased, as
Atom 1.0 and JSON Feed 1.1, served without a session and exported for static hosting.

Atom is read back with feedparser, as a website's feed reader would; feedparser 6 does not
read JSON Feed, so that one is checked against the 1.1 spec's fields directly.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import feedparser
import pytest
from starlette.testclient import TestClient

from bot.community import consent, erasure, review
from bot.core.models import Contact, JourneyUpdate, Pledgemaker
from bot.service import feed
from bot.service.app import App
from bot.web.app import build
from bot.web.auth import PUBLIC, is_public
from tests.auxil.cli import pledgebot

ILO = "ilo"  # English, @ilo, CH
CI = "ci-cocoa-coop"  # French, @CoopCacaoSoubre, CI
GH = "gh-min-labour"  # English, no X handle, GH
DAY = datetime(2021, 6, 1, 9, 0, tzinfo=UTC)
HOSTILE = '<script>alert("x")</script> & <b>bold</b> ]]> \x0b end'


def add_update(
    app: App,
    pledgemaker_id: str,
    text: str,
    *,
    approved_at: datetime | None = DAY,
    moderation: str = "approved",
    consent_to_publish: bool | None = True,
    **fields: Any,
) -> int:
    with app.db.session() as session:
        update = JourneyUpdate(
            pledgemaker_id=pledgemaker_id,
            pillar=fields.pop("pillar", "act"),
            kind="progress",
            text=text,
            moderation=moderation,
            moderated_at=approved_at,
            consent_to_publish=consent_to_publish,
            source=fields.pop("source", "import"),
            source_ref=f"ref-{pledgemaker_id}-{text[:20]}",
            created_at=DAY - timedelta(days=3),
            **fields,
        )
        session.add(update)
        session.flush()
        return update.id


def atom_of(client: TestClient, query: str = "") -> Any:
    response = client.get("/feed.atom" + query)
    assert response.status_code == 200, response.text
    return feedparser.parse(response.content)


def json_of(client: TestClient, query: str = "") -> dict[str, Any]:
    response = client.get("/feed.json" + query)
    assert response.status_code == 200, response.text
    document: dict[str, Any] = json.loads(response.content)
    return document


def texts(client: TestClient) -> tuple[list[str], list[str]]:
    atom = [entry.content[0].value for entry in atom_of(client).entries]
    items = [item["content_text"] for item in json_of(client)["items"]]
    return atom, items


@pytest.fixture
def client(app: App) -> TestClient:
    return TestClient(build(app))  # never signed in


def test_atom_lists_published_updates_newest_first_with_credit_pillar_country_and_language(
    app: App, client: TestClient
) -> None:
    old = add_update(app, ILO, "We trained 40 labour inspectors.", approved_at=DAY)
    new = add_update(app, CI, "Nous avons ouvert deux écoles.", approved_at=DAY + timedelta(days=2))
    middle = add_update(
        app, GH, "Monitoring reached 12 districts.", approved_at=None, pillar="scale_up"
    )
    parsed = atom_of(client)
    assert not parsed.bozo, parsed.get("bozo_exception")
    assert parsed.version == "atom10"
    assert parsed.feed.title == "Action Pledge journeys"
    assert parsed.feed.language == "en"
    assert [entry.id for entry in parsed.entries] == [
        feed.entry_id(new),
        feed.entry_id(old),
        feed.entry_id(middle),  # never moderated in place: dated by its creation
    ]
    first, second, third = parsed.entries
    assert first.content[0].value == "Nous avons ouvert deux écoles."
    assert first.content[0].type == "text/plain"
    assert first.author == "Union des coopératives de cacao de Soubré (@CoopCacaoSoubre)"
    assert first.content[0].language == "fr"
    assert second.content[0].language == "en"
    assert second.author == "International Labour Organization (@ilo)"
    assert third.author == "Ministry of Employment and Labour Relations, Ghana"
    assert [tag.term for tag in first.tags] == ["Act", "CI"]
    assert first.tags[1].scheme == feed.COUNTRY_SCHEME
    assert first.tags[1].label == "Côte d’Ivoire"
    assert third.tags[0].term == "Scale up"
    assert first.published_parsed[:5] == (2021, 6, 3, 9, 0)
    assert second.updated_parsed[:5] == (2021, 6, 1, 9, 0)
    assert third.published_parsed[:3] == (2021, 5, 29)
    assert all(entry.id.startswith("urn:uuid:") for entry in parsed.entries)
    assert feed.entry_id(old) == feed.entry_id(old) != feed.entry_id(new)


def test_json_feed_follows_version_1_1(app: App, client: TestClient) -> None:
    add_update(app, ILO, "We trained 40 labour inspectors.\n\nNext: 40 more.")
    add_update(app, CI, "Deux écoles.", approved_at=DAY + timedelta(hours=1), pillar="inspire")
    response = client.get("/feed.json")
    assert response.headers["content-type"] == "application/feed+json; charset=utf-8"
    document = json.loads(response.content)
    assert document["version"] == "https://jsonfeed.org/version/1.1"
    assert document["title"] == "Action Pledge journeys"
    assert document["feed_url"] == "/feed.json"  # no [dashboard] public_url: relative
    assert document["language"] == "en"
    french, english = document["items"]
    assert french["id"] == atom_of(client).entries[0].id
    assert french["tags"] == ["Inspire"]
    assert french["language"] == "fr"
    assert french["authors"] == [
        {"name": "Union des coopératives de cacao de Soubré (@CoopCacaoSoubre)"}
    ]
    assert french["_pledgebot"] == {"pillar": "inspire", "country": "CI"}
    assert datetime.fromisoformat(french["date_published"]) == DAY + timedelta(hours=1)
    assert english["content_text"] == "We trained 40 labour inspectors.\n\nNext: 40 more."
    assert english["content_html"] == "<p>We trained 40 labour inspectors.</p><p>Next: 40 more.</p>"
    for item in document["items"]:
        assert isinstance(item["id"], str) and "url" not in item  # no page per update yet
        assert set(item) <= {
            *("id", "title", "content_text", "content_html", "date_published"),
            *("date_modified", "authors", "tags", "language", "_pledgebot"),
        }


def test_unapproved_rejected_and_unconsented_updates_are_absent(
    app: App, client: TestClient
) -> None:
    add_update(app, ILO, "published")
    add_update(app, ILO, "pending", moderation="pending", approved_at=None)
    add_update(app, ILO, "rejected", moderation="rejected")
    add_update(app, ILO, "not asked yet", consent_to_publish=None)
    add_update(app, ILO, "they said no", consent_to_publish=False)
    add_update(app, ILO, "pending but consented", moderation="pending", approved_at=None)
    assert texts(client) == (["published"], ["published"])


def test_a_withdrawn_update_disappears_at_once(app: App, client: TestClient) -> None:
    kept = add_update(app, GH, "kept")
    taken_back = add_update(app, ILO, "taken back", approved_at=DAY + timedelta(days=1))
    assert texts(client) == (["taken back", "kept"], ["taken back", "kept"])
    with app.db.session() as session:
        consent.withdraw(session, ILO, None, only=taken_back)
    assert texts(client) == (["kept"], ["kept"])
    assert [e.id for e in atom_of(client).entries] == [feed.entry_id(kept)]


def test_the_consented_edit_is_published_and_an_unconsented_one_is_not(
    app: App, client: TestClient
) -> None:
    imported = add_update(app, GH, "teh original words", edited_text="The edited words.")
    reply = add_update(app, ILO, "Our own words.", source="reply")
    with app.db.session() as session:  # a pledgemaker's words edited: asked again, not shown
        review.edit(session, reply, "Words the comms team chose.", app.templates)
    body = client.get("/feed.atom").text + client.get("/feed.json").text
    assert "The edited words." in body and "teh original" not in body
    assert "Our own words." not in body and "comms team chose" not in body
    with app.db.session() as session:
        update = session.get(JourneyUpdate, reply)
        assert update is not None
        consent.record(session, update, "yes", None)
    atom, items = texts(client)
    assert atom == items == ["Words the comms team chose.", "The edited words."]
    assert imported != reply


def test_an_erased_pledgemakers_updates_are_absent(app: App, client: TestClient) -> None:
    add_update(app, GH, "stays")
    add_update(app, ILO, "erased with them")
    add_update(app, CI, "marked erased")
    with app.db.session() as session:
        erasure.erase(session, ILO)
        person = session.get(Pledgemaker, CI)
        assert person is not None
        person.erased_at = DAY  # even were its words and consent left in place
    assert texts(client) == (["stays"], ["stays"])


def test_nothing_private_about_the_pledgemaker_is_in_the_feed(app: App, client: TestClient) -> None:
    add_update(app, GH, "Monitoring reached 12 districts.", moderation_note="internal note")
    with app.db.session() as session:
        person = session.get(Pledgemaker, GH)
        assert person is not None
        person.handles["email"] = "secret.desk@melr.example"
        session.add(Contact(pledgemaker_id=GH, channel="telegram", address="987654321"))
    body = client.get("/feed.atom").text + client.get("/feed.json").text
    assert "Monitoring reached 12 districts." in body
    for private in ("secret.desk", "987654321", "internal note", GH, "Accra", "melr.gov"):
        assert private not in body


def test_hostile_text_is_escaped_in_atom_and_json(app: App, client: TestClient) -> None:
    add_update(app, CI, HOSTILE)
    shown = HOSTILE.replace("\x0b", "")  # XML cannot carry it: dropped, in both formats alike
    raw_atom = client.get("/feed.atom").text
    assert "<script>" not in raw_atom and "<b>" not in raw_atom
    assert "&lt;script&gt;" in raw_atom
    assert atom_of(client).entries[0].content[0].value == shown
    raw_json = client.get("/feed.json").text
    assert "<" not in raw_json and ">" not in raw_json  # safe even inlined in a <script>
    item = json.loads(raw_json)["items"][0]
    assert item["content_text"] == shown
    assert "<script>" not in item["content_html"]
    assert item["content_html"].startswith("<p>&lt;script&gt;alert(&quot;x&quot;)")


def test_feeds_are_public_and_nothing_else_became_public(app: App, client: TestClient) -> None:
    add_update(app, ILO, "public")
    assert {"/feed.atom", "/feed.json"} <= set(PUBLIC)
    for path, media_type in (
        ("/feed.atom", "application/atom+xml; charset=utf-8"),
        ("/feed.json", "application/feed+json; charset=utf-8"),
    ):
        response = client.get(path, follow_redirects=False)
        assert response.status_code == 200
        assert response.headers["content-type"] == media_type
        assert response.headers["cache-control"] == "public, max-age=300"
        assert response.headers["access-control-allow-origin"] == "*"
        assert response.headers["last-modified"] == "Tue, 01 Jun 2021 09:00:00 GMT"
        head = client.head(path)
        assert head.status_code == 200 and head.content == b""
        assert head.headers["etag"] == response.headers["etag"]
    for near in ("/feed", "/feed.atomx", "/feed.json/x", "/feedxatom", "/feed.xml", "/updates"):
        assert not is_public(near), near
        response = client.get(near, headers={"accept": "text/html"}, follow_redirects=False)
        assert response.status_code in (303, 401), near


def test_etag_answers_304_until_the_feed_changes(app: App, client: TestClient) -> None:
    add_update(app, ILO, "first")
    for path in ("/feed.atom", "/feed.json"):
        etag = client.get(path).headers["etag"]
        assert etag.startswith('"') and etag.endswith('"')
        again = client.get(path, headers={"if-none-match": etag})
        assert again.status_code == 304 and again.content == b""
        assert again.headers["etag"] == etag
        assert again.headers["cache-control"] == "public, max-age=300"
        listed = client.get(path, headers={"if-none-match": f'"other", W/{etag}'})
        assert listed.status_code == 304
        assert client.get(path, headers={"if-none-match": '"other"'}).status_code == 200
    before = client.get("/feed.json").headers["etag"]
    add_update(app, GH, "second")
    changed = client.get("/feed.json", headers={"if-none-match": before})
    assert changed.status_code == 200 and changed.headers["etag"] != before


def test_limit_defaults_to_50_is_capped_at_200_and_checked(app: App, client: TestClient) -> None:
    for n in range(3):
        add_update(app, ILO, f"update {n}", approved_at=DAY + timedelta(minutes=n))
    assert [e.content[0].value for e in atom_of(client, "?limit=2").entries] == [
        "update 2",
        "update 1",
    ]
    assert len(json_of(client, "?limit=1000")["items"]) == 3
    for bad in ("0", "-1", "two", "1.5", "²"):
        assert client.get(f"/feed.json?limit={bad}").status_code == 400, bad


def test_links_use_the_public_url_when_set(app: App) -> None:
    with app.db.session() as session:
        found = feed.entries(session)
    base = "https://pledge.example.org"
    parsed = feedparser.parse(feed.atom(found, base))
    assert parsed.feed.links[0].href == "https://pledge.example.org/feed.atom"
    assert parsed.feed.links[0].rel == "self"
    assert json.loads(feed.json_feed(found, base))["feed_url"] == f"{base}/feed.json"


def test_cli_export_writes_the_same_feed(app: App, config_path: Path, client: TestClient) -> None:
    add_update(app, CI, HOSTILE)
    add_update(app, ILO, "We trained 40 labour inspectors.", approved_at=DAY + timedelta(days=1))
    folder = config_path.parent
    done = pledgebot(folder, "export", "feed", "--format", "json", "-o", "feed.json")
    assert done.returncode == 0, done.stderr
    assert (folder / "feed.json").read_bytes() == client.get("/feed.json").content
    atom = pledgebot(folder, "export", "feed", "--format", "atom", "--limit", "1")
    assert atom.returncode == 0, atom.stderr
    assert atom.stdout.encode() == client.get("/feed.atom?limit=1").content


def test_cli_export_refuses_a_bad_format_or_limit(app: App, config_path: Path) -> None:
    folder = config_path.parent
    bad = pledgebot(folder, "export", "feed", "--format", "rss")
    assert bad.returncode == 1
    assert bad.stderr.strip() == "--format must be atom or json (got 'rss')"
    assert bad.stdout == ""
    too_many = pledgebot(folder, "export", "feed", "--limit", "500")
    assert too_many.returncode == 1
    assert too_many.stderr.strip() == "--limit must be between 1 and 200 (got 500)"
