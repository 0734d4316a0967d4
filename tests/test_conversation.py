"""The conversation, end to end: real python-telegram-bot over HTTP against the sandbox."""

from __future__ import annotations

from sqlalchemy import select

from bot.community import consent
from bot.core.models import (
    Consent,
    Contact,
    InboundEvent,
    JourneyUpdate,
    OutboxMessage,
    Prompt,
    Reply,
)
from tests.auxil.live import Live, eventually

GH = "gh-min-labour"  # an English-speaking pledgemaker in the sample data


async def test_invite_prompt_button_answer_stored_as_update(live: Live) -> None:
    await live.bind(GH, 501)
    confirmation = live.sandbox.sent_messages(501)
    assert len(confirmation) == 1 and confirmation[0]["reply_markup"] is None
    assert "connected to your pledge" in confirmation[0]["text"]

    fired = await live.fire("act-checkin", to=GH)
    assert fired.enqueued == 1
    prompt = live.last_prompt(501)
    buttons = [b["text"] for row in prompt["reply_markup"]["inline_keyboard"] for b in row]
    assert buttons == ["Share progress", "Report a challenge", "Share a solution", "Not now"]

    live.sandbox.press_button(501, prompt["message_id"], "pb:challenge")
    await live.settle()
    assert "describe the challenge" in live.texts(501)[-1]
    assert live.sandbox.answered_callbacks, "the button press is acknowledged to Telegram"
    live.sandbox.push_message(501, "Birth registration delays keep children out of school.")
    await live.settle()

    update = live.scalar(select(JourneyUpdate))
    reply = live.scalar(select(Reply))
    prompt_row = live.scalar(select(Prompt))
    assert (update.pledgemaker_id, update.pillar, update.kind) == (GH, "act", "challenge")
    assert update.text == "Birth registration delays keep children out of school."
    assert update.moderation == "pending" and update.prompt_id == prompt_row.id
    assert reply.prompt_id == prompt_row.id and reply.journey_update_id == update.id
    assert prompt_row.state == "answered"
    assert live.texts(501)[-2].startswith("Thank you, Ministry of Employment")
    question = live.sandbox.sent_messages(501)[-1]
    assert question["text"].startswith("May we share this update publicly")
    assert "“Birth registration delays keep children out of school.”" in question["text"]

    version = consent.hash_text(update.text)  # the button names the text it asks about
    live.sandbox.press_button(501, question["message_id"], f"pc:yes:{update.id}:{version}")
    await live.settle()
    given = live.scalar(select(Consent))
    assert (given.answer, given.journey_update_id, given.pledgemaker_id) == ("yes", update.id, GH)
    assert given.text_version == update.text
    assert live.scalar(select(JourneyUpdate.consent_to_publish)) is True
    confirmation = live.sandbox.sent_messages(501)[-1]
    assert confirmation["text"].startswith("Thank you! Your update may be shared")
    [[withdraw_button]] = confirmation["reply_markup"]["inline_keyboard"]
    assert withdraw_button == {
        "text": "Withdraw my consent",
        "callback_data": f"pc:withdraw:{update.id}",
    }

    live.sandbox.press_button(501, confirmation["message_id"], f"pc:withdraw:{update.id}")
    await live.settle()
    assert live.scalar(select(JourneyUpdate.consent_to_publish)) is False
    assert live.texts(501)[-1].startswith("Done: this update will not be published")
    answers = live.all(select(Consent.answer).order_by(Consent.id))
    assert answers == ["yes", "withdrawn"], (
        "consent is a record: the yes stays, the withdrawal adds"
    )


async def test_reply_to_an_older_prompt_answers_that_prompt(live: Live) -> None:
    await live.bind(GH, 502)
    await live.fire("act-checkin", to=GH)
    first = live.last_prompt(502)
    await live.fire("inspire-checkin", to=GH)
    live.sandbox.push_message(
        502, "Our inspectors visited 40 farms.", reply_to_message_id=first["message_id"]
    )
    await live.settle()
    update = live.scalar(select(JourneyUpdate))
    assert update.pillar == "act"


async def test_message_without_reply_answers_most_recent_open_prompt(live: Live) -> None:
    await live.bind(GH, 504)
    await live.fire("act-checkin", to=GH)
    await live.fire("inspire-checkin", to=GH)
    live.sandbox.push_message(504, "A story from our cooperative.")
    await live.settle()
    assert live.scalar(select(JourneyUpdate.pillar)) == "inspire"


async def test_consecutive_messages_form_one_answer_and_ack_creates_nothing(live: Live) -> None:
    await live.bind(GH, 505)
    await live.fire("act-checkin", to=GH)
    live.sandbox.push_message(505, "thanks")
    live.sandbox.push_message(505, "👍")
    await live.settle()
    assert live.count(JourneyUpdate) == 0
    assert live.count(Reply) == 2, "acknowledgements are stored as replies all the same"
    live.sandbox.push_message(505, "First part.")
    live.sandbox.push_message(505, "Second part.")
    await live.settle()
    updates = live.all(select(JourneyUpdate))
    assert len(updates) == 1
    assert updates[0].text == "First part.\n\nSecond part."
    thanks = [t for t in live.texts(505) if t.startswith("Thank you")]
    assert len(thanks) == 1


async def test_album_with_caption_is_one_answer_with_media(live: Live) -> None:
    await live.bind(GH, 506)
    await live.fire("act-checkin", to=GH)
    photo = b"\xff\xd8\xff\xe0fake-jpeg"
    live.sandbox.push_message(506, photo=photo, caption="New school opened", media_group_id="g1")
    live.sandbox.push_message(506, photo=photo + b"2", media_group_id="g1")
    await live.settle()
    update = live.scalar(select(JourneyUpdate))
    assert update.text == "New school opened"
    assert len(update.media) == 2
    from pathlib import Path

    assert Path(update.media[0]["path"]).read_bytes() == photo  # fetched through getFile


async def test_edit_updates_pending_answer_and_keeps_original(live: Live) -> None:
    await live.bind(GH, 507)
    await live.fire("act-checkin", to=GH)
    message_id = live.sandbox.push_message(507, "We trained 12 inspectors.")
    await live.settle()
    live.sandbox.push_edit(507, message_id, "We trained 120 inspectors.")
    await live.settle()
    reply = live.scalar(select(Reply))
    assert (reply.text, reply.original_text) == (
        "We trained 120 inspectors.",
        "We trained 12 inspectors.",
    )
    assert live.scalar(select(JourneyUpdate.text)) == "We trained 120 inspectors."


async def test_not_now_snoozes_the_prompt(live: Live) -> None:
    await live.bind(GH, 508)
    await live.fire("act-checkin", to=GH)
    live.sandbox.press_button(508, live.last_prompt(508)["message_id"], "pb:snooze")
    await live.settle()
    assert live.scalar(select(Prompt.state)) == "snoozed"
    assert "ask again later" in live.texts(508)[-1]


async def test_stop_opts_out_at_once_and_start_opts_back_in(live: Live) -> None:
    await live.bind(GH, 509)
    live.sandbox.push_message(509, "/stop")
    await live.settle()
    assert live.scalar(select(Contact.status)) == "stopped"
    assert "not receive any more messages" in live.texts(509)[-1]
    fired = await live.fire("act-checkin")
    assert fired.skipped.get("opted out") == 1
    assert (
        live.count(
            OutboxMessage,
            OutboxMessage.recipient == "509",
            OutboxMessage.campaign_id == "act-checkin",
        )
        == 0
    )
    live.sandbox.push_message(509, "/start")
    await live.settle()
    assert live.scalar(select(Contact.status)) == "active"
    assert "Welcome back" in live.texts(509)[-1]


async def test_queued_prompt_to_a_contact_who_stops_is_never_sent(live: Live) -> None:
    await live.bind(GH, 510)
    from bot.delivery.pauses import set_paused

    set_paused(live.app.db, "act-checkin", True)
    await live.fire("act-checkin", to=GH, settle=False)
    live.sandbox.push_message(510, "/stop")
    await eventually(lambda: live.scalar(select(Contact.status)) == "stopped", "opt-out")
    set_paused(live.app.db, "act-checkin", False)
    await live.settle()
    row = live.scalar(select(OutboxMessage).where(OutboxMessage.campaign_id == "act-checkin"))
    assert (row.state, row.last_error) == ("failed", "contact_stopped")
    assert not any(m.get("reply_markup") for m in live.sandbox.sent_messages(510))


async def test_bad_and_used_tokens_are_refused_politely(live: Live) -> None:
    live.sandbox.push_message(520, "/start not-a-real-token")
    await live.settle()
    assert "not valid" in live.texts(520)[-1]
    assert live.count(Contact) == 0
    await live.bind(GH, 521)
    token_row = live.scalar(select(InboundEvent).where(InboundEvent.chat_id == "521"))
    token = token_row.payload["text"].split()[1]
    live.sandbox.push_message(522, f"/start {token}")
    await live.settle()
    assert "not valid" in live.texts(522)[-1]
    assert live.count(Contact) == 1


async def test_unbound_chat_gets_one_onboarding_hint_and_creates_nothing(live: Live) -> None:
    live.sandbox.push_message(530, "hello?")
    live.sandbox.push_message(530, "anyone there?")
    await live.settle()
    assert len(live.texts(530)) == 1 and "invitation link" in live.texts(530)[0]
    assert live.count(InboundEvent) == 2 and live.count(Reply) == 0


async def test_language_command_switches_language(live: Live) -> None:
    await live.bind(GH, 540)
    live.sandbox.push_message(540, "/language fr")
    await live.settle()
    assert live.texts(540)[-1].startswith("Désormais")
    await live.fire("act-checkin", to=GH)
    assert "Agir" in live.last_prompt(540)["text"]
    live.sandbox.push_message(540, "/language de")
    await live.settle()
    assert "/language en" in live.texts(540)[-1]


async def test_group_messages_are_stored_and_ignored(live: Live) -> None:
    live.sandbox.add_chat(-100500, chat_type="group", title="Team")
    live.sandbox.push_message(-100500, "hello bot")
    await live.settle()
    assert live.count(InboundEvent) == 1
    assert live.scalar(select(InboundEvent.outcome)) == "ignored: not a private chat"
    assert live.sandbox.sent_messages(-100500) == []


async def test_update_id_restart_does_not_lose_or_duplicate(live: Live) -> None:
    await live.bind(GH, 550)
    await live.fire("act-checkin", to=GH)
    live.sandbox.push_message(550, "Before the restart.")
    await live.settle()
    live.sandbox.reset_update_ids(7)  # Telegram may restart update_id after a quiet week
    live.sandbox.push_message(550, "After the restart.")
    await live.settle()
    texts = live.all(select(Reply.text).order_by(Reply.id))
    assert texts == ["Before the restart.", "After the restart."]


async def test_a_photo_answer_asks_for_a_description_that_becomes_its_alt_text(live: Live) -> None:
    await live.bind(GH, 560)
    await live.fire("act-checkin", to=GH)
    live.sandbox.push_message(560, photo=b"\xff\xd8\xff\xe0jpeg", caption="Our new school")
    await live.settle()
    assert any("describe it in one line" in t for t in live.texts(560))
    live.sandbox.push_message(560, "Twenty children in a bright classroom")
    await live.settle()
    update = live.scalar(select(JourneyUpdate))
    assert update.text == "Our new school", "the description is not part of their words"
    assert update.media[0]["alt_text"] == "Twenty children in a bright classroom"
    assert live.texts(560)[-1].startswith("Thank you — the description is saved")
    second = live.sandbox.push_message(560, "And a second thought.")
    await live.settle()
    assert "And a second thought." in live.scalar(select(JourneyUpdate.text)), "asked only once"
    live.sandbox.push_edit(560, second, "And a second, better thought.")
    await live.settle()
    update = live.scalar(select(JourneyUpdate))
    assert update.text == "Our new school\n\nAnd a second, better thought."
    assert update.media[0]["alt_text"] == "Twenty children in a bright classroom", (
        "a later reply or an edit must not lose the photo's description"
    )


async def test_a_file_that_is_not_an_image_is_refused_and_nothing_kept(live: Live) -> None:
    await live.bind(GH, 561)
    await live.fire("act-checkin", to=GH)
    live.sandbox.push_message(561, photo=b"MZ\x90\x00 not an image", caption="see attached")
    await live.settle()
    [item] = live.scalar(select(JourneyUpdate.media))
    assert item["error"].startswith("refused: not a JPEG") and "path" not in item
    assert not any((live.app.config.path("media") / "telegram").glob("*"))
