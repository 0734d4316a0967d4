"""The Telegram sandbox, driven by the real python-telegram-bot client over real HTTP."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
import telegram
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, ReplyParameters
from telegram.error import (
    BadRequest,
    Conflict,
    EndPointNotFound,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TimedOut,
)

from pledgebot_sandbox import SandboxThread, TelegramSandbox
from pledgebot_sandbox._telegram_rules import ApiError
from pledgebot_sandbox._telegram_text import parse_html

# PTB warns that RetryAfter.retry_after will become a timedelta; seconds() handles both.
pytestmark = pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")

ANN = 42
FAST = {"overall_rate": 10_000.0, "chat_rate": 10_000.0, "chat_burst": 10_000}
REPO = Path(__file__).resolve().parents[2]


def seconds(value: int | timedelta) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def keyboard(*data: str) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup([[InlineKeyboardButton(d.title(), callback_data=d) for d in data]])


def client(sandbox: TelegramSandbox, token: str | None = None) -> telegram.Bot:
    return telegram.Bot(
        token or sandbox.token, base_url=sandbox.base_url, base_file_url=sandbox.base_file_url
    )


@asynccontextmanager
async def running(**kwargs: Any) -> AsyncIterator[TelegramSandbox]:
    sandbox = TelegramSandbox(**kwargs)
    await sandbox.start()
    sandbox.add_chat(ANN, first_name="Ann", username="ann", language_code="fr")
    try:
        yield sandbox
    finally:
        await sandbox.stop()


@pytest_asyncio.fixture
async def sandbox() -> AsyncIterator[TelegramSandbox]:
    async with running(**FAST) as sandbox:
        yield sandbox


@pytest_asyncio.fixture
async def bot(sandbox: TelegramSandbox) -> AsyncIterator[telegram.Bot]:
    async with client(sandbox) as bot:
        yield bot


# --- identity and sending ---------------------------------------------------------------------
@pytest.mark.asyncio
async def test_get_me_describes_the_bot(sandbox: TelegramSandbox, bot: telegram.Bot) -> None:
    me = await bot.get_me()
    assert (me.id, me.username, me.is_bot) == (123456, "pledgebot_sandbox_bot", True)
    assert sandbox.method_calls["getMe"] == 2  # once by `async with`, once here


@pytest.mark.asyncio
async def test_sent_message_is_recorded_with_its_buttons(
    sandbox: TelegramSandbox, bot: telegram.Bot
) -> None:
    user_message = sandbox.push_message(ANN, "hello")
    sent = await bot.send_message(ANN, "Pledge?", reply_markup=keyboard("yes", "no"))
    assert sent.message_id == user_message + 1  # one id counter per chat, shared by both sides
    assert sent.from_user.id == sandbox.bot_id and sent.chat.id == ANN
    assert sent.reply_markup == keyboard("yes", "no")
    (record,) = sandbox.sent_messages(ANN)
    assert record["message_id"] == sent.message_id and record["text"] == "Pledge?"
    assert record["reply_markup"] == {
        "inline_keyboard": [
            [{"text": "Yes", "callback_data": "yes"}, {"text": "No", "callback_data": "no"}]
        ]
    }
    assert record["parse_mode"] is None and record["reply_to_message_id"] is None
    assert sandbox.sent_messages(ANN + 1) == []


@pytest.mark.asyncio
async def test_a_reply_needs_an_existing_message(
    sandbox: TelegramSandbox, bot: telegram.Bot
) -> None:
    asked = sandbox.push_message(ANN, "a question")
    answer = await bot.send_message(ANN, "an answer", reply_to_message_id=asked)
    assert answer.reply_to_message.text == "a question"
    assert sandbox.sent_messages()[-1]["reply_to_message_id"] == asked
    with pytest.raises(BadRequest, match=r"(?i)message to be replied not found"):
        await bot.send_message(ANN, "x", reply_parameters=ReplyParameters(999))
    lenient = ReplyParameters(999, allow_sending_without_reply=True)
    assert (await bot.send_message(ANN, "x", reply_parameters=lenient)).reply_to_message is None


@pytest.mark.asyncio
async def test_text_limits(sandbox: TelegramSandbox, bot: telegram.Bot) -> None:
    await bot.send_message(ANN, "x" * 4096)
    with pytest.raises(BadRequest, match=r"(?i)message is too long"):
        await bot.send_message(ANN, "x" * 4097)
    with pytest.raises(BadRequest, match=r"(?i)message text is empty"):
        await bot.send_message(ANN, "  \n ")
    with pytest.raises(BadRequest, match=r"(?i)chat not found"):
        await bot.send_message(ANN + 1, "who?")
    assert len(sandbox.sent_messages()) == 1


@pytest.mark.asyncio
async def test_html_length_is_counted_after_parsing(
    sandbox: TelegramSandbox, bot: telegram.Bot
) -> None:
    escaped = "&lt;b&gt;" * 1365 + "x"  # 12 286 characters that show as 4096
    sent = await bot.send_message(ANN, escaped, parse_mode="HTML")
    assert sent.text == "<b>" * 1365 + "x" and len(sent.text) == 4096
    await bot.send_message(ANN, "<b>" + "y" * 4096 + "</b>", parse_mode="HTML")
    with pytest.raises(BadRequest, match=r"(?i)message is too long"):
        await bot.send_message(ANN, "<b>" + "y" * 4097 + "</b>", parse_mode="HTML")
    with pytest.raises(BadRequest, match=r"(?i)message is too long"):
        await bot.send_message(ANN, escaped + "x")
    assert sandbox.sent_messages()[0]["text"] == escaped  # what the bot sent, untouched
    assert sandbox.sent_messages()[0]["plain_text"] == sent.text


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "markup",
    [
        "<b>bold",
        "a < b",
        "<blink>x</blink>",
        "Tom & Jerry",
        "<b>x</i>",
        "x</b>",
        '<span class="x">x</span>',
        "<a href=x/>x</a>",
    ],
)
async def test_bad_html_is_rejected(
    sandbox: TelegramSandbox, bot: telegram.Bot, markup: str
) -> None:
    with pytest.raises(BadRequest, match=r"(?i)can't parse entities"):
        await bot.send_message(ANN, markup, parse_mode="HTML")
    assert sandbox.sent_messages() == []
    await bot.send_message(ANN, markup.replace("<", "&lt;").replace(">", "&gt;"))  # no parse_mode


@pytest.mark.asyncio
async def test_html_becomes_text_and_entities(bot: telegram.Bot) -> None:
    sent = await bot.send_message(
        ANN,
        '🏟 <b>bold</b> <a href="https://t.me/x?a=1&amp;b=2">link</a> &quot;q&quot; &#65;'
        '<tg-spoiler>s</tg-spoiler><span class="tg-spoiler">p</span><blockquote expandable>'
        "quote</blockquote>",
        parse_mode="HTML",
    )
    assert sent.text == '🏟 bold link "q" Aspquote'
    kinds = [(e.type, e.offset, e.length) for e in sent.entities]
    # Offsets count UTF-16 code units: the stadium emoji is two of them.
    assert kinds == [
        ("bold", 3, 4),
        ("text_link", 8, 4),
        ("spoiler", 18, 1),
        ("spoiler", 19, 1),
        ("expandable_blockquote", 20, 5),
    ]
    assert sent.entities[1].url == "https://t.me/x?a=1&b=2"


@pytest.mark.parametrize(
    ("markup", "error"),
    [  # tdlib's own test vectors (td/test/message_entities.cpp)
        ("🏟 🏟&lt;<abacaba", "Unclosed start tag at byte offset 13"),
        ("🏟 🏟&lt;<abac aba>", 'Unsupported start tag "abac" at byte offset 13'),
        ("🏟 🏟&lt;<i   =aba>", 'Empty attribute name in the tag "i" at byte offset 13'),
        (
            "🏟 🏟&lt;<i    aba>",
            'Expected equal sign in declaration of an attribute of the tag "i" at byte offset 13',
        ),
        ("🏟 🏟&lt;<i    aba  =  ", 'Unclosed start tag "i" at byte offset 13'),
        ("🏟 🏟&lt;<i    aba  =  190azAz-.,", "Unexpected end of name token at byte offset 27"),
        ('🏟 🏟&lt;<i    aba  =  "&lt;&gt;&quot;>', "Unclosed start tag at byte offset 13"),
        ("🏟 🏟&lt;</", "Unexpected end tag at byte offset 13"),
        ("🏟 🏟&lt;<b></b></", "Unexpected end tag at byte offset 20"),
        ("🏟 🏟&lt;<i>a</i   ", "Unclosed end tag at byte offset 17"),
        (
            "🏟 🏟&lt;<i>a</em   >",
            'Unmatched end tag at byte offset 17, expected "</i>", found "</em>"',
        ),
        ("<b>x", 'Can\'t find end tag corresponding to start tag "b"'),
    ],
)
def test_html_errors_match_telegram(markup: str, error: str) -> None:
    with pytest.raises(ApiError) as caught:
        parse_html(markup)
    assert caught.value.status == 400
    assert caught.value.description == f"Bad Request: can't parse entities: {error}"


@pytest.mark.parametrize(
    ("markup", "text", "entities"),
    [
        ("🏟 🏟<i>🏟 &lt🏟</i>", "🏟 🏟🏟 <🏟", [("italic", 5, 6)]),
        (
            "🏟 🏟<i>🏟 &gt;<b aba   =   caba>&lt🏟</b></i>",
            "🏟 🏟🏟 ><🏟",
            [("italic", 5, 7), ("bold", 9, 3)],
        ),
        ("🏟 🏟&lt;<i    aba  =  190azAz-.   >a</i>", "🏟 🏟<a", [("italic", 6, 1)]),
        ("🏟 🏟&lt;<i>🏟 🏟&lt;</>", "🏟 🏟<🏟 🏟<", [("italic", 6, 6)]),
        ("🏟 🏟&lt;<b></b>", "🏟 🏟<", []),
    ],
)
def test_html_parses_like_telegram(
    markup: str, text: str, entities: list[tuple[str, int, int]]
) -> None:
    parsed = parse_html(markup)
    assert parsed.text == text
    assert [(e["type"], e["offset"], e["length"]) for e in parsed.entities] == entities


@pytest.mark.asyncio
async def test_blocked_user_gets_forbidden_until_they_restart(
    sandbox: TelegramSandbox, bot: telegram.Bot
) -> None:
    sandbox.block(ANN)
    with pytest.raises(Forbidden, match=r"(?i)bot was blocked by the user"):
        await bot.send_message(ANN, "still there?")
    assert sandbox.sent_messages() == []
    sandbox.push_message(ANN, "/start")  # the client's "Restart" button unblocks the bot
    await bot.send_message(ANN, "welcome back")
    updates = await bot.get_updates()  # Telegram reports both changes as my_chat_member
    statuses = [u.my_chat_member.new_chat_member.status for u in updates if u.my_chat_member]
    assert statuses == ["kicked", "member"]


# --- flood control ----------------------------------------------------------------------------
@pytest.mark.asyncio
async def test_burst_to_one_chat_gets_retry_after() -> None:
    async with running(overall_rate=1000.0, chat_rate=1.0, chat_burst=3) as sandbox:
        sandbox.add_chat(ANN + 1)
        async with client(sandbox) as bot:
            for n in range(3):
                await bot.send_message(ANN, f"burst {n}")
            with pytest.raises(RetryAfter) as caught:
                await bot.send_message(ANN, "one too many")
            assert seconds(caught.value.retry_after) >= 1
            await bot.send_message(ANN + 1, "another chat has its own bucket")
        assert [m["text"] for m in sandbox.sent_messages(ANN)] == [f"burst {n}" for n in range(3)]
        assert sandbox.rate_limited == 1


@pytest.mark.asyncio
async def test_overall_limit_spans_chats() -> None:
    async with running(overall_rate=5.0, chat_rate=1000.0, chat_burst=1000) as sandbox:
        async with client(sandbox) as bot:
            for chat_id in range(1, 6):
                sandbox.add_chat(chat_id)
                await bot.send_message(chat_id, "hi")
            with pytest.raises(RetryAfter):
                await bot.send_message(ANN, "hi")
        assert len(sandbox.sent_messages()) == 5 and sandbox.rate_limited == 1


@pytest.mark.asyncio
async def test_tokens_refill_over_time() -> None:
    async with running(overall_rate=1000.0, chat_rate=20.0, chat_burst=1) as sandbox:
        async with client(sandbox) as bot:
            await bot.send_message(ANN, "one")
            with pytest.raises(RetryAfter):
                await bot.send_message(ANN, "two")
            await asyncio.sleep(0.06)  # 1/20 s refills one token
            await bot.send_message(ANN, "two")
        assert len(sandbox.sent_messages()) == 2


# --- receiving --------------------------------------------------------------------------------
@pytest.mark.asyncio
async def test_updates_are_shaped_like_telegrams(
    sandbox: TelegramSandbox, bot: telegram.Bot
) -> None:
    hello = sandbox.push_message(ANN, "hello")
    sandbox.push_message(ANN, "/start@pledgebot_sandbox_bot tok", reply_to_message_id=hello)
    sandbox.push_message(ANN, photo=b"\xff\xd8jpeg", caption="my sign", media_group_id="album")
    sandbox.push_message(ANN, sticker=True)
    sandbox.push_edit(ANN, hello, "hello, edited")
    text, command, photo, sticker, edit = await bot.get_updates()

    assert text.message.text == "hello" and text.message.entities == ()
    user = text.message.from_user
    assert (user.id, user.is_bot, user.first_name, user.username, user.language_code) == (
        ANN,
        False,
        "Ann",
        "ann",
        "fr",
    )
    assert (text.message.chat.id, text.message.chat.type) == (ANN, "private")
    assert text.message.date.timestamp() == pytest.approx(time.time(), abs=5)

    (entity,) = command.message.entities
    assert (entity.type, entity.offset, entity.length) == ("bot_command", 0, 28)
    assert command.message.reply_to_message.message_id == hello
    assert command.message.reply_to_message.text == "hello"

    assert photo.message.caption == "my sign" and photo.message.media_group_id == "album"
    assert photo.message.photo[-1].file_size == 6 and photo.message.text is None

    assert sticker.message.sticker.emoji == "👍" and sticker.message.sticker.type == "regular"

    assert edit.edited_message.message_id == hello and edit.edited_message.text == "hello, edited"
    assert edit.edited_message.edit_date is not None and edit.message is None
    assert [u.update_id for u in (text, command, photo, sticker, edit)] == list(
        range(text.update_id, text.update_id + 5)
    )


@pytest.mark.asyncio
async def test_button_press_and_answer(sandbox: TelegramSandbox, bot: telegram.Bot) -> None:
    sent = await bot.send_message(ANN, "Pledge?", reply_markup=keyboard("yes", "no"))
    query_id = sandbox.press_button(ANN, sent.message_id, "yes")
    with pytest.raises(ValueError, match="no button"):
        sandbox.press_button(ANN, sent.message_id, "maybe")
    (update,) = await bot.get_updates()
    query = update.callback_query
    assert (query.id, query.data, query.from_user.id) == (query_id, "yes", ANN)
    assert query.message.message_id == sent.message_id and query.message.chat.id == ANN
    assert query.message.reply_markup == keyboard("yes", "no") and query.chat_instance

    assert await bot.answer_callback_query(query_id, text="Thanks!")
    assert sandbox.answered_callbacks[0]["callback_query_id"] == query_id
    assert sandbox.answered_callbacks[0]["text"] == "Thanks!"
    with pytest.raises(BadRequest, match=r"(?i)query is too old"):
        await bot.answer_callback_query(query_id)  # a query is answered once


@pytest.mark.asyncio
async def test_edit_reply_markup(sandbox: TelegramSandbox, bot: telegram.Bot) -> None:
    sent = await bot.send_message(ANN, "Pledge?", reply_markup=keyboard("yes"))
    edited = await bot.edit_message_reply_markup(ANN, sent.message_id, reply_markup=keyboard("ok"))
    assert isinstance(edited, telegram.Message) and edited.reply_markup == keyboard("ok")
    removed = await bot.edit_message_reply_markup(ANN, sent.message_id)
    assert isinstance(removed, telegram.Message) and removed.reply_markup is None
    assert removed.edit_date is not None
    assert sandbox.sent_messages()[0]["reply_markup"] is None
    with pytest.raises(BadRequest, match=r"(?i)message is not modified"):
        await bot.edit_message_reply_markup(ANN, sent.message_id)
    with pytest.raises(BadRequest, match=r"(?i)message to edit not found"):
        await bot.edit_message_reply_markup(ANN, 999)
    with pytest.raises(ValueError, match="no button"):
        sandbox.press_button(ANN, sent.message_id, "yes")  # the button is gone


@pytest.mark.asyncio
async def test_callback_data_is_at_most_64_bytes(bot: telegram.Bot) -> None:
    await bot.send_message(ANN, "ok", reply_markup=keyboard("é" * 32))
    with pytest.raises(BadRequest, match=r"(?i)button_data_invalid"):
        await bot.send_message(ANN, "too long", reply_markup=keyboard("é" * 33))


@pytest.mark.asyncio
async def test_offset_confirms_updates(sandbox: TelegramSandbox, bot: telegram.Bot) -> None:
    for n in range(3):
        sandbox.push_message(ANN, f"m{n}")
    first = await bot.get_updates(limit=2)
    assert [u.message.text for u in first] == ["m0", "m1"]
    assert len(await bot.get_updates()) == 3 and sandbox.pending_updates == 3  # not confirmed
    rest = await bot.get_updates(offset=first[-1].update_id + 1)
    assert [u.message.text for u in rest] == ["m2"] and sandbox.pending_updates == 1
    assert await bot.get_updates(offset=rest[-1].update_id + 1) == ()
    assert sandbox.pending_updates == 0
    for n in range(3, 6):
        sandbox.push_message(ANN, f"m{n}")
    (last,) = await bot.get_updates(offset=-1)  # negative: count from the end, drop the rest
    assert last.message.text == "m5" and sandbox.pending_updates == 1


@pytest.mark.asyncio
async def test_long_poll_wakes_on_push(sandbox: TelegramSandbox, bot: telegram.Bot) -> None:
    started = time.monotonic()
    poll = asyncio.create_task(bot.get_updates(timeout=5))
    await asyncio.sleep(0.1)
    assert not poll.done()
    sandbox.push_message(ANN, "wake up")
    (update,) = await poll
    assert update.message.text == "wake up" and time.monotonic() - started < 1


@pytest.mark.asyncio
async def test_long_poll_returns_empty_after_timeout(bot: telegram.Bot) -> None:
    started = time.monotonic()
    assert await bot.get_updates(timeout=timedelta(seconds=0.3)) == ()
    assert 0.25 < time.monotonic() - started < 2


@pytest.mark.asyncio
async def test_a_second_long_poll_conflicts(sandbox: TelegramSandbox, bot: telegram.Bot) -> None:
    first = asyncio.create_task(bot.get_updates(timeout=5))
    await asyncio.sleep(0.1)
    async with client(sandbox) as other:
        assert await other.get_updates(timeout=timedelta(seconds=0.2)) == ()
    with pytest.raises(Conflict, match=r"(?i)terminated by other getUpdates request"):
        await first


@pytest.mark.asyncio
async def test_allowed_updates_is_remembered(sandbox: TelegramSandbox, bot: telegram.Bot) -> None:
    sent = await bot.send_message(ANN, "Pledge?", reply_markup=keyboard("yes"))
    assert await bot.get_updates(allowed_updates=["callback_query"]) == ()
    sandbox.push_message(ANN, "dropped: not allowed when it arrived")
    sandbox.press_button(ANN, sent.message_id, "yes")
    (update,) = await bot.get_updates()  # no allowed_updates: the last list still applies
    assert update.callback_query is not None
    await bot.get_updates(offset=update.update_id + 1, allowed_updates=[])  # [] = the default
    sandbox.push_message(ANN, "kept")
    (update,) = await bot.get_updates()
    assert update.message.text == "kept"


@pytest.mark.asyncio
async def test_update_ids_restart_after_a_reset(
    sandbox: TelegramSandbox, bot: telegram.Bot
) -> None:
    sandbox.push_message(ANN, "before")
    (old,) = await bot.get_updates()
    sandbox.reset_update_ids(5)
    sandbox.push_message(ANN, "after a quiet week")
    # The bot's next offset is far ahead of the new ids; Telegram then serves from the head.
    (new,) = await bot.get_updates(offset=old.update_id + 1)
    assert (new.update_id, new.message.text) == (5, "after a quiet week")


@pytest.mark.asyncio
async def test_delete_webhook_can_drop_pending_updates(
    sandbox: TelegramSandbox, bot: telegram.Bot
) -> None:
    sandbox.push_message(ANN, "old news")
    assert await bot.delete_webhook()
    assert sandbox.pending_updates == 1
    assert await bot.delete_webhook(drop_pending_updates=True)
    assert sandbox.pending_updates == 0


# --- files and commands -----------------------------------------------------------------------
@pytest.mark.asyncio
async def test_get_file_and_download(sandbox: TelegramSandbox, bot: telegram.Bot) -> None:
    image = bytes(range(256)) * 4
    sandbox.push_message(ANN, photo=image)
    (update,) = await bot.get_updates()
    file = await bot.get_file(update.message.photo[-1].file_id)
    assert file.file_size == len(image) and file.file_path.startswith(sandbox.base_file_url)
    assert bytes(await file.download_as_bytearray()) == image
    with pytest.raises(BadRequest, match=r"(?i)invalid file_id"):
        await bot.get_file("nope")


@pytest.mark.asyncio
async def test_set_my_commands(sandbox: TelegramSandbox, bot: telegram.Bot) -> None:
    assert await bot.set_my_commands([("start", "Connect this chat"), ("stop", "Stop it")])
    assert [c["command"] for c in sandbox.commands] == ["start", "stop"]
    assert [c.command for c in await bot.get_my_commands()] == ["start", "stop"]
    with pytest.raises(BadRequest, match=r"(?i)bot_command_invalid"):
        await bot.set_my_commands([("Start", "capitals are not allowed")])


# --- faults and errors ------------------------------------------------------------------------
@pytest.mark.asyncio
async def test_injected_server_errors(sandbox: TelegramSandbox, bot: telegram.Bot) -> None:
    sandbox.inject_fault("sendMessage", status=500)
    sandbox.inject_fault("sendMessage", status=502)
    sandbox.inject_fault("sendMessage", retry_after=7)
    with pytest.raises(NetworkError, match="Internal Server Error"):
        await bot.send_message(ANN, "a")
    with pytest.raises(NetworkError, match="Bad Gateway"):
        await bot.send_message(ANN, "b")
    with pytest.raises(RetryAfter) as caught:
        await bot.send_message(ANN, "c")
    assert seconds(caught.value.retry_after) == 7
    await bot.send_message(ANN, "d")  # the faults are used up, in order
    assert [m["text"] for m in sandbox.sent_messages()] == ["d"]
    assert sandbox.method_calls["sendMessage"] == 4 and sandbox.rate_limited == 1


@pytest.mark.asyncio
async def test_a_timeout_before_delivery_sends_nothing(
    sandbox: TelegramSandbox, bot: telegram.Bot
) -> None:
    sandbox.inject_fault("sendMessage", delay=0.4)
    with pytest.raises(TimedOut):
        await bot.send_message(ANN, "lost", read_timeout=0.1)
    await asyncio.sleep(0.5)
    assert sandbox.sent_messages() == []


@pytest.mark.asyncio
async def test_timed_out_but_delivered(sandbox: TelegramSandbox, bot: telegram.Bot) -> None:
    sandbox.inject_fault("sendMessage", delay=0.4, deliver=True)
    with pytest.raises(TimedOut):
        await bot.send_message(ANN, "arrived anyway", read_timeout=0.1)
    assert [m["text"] for m in sandbox.sent_messages()] == ["arrived anyway"]


@pytest.mark.asyncio
async def test_a_slow_answer_within_the_timeout_succeeds(
    sandbox: TelegramSandbox, bot: telegram.Bot
) -> None:
    sandbox.inject_fault("sendMessage", delay=0.1)
    await bot.send_message(ANN, "slow but fine", read_timeout=2)
    assert len(sandbox.sent_messages()) == 1


@pytest.mark.asyncio
async def test_wrong_token_and_unknown_method(sandbox: TelegramSandbox, bot: telegram.Bot) -> None:
    with pytest.raises(InvalidToken):
        async with client(sandbox, token="123456:WRONG"):
            pass
    with pytest.raises(EndPointNotFound):
        await bot.do_api_request("sendTelepathy")
    assert sandbox.method_calls["sendTelepathy"] == 1


@pytest.mark.asyncio
async def test_json_bodies_and_query_strings_are_accepted(sandbox: TelegramSandbox) -> None:
    url = f"{sandbox.base_url}{sandbox.token}"
    markup = {"inline_keyboard": [[{"text": "Yes", "callback_data": "yes"}]]}
    async with httpx.AsyncClient() as http:
        answer = await http.post(
            f"{url}/sendMessage", json={"chat_id": ANN, "text": "hi", "reply_markup": markup}
        )
        assert answer.status_code == 200 and answer.json()["result"]["reply_markup"] == markup
        sandbox.add_chat(-1001, chat_type="supergroup", title="Allies", username="allies")
        answer = await http.get(f"{url}/SENDMESSAGE", params={"chat_id": "@Allies", "text": "yo"})
        assert answer.json()["result"]["chat"] == {
            "id": -1001,
            "type": "supergroup",
            "title": "Allies",
            "username": "allies",
        }
        answer = await http.get(f"{url}/sendMessage", params={"chat_id": "@ann", "text": "yo"})
        assert answer.json()["description"] == "Bad Request: chat not found"  # users: ids only
        answer = await http.post(f"{url}/sendMessage", data={"chat_id": str(ANN)})
        assert answer.status_code == 400
        assert answer.json() == {
            "ok": False,
            "error_code": 400,
            "description": "Bad Request: message text is empty",
        }
        answer = await http.get(f"{sandbox.base_url}123:nope/getMe")
        assert answer.status_code == 401
        assert answer.json() == {"ok": False, "error_code": 401, "description": "Unauthorized"}
    assert sandbox.method_calls["sendMessage"] == 4


# --- running outside the test's event loop ----------------------------------------------------
def test_sandbox_thread_from_sync_code() -> None:
    with SandboxThread(**FAST) as tg:
        tg.add_chat(ANN, first_name="Ann")
        asked = tg.push_message(ANN, "/start")

        async def bot_side() -> tuple[int, int]:
            async with telegram.Bot(
                tg.token, base_url=tg.base_url, base_file_url=tg.base_file_url
            ) as bot:
                (update,) = await bot.get_updates()
                sent = await bot.send_message(ANN, "Pledge?", reply_markup=keyboard("yes"))
                return update.message.message_id, sent.message_id

        seen, sent = asyncio.run(bot_side())
        assert seen == asked and tg.pending_updates == 1
        assert tg.sent_messages(ANN)[0]["text"] == "Pledge?"
        query_id = tg.press_button(ANN, sent, "yes")
        assert tg.pending_updates == 2 and query_id
        assert tg.call("pending_updates") == 2 and tg.method_calls["sendMessage"] == 1
        tg.block(ANN)
        tg.inject_fault("sendMessage", status=500)
        with pytest.raises(ValueError, match="unknown chat"):
            tg.block(ANN + 1)

        control = f"http://127.0.0.1:{tg.port}/_sandbox"
        with httpx.Client() as http:
            answer = http.post(f"{control}/message", json={"chat_id": 7, "text": "hi"})
            assert answer.json() == {"message_id": 1}
            answer = http.post(f"{control}/button", json={"chat_id": ANN, "message_id": sent})
            assert answer.status_code == 400  # no "data"
            assert http.post(f"{control}/block", json={"chat_id": 7}).json() == {"ok": True}
            assert http.get(f"{control}/sent", params={"chat_id": ANN}).json()[0]["text"] == (
                "Pledge?"
            )
    with pytest.raises(RuntimeError):
        tg.push_message(ANN, "the thread has stopped")


def test_python_m_bot_sandbox_serves_until_terminated() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(
        [sys.executable, "-m", "pledgebot_sandbox", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO,
    )
    try:
        assert process.stdout is not None
        base_url = process.stdout.readline().strip().removeprefix("base_url=")
        answer = httpx.get(f"{base_url}123456:SANDBOX-TOKEN/getMe")
        assert answer.json()["result"]["username"] == "pledgebot_sandbox_bot"
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
