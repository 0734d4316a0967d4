"""The demo's chat channels: what they share, and the Telegram pledgemakers.

For every chat channel chosen, ``pledgebot demo`` starts its server — the Telegram Bot API sandbox
(always, as it also carries the public channel's posts), or, in ``pledgebot_sandbox.demo_invited``,
``pledgebot_sandbox.mail`` (aiosmtpd SMTP + pymap IMAP) or ``pledgebot_sandbox.synapse`` (a real
Synapse in its own venv) —, writes the channel's ``[channels.<name>]`` section of the demo's
config, and plays its share of the pledgemakers: they join, answer the prompt they received, and
answer the consent question under the journey update it made. On Telegram each opens the deep link
of their invitation (``/start TOKEN``), answers in one of eight ways and presses a consent button;
the email and Matrix pledgemakers are invited by the bot itself and type their answers
(``pledgebot_sandbox.demo_invited``).
"""

from __future__ import annotations

import asyncio
import io
import os
import time
from collections.abc import Callable, Iterable
from typing import Any, ClassVar, Protocol

from sqlalchemy import Select, distinct, func, select

from bot.community import contacts
from bot.core.errors import UserInputError
from bot.core.models import (
    Consent,
    Contact,
    InviteToken,
    JourneyUpdate,
    OutboxMessage,
    Post,
    Prompt,
)
from bot.service.app import App
from pledgebot_sandbox import TelegramSandbox

CHAT_CHANNELS = ("telegram", "email", "matrix")  # the chat channels that can run locally
Person = tuple[str, str, str]  # pledgemaker id, organisation name, language
Say = Callable[[str], None]
ANSWERS = {
    "en": [
        "We trained 120 labour inspectors this quarter and opened a hotline for reports.",
        "Funding for school meals was cut, so some children may go back to the fields.",
    ],
    "fr": [
        "Nous avons formé 120 inspecteurs du travail ce trimestre et ouvert une ligne d'écoute.",
        "Le financement des cantines a baissé : des enfants risquent de retourner aux champs.",
    ],
    "es": [
        "Capacitamos a 120 inspectores de trabajo este trimestre y abrimos una línea de denuncia.",
        "Se recortó el presupuesto de comedores escolares; algunos niños podrían volver al campo.",
    ],
}
# How a pledgemaker joins on each channel: through an invitation the bot sent to their address
# ("invitation": InviteToken.address set), or through a link handed to them ("link").
JOINED_BY = {
    "telegram": {"link": "deep link (/start)"},
    "email": {"invitation": "reply to the bot's invitation mail", "link": "mailto link's code"},
    "matrix": {"invitation": "the bot's room invite, accepted"},
}


def _photo() -> bytes:
    """A real JPEG (Pillow comes with matplotlib), 480×400: Instagram opens it and checks its
    aspect ratio; it is stored through getFile."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (480, 400), (30, 120, 200)).save(buffer, "JPEG")
    return buffer.getvalue()


PHOTO = _photo()


class ChannelUnavailable(Exception):
    """This channel cannot run here; ``str()`` says why, in one line."""


def parse_channels(text: str) -> list[str]:
    """``--channels telegram,email``: the names, in order, once each; a clear error otherwise."""
    names = list(dict.fromkeys(n.strip().lower() for n in text.split(",") if n.strip()))
    unknown = [n for n in names if n not in CHAT_CHANNELS]
    valid = ", ".join(CHAT_CHANNELS)
    if not names:
        raise UserInputError(f"demo: --channels: no channel named; valid: {valid}")
    if unknown:
        note = " (x is always used for amplification)" if "x" in unknown else ""
        got = ", ".join(repr(n) for n in unknown)
        raise UserInputError(f"demo: --channels: unknown channel {got}; valid: {valid}{note}")
    return names


def share(people: list[Person], channels: list[str]) -> dict[str, list[Person]]:
    """Each channel's share of the pledgemakers, dealt in turn (the first channel gets more)."""
    return {name: people[index :: len(channels)] for index, name in enumerate(channels)}


def first_line(exc: BaseException) -> str:
    return next((line.strip() for line in str(exc).splitlines() if line.strip()), repr(exc))


async def wait_until(
    check: Callable[[], bool],
    what: str | Callable[[], str],
    timeout: float = 60,
    *,
    in_thread: bool = False,
) -> None:
    """``what``: for the error, or a function saying how far it got. ``in_thread``: ``check``
    blocks (a request to a server, a mailbox read), so it runs off the event loop."""
    deadline = time.monotonic() + timeout
    while not (await asyncio.to_thread(check) if in_thread else check()):
        if time.monotonic() > deadline:
            said = what if isinstance(what, str) else what()
            raise UserInputError(f"demo: timed out waiting for {said}")
        await asyncio.sleep(0.1)


class DemoPeople(Protocol):
    """One chat channel's server and simulated pledgemakers."""

    name: ClassVar[str]

    async def start(self, say: Say) -> None: ...  # raises ChannelUnavailable
    def settings(self) -> dict[str, Any]: ...  # its [channels.<name>] section
    async def invite(self, app: App, people: list[Person], say: Say) -> None: ...
    # Those in ``which`` (a slice of them, in order) answer the prompt; returns how many of
    # their answers must be linked to their prompts.
    async def answer(self, which: slice) -> int: ...
    async def consent(self) -> int: ...  # how many consent answers must be recorded
    async def stop(self) -> None: ...


class TelegramPeople:
    """The Telegram Bot API sandbox; each pledgemaker opens their deep link in a private chat."""

    name: ClassVar[str] = "telegram"
    TOKEN_ENV: ClassVar[str] = "PLEDGEBOT_DEMO_TELEGRAM_TOKEN"
    POST_CHANNEL: ClassVar[int] = -1_001_000_000_001  # the public channel for posts

    def __init__(self) -> None:
        self.sandbox = TelegramSandbox()
        self.chats: dict[int, tuple[str, str]] = {}  # chat id -> (pledgemaker id, language)

    async def start(self, say: Say) -> None:
        await self.sandbox.start()
        self.sandbox.add_chat(
            self.POST_CHANNEL, chat_type="channel", title="Action Pledge journeys"
        )
        os.environ[self.TOKEN_ENV] = self.sandbox.token

    def settings(self) -> dict[str, Any]:
        return {
            "enabled": True,
            "token_env": self.TOKEN_ENV,
            "base_url": self.sandbox.base_url,
            "base_file_url": self.sandbox.base_file_url,
            "poll_timeout": 1,
            "post_chat_id": str(self.POST_CHANNEL),
        }

    async def invite(self, app: App, people: list[Person], say: Say) -> None:
        if not people:
            return
        say(f"telegram: {len(people)} pledgemaker(s) open the deep link of their invitation")
        channel = app.channel("telegram")
        for index, (pledgemaker_id, name, language) in enumerate(people):
            with app.db.session() as session:
                token = contacts.create_invite(session, pledgemaker_id, "telegram").token
            link = await channel.invite_link(token)
            chat_id = 10_001 + index
            self.sandbox.add_chat(chat_id, first_name=name.split()[0], language_code=language)
            self.sandbox.push_message(chat_id, "/start " + link.rpartition("start=")[2])
            self.chats[chat_id] = (pledgemaker_id, language)
        self.sandbox.push_message(99_999, "hello, who are you?")  # a stranger: one onboarding hint

    async def answer(self, which: slice) -> int:
        """Eight ways a pledgemaker may react, in turn; the last chat opts out with /stop."""
        sandbox, linked = self.sandbox, 0
        for index, (chat_id, (_, language)) in list(enumerate(sorted(self.chats.items())))[which]:
            prompt = next(
                m for m in reversed(sandbox.sent_messages(chat_id)) if m.get("reply_markup")
            )
            progress, challenge = ANSWERS[language]
            if index == len(self.chats) - 1:
                sandbox.push_message(chat_id, "/stop")
                continue
            style = index % 8
            if style in (0, 1, 2, 3, 5):  # these make a journey update
                linked += 1
            if style == 0:  # a photo with a long caption: on X it becomes a thread
                sandbox.press_button(chat_id, prompt["message_id"], "pb:progress")
                long = " ".join([progress, challenge, progress])
                sandbox.push_message(chat_id, photo=PHOTO, caption=long)
            elif style == 1:
                sandbox.push_message(chat_id, progress, reply_to_message_id=prompt["message_id"])
            elif style == 2:
                sandbox.push_message(chat_id, progress)
                sandbox.push_message(chat_id, "🙂 More soon.")  # minutes apart at most: one answer
            elif style == 3:  # alternately a challenge and a solution
                kind = "challenge" if (index // 8) % 2 == 0 else "solution"
                sandbox.press_button(chat_id, prompt["message_id"], f"pb:{kind}")
                sandbox.push_message(chat_id, challenge if kind == "challenge" else progress)
            elif style == 4:
                sandbox.push_message(chat_id, "thanks!")  # a bare acknowledgement: no update
            elif style == 5:
                sandbox.push_message(chat_id, photo=PHOTO, caption=progress)
            elif style == 6:
                sandbox.press_button(chat_id, prompt["message_id"], "pb:snooze")
            # style 7: no answer yet; the prompt stays open
        return linked

    async def consent(self) -> int:
        """Under each consent question, most press "yes"; every fifth chat, from the second,
        presses "no"."""
        pressed = 0
        for index, chat_id in enumerate(sorted(self.chats)):
            question = next(
                (
                    m
                    for m in reversed(self.sandbox.sent_messages(chat_id))
                    if "pc:yes:" in str(m.get("reply_markup"))
                ),
                None,
            )
            if question is None:
                continue
            data = next(
                b["callback_data"]
                for row in question["reply_markup"]["inline_keyboard"]
                for b in row
                if b["callback_data"].startswith("pc:yes:")
            )
            answer = data if index % 5 != 1 else data.replace("pc:yes:", "pc:no:")
            self.sandbox.press_button(chat_id, question["message_id"], answer)
            pressed += 1
        return pressed

    async def stop(self) -> None:
        await self.sandbox.stop()


def channel_figures(app: App, channels: Iterable[str]) -> dict[str, int]:
    """Per chat channel: invited, joined (and how), prompts sent, answers linked to their
    prompts, consents given and declined, updates amplified (published on X or the channel)."""

    def count(table: Any, what: Any = None) -> Select[tuple[int]]:
        return select(func.count() if what is None else func.count(distinct(what))).select_from(
            table
        )

    sent_prompts = count(Prompt).join(OutboxMessage)
    linked = (
        count(JourneyUpdate)
        .join(Prompt, JourneyUpdate.prompt_id == Prompt.id)
        .join(OutboxMessage, Prompt.outbox_id == OutboxMessage.id)
        .where(JourneyUpdate.source == "reply")
    )
    used = count(InviteToken).where(InviteToken.used_at.is_not(None))
    consents = count(Consent).join(Contact, Consent.contact_id == Contact.id)
    amplified = (
        count(Post, Post.journey_update_id)
        .join(JourneyUpdate, Post.journey_update_id == JourneyUpdate.id)
        .join(Contact, JourneyUpdate.contact_id == Contact.id)
    )
    by = {
        "invitation": InviteToken.address.is_not(None),
        "link": InviteToken.address.is_(None),
    }
    figures: dict[str, int] = {}
    with app.db.session() as session:
        for name in channels:
            queries = {
                "invited": count(InviteToken).where(InviteToken.channel == name),
                "joined": count(Contact).where(Contact.channel == name),
                **{
                    f"joined via {how}": used.where(InviteToken.channel == name, by[way])
                    for way, how in JOINED_BY[name].items()
                },
                "prompts sent": sent_prompts.where(
                    OutboxMessage.channel == name, OutboxMessage.state == "sent"
                ),
                "answers linked": linked.where(OutboxMessage.channel == name),
                "consents given": consents.where(Contact.channel == name, Consent.answer == "yes"),
                "consents declined": consents.where(
                    Contact.channel == name, Consent.answer == "no"
                ),
                "updates amplified": amplified.where(Contact.channel == name),
            }
            for label, query in queries.items():
                figures[f"{name} {label}"] = int(session.scalar(query) or 0)
    return figures
