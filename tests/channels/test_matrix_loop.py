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

from bot.campaigns.followup import FollowupCampaign
from bot.community import contacts, invitations
from bot.core.models import Contact, InviteToken, JourneyUpdate, Pledgemaker, Prompt, Reply, utcnow
from bot.scheduling import runs
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


class Invites:
    """The rooms ``account`` is invited to, by incremental /sync as a client does (Synapse
    answers a repeated initial sync from a cache for a while)."""

    def __init__(self, synapse: Synapse, account: Account) -> None:
        self.synapse, self.account, self.since, self.found = synapse, account, "", []

    def rooms(self) -> list[str]:
        query = f"?timeout=0&since={self.since}" if self.since else "?timeout=0"
        answer = self.synapse.request(
            "GET", "/_matrix/client/v3/sync" + query, token=self.account.access_token
        )
        self.since = answer["next_batch"]
        self.found += list((answer.get("rooms") or {}).get("invite") or {})
        return self.found


async def test_the_bot_invites_a_matrix_id_and_joining_the_room_binds_it(
    matrix_loop: tuple[Live, Synapse, Account, Account],
) -> None:
    live, synapse, bot, maker = matrix_loop
    with live.app.db.session() as session:
        session.get(Pledgemaker, GH).handles["matrix"] = maker.user_id  # type: ignore[union-attr]
        sent = invitations.send(session, live.app.templates, [GH], "matrix")
    assert sent.queued == [(GH, maker.user_id)]
    invites = Invites(synapse, maker)
    room = (await eventually(invites.rooms, "the room invitation"))[0]
    assert live.count(Contact) == 0  # invited is not bound: only their joining binds

    synapse.join(maker, room)
    contact = await eventually(
        lambda: live.scalar(select(Contact).where(Contact.channel == "matrix")), "the binding"
    )
    assert (contact.pledgemaker_id, contact.address, contact.status) == (GH, room, "active")
    invite = live.scalar(select(InviteToken).where(InviteToken.address == maker.user_id))
    assert invite.used_by == room
    said = await eventually(
        lambda: [
            m for m in bot_said(synapse, maker, room, bot) if "Welcome" in m["content"]["body"]
        ],
        "the welcome",
    )
    assert len(said) == 1
    first = bot_said(synapse, maker, room, bot)[0]["content"]["body"]
    assert "Join this room" in first  # the invitation came first, in the same room

    # A bulk run now skips them: they are connected.
    with live.app.db.session() as session:
        again = invitations.send(session, live.app.templates, [GH], "matrix")
    assert again.queued == [] and dict(again.skipped) == {"already connected": [GH]}
