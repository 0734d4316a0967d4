"""Moderating journey updates in the dashboard (TestClient; the browser path is in tests/browser)."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from bot.core.models import JourneyUpdate
from bot.core.staff_models import AuditEntry
from bot.service.app import App
from tests.test_web_auth import signed_in

HOSTILE = '<script>alert(1)</script> "><img src=x onerror=alert(2)> قمنا بتدريب ٤٠ مفتشًا'


def add_update(app: App, text: str, *, media: list[dict[str, str]] | None = None) -> int:
    with app.db.session() as session:
        update = JourneyUpdate(
            pledgemaker_id="gh-min-labour",
            pillar="act",
            kind="progress",
            text=text,
            media=media or [],
            source="import",
            source_ref=f"test:{text[:20]}:{len(media or [])}",
        )
        session.add(update)
        session.flush()
        return update.id


@pytest.fixture
def editor(app: App) -> TestClient:
    return signed_in(app, "editor@example.org", "editor")


def csrf(client: TestClient) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', client.get("/updates").text)
    assert found is not None
    return found.group(1)


def states(app: App) -> dict[int, str]:
    with app.db.session() as session:
        return {u.id: u.moderation for u in session.scalars(select(JourneyUpdate))}


def test_hostile_words_are_shown_inert_and_intact_beside_a_staff_edit(
    editor: TestClient, app: App
) -> None:
    update_id = add_update(app, HOSTILE)
    token = csrf(editor)
    edited = editor.post(
        f"/updates/{update_id}/edit", data={"csrf": token, "text": "We trained 40 inspectors."}
    )
    assert edited.status_code == 200 and f"Update {update_id} edited" in edited.text
    page = editor.get("/updates").text
    assert "<script>alert(1)</script>" not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "قمنا بتدريب ٤٠ مفتشًا" in page
    assert "Their words" in page and "We trained 40 inspectors." in page


def test_approve_reject_and_the_audit_trail(editor: TestClient, app: App) -> None:
    first, second = add_update(app, "first words"), add_update(app, "second words")
    token = csrf(editor)
    assert "approved" in editor.post(f"/updates/{first}/approve", data={"csrf": token}).text
    no_reason = editor.post(f"/updates/{second}/reject", data={"csrf": token, "reason": " "})
    assert no_reason.status_code == 400 and "A reason is needed" in no_reason.text
    editor.post(f"/updates/{second}/reject", data={"csrf": token, "reason": "names a child"})
    assert states(app) == {first: "approved", second: "rejected"}
    with app.db.session() as session:
        trail = session.execute(
            select(AuditEntry.actor, AuditEntry.action, AuditEntry.detail).order_by(AuditEntry.id)
        ).all()
    assert [tuple(t) for t in trail[-2:]] == [
        ("editor@example.org", "update.approve", ""),
        ("editor@example.org", "update.reject", "names a child"),
    ]


def test_a_bulk_approval_is_all_or_nothing(editor: TestClient, app: App) -> None:
    ready = add_update(app, "ready")
    photo = add_update(app, "a photo", media=[{"type": "photo", "path": "x.jpg"}])
    token = csrf(editor)
    refused = editor.post(
        "/updates/bulk", data={"csrf": token, "action": "approve", "ids": [str(ready), str(photo)]}
    )
    assert refused.status_code == 400
    assert f"update {photo} has 1 image(s) without alt text: add it first." in refused.text
    assert states(app) == {ready: "pending", photo: "pending"}, "none approved"
    editor.post(f"/updates/{photo}/alt-text", data={"csrf": token, "alt_text": "A classroom"})
    done = editor.post(
        "/updates/bulk", data={"csrf": token, "action": "approve", "ids": [str(ready), str(photo)]}
    )
    assert "2 update(s) approved." in done.text
    assert states(app) == {ready: "approved", photo: "approved"}
    nothing = editor.post("/updates/bulk", data={"csrf": token, "action": "approve"})
    assert nothing.status_code == 400 and "Tick at least one update" in nothing.text


def test_a_long_queue_is_shown_a_page_at_a_time_oldest_first(editor: TestClient, app: App) -> None:
    ids = [add_update(app, f"update number {n:03d}") for n in range(120)]
    first = editor.get("/updates").text
    assert "120 update(s), oldest first, 50 on this page." in first
    assert f'id="update-{ids[0]}"' in first and f'id="update-{ids[50]}"' not in first
    following = re.search(r'href="([^"]+page=2)"', first)
    assert following is not None
    second = editor.get(following.group(1).replace("&amp;", "&")).text
    assert f'id="update-{ids[50]}"' in second and f'id="update-{ids[49]}"' not in second
    assert "Previous page" in second and "Next page" in second
    last = editor.get("/updates", params={"page": "3"}).text
    assert f'id="update-{ids[119]}"' in last and "Next page" not in last
    assert "No updates here" in editor.get("/updates", params={"pillar": "inspire"}).text


def test_an_agreement_given_by_phone_is_recorded_with_who_when_how(
    editor: TestClient, app: App
) -> None:
    from datetime import date

    from bot.core.models import Consent

    update_id = add_update(app, "We opened two schools.")
    token = csrf(editor)
    edited = editor.post(
        f"/updates/{update_id}/edit", data={"csrf": token, "text": "We opened 2 schools."}
    )
    assert "has no chat" in edited.text and "Record their agreement" in edited.text
    missing = editor.post(
        f"/updates/{update_id}/agreement",
        data={"csrf": token, "agreed_by": "Kofi, head", "agreed_on": "", "how": "call"},
    )
    assert missing.status_code == 400 and "Give the day they agreed" in missing.text
    done = editor.post(
        f"/updates/{update_id}/agreement",
        data={"csrf": token, "agreed_by": "Kofi, head", "agreed_on": "2021-06-01", "how": "call"},
    )
    assert done.status_code == 200 and "agreement to update" in done.text
    with app.db.session() as session:
        update = session.get(JourneyUpdate, update_id)
        record = session.scalars(select(Consent)).one()
        action = session.scalars(select(AuditEntry.action).order_by(AuditEntry.id.desc())).first()
    assert update.consent_to_publish is True
    assert (record.text_version, record.agreed_on, record.recorded_by) == (
        "We opened 2 schools.",
        date(2021, 6, 1),
        "editor@example.org",
    )
    assert action == "update.agreement"
