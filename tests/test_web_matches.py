"""The Matches page: suggestions with their reason, a fresh look on request, accept (both sides
asked, audited) and decline (remembered), what a viewer sees. TestClient, both backends."""

from __future__ import annotations

import re

from sqlalchemy import select
from starlette.testclient import TestClient

from bot.core.models import MatchSuggestion, OutboxMessage
from bot.core.staff_models import AuditEntry
from bot.service.app import App
from tests.test_introductions import CHALLENGE, GH, ILO, SOLUTION, bind, update
from tests.test_web_auth import signed_in


def csrf(client: TestClient) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', client.get("/matches").text)
    assert found is not None
    return found.group(1)


def test_an_editor_finds_accepts_and_the_pair_is_asked(app: App) -> None:
    update(app, GH, "challenge", CHALLENGE)
    update(app, ILO, "solution", SOLUTION)
    bind(app, GH, "telegram", "501")
    bind(app, ILO, "telegram", "502")
    editor = signed_in(app, "editor@example.org", "editor")
    assert "Nothing here." in editor.get("/matches").text, "opening the page changes nothing"
    token = csrf(editor)
    found = editor.post("/matches/refresh", data={"csrf": token}, follow_redirects=True)
    assert "1 new suggestion(s)." in found.text
    assert "both on cocoa, agriculture and schooling" in found.text
    with app.db.session() as session:
        number = session.scalar(select(MatchSuggestion.id))
    done = editor.post(f"/matches/{number}/accept", data={"csrf": token}, follow_redirects=True)
    assert f"Asked {GH} and {ILO}" in done.text
    with app.db.session() as session:
        asked = sorted(session.scalars(select(OutboxMessage.recipient)))
        assert asked == ["501", "502"]
        audit = session.scalar(select(AuditEntry).where(AuditEntry.action == "match.accept"))
        assert audit is not None and audit.actor == "editor@example.org"
    asking = editor.get("/matches?state=asking").text
    assert "no answer yet" in asking and "/accept" not in asking
    again = editor.post(f"/matches/{number}/decline", data={"csrf": token}, follow_redirects=True)
    assert "Not done: suggestion" in again.text and "is already asking" in again.text


def test_a_viewer_sees_the_suggestions_without_the_buttons(app: App) -> None:
    update(app, GH, "challenge", CHALLENGE)
    update(app, ILO, "solution", SOLUTION)
    editor = signed_in(app, "editor@example.org", "editor")
    editor.post("/matches/refresh", data={"csrf": csrf(editor)})
    viewer = signed_in(app, "viewer@example.org", "viewer")
    text = viewer.get("/matches").text
    assert "reported a solution" in text
    assert "/accept" not in text and "Look for new suggestions" not in text
