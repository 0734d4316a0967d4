"""The comms team's daily path through the dashboard, in a real browser."""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import expect

from bot.core.db import Database
from bot.core.models import JourneyUpdate
from bot.delivery import outbox, pauses
from bot.delivery.messages import PlannedMessage
from tests.browser.conftest import ARTIFACTS, Dashboard, axe_violations, sign_in
from tests.conftest import SAMPLE_CSV
from tests.test_web_pledgemakers import conversation


def seed_outbox(dashboard: Dashboard) -> None:
    """Two messages queued, one of them refused by the platform (as the dispatcher records
    it), and a paused channel: written to the server's database as the other roles would."""
    db = Database(f"sqlite:///{dashboard.folder / 'pledgebot.db'}")
    with db.session() as session:
        outbox.enqueue(
            session,
            [
                PlannedMessage("b:1", "telegram", "101", "Hello 101"),
                PlannedMessage("b:2", "telegram", "102", "Hello 102"),
            ],
        )
        outbox.mark_failed(session, 1, "rejected: Telegram: Bad Request: chat not found")
    pauses.set_paused(db, outbox.CHANNEL_PAUSE + "x", True)
    db.dispose()


def test_sign_in_then_retry_a_failed_message(page: Any, dashboard: Dashboard) -> None:
    seed_outbox(dashboard)
    page.goto(f"{dashboard.url}/outbox")
    expect(page).to_have_url(re.compile(r"/login\?next=/outbox$"))
    sign_in(page, dashboard, "editor@example.org", next_="/outbox")
    expect(page.get_by_role("heading", name="Outbox")).to_be_visible()
    expect(page.get_by_role("alert")).to_contain_text("Sending on x is paused")
    row = page.locator("#message-1")
    expect(row).to_contain_text("The platform refused this message: Telegram: Bad Request")
    page.screenshot(path=str(ARTIFACTS / "outbox-failed.png"), full_page=True)
    row.get_by_role("button", name="Retry now").click()
    expect(page.get_by_role("status")).to_contain_text("Message 1 will be sent again now")
    expect(page.locator("#message-1")).to_contain_text("pending")
    page.screenshot(path=str(ARTIFACTS / "outbox-retried.png"), full_page=True)


def seed_update(dashboard: Dashboard, text: str) -> int:
    db = Database(f"sqlite:///{dashboard.folder / 'pledgebot.db'}")
    with db.session() as session:
        update = JourneyUpdate(
            pledgemaker_id="gh-min-labour",
            pillar="act",
            kind="progress",
            text=text,
            media=[],
            source="import",
            source_ref=f"browser:{text[:30]}",
            consent_to_publish=True,  # imported with the organisation's consent on file
        )
        session.add(update)
        session.flush()
        update_id = update.id
    db.dispose()
    return update_id


def seed_match(dashboard: Dashboard) -> None:
    """A challenge and another pledgemaker's solution to it, suggested as an introduction."""
    from bot.community import introductions

    db = Database(f"sqlite:///{dashboard.folder / 'pledgebot.db'}")
    with db.session() as session:
        for who, kind, text in (
            ("gh-min-labour", "challenge", "Children leave school for the cocoa harvest."),
            ("ilo", "solution", "Catch-up classes after the cocoa harvest brought them back."),
        ):
            session.add(
                JourneyUpdate(
                    pledgemaker_id=who,
                    pillar="act",
                    kind=kind,
                    text=text,
                    media=[],
                    source="import",
                    source_ref=f"browser:{kind}",
                )
            )
        session.flush()
        assert introductions.refresh(session)
    db.dispose()


def test_approve_an_update(page: Any, dashboard: Dashboard) -> None:
    update_id = seed_update(dashboard, 'We trained 40 inspectors <script>alert("x")</script>')
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    sign_in(page, dashboard, "editor@example.org", next_="/updates")
    card = page.locator(f"#update-{update_id}")
    expect(card).to_contain_text('We trained 40 inspectors <script>alert("x")</script>')
    card.get_by_text(f"Moderate #{update_id}").click()
    card.get_by_role("button", name="Approve").click()
    expect(page.get_by_role("status")).to_contain_text(f"Update {update_id} approved")
    expect(page.locator(f"#update-{update_id}")).to_have_count(0)  # gone from "pending"
    page.get_by_label("Moderation").select_option("approved")
    page.get_by_role("button", name="Show").click()
    expect(page.locator(f"#update-{update_id}")).to_contain_text("approved")
    page.screenshot(path=str(ARTIFACTS / "update-approved.png"), full_page=True)
    # Approved and consented: the next posting slot on the calendar carries it.
    page.get_by_role("link", name="Calendar").click()
    # Next week: its weekday slots are all to come, whatever day this runs (this week's may be over).
    page.get_by_role("link", name="Later").click()
    scheduled = page.locator("li.entry.planned", has_text="journeys → telegram").first
    expect(scheduled).to_be_visible()
    scheduled.locator("summary").click()
    expect(scheduled).to_contain_text('We trained 40 inspectors <script>alert("x")</script>')
    expect(scheduled).not_to_contain_text("<b>")  # Telegram's HTML shown as its reader sees it
    page.screenshot(path=str(ARTIFACTS / "calendar-scheduled.png"), full_page=True)
    assert dialogs == [], "the script in their words never ran"


def test_a_viewer_sees_no_buttons_that_change_things(page: Any, dashboard: Dashboard) -> None:
    seed_outbox(dashboard)
    sign_in(page, dashboard, "viewer@example.org", next_="/outbox")
    expect(page.locator("#message-1")).to_be_visible()
    expect(page.get_by_role("button", name="Retry now")).to_have_count(0)
    expect(page.get_by_role("button", name="Cancel")).to_have_count(0)
    expect(page.get_by_role("link", name="Users")).to_have_count(0)


def test_wrong_password_is_refused_in_words(page: Any, dashboard: Dashboard) -> None:
    page.goto(f"{dashboard.url}/login")
    page.get_by_label("Email").fill("editor@example.org")
    page.get_by_label("Password").fill("not the password at all")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("do not match an active account")


def test_every_page_has_no_serious_accessibility_violations(
    page: Any, dashboard: Dashboard
) -> None:
    seed_outbox(dashboard)
    page.goto(f"{dashboard.url}/login")
    found = {"/login": axe_violations(page)}
    sign_in(page, dashboard, "admin@example.org", next_="/outbox")
    seed_update(dashboard, "Opened two drop-in centres")
    seed_conversation(dashboard, "قمنا بتدريب ٤٠ مفتشًا")
    seed_match(dashboard)
    for path in (
        "/updates",
        "/outbox",
        "/outbox?state=failed",
        "/schedules",
        "/schedules/2026-amplify.toml",
        "/calendar",
        "/calendar?view=month",
        "/alerts",
        "/users",
        "/inbox",
        "/pledgemakers",
        "/pledgemakers/gh-min-labour",
        "/invites",
        "/matches",
        "/posts/new",
        "/reports",
        "/reports?by=country",
    ):
        page.goto(f"{dashboard.url}{path}")
        found[path] = axe_violations(page)
    problems = {
        path: [(v["id"], v["impact"], v["help"], len(v["nodes"])) for v in violations]
        for path, violations in found.items()
        if violations
    }
    assert problems == {}


def test_edit_a_schedule_with_an_error_then_fix_it(page: Any, dashboard: Dashboard) -> None:
    path = dashboard.folder / "schedules" / "2026-amplify.toml"
    before = path.read_text(encoding="utf-8")
    sign_in(page, dashboard, "editor@example.org", next_="/schedules")
    page.get_by_role("link", name="2026-amplify.toml").click()
    editor = page.get_by_label("Contents")
    editor.fill(before.replace("max_per_org_per_month = 2", "max_per_org_per_month = -1"))
    page.get_by_role("button", name="Check and save").click()
    problems = page.get_by_role("alert")
    expect(problems).to_contain_text("Not saved")
    expect(problems).to_contain_text("max_per_org_per_month")
    expect(page.locator("ol.numbered li.bad")).to_contain_text("max_per_org_per_month = -1")
    page.screenshot(path=str(ARTIFACTS / "schedule-error.png"), full_page=True)
    assert path.read_text(encoding="utf-8") == before, "an invalid save writes nothing"
    editor = page.get_by_label("Contents")
    editor.fill(
        editor.input_value().replace("max_per_org_per_month = -1", "max_per_org_per_month = 3")
    )
    page.get_by_role("button", name="Check and save").click()
    expect(page.get_by_role("status")).to_contain_text("2026-amplify.toml saved")
    assert "max_per_org_per_month = 3" in path.read_text(encoding="utf-8")
    page.screenshot(path=str(ARTIFACTS / "schedule-fixed.png"), full_page=True)


def seed_conversation(dashboard: Dashboard, text: str) -> int:
    db = Database(f"sqlite:///{dashboard.folder / 'pledgebot.db'}")
    reply_id = conversation(db, text=text)
    db.dispose()
    return reply_id


def test_import_pledgemakers_fixing_a_bad_row_then_reply_to_one(
    page: Any, dashboard: Dashboard
) -> None:
    header = SAMPLE_CSV.read_text(encoding="utf-8").splitlines()[0]
    row = "tz-new-ngo,New NGO,TZ,africa,ngo,en,Africa/Dar_es_Salaam,Title,Text,{date},,"
    sign_in(page, dashboard, "editor@example.org", next_="/pledgemakers")
    upload = page.get_by_label("Import or update from CSV")
    bad = f"{header}\n{row.format(date='2021-02-30')}\n".encode()
    upload.set_input_files(files=[{"name": "new.csv", "mimeType": "text/csv", "buffer": bad}])
    page.get_by_role("button", name="Import", exact=True).click()
    expect(page.get_by_role("alert")).to_contain_text("new.csv:2: pledge_date")
    expect(page.get_by_role("alert")).to_contain_text("Nothing was imported.")
    page.screenshot(path=str(ARTIFACTS / "import-refused.png"), full_page=True)
    good = f"{header}\n{row.format(date='2021-02-28')}\n".encode()
    upload = page.get_by_label("Import or update from CSV")
    upload.set_input_files(files=[{"name": "new.csv", "mimeType": "text/csv", "buffer": good}])
    page.get_by_role("button", name="Import", exact=True).click()
    expect(page.get_by_role("status")).to_contain_text("1 new, 0 updated")
    expect(page.get_by_role("link", name="tz-new-ngo")).to_be_visible()

    seed_conversation(dashboard, "We trained 40 inspectors in Kumasi.")
    page.goto(f"{dashboard.url}/pledgemakers/gh-min-labour")
    expect(page.locator("ol.conversation")).to_contain_text("We trained 40 inspectors in Kumasi.")
    page.get_by_label("Your reply").fill("Thank you, that is great news!")
    page.get_by_role("button", name="Send reply").click()
    expect(page.get_by_role("status")).to_contain_text("Reply queued")
    expect(page.locator("ol.conversation li.ours").last).to_contain_text(
        "Thank you, that is great news!"
    )
    page.screenshot(path=str(ARTIFACTS / "pledgemaker-reply.png"), full_page=True)
