"""Editing schedule files in the dashboard: checked like `schedules check`, written only if valid."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from bot.core.staff_models import AuditEntry
from bot.service.app import App
from tests.test_web_auth import signed_in

FILE = "2026-amplify.toml"


@pytest.fixture
def editor(app: App) -> TestClient:
    return signed_in(app, "editor@example.org", "editor")


def form_of(client: TestClient, name: str = FILE) -> dict[str, str]:
    page = client.get(f"/schedules/{name}").text
    fields = dict(re.findall(r'name="(csrf|base)" value="([^"]+)"', page))
    assert set(fields) == {"csrf", "base"}
    return fields


def on_disk(app: App, name: str = FILE) -> str:
    return (app.config.path("schedules") / name).read_text(encoding="utf-8")


@pytest.mark.parametrize("app", ["sqlite"], indirect=True)
def test_an_invalid_save_is_shown_at_its_line_and_not_written(editor: TestClient, app: App) -> None:
    before = on_disk(app)
    broken = before.replace('cron = "0 11 * * wed"', 'cron = "0 11 * * someday"')
    line = broken.splitlines().index('cron = "0 11 * * someday"') + 1
    response = editor.post(f"/schedules/{FILE}", data={**form_of(editor), "text": broken})
    assert response.status_code == 400
    assert f'<a href="#line-{line}">line {line}</a>' in response.text
    assert "cron" in response.text and "Not saved" in response.text
    assert f'<li id="line-{line}" class="bad">' in response.text
    assert on_disk(app) == before, "nothing written"


@pytest.mark.parametrize("app", ["sqlite"], indirect=True)
def test_a_duplicate_id_in_another_file_is_caught(editor: TestClient, app: App) -> None:
    other = next(p.name for p in app.config.path("schedules").glob("*.toml") if p.name != FILE)
    taken = re.search(r'^id = "([^"]+)"', on_disk(app, other), re.M)
    assert taken is not None
    text = on_disk(app).replace('id = "journeys"', f'id = "{taken.group(1)}"', 1)
    response = editor.post(f"/schedules/{FILE}", data={**form_of(editor), "text": text})
    assert response.status_code == 400 and "duplicate campaign id" in response.text


@pytest.mark.parametrize("app", ["sqlite"], indirect=True)
def test_a_valid_save_is_written_and_its_diff_recorded(editor: TestClient, app: App) -> None:
    text = on_disk(app).replace("max_per_org_per_month = 2", "max_per_org_per_month = 3")
    response = editor.post(f"/schedules/{FILE}", data={**form_of(editor), "text": text})
    assert response.status_code == 200 and f"{FILE} saved" in response.text
    assert on_disk(app) == text
    assert app.schedules().get("journeys").spec.max_per_org_per_month == 3  # type: ignore[union-attr]
    with app.db.session() as session:
        entry = session.scalars(
            select(AuditEntry).where(AuditEntry.action == "schedule.save")
        ).one()
    assert entry.actor == "editor@example.org" and entry.target == FILE
    assert "-max_per_org_per_month = 2\n+max_per_org_per_month = 3" in entry.detail


@pytest.mark.parametrize("app", ["sqlite"], indirect=True)
def test_a_save_from_a_stale_copy_is_refused(editor: TestClient, app: App) -> None:
    opened = form_of(editor)
    path: Path = app.config.path("schedules") / FILE
    path.write_text(on_disk(app) + "\n# someone else's edit\n", encoding="utf-8")
    mine = on_disk(app).replace("# someone else's edit", "")
    response = editor.post(f"/schedules/{FILE}", data={**opened, "text": mine})
    assert response.status_code == 409 and "Someone saved this file" in response.text
    assert "# someone else's edit" in on_disk(app)


@pytest.mark.parametrize("app", ["sqlite"], indirect=True)
def test_only_schedule_files_can_be_opened(editor: TestClient) -> None:
    for name in ("..%2Fconfig.toml", "config.toml", "README.md", ".hidden.toml"):
        assert editor.get(f"/schedules/{name}").status_code == 404, name
