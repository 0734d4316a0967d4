"""The pledgemakers pages: list and filters, one pledgemaker's story, a staff reply, CSV import
and export, invitation links in bulk, their data as JSON, and erasure that keeps the counts.

TestClient against the real app (both database backends); the staff reply is also sent end to
end through python-telegram-bot to the sandbox, quoting the pledgemaker's message.
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from starlette.testclient import TestClient

from bot.core.db import Database
from bot.core.models import (
    Contact,
    InboundEvent,
    InviteToken,
    JourneyUpdate,
    OutboxMessage,
    Pledgemaker,
    Prompt,
    Reply,
    utcnow,
)
from bot.core.staff_models import AuditEntry
from bot.delivery import outbox
from bot.delivery.messages import PlannedMessage
from bot.service.app import App
from tests.auxil.cli import pledgebot
from tests.auxil.live import Live, eventually
from tests.conftest import SAMPLE_CSV
from tests.test_web_auth import signed_in

GH = "gh-min-labour"
HOSTILE = '<script>alert(1)</script> "><img src=x onerror=alert(2)> قمنا بتدريب ٤٠ مفتشًا'


def csrf(client: TestClient, path: str = "/pledgemakers") -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', client.get(path).text)
    assert found is not None
    return found.group(1)


def nonce(client: TestClient, pledgemaker_id: str = GH) -> str:
    found = re.search(
        r'name="nonce" value="([^"]+)"', client.get(f"/pledgemakers/{pledgemaker_id}").text
    )
    assert found is not None
    return found.group(1)


def conversation(
    db: Database, *, chat: str = "7001", text: str = HOSTILE, media: Any = None
) -> int:
    """A bound chat, a prompt sent to it and their answer; returns the reply's id."""
    with db.session() as session:
        contact = Contact(pledgemaker_id=GH, channel="telegram", address=chat)
        session.add(contact)
        session.flush()
        outbox.enqueue(
            session,
            [
                PlannedMessage(
                    f"prompt:{chat}",
                    "telegram",
                    chat,
                    "What did you do on Act this quarter?",
                    pledgemaker_id=GH,
                    contact_id=contact.id,
                    pillar="act",
                )
            ],
            campaign_id="act-checkin",
        )
        sent = session.scalar(select(OutboxMessage).where(OutboxMessage.recipient == chat))
        assert sent is not None
        sent.state, sent.sent_at, sent.external_id = "sent", utcnow(), "11"
        prompt = session.scalar(select(Prompt).where(Prompt.outbox_id == sent.id))
        assert prompt is not None
        prompt.state = "answered"
        event = InboundEvent(
            channel="telegram",
            event_key=f"msg:{chat}:12",
            kind="message",
            chat_id=chat,
            payload={"message": {"text": text, "chat": {"id": int(chat)}}},
            processed_at=utcnow(),
        )
        session.add(event)
        session.flush()
        update = JourneyUpdate(
            pledgemaker_id=GH,
            prompt_id=prompt.id,
            contact_id=contact.id,
            pillar="act",
            kind="progress",
            text=text,
            edited_text="We trained 40 inspectors.",
            media=media or [],
            source="reply",
            source_ref=f"reply:{chat}",
            moderation="approved",
            consent_to_publish=False,
        )
        session.add(update)
        session.flush()
        reply = Reply(
            inbound_event_id=event.id,
            channel="telegram",
            chat_id=chat,
            external_id="12",
            contact_id=contact.id,
            pledgemaker_id=GH,
            prompt_id=prompt.id,
            journey_update_id=update.id,
            text=text,
            media=media or [],
        )
        session.add(reply)
        session.flush()
        return reply.id


@pytest.fixture
def editor(app: App) -> TestClient:
    return signed_in(app, "editor@example.org", "editor")


@pytest.fixture
def admin(app: App) -> TestClient:
    return signed_in(app, "admin@example.org", "admin")


# -- list and detail -------------------------------------------------------------------------------
def test_the_list_finds_by_name_country_and_contact_status(editor: TestClient, app: App) -> None:
    conversation(app.db)
    everyone = editor.get("/pledgemakers").text
    assert "40 pledgemaker(s)" in everyone and "Ministry of Employment" in everyone
    found = editor.get("/pledgemakers", params={"q": "labour relations"}).text
    assert "1 pledgemaker(s)" in found and f'href="/pledgemakers/{GH}"' in found
    assert "telegram: active" in found
    ghana = editor.get("/pledgemakers", params={"country": "gh"}).text
    assert "Ministry of Employment" in ghana and "International Labour Organization" not in ghana
    bound = editor.get("/pledgemakers", params={"contact": "active"}).text
    assert "1 pledgemaker(s)" in bound
    unbound = editor.get("/pledgemakers", params={"contact": "none"}).text
    assert "39 pledgemaker(s)" in unbound and "Ministry of Employment" not in unbound


def test_the_list_pages_through_many_pledgemakers(editor: TestClient, app: App) -> None:
    with app.db.session() as session:
        gh = session.get(Pledgemaker, GH)
        assert gh is not None
        for n in range(120):
            session.add(
                Pledgemaker(
                    **{
                        c.key: getattr(gh, c.key)
                        for c in Pledgemaker.__table__.columns
                        if c.key not in ("id", "created_at", "updated_at")
                    }
                    | {"id": f"zz-{n:03d}"}
                )
            )
    first = editor.get("/pledgemakers").text
    more = re.search(r'href="(/pledgemakers\?after=[^"]+)"', first)
    assert more is not None and "zz-059" in first and "zz-060" not in first
    second = editor.get(more.group(1).replace("&amp;", "&")).text
    assert (
        "zz-060" in second
        and "zz-059" not in second
        and "zz-119" in second
        and "More pledgemakers" not in second
    )


def test_the_detail_shows_pledge_contacts_conversation_and_updates_inertly(
    editor: TestClient, app: App
) -> None:
    conversation(app.db)
    page = editor.get(f"/pledgemakers/{GH}").text
    assert "Extend child labour monitoring to every cocoa-growing district" in page
    assert "7001" in page and "active" in page
    assert "What did you do on Act this quarter?" in page
    assert "<script>alert(1)</script>" not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "قمنا بتدريب ٤٠ مفتشًا" in page, "right-to-left text intact"
    assert "We trained 40 inspectors." in page
    assert editor.get("/pledgemakers/no-such-one").status_code == 404


# -- a staff reply ---------------------------------------------------------------------------------
def test_a_reply_is_queued_once_on_their_channel_quoting_their_message(
    editor: TestClient, app: App
) -> None:
    reply_id = conversation(app.db)
    token, once = csrf(editor), nonce(editor)
    form = {"csrf": token, "nonce": once, "reply_id": str(reply_id), "text": "Thank you! <b>"}
    first = editor.post(f"/pledgemakers/{GH}/reply", data=form)
    again = editor.post(f"/pledgemakers/{GH}/reply", data=form)  # a double click
    assert first.status_code == 200 and "Reply queued" in first.text
    assert "already queued" in again.text
    with app.db.session() as session:
        queued = session.scalars(
            select(OutboxMessage).where(OutboxMessage.idempotency_key.startswith("staff-reply:"))
        ).all()
        assert len(queued) == 1
        message = queued[0]
        assert (message.channel, message.recipient, message.reply_to) == ("telegram", "7001", "12")
        assert message.text == "Thank you! <b>" and message.parse_mode is None
        assert message.state == "pending" and message.contact_id is not None
        assert session.scalar(select(AuditEntry.action).where(AuditEntry.target == GH)) == (
            "pledgemaker.reply"
        )
    assert "Thank you! &lt;b&gt;" in editor.get(f"/pledgemakers/{GH}").text


def test_a_reply_to_someone_who_opted_out_or_an_empty_one_is_refused(
    editor: TestClient, app: App
) -> None:
    reply_id = conversation(app.db)
    token = csrf(editor)
    empty = editor.post(
        f"/pledgemakers/{GH}/reply",
        data={"csrf": token, "nonce": "n1", "reply_id": str(reply_id), "text": "  "},
    )
    assert empty.status_code == 400 and "the reply is empty" in empty.text
    with app.db.session() as session:
        contact = session.scalar(select(Contact).where(Contact.address == "7001"))
        assert contact is not None
        contact.status = "stopped"
    stopped = editor.post(
        f"/pledgemakers/{GH}/reply",
        data={"csrf": token, "nonce": "n2", "reply_id": str(reply_id), "text": "Hello"},
    )
    assert stopped.status_code == 400 and "opted out (STOP)" in stopped.text
    too_long = editor.post(
        f"/pledgemakers/{GH}/reply",
        data={"csrf": token, "nonce": "n3", "reply_id": str(reply_id), "text": "x" * 4097},
    )
    assert too_long.status_code == 400
    with app.db.session() as session:
        assert not session.scalar(
            select(func.count()).where(OutboxMessage.idempotency_key.startswith("staff-reply:"))
        )


async def test_a_staff_reply_reaches_their_chat_as_a_reply_to_their_message(
    live: Live,
) -> None:
    await live.bind(GH, 7101)
    await live.fire(to=GH)
    theirs = live.sandbox.push_message(7101, "We trained 40 labour inspectors in Kumasi.")
    await live.settle()
    reply_id = live.scalar(select(Reply.id).where(Reply.chat_id == "7101"))
    client = signed_in(live.app, "editor@example.org", "editor")
    token = csrf(client)
    response = client.post(
        f"/pledgemakers/{GH}/reply",
        data={"csrf": token, "nonce": "e2e", "reply_id": str(reply_id), "text": "Well done!"},
    )
    assert response.status_code == 200
    await eventually(
        lambda: any(m["text"] == "Well done!" for m in live.sandbox.sent_messages(7101)),
        "the staff reply to arrive",
    )
    sent = next(m for m in live.sandbox.sent_messages(7101) if m["text"] == "Well done!")
    assert sent["reply_to_message_id"] == theirs


# -- CSV import and export -------------------------------------------------------------------------
def test_export_then_import_changes_nothing_and_an_edit_is_applied(
    editor: TestClient, app: App
) -> None:
    exported = editor.get("/pledgemakers.csv")
    assert exported.headers["content-type"].startswith("text/csv")
    assert "attachment" in exported.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert len(rows) == 40 and rows[0]["id"] == "ar-rural-workers"
    same = editor.post(
        "/pledgemakers/import",
        data={"csrf": csrf(editor)},
        files={"file": ("export.csv", exported.content, "text/csv")},
    )
    assert "0 new, 0 updated" in same.text
    edited = exported.text.replace("Ministry of Employment and Labour Relations, Ghana", "MELR")
    done = editor.post(
        "/pledgemakers/import",
        data={"csrf": csrf(editor)},
        files={"file": ("export.csv", edited.encode(), "text/csv")},
    )
    assert "0 new, 1 updated" in done.text
    with app.db.session() as session:
        assert session.get(Pledgemaker, GH).name == "MELR"  # type: ignore[union-attr]


def test_an_import_with_bad_rows_lists_each_and_writes_nothing(
    editor: TestClient, app: App
) -> None:
    good = SAMPLE_CSV.read_text(encoding="utf-8").splitlines()
    bad = "\n".join(
        [
            good[0],
            good[1].replace(",CH,", ",XX,"),
            "new-one,New Org,GH,africa,ngo,en,Africa/Accra,Title,Text,2021-13-01,,",
            "newer,Newer Org,GH,africa,ngo,en,Africa/Accra,Title,Text,2021-06-01,,",
        ]
    )
    response = editor.post(
        "/pledgemakers/import",
        data={"csrf": csrf(editor)},
        files={"file": ("pledges.csv", bad.encode(), "text/csv")},
    )
    assert response.status_code == 400
    assert "pledges.csv:2: country" in response.text and "XX" in response.text
    assert "pledges.csv:3: pledge_date" in response.text
    assert "Nothing was imported." in response.text
    with app.db.session() as session:
        assert session.get(Pledgemaker, "newer") is None
    missing = editor.post("/pledgemakers/import", data={"csrf": csrf(editor)})
    assert missing.status_code == 400 and "Choose a CSV file" in missing.text


# -- invitations -----------------------------------------------------------------------------------
def test_invitation_links_in_bulk_listed_and_downloaded_for_editors_only(
    editor: TestClient, app: App
) -> None:
    conversation(app.db)  # GH is bound: "everyone not bound" leaves GH out
    app.config.channels["telegram"]["bot_username"] = "pledge_test_bot"
    response = editor.post(
        "/invites",
        data={"csrf": csrf(editor), "channel": "telegram", "days": "14", "uninvited": "1"},
    )
    assert response.status_code == 200 and "39 invitation link(s) made" in response.text
    links = re.findall(r"https://t\.me/pledge_test_bot\?start=[A-Za-z0-9_-]+", response.text)
    assert len(set(links)) == 39
    with app.db.session() as session:
        assert session.scalar(select(func.count()).select_from(InviteToken)) == 39
        assert not session.scalar(select(func.count()).where(InviteToken.pledgemaker_id == GH))
    again = editor.post(
        "/invites", data={"csrf": csrf(editor), "channel": "telegram", "uninvited": "1"}
    )
    assert again.status_code == 400 and "tick the pledgemakers" in again.text
    table = list(csv.DictReader(io.StringIO(editor.get("/invites.csv").text)))
    assert len(table) == 39 and {row["link"] for row in table} == set(links)
    viewer = signed_in(app, "viewer@example.org", "viewer")
    assert viewer.get("/invites").status_code == 403
    assert viewer.get("/invites.csv").status_code == 403
    bad = editor.post(
        "/invites", data={"csrf": csrf(editor), "channel": "x", "ids": GH, "days": "14"}
    )
    assert bad.status_code == 400 and "no chat channel &#39;x&#39;" in bad.text


# -- their data: export and erasure ----------------------------------------------------------------
def test_their_data_as_json_holds_what_we_keep_about_them(editor: TestClient, app: App) -> None:
    conversation(app.db)
    response = editor.get(f"/pledgemakers/{GH}/data.json")
    assert "attachment" in response.headers["content-disposition"]
    data = json.loads(response.text)
    assert data["pledgemaker"]["id"] == GH
    assert data["contacts"][0]["address"] == "7001"
    assert data["replies"][0]["text"] == HOSTILE
    assert data["journey_updates"][0]["edited_text"] == "We trained 40 inspectors."
    assert data["messages_sent_to_them"][0]["text"] == "What did you do on Act this quarter?"
    with app.db.session() as session:
        assert (
            session.scalar(
                select(AuditEntry.actor).where(AuditEntry.action == "pledgemaker.export")
            )
            == "editor@example.org"
        )


def counts(app: App) -> dict[str, int]:
    with app.db.session() as session:
        return {
            model.__name__: session.scalar(select(func.count()).select_from(model)) or 0
            for model in (Prompt, Reply, JourneyUpdate, OutboxMessage, Pledgemaker)
        }


def test_erasure_blanks_their_words_keeps_the_counts_and_blocks_a_reimport(
    admin: TestClient, editor: TestClient, app: App, tmp_path: Path
) -> None:
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(b"\xff\xd8\xff jpeg")
    conversation(app.db, media=[{"type": "photo", "path": str(photo), "alt_text": "Inspectors"}])
    with app.db.session() as session:  # a message still waiting to go to them
        contact_id = session.scalar(select(Contact.id).where(Contact.address == "7001"))
        outbox.enqueue(
            session,
            [
                PlannedMessage(
                    "later", "telegram", "7001", "Hi", pledgemaker_id=GH, contact_id=contact_id
                )
            ],
        )
    before = counts(app)
    refused = editor.post(f"/pledgemakers/{GH}/erase", data={"csrf": csrf(editor), "confirm": GH})
    assert refused.status_code == 403, "only an admin erases"
    unconfirmed = admin.post(
        f"/pledgemakers/{GH}/erase", data={"csrf": csrf(admin), "confirm": "yes"}
    )
    assert unconfirmed.status_code == 400 and "Nothing was erased" in unconfirmed.text
    assert counts(app) == before

    admin.get(f"/pledgemakers/{GH}/data.json")  # an audit entry naming them
    done = admin.post(f"/pledgemakers/{GH}/erase", data={"csrf": csrf(admin), "confirm": GH})
    assert done.status_code == 200 and f"Erased {GH}" in done.text
    assert counts(app) == before, "anonymous counts stay"
    assert not photo.exists(), "the files they sent are deleted"
    with app.db.session() as session:
        assert session.get(Pledgemaker, GH) is None
        tombstone = session.scalar(select(Pledgemaker).where(Pledgemaker.erased_at.is_not(None)))
        assert tombstone is not None and tombstone.country == "GH"
        assert tombstone.name == "Erased pledgemaker" and tombstone.pledge_text == ""
        targets = set(session.scalars(select(AuditEntry.target)))
        assert GH not in targets and tombstone.id in targets, "audit kept, under the new id"
        for reply in session.scalars(select(Reply)):
            assert (reply.text, reply.chat_id, reply.media) == ("", "erased", [])
        for update in session.scalars(select(JourneyUpdate)):
            assert (update.text, update.edited_text, update.pledgemaker_id) == (
                "",
                None,
                tombstone.id,
            )
        for event in session.scalars(select(InboundEvent)):
            assert event.payload == {} and "7001" not in event.event_key
        contact = session.scalar(select(Contact))
        assert contact is not None and contact.status == "gone" and "7001" not in contact.address
        texts = {
            m.idempotency_key: (m.text, m.state) for m in session.scalars(select(OutboxMessage))
        }
        assert texts["later"] == ("", "cancelled") and texts["prompt:7001"] == ("", "sent")
        answered = session.scalar(
            select(func.count()).select_from(Prompt).where(Prompt.state == "answered")
        )
        assert answered == 1
    listing = admin.get("/pledgemakers").text
    assert "39 pledgemaker(s)" in listing and "Erased pledgemaker" not in listing
    assert admin.get(f"/pledgemakers/{GH}").status_code == 404
    again = admin.post(
        "/pledgemakers/import",
        data={"csrf": csrf(admin)},
        files={"file": ("sample.csv", SAMPLE_CSV.read_bytes(), "text/csv")},
    )
    assert again.status_code == 400 and f"id &#39;{GH}&#39;: erased on request" in again.text


def test_without_the_bots_name_the_invitations_say_how_to_fix_it(
    editor: TestClient, app: App
) -> None:
    """The sandbox is not running here: the bot's name cannot be learnt from the platform."""
    editor.post("/invites", data={"csrf": csrf(editor), "channel": "telegram", "ids": GH})
    page = editor.get("/invites").text
    assert "Cannot make telegram links" in page and "channels.telegram.bot_username" in page
    assert "(link unavailable)" in page and "Ministry of Employment" in page


# -- the same from the command line ---------------------------------------------------------------
def test_the_cli_exports_their_data_and_erases_only_when_confirmed(
    app: App, config_path: Path
) -> None:
    conversation(app.db)
    folder = config_path.parent
    exported = pledgebot(folder, "pledgemakers", "export", GH, token="1:T")
    assert exported.returncode == 0, exported.stderr
    assert json.loads(exported.stdout)["replies"][0]["text"] == HOSTILE
    unknown = pledgebot(folder, "pledgemakers", "export", "nobody", token="1:T")
    assert (unknown.returncode, unknown.stderr) == (1, "no pledgemaker with id 'nobody'\n")
    unasked = pledgebot(folder, "pledgemakers", "erase", GH, token="1:T")
    assert unasked.returncode == 1 and "add --yes" in unasked.stderr
    before = counts(app)
    erased = pledgebot(folder, "pledgemakers", "erase", GH, "--yes", token="1:T")
    assert erased.returncode == 0, erased.stderr
    assert f"erased {GH}: 1 replies and 1 updates blanked" in erased.stdout
    assert counts(app) == before
    table = pledgebot(folder, "export", "pledgemakers", token="1:T")
    assert table.returncode == 0 and GH not in table.stdout
    assert len(list(csv.DictReader(io.StringIO(table.stdout)))) == 39


# -- the inbox -------------------------------------------------------------------------------------
def test_the_inbox_lists_their_messages_inertly_with_what_they_became(
    editor: TestClient, app: App
) -> None:
    reply_id = conversation(app.db)
    conversation(app.db, chat="7002", text="thanks")
    with app.db.session() as session:  # the second is a bare "thanks", not an update
        thanks = session.scalar(select(Reply).where(Reply.chat_id == "7002"))
        assert thanks is not None
        thanks.journey_update_id, thanks.acknowledgement, thanks.prompt_id = None, True, None
    page = editor.get("/inbox").text
    assert "<script>alert(1)</script>" not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "قمنا بتدريب ٤٠ مفتشًا" in page
    assert f'href="/pledgemakers/{GH}#conversation"' in page and "approved" in page
    updates = editor.get("/inbox", params={"show": "updates"}).text
    assert f'id="reply-{reply_id}"' in updates and "7002" not in updates
    only_thanks = editor.get("/inbox", params={"show": "unlinked"}).text
    assert f'id="reply-{reply_id}"' not in only_thanks and "thanks" in only_thanks
    assert f'id="reply-{reply_id}"' not in editor.get("/inbox", params={"pillar": "inspire"}).text


def test_erasure_cancels_their_queued_posts_and_alerts_staff_to_live_ones(
    admin: TestClient, app: App
) -> None:
    with app.db.session() as session:
        update = JourneyUpdate(
            pledgemaker_id=GH,
            pillar="act",
            kind="progress",
            text="We trained 40 inspectors.",
            source="import",
            source_ref="published",
            moderation="approved",
            consent_to_publish=True,
        )
        session.add(update)
        session.flush()
        post = {"journey_update_id": update.id, "pillar": "act"}
        outbox.enqueue(
            session,
            [
                PlannedMessage("p:x", "x", "timeline", "On X: 40 inspectors", GH, post=post),
                PlannedMessage("p:tg", "telegram", "@news", "40 inspectors", GH, post=post),
            ],
            campaign_id="journeys",
        )
        on_x = session.scalar(select(OutboxMessage).where(OutboxMessage.idempotency_key == "p:x"))
        assert on_x is not None
        on_x.state, on_x.external_id, on_x.sent_at = "sent", "1790", utcnow()
    done = admin.post(f"/pledgemakers/{GH}/erase", data={"csrf": csrf(admin), "confirm": GH})
    assert "Still online, remove by hand (see Alerts): x post 1790" in done.text
    with app.db.session() as session:
        states = {
            m.idempotency_key: (m.state, m.text) for m in session.scalars(select(OutboxMessage))
        }
        assert states == {"p:x": ("sent", ""), "p:tg": ("cancelled", "")}
    alerts = admin.get("/alerts").text
    assert "was erased on request" in alerts and "1790" in alerts
