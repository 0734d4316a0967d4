"""The demo's simulated pledgemakers, one class per chat channel, each against a real server.

For every chat channel chosen, ``pledgebot demo`` starts its server — the Telegram Bot API
sandbox (``bot.sandbox.telegram``; always, as it also carries the public channel's posts),
``bot.sandbox.mail`` (aiosmtpd SMTP + pymap IMAP) or ``bot.sandbox.synapse`` (a real Synapse
in its own venv) —, writes the channel's ``[channels.<name>]`` section of the demo's config, and
plays its share of the pledgemakers. Each joins with their invitation (Telegram: ``/start TOKEN``
from the deep link; email: a mail to the join address whose subject is the signed code of their
``mailto:`` link; Matrix: ``!start TOKEN`` in a direct room they open with the bot), then
answers the prompt they received (Telegram: eight ways in turn; email: a reply from their mail
client, quoting the prompt; Matrix: a reply to the prompt's event, or a plain message).
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterable
from email.message import EmailMessage
from email.utils import formataddr, formatdate
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol
from urllib.parse import parse_qs

from sqlalchemy import Select, func, select

from bot import contacts
from bot.app import App
from bot.errors import UserInputError
from bot.models import Contact, InviteToken, JourneyUpdate, OutboxMessage, Prompt
from bot.sandbox import TelegramSandbox

if TYPE_CHECKING:
    from bot.sandbox.mail import MailServer
    from bot.sandbox.synapse import Account, Synapse

CHAT_CHANNELS = ("telegram", "email", "matrix")  # the chat channels that can run locally
EMAIL_PACKAGES = ("aiosmtpd", "pymap", "pysasl")  # bot.sandbox.mail's imports (dev extras)
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

# A tiny valid JPEG header is enough for the sandbox; it is stored through getFile.
PHOTO = bytes.fromhex("ffd8ffe000104a46494600010100000100010000ffd9")


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


def _first_line(exc: BaseException) -> str:
    return next((line.strip() for line in str(exc).splitlines() if line.strip()), repr(exc))


class DemoPeople(Protocol):
    """One chat channel's server and simulated pledgemakers."""

    name: ClassVar[str]

    async def start(self, say: Say) -> None: ...  # raises ChannelUnavailable
    def settings(self) -> dict[str, Any]: ...  # its [channels.<name>] section
    async def invite(self, app: App, people: list[Person]) -> None: ...
    async def answer(self) -> int: ...  # how many answers must be linked to their prompts
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

    async def invite(self, app: App, people: list[Person]) -> None:
        if not people:
            return
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

    async def answer(self) -> int:
        """Eight ways a pledgemaker may react, in turn; the last chat opts out with /stop."""
        sandbox, linked = self.sandbox, 0
        for index, (chat_id, (_, language)) in enumerate(sorted(self.chats.items())):
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
            if style == 0:  # a long answer: on X it becomes a thread
                sandbox.press_button(chat_id, prompt["message_id"], "pb:progress")
                sandbox.push_message(chat_id, " ".join([progress, challenge, progress]))
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

    async def stop(self) -> None:
        await self.sandbox.stop()


class EmailPeople:
    """aiosmtpd + pymap; each pledgemaker mails from ``<id>@pledgemakers.example``."""

    name: ClassVar[str] = "email"
    ENV: ClassVar[dict[str, str]] = {
        "smtp_password": "PLEDGEBOT_DEMO_SMTP_PASSWORD",
        "imap_password": "PLEDGEBOT_DEMO_IMAP_PASSWORD",
        "signing_key": "PLEDGEBOT_DEMO_EMAIL_SIGNING_KEY",
    }
    QUOTES = ("gmail", "outlook", "apple")  # how their mail clients quote the prompt

    def __init__(self, folder: Path) -> None:
        self.folder = folder / "mail"
        self.server: MailServer | None = None
        self.people: dict[str, tuple[str, str]] = {}  # address -> ("Name <address>", language)

    async def start(self, say: Say) -> None:
        missing = [n for n in EMAIL_PACKAGES if importlib.util.find_spec(n) is None]
        if missing:
            raise ChannelUnavailable(
                f"{' and '.join(missing)} not installed (the dev extras): pip install -e '.[dev]'"
            )
        from bot.sandbox.mail import MailServer

        shutil.rmtree(self.folder, ignore_errors=True)  # no mail left from an earlier demo
        self.server = MailServer(self.folder)
        try:
            await asyncio.to_thread(self.server.start)
        except (RuntimeError, OSError) as exc:
            raise ChannelUnavailable(f"the mail servers did not start: {_first_line(exc)}") from exc
        for name, value in self.server.secrets().items():
            os.environ[self.ENV[name]] = value.get_secret_value()

    def settings(self) -> dict[str, Any]:
        assert self.server is not None
        chosen = self.server.settings(
            poll_interval=0.2,
            max_messages_per_second=100,
            **{f"{name}_env": env for name, env in self.ENV.items()},
        )
        return chosen.model_dump(mode="json")

    async def invite(self, app: App, people: list[Person]) -> None:
        """Each opens the ``mailto:`` link of their invitation: a mail with the code as subject."""
        assert self.server is not None
        channel = app.channel("email")
        for pledgemaker_id, name, language in people:
            with app.db.session() as session:
                token = contacts.create_invite(session, pledgemaker_id, "email").token
            link = await channel.invite_link(token)
            join, _, query = link.removeprefix("mailto:").partition("?")
            address = f"{re.sub(r'[^a-z0-9.-]', '-', pledgemaker_id.lower())}@pledgemakers.example"
            sender = formataddr((name, address))
            mail = EmailMessage()
            mail["From"], mail["To"] = sender, join
            mail["Subject"] = parse_qs(query)["subject"][0]
            mail["Date"] = formatdate(usegmt=True)
            mail["Message-ID"] = f"<join.{pledgemaker_id}@pledgemakers.example>"
            mail.set_content("")
            await asyncio.to_thread(self.server.submit, mail)
            self.people[address] = (sender, language)

    async def answer(self) -> int:
        """Each answers the last mail they received (the prompt), quoting it below."""
        from bot.sandbox.mail import answer

        server = self.server
        assert server is not None
        for index, (address, (sender, language)) in enumerate(self.people.items()):
            prompt = server.received(address)[-1]
            text = ANSWERS[language][index % 2]
            quote = self.QUOTES[index % len(self.QUOTES)]
            reply = answer(prompt, text, sender=sender, quote=quote)
            await asyncio.to_thread(server.submit, reply)
        return len(self.people)

    async def stop(self) -> None:
        if self.server is not None:
            await asyncio.to_thread(self.server.stop)


class MatrixPeople:
    """A real Synapse; each pledgemaker has an account and opens a direct room with the bot."""

    name: ClassVar[str] = "matrix"
    TOKEN_ENV: ClassVar[str] = "PLEDGEBOT_DEMO_MATRIX_TOKEN"

    def __init__(self) -> None:
        self.synapse: Synapse | None = None
        self.bot: Account | None = None
        self.rooms: dict[str, tuple[Account, str]] = {}  # room id -> (their account, language)

    async def start(self, say: Say) -> None:
        from bot.sandbox import synapse

        if not synapse.venv_ready():
            say(
                f"matrix: building Synapse's own venv in {synapse.venv_path()} "
                "(once, ~30 s, from PyPI)…"
            )
        try:
            python = await asyncio.to_thread(synapse.build_venv)
        except (synapse.SynapseUnavailable, OSError) as exc:
            raise ChannelUnavailable(_first_line(exc)) from exc
        say("matrix: starting Synapse (~5 s)…")
        self.synapse = synapse.Synapse()
        try:
            await asyncio.to_thread(self.synapse.start, python)
            self.bot = await asyncio.to_thread(self.synapse.register, "pledgebot")
        except (RuntimeError, OSError, subprocess.CalledProcessError) as exc:
            raise ChannelUnavailable(f"Synapse did not start: {_first_line(exc)}") from exc
        os.environ[self.TOKEN_ENV] = self.bot.access_token

    def settings(self) -> dict[str, Any]:
        assert self.synapse is not None and self.bot is not None
        return {
            "enabled": True,
            "homeserver": self.synapse.base_url,
            "user_id": self.bot.user_id,
            "access_token_env": self.TOKEN_ENV,
            "request_timeout": 5,
            "sync_timeout_ms": 300,
        }

    async def invite(self, app: App, people: list[Person]) -> None:
        """Each opens a direct room with the bot and sends the line shown after its link."""
        channel = app.channel("matrix")
        lines = []
        for pledgemaker_id, _, language in people:
            with app.db.session() as session:
                token = contacts.create_invite(session, pledgemaker_id, "matrix").token
            link = await channel.invite_link(token)  # "https://matrix.to/#/@bot… !start TOKEN"
            lines.append((pledgemaker_id, language, link.partition(" ")[2]))
        await asyncio.to_thread(self._join_all, lines)

    def _join_all(self, lines: Iterable[tuple[str, str, str]]) -> None:
        synapse, bot = self.synapse, self.bot
        assert synapse is not None and bot is not None
        for pledgemaker_id, language, line in lines:
            maker = synapse.register(re.sub(r"[^a-z0-9._=-]", "-", pledgemaker_id.lower()))
            room = synapse.create_room(maker, invite=(bot.user_id,))
            synapse.say(maker, room, {"msgtype": "m.text", "body": line})
            self.rooms[room] = (maker, language)

    async def answer(self) -> int:
        await asyncio.to_thread(self._answer_all)
        return len(self.rooms)

    def _answer_all(self) -> None:
        """Every other one replies to the prompt's event; the rest just write (which answers
        their most recent open prompt)."""
        synapse, bot = self.synapse, self.bot
        assert synapse is not None and bot is not None
        for index, (room, (maker, language)) in enumerate(self.rooms.items()):
            said = [e for e in synapse.messages(maker, room) if e["sender"] == bot.user_id]
            content: dict[str, Any] = {"msgtype": "m.text", "body": ANSWERS[language][index % 2]}
            if index % 2 == 0:
                content["m.relates_to"] = {"m.in_reply_to": {"event_id": said[-1]["event_id"]}}
            synapse.say(maker, room, content)

    async def stop(self) -> None:
        if self.synapse is not None:
            await asyncio.to_thread(self.synapse.stop)


def demo_people(name: str, folder: Path) -> DemoPeople:
    """Email's or Matrix's (Telegram's always runs: ``bot.demo`` makes it itself)."""
    return EmailPeople(folder) if name == "email" else MatrixPeople()


def channel_figures(app: App, channels: Iterable[str]) -> dict[str, int]:
    """Per chat channel: invited, joined, prompts sent, answers linked to their prompts."""

    def count(table: Any) -> Select[tuple[int]]:
        return select(func.count()).select_from(table)

    sent_prompts = count(Prompt).join(OutboxMessage)
    linked = (
        count(JourneyUpdate)
        .join(Prompt, JourneyUpdate.prompt_id == Prompt.id)
        .join(OutboxMessage, Prompt.outbox_id == OutboxMessage.id)
        .where(JourneyUpdate.source == "reply")
    )
    figures: dict[str, int] = {}
    with app.db.session() as session:
        for name in channels:
            queries = {
                "invited": count(InviteToken).where(InviteToken.channel == name),
                "joined": count(Contact).where(Contact.channel == name),
                "prompts sent": sent_prompts.where(
                    OutboxMessage.channel == name, OutboxMessage.state == "sent"
                ),
                "answers linked": linked.where(OutboxMessage.channel == name),
            }
            for label, query in queries.items():
                figures[f"{name} {label}"] = int(session.scalar(query) or 0)
    return figures
