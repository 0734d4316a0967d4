"""The whole loop on Matrix, end to end against a real Synapse: a pledgemaker opens a direct
room with the bot and sends their invitation (``!start TOKEN``), the room is bound to them, a
prompt goes out there, their reply (``m.in_reply_to`` the prompt) comes back once and is linked
to the prompt."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select

from bot import contacts, runs
from bot.models import Contact, JourneyUpdate, Prompt, Reply, utcnow
from bot.schedules import FollowupCampaign
from tests.auxil.live import Live, eventually, start_live
from tests.channels.synapse import Account, Synapse, shared

GH = "gh-min-labour"
SPEC = FollowupCampaign.model_validate(
    {"id": "matrix-checkin", "kind": "followup", "pillar": "act", "channels": ["matrix"]}
)


@pytest.fixture
async def matrix_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[Live, Synapse, Account, Account]]:
    synapse = await asyncio.to_thread(shared)
    bot, maker = synapse.register("pledgebot"), synapse.register("maker")
    monkeypatch.setenv("PLEDGEBOT_TEST_MATRIX_TOKEN", bot.access_token)
    extra = f"""
[channels.matrix]
enabled = true
homeserver = "{synapse.base_url}"
user_id = "{bot.user_id}"
access_token_env = "PLEDGEBOT_TEST_MATRIX_TOKEN"
request_timeout = 5
sync_timeout_ms = 300
"""
    live = await start_live(tmp_path, monkeypatch, extra=extra)
    try:
        yield live, synapse, bot, maker
    finally:
        await live.close()
        live.app.close()
        await live.sandbox.stop()


def bot_said(synapse: Synapse, maker: Account, room: str, bot: Account) -> list[dict]:  # type: ignore[type-arg]
    return [e for e in synapse.messages(maker, room) if e["sender"] == bot.user_id]


async def test_invited_by_start_token_then_a_reply_is_linked_to_its_prompt(
    matrix_loop: tuple[Live, Synapse, Account, Account],
) -> None:
    live, synapse, bot, maker = matrix_loop
    with live.app.db.session() as session:
        token = contacts.create_invite(session, GH, "matrix").token
    link = await live.app.channel("matrix").invite_link(token)
    assert bot.user_id in link and token in link
    room = synapse.create_room(maker, invite=(bot.user_id,))
    synapse.say(maker, room, {"msgtype": "m.text", "body": f"!start {token}"})
    contact = await eventually(
        lambda: live.scalar(select(Contact).where(Contact.channel == "matrix")), "the binding"
    )
    assert (contact.pledgemaker_id, contact.address) == (GH, room)
    await eventually(lambda: bot_said(synapse, maker, room, bot), "the welcome")

    runs.fire(live.app.db, live.app.templates, SPEC, utcnow(), trigger="manual", only=GH)
    prompt_row = await eventually(
        lambda: live.scalar(select(Prompt).where(Prompt.campaign_id == "matrix-checkin")),
        "the prompt",
    )
    prompt_event = await eventually(
        lambda: next(
            (
                e["event_id"]
                for e in bot_said(synapse, maker, room, bot)
                if "Act" in str(e["content"].get("body"))
            ),
            None,
        ),
        "the prompt in the room",
    )
    synapse.say(
        maker,
        room,
        {
            "msgtype": "m.text",
            "body": "We trained 40 labour inspectors in Kumasi.",
            "m.relates_to": {"m.in_reply_to": {"event_id": prompt_event}},
        },
    )
    reply = await eventually(
        lambda: live.scalar(
            select(Reply).where(Reply.channel == "matrix", Reply.prompt_id.is_not(None))
        ),
        "the reply, linked",
    )
    assert reply.prompt_id == prompt_row.id
    assert reply.text == "We trained 40 labour inspectors in Kumasi."
    update = await eventually(lambda: live.scalar(select(JourneyUpdate)), "the journey update")
    assert update.prompt_id == prompt_row.id
    assert live.count(Reply, Reply.channel == "matrix", Reply.prompt_id.is_not(None)) == 1
