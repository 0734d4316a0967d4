"""The Matrix adapter against a real Synapse, with a second nio client playing the pledgemaker.

Synapse runs once per test process (tests/channels/synapse.py); every test registers its own
bot and pledgemaker, so tests share nothing but the server.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import time
import urllib.parse
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import nio
import pytest
from pydantic import SecretStr, ValidationError

from bot.channels import registry
from bot.channels.base import InboundEvent, OutboundMessage
from bot.channels.matrix import adapter as matrix
from bot.channels.matrix.adapter import MatrixChannel
from bot.channels.matrix.content import plain_text
from bot.channels.matrix.settings import MatrixSettings
from bot.core.errors import (
    ChannelUnauthorized,
    RateLimited,
    RecipientGone,
    Rejected,
    TransientError,
)
from tests.channels.synapse import Account, FaultyProxy, Synapse, free_port, shared


@pytest.fixture(scope="session")
def synapse() -> Synapse:
    return shared()


def channel_for(
    homeserver: str, account: Account | None, *, token: str | None = None, **settings: Any
) -> MatrixChannel:
    options: dict[str, Any] = {"request_timeout": 5, "sync_timeout_ms": 500, **settings}
    config = MatrixSettings(enabled=True, homeserver=homeserver, **options)
    secret = token or (account.access_token if account else "")
    return MatrixChannel(config, {"access_token": SecretStr(secret)})


def message(recipient: str, text: str, key: str, **fields: Any) -> OutboundMessage:
    return OutboundMessage(id=1, recipient=recipient, text=text, idempotency_key=key, **fields)


@dataclass
class World:
    synapse: Synapse
    bot: Account
    maker: Account
    channel: MatrixChannel
    pledgemaker: nio.AsyncClient  # the pledgemaker's own Matrix client

    def room_with_maker(self) -> str:
        room = self.synapse.create_room(self.bot, invite=(self.maker.user_id,))
        self.synapse.join(self.maker, room)
        return room

    def seen_by_maker(self, room: str) -> list[dict[str, Any]]:
        return [
            e for e in self.synapse.messages(self.maker, room) if e["sender"] == self.bot.user_id
        ]


@pytest.fixture
async def world(synapse: Synapse) -> AsyncIterator[World]:
    bot, maker = synapse.register("pledgebot"), synapse.register("maker")
    channel = channel_for(synapse.base_url, bot)
    pledgemaker = nio.AsyncClient(synapse.base_url, maker.user_id, device_id=maker.device_id)
    pledgemaker.access_token = maker.access_token
    pledgemaker.user_id = maker.user_id
    await channel.start()
    yield World(synapse, bot, maker, channel, pledgemaker)
    await channel.aclose()
    await pledgemaker.close()


async def poll_until(
    channel: MatrixChannel,
    cursor: str | None,
    done: Callable[[list[InboundEvent]], bool],
    seconds: float = 15,
) -> tuple[list[InboundEvent], str | None]:
    """Poll from ``cursor`` until ``done(everything so far)``; returns it and the last cursor."""
    found: list[InboundEvent] = []
    deadline = time.monotonic() + seconds
    while not done(found):
        assert time.monotonic() < deadline, f"gave up waiting; got {found}"
        events, cursor = await channel.poll(cursor)
        found.extend(events)
    return found, cursor


# -- sending ------------------------------------------------------------------------------------
async def test_send_to_a_user_id_invites_them_to_a_direct_room(world: World) -> None:
    receipt = await world.channel.send(message(world.maker.user_id, "Bonjour !", "m1"))
    assert receipt.external_id.startswith("$")

    invited = await world.pledgemaker.sync(timeout=0)
    assert isinstance(invited, nio.SyncResponse)
    (room_id,) = invited.rooms.invite
    assert isinstance(await world.pledgemaker.join(room_id), nio.JoinResponse)
    invitation = await world.pledgemaker.room_get_state_event(
        room_id, "m.room.member", world.maker.user_id
    )
    assert isinstance(invitation, nio.RoomGetStateEventResponse)
    assert invitation.content["membership"] == "join"
    members = await world.pledgemaker.joined_members(room_id)
    assert isinstance(members, nio.JoinedMembersResponse)
    assert {m.user_id for m in members.members} == {world.bot.user_id, world.maker.user_id}
    remembered = world.synapse.request(
        "GET",
        f"/_matrix/client/v3/user/{world.bot.user_id}/account_data/m.direct",
        token=world.bot.access_token,
    )
    assert remembered == {world.maker.user_id: [room_id]}  # where every Matrix client looks
    seen = world.seen_by_maker(room_id)
    assert [(e["event_id"], e["content"]["body"]) for e in seen] == [
        (receipt.external_id, "Bonjour !")
    ]

    # The next message, and one from a restarted bot (m.direct remembers), go to the same room.
    await world.channel.send(message(world.maker.user_id, "Deux", "m2"))
    again = channel_for(world.synapse.base_url, world.bot)
    try:
        await again.send(message(world.maker.user_id, "Trois", "m3"))
    finally:
        await again.aclose()
    assert [e["content"]["body"] for e in world.seen_by_maker(room_id)] == [
        "Bonjour !",
        "Deux",
        "Trois",
    ]


async def test_two_sends_at_once_to_a_new_user_make_one_room(world: World) -> None:
    first, second = await asyncio.gather(
        world.channel.send(message(world.maker.user_id, "Un", "c1")),
        world.channel.send(message(world.maker.user_id, "Deux", "c2")),
    )
    invited = await world.pledgemaker.sync(timeout=0)
    assert isinstance(invited, nio.SyncResponse)
    assert len(invited.rooms.invite) == 1
    assert first.external_id != second.external_id


async def test_the_same_idempotency_key_twice_is_one_message(world: World) -> None:
    room = world.room_with_maker()
    first = await world.channel.send(message(room, "Une seule fois", "run:7:maker"))
    second = await world.channel.send(message(room, "Une seule fois", "run:7:maker"))
    restarted = channel_for(world.synapse.base_url, world.bot)  # a resend after a crash
    try:
        third = await restarted.send(message(room, "Une seule fois", "run:7:maker"))
    finally:
        await restarted.aclose()
    assert first.external_id == second.external_id == third.external_id
    assert [e["content"]["body"] for e in world.seen_by_maker(room)] == ["Une seule fois"]


async def test_a_reply_is_related_to_the_message_it_answers(world: World) -> None:
    room = world.room_with_maker()
    asked = world.synapse.say(world.maker, room, {"msgtype": "m.text", "body": "Une question"})
    sent = await world.channel.send(message(room, "Notre réponse", "staff:1", reply_to=asked))
    (event,) = world.seen_by_maker(room)
    assert event["event_id"] == sent.external_id
    assert event["content"]["m.relates_to"] == {"m.in_reply_to": {"event_id": asked}}


async def test_html_goes_out_as_formatted_body_with_a_plain_body(world: World) -> None:
    room = world.room_with_maker()
    text = '<b>Act</b> — 40 inspecteurs &amp; plus\n<a href="https://example.org/p">lire</a>'
    await world.channel.send(message(room, text, "html:1", parse_mode="HTML"))
    (event,) = world.seen_by_maker(room)
    content = event["content"]
    assert content["format"] == "org.matrix.custom.html"
    assert content["formatted_body"] == text.replace("\n", "<br>\n")
    assert content["body"] == "Act — 40 inspecteurs & plus\nlire (https://example.org/p)"
    assert plain_text("a <pre>x\ny</pre>") == "a x\ny"


# -- receiving ----------------------------------------------------------------------------------
async def test_a_reply_comes_back_once_with_what_it_answers(world: World) -> None:
    room = world.room_with_maker()
    prompt = await world.channel.send(message(room, "Qu'avez-vous fait ?", "prompt:1"))
    _, cursor = await world.channel.poll(None)  # the bot's own message is not an event

    answer = await world.pledgemaker.room_send(
        room,
        "m.room.message",
        {
            "msgtype": "m.text",
            # an older client's reply fallback: the quoted prompt, a blank line, the answer
            "body": f"> <{world.bot.user_id}> Qu'avez-vous fait ?\n\nNous avons formé 40 inspecteurs.",
            "m.relates_to": {"m.in_reply_to": {"event_id": prompt.external_id}},
        },
    )
    assert isinstance(answer, nio.RoomSendResponse)
    events, cursor = await poll_until(world.channel, cursor, lambda found: bool(found))
    (event,) = events
    assert event.key == f"mx:{answer.event_id}"
    assert (event.kind, event.chat_id, event.chat_type) == ("message", room, "private")
    assert event.message_id == answer.event_id
    assert event.reply_to == prompt.external_id
    assert event.text == "Nous avons formé 40 inspecteurs."
    assert event.sender["id"] == world.maker.user_id
    assert event.raw["event_id"] == answer.event_id and event.raw["content"]["body"].startswith(">")
    assert event.date is not None and abs(event.date - time.time()) < 60
    assert InboundEvent.from_record(event.to_record()) == event

    again, _ = await world.channel.poll(cursor)  # acknowledged by the cursor: not served again
    assert again == []


async def test_an_edit_is_kind_edit_of_the_original_message(world: World) -> None:
    room = world.room_with_maker()
    _, cursor = await world.channel.poll(None)
    first = world.synapse.say(world.maker, room, {"msgtype": "m.text", "body": "40 inspecteurs"})
    edit = world.synapse.say(
        world.maker,
        room,
        {
            "msgtype": "m.text",
            "body": "* 45 inspecteurs",
            "m.new_content": {"msgtype": "m.text", "body": "45 inspecteurs"},
            "m.relates_to": {"rel_type": "m.replace", "event_id": first},
        },
    )
    events, _ = await poll_until(world.channel, cursor, lambda found: len(found) >= 2)
    assert [(e.kind, e.key, e.message_id, e.text) for e in events] == [
        ("message", f"mx:{first}", first, "40 inspecteurs"),
        ("edit", f"mx:{edit}", first, "45 inspecteurs"),
    ]


async def test_an_invitation_from_a_pledgemaker_is_accepted_and_commands_read_as_slash(
    world: World,
) -> None:
    _, cursor = await world.channel.poll(None)
    room = world.synapse.create_room(world.maker, invite=(world.bot.user_id,))
    _, cursor = await world.channel.poll(cursor)  # sees the invitation and joins
    members = await world.pledgemaker.joined_members(room)
    assert isinstance(members, nio.JoinedMembersResponse)
    assert world.bot.user_id in {m.user_id for m in members.members}

    world.synapse.say(world.maker, room, {"msgtype": "m.text", "body": "!start Tok3n_abc"})
    world.synapse.say(world.maker, room, {"msgtype": "m.notice", "body": "a bot's notice"})
    world.synapse.say(world.maker, room, {"msgtype": "m.text", "body": "!important news"})
    events, _ = await poll_until(
        world.channel, cursor, lambda found: sum(e.kind == "message" for e in found) >= 2
    )
    assert [(e.chat_id, e.chat_type, e.text) for e in events if e.kind == "message"] == [
        (room, "private", "/start Tok3n_abc"),
        (room, "private", "!important news"),
    ]
    # Their own join, as the room's creator, is reported too (it redeems an open invitation).
    assert [(e.chat_id, e.sender["id"]) for e in events if e.kind == "join"] == [
        (room, world.maker.user_id)
    ]
    link = await world.channel.invite_link("Tok3n_abc")
    assert link == f"https://matrix.to/#/{world.bot.user_id} !start Tok3n_abc"


async def test_a_long_gap_is_filled_from_the_room_history(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    short = copy.deepcopy(matrix.SYNC_FILTER)
    short["room"]["timeline"]["limit"] = 3
    monkeypatch.setattr(matrix, "SYNC_FILTER", short)
    room = world.room_with_maker()
    _, cursor = await world.channel.poll(None)
    for number in range(8):  # while the bot was down
        world.synapse.say(world.maker, room, {"msgtype": "m.text", "body": f"n°{number}"})
    events, _ = await world.channel.poll(cursor)
    assert [e.text for e in events] == [f"n°{n}" for n in range(8)]


async def test_an_image_is_downloaded_from_the_media_repository(world: World) -> None:
    room = world.room_with_maker()
    _, cursor = await world.channel.poll(None)
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
    uploaded = _upload(world.synapse, world.maker, png)
    world.synapse.say(
        world.maker,
        room,
        {"msgtype": "m.image", "body": "Notre atelier", "filename": "photo.png", "url": uploaded},
    )
    (event,), _ = await poll_until(world.channel, cursor, lambda found: bool(found))
    assert event.text == "Notre atelier"
    (item,) = event.media
    assert item["type"] == "photo" and item["file_id"] == uploaded
    assert "/" not in item["file_unique_id"]
    assert await world.channel.download(uploaded) == png


def _upload(synapse: Synapse, account: Account, data: bytes) -> str:
    import json
    import urllib.request

    request = urllib.request.Request(
        synapse.base_url + "/_matrix/media/v3/upload?filename=photo.png", data=data, method="POST"
    )
    request.add_header("Content-Type", "image/png")
    request.add_header("Authorization", f"Bearer {account.access_token}")
    with urllib.request.urlopen(request, timeout=30) as answer:
        return str(json.loads(answer.read())["content_uri"])


# -- failures -----------------------------------------------------------------------------------
async def test_a_bad_token_is_unauthorized(synapse: Synapse) -> None:
    channel = channel_for(synapse.base_url, None, token="syt_not_a_token_we_know")
    try:
        with pytest.raises(ChannelUnauthorized):
            await channel.start()
        with pytest.raises(ChannelUnauthorized):
            await channel.send(message("!nowhere:localhost", "x", "k"))
    finally:
        await channel.aclose()


async def test_a_token_of_another_account_is_unauthorized(world: World) -> None:
    channel = channel_for(world.synapse.base_url, world.maker, user_id=world.bot.user_id)
    try:
        with pytest.raises(ChannelUnauthorized, match="belongs to"):
            await channel.start()
    finally:
        await channel.aclose()


async def test_a_pledgemaker_who_left_is_gone(world: World) -> None:
    await world.channel.send(message(world.maker.user_id, "Bienvenue", "w1"))
    room = next(iter(world.channel.rooms.known.values()))
    world.synapse.join(world.maker, room)
    _, cursor = await world.channel.poll(None)
    world.synapse.leave(world.maker, room)

    # What Synapse really does: a room nobody else is in still accepts the bot's messages …
    await world.channel.send(message(room, "Personne ne lira ceci", "w2"))
    # … so the bot leaves such a room when it sees the last member go; then every send there,
    # from any process, is refused (M_FORBIDDEN) and the recipient is gone.
    await world.channel.poll(cursor)
    with pytest.raises(RecipientGone):
        await world.channel.send(message(room, "Encore ?", "w3"))
    other = channel_for(world.synapse.base_url, world.bot)  # e.g. a dispatcher worker
    try:
        with pytest.raises(RecipientGone):
            await other.send(message(room, "Encore ?", "w4"))
        with pytest.raises(RecipientGone, match="left"):  # their user id: not invited again
            await other.send(message(world.maker.user_id, "Revenez !", "w5"))
    finally:
        await other.aclose()


async def test_an_unknown_user_is_gone(world: World) -> None:
    with pytest.raises(RecipientGone):
        await world.channel.send(message("@nobody-here:localhost", "x", "u1"))


async def test_too_long_is_rejected(world: World) -> None:
    room = world.room_with_maker()
    with pytest.raises(Rejected, match="M_TOO_LARGE"):
        await world.channel.send(message(room, "x" * 70_000, "big"))
    limit = registry.spec("matrix").text_limit
    await world.channel.send(message(room, "😀" * limit, "biggest", parse_mode="HTML"))


async def test_synapse_rate_limit_is_rate_limited(synapse: Synapse) -> None:
    bot = synapse.register("busybot", throttled=True)  # Synapse's tight rc_message applies
    maker = synapse.register("maker")
    room = synapse.create_room(maker, invite=(bot.user_id,))
    channel = channel_for(synapse.base_url, bot)
    try:
        await channel.poll(None)  # joins
        with pytest.raises(RateLimited) as caught:
            for number in range(10):
                await channel.send(message(room, f"n°{number}", f"busy:{number}"))
        assert 1 < caught.value.retry_after <= 1 / 0.01 + 1
        assert "M_LIMIT_EXCEEDED" in str(caught.value)
    finally:
        await channel.aclose()


@pytest.fixture
async def proxy(synapse: Synapse) -> AsyncIterator[FaultyProxy]:
    made = FaultyProxy(synapse.base_url)
    await made.start()
    yield made
    await made.stop()


async def test_a_server_error_is_transient(world: World, proxy: FaultyProxy) -> None:
    room = world.room_with_maker()
    channel = channel_for(proxy.base_url, world.bot)
    try:
        proxy.fail_next("/send/", 502)
        with pytest.raises(TransientError) as caught:
            await channel.send(message(room, "Essai", "t1"))
        assert not caught.value.maybe_delivered
        proxy.fail_next("/sync", 503, {"errcode": "M_UNKNOWN", "error": "overloaded"})
        with pytest.raises(TransientError):
            await channel.poll(None)
    finally:
        await channel.aclose()
    assert world.seen_by_maker(room) == []


async def test_a_timeout_after_sending_may_have_delivered_and_the_resend_is_deduplicated(
    world: World, proxy: FaultyProxy
) -> None:
    room = world.room_with_maker()
    channel = channel_for(proxy.base_url, world.bot, request_timeout=1)
    try:
        proxy.fail_next("/send/", 200, delay=3)  # Synapse gets it; the answer comes too late
        with pytest.raises(TransientError) as caught:
            await channel.send(message(room, "Peut-être", "t2"))
        assert caught.value.maybe_delivered
        await asyncio.sleep(0.5)
        await channel.send(message(room, "Peut-être", "t2"))  # the dispatcher's retry
    finally:
        await channel.aclose()
    assert [e["content"]["body"] for e in world.seen_by_maker(room)] == ["Peut-être"]


async def test_no_server_is_transient_and_not_delivered() -> None:
    channel = channel_for(f"http://127.0.0.1:{free_port()}", None, token="syt_x")
    try:
        with pytest.raises(TransientError) as caught:
            await channel.send(message("!r:localhost", "x", "k"))
        assert not caught.value.maybe_delivered
    finally:
        await channel.aclose()


async def test_the_access_token_is_never_logged(
    world: World, proxy: FaultyProxy, caplog: pytest.LogCaptureFixture
) -> None:
    room = world.room_with_maker()
    caplog.set_level(logging.DEBUG)
    channel = channel_for(proxy.base_url, world.bot)
    try:
        await channel.send(message(world.maker.user_id, "Salut", "log1"))
        await channel.poll(None)
        proxy.fail_next("/send/", 500)
        with pytest.raises(TransientError):
            await channel.send(message(room, "x", "log2"))
    finally:
        await channel.aclose()
    assert caplog.records
    assert world.bot.access_token not in caplog.text
    assert world.bot.access_token not in repr(channel.settings)


# -- settings -----------------------------------------------------------------------------------
def test_settings_name_the_secret_and_require_a_homeserver_when_enabled() -> None:
    assert MatrixSettings().enabled is False  # an absent [channels.matrix] section
    with pytest.raises(ValidationError, match="homeserver"):
        MatrixSettings(enabled=True)
    with pytest.raises(ValidationError):
        MatrixSettings(enabled=True, homeserver="https://m.example.org", token="inline")
    with pytest.raises(ValidationError):
        MatrixSettings(enabled=True, homeserver="https://m.example.org", user_id="pledgebot")
    settings = MatrixSettings(enabled=True, homeserver="https://m.example.org")
    assert settings.access_token_env == "MATRIX_ACCESS_TOKEN"
    assert urllib.parse.urlparse(settings.homeserver).scheme == "https"
