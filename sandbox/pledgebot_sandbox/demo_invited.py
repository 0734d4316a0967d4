"""The demo's email and Matrix pledgemakers: invited by the bot itself, answering by typing.

Their address goes on their pledgemaker record (their ``email`` or ``matrix`` handle) and the bot
invites them with ``bot.community.invitations.send`` — what ``pledgebot contacts invite --all
--channel …`` does: a mail they reply to from their mail client (one of them, instead, mails the
signed code of the ``mailto:`` link they were handed, the other way to join), or a direct room on
a real Synapse that they join. Then each answers the prompt (a reply quoting it, by mail; a reply
to its event or a plain message, on Matrix) and types their answer to the consent question under
its numbered options: ``1``, yes in their language, and — the last of each channel — no.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import re
import shutil
import subprocess
from collections.abc import Iterable, Sequence
from email.message import EmailMessage
from email.utils import formataddr, formatdate
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import parse_qs, urlsplit

from bot.community import contacts, invitations
from bot.core.errors import UserInputError
from bot.core.models import Pledgemaker
from bot.service.app import App
from pledgebot_sandbox.demo_channels import (
    ANSWERS,
    ChannelUnavailable,
    DemoPeople,
    Person,
    Say,
    first_line,
    wait_until,
)

if TYPE_CHECKING:
    from pledgebot_sandbox.mail import MailServer
    from pledgebot_sandbox.synapse import Account, Synapse

EMAIL_PACKAGES = ("aiosmtpd", "pymap", "pysasl")  # pledgebot_sandbox.mail's imports
JOIN_REPLIES = {
    "en": "Yes, please keep us posted.",
    "fr": "Oui, avec plaisir.",
    "es": "Sí, con mucho gusto.",
}
YES = {"en": "yes", "fr": "oui", "es": "sí"}
NO = {"en": "no", "fr": "non", "es": "no"}
OPTIONS = "[1] "  # how a message with options (the consent question) shows them


def demo_people(name: str, folder: Path) -> DemoPeople:
    """Email's or Matrix's (Telegram's always runs: ``pledgebot_sandbox.demo`` makes it itself)."""
    return EmailPeople(folder) if name == "email" else MatrixPeople()


async def start_chat_servers(
    chosen: Sequence[str],
    folder: Path,
    stack: contextlib.AsyncExitStack,
    *,
    explicit: bool,
    say: Say,
) -> dict[str, DemoPeople]:
    """The servers of the chosen chat channels other than Telegram, each stopped by ``stack``.
    One that cannot run here is an error when it was asked for by name, else skipped with one
    line."""
    started: dict[str, DemoPeople] = {}
    for name in chosen:
        if name == "telegram":  # always running: it also carries the public channel's posts
            continue
        people = demo_people(name, folder)
        stack.push_async_callback(people.stop)
        try:
            await people.start(say)
        except ChannelUnavailable as exc:
            if explicit:
                raise UserInputError(f"demo: cannot run {name}: {exc}") from None
            say(f"demo: continuing without {name}: {exc}")
            continue
        started[name] = people
    return started


def consent_word(index: int, count: int, language: str, *, no: str | None = None) -> str:
    """What the ``index``-th of ``count`` pledgemakers types under the consent question: the
    last of two or more keeps it private (``no``, else "no" in their language), the others
    say yes by number or in words."""
    if count > 1 and index == count - 1:
        return no or NO[language]
    return "1" if index % 2 == 0 else YES[language]


def email_address(pledgemaker: Pledgemaker) -> str:
    """``<id>@<their website's domain>.example``: reads like theirs, and can reach nobody."""
    host = (urlsplit(pledgemaker.website or "").hostname or "").removeprefix("www.")
    return f"{re.sub(r'[^a-z0-9.-]', '-', pledgemaker.id.lower())}@{host or 'pledge'}.example"


def send_invitations(app: App, ids: list[str], channel: str) -> None:
    """As ``pledgebot contacts invite --all --channel <channel>`` does; everyone is queued."""
    with app.db.session() as session:
        result = invitations.send(
            session, app.templates, ids, channel, public_url=app.config.dashboard.public_url
        )
    if result.skipped:
        raise UserInputError(f"demo: {channel} invitations skipped: {dict(result.skipped)}")


class EmailPeople:
    """aiosmtpd + pymap; each pledgemaker mails from the address on their record."""

    name: ClassVar[str] = "email"
    ENV: ClassVar[dict[str, str]] = {
        "smtp_password": "PLEDGEBOT_DEMO_SMTP_PASSWORD",
        "imap_password": "PLEDGEBOT_DEMO_IMAP_PASSWORD",
        "signing_key": "PLEDGEBOT_DEMO_EMAIL_SIGNING_KEY",
    }
    QUOTES = ("gmail", "outlook", "apple")  # how their mail clients quote the bot's mail

    def __init__(self, folder: Path) -> None:
        self.folder = folder / "mail"
        self.server: MailServer | None = None
        self.people: dict[str, tuple[str, str]] = {}  # address -> ("Name <address>", language)

    async def start(self, say: Say) -> None:
        missing = [n for n in EMAIL_PACKAGES if importlib.util.find_spec(n) is None]
        if missing:
            raise ChannelUnavailable(
                f"{' and '.join(missing)} not installed (the sandboxes' requirements): "
                "pip install -e ./sandbox"
            )
        from pledgebot_sandbox.mail import MailServer

        shutil.rmtree(self.folder, ignore_errors=True)  # no mail left from an earlier demo
        self.server = MailServer(self.folder)
        try:
            await asyncio.to_thread(self.server.start)
        except (RuntimeError, OSError) as exc:
            raise ChannelUnavailable(f"the mail servers did not start: {first_line(exc)}") from exc
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

    async def invite(self, app: App, people: list[Person], say: Say) -> None:
        """The bot mails each an invitation and they reply to it; the last one of two or
        more was handed the ``mailto:`` link instead, and mails its code."""
        if not people:
            return
        addresses: dict[str, str] = {}  # pledgemaker id -> address
        with app.db.session() as session:
            for pledgemaker_id, name, language in people:
                pledgemaker = session.get(Pledgemaker, pledgemaker_id)
                assert pledgemaker is not None
                address = pledgemaker.handles["email"] = email_address(pledgemaker)
                addresses[pledgemaker_id] = address
                self.people[address] = (formataddr((name, address)), language)
        ids = list(addresses)
        mailed, linked = (ids[:-1], ids[-1:]) if len(ids) > 1 else (ids, [])
        say(
            f"email: {len(mailed)} pledgemaker(s) invited by mail from the bot (they reply to "
            f"join), {len(linked)} mail(s) the code of their mailto link"
        )
        send_invitations(app, mailed, "email")
        for pledgemaker_id in linked:
            await self._mail_the_code(app, pledgemaker_id, addresses[pledgemaker_id])
        by_mail = [addresses[pledgemaker_id] for pledgemaker_id in mailed]
        server = self.server
        assert server is not None
        await wait_until(
            lambda: all(server.received(address) for address in by_mail),
            "the invitation mails",
            in_thread=True,
        )
        for index, address in enumerate(by_mail):
            sender, language = self.people[address]
            invitation = server.received(address)[0]
            quote = self.QUOTES[index % len(self.QUOTES)]
            reply = _answer(invitation, JOIN_REPLIES[language], sender=sender, quote=quote)
            await asyncio.to_thread(server.submit, reply)

    async def _mail_the_code(self, app: App, pledgemaker_id: str, address: str) -> None:
        """The ``mailto:`` link of their invitation opened: a mail with the code as subject."""
        assert self.server is not None
        with app.db.session() as session:
            token = contacts.create_invite(session, pledgemaker_id, "email").token
        link = await app.channel("email").invite_link(token)
        join, _, query = link.removeprefix("mailto:").partition("?")
        mail = EmailMessage()
        mail["From"], mail["To"] = self.people[address][0], join
        mail["Subject"] = parse_qs(query)["subject"][0]
        mail["Date"] = formatdate(usegmt=True)
        mail["Message-ID"] = f"<join.{pledgemaker_id}@pledgemakers.example>"
        mail.set_content("")
        await asyncio.to_thread(self.server.submit, mail)

    async def answer(self, which: slice) -> int:
        """Each answers the last mail they received (the prompt), quoting it below."""
        server = self.server
        assert server is not None
        answering = list(enumerate(self.people.items()))[which]
        for index, (address, (sender, language)) in answering:
            prompt = server.received(address)[-1]
            text = ANSWERS[language][index % 2]
            quote = self.QUOTES[index % len(self.QUOTES)]
            reply = _answer(prompt, text, sender=sender, quote=quote)
            await asyncio.to_thread(server.submit, reply)
        return len(answering)

    async def consent(self) -> int:
        """Each replies to the consent question (the last mail with options) with a word or a
        number; the last of several answers "2" (keep it private)."""
        server = self.server
        assert server is not None
        for index, (address, (sender, language)) in enumerate(self.people.items()):
            question = next(m for m in reversed(server.received(address)) if OPTIONS in _body(m))
            word = consent_word(index, len(self.people), language, no="2")
            quote = self.QUOTES[(index + 1) % len(self.QUOTES)]
            reply = _answer(question, word, sender=sender, quote=quote)
            await asyncio.to_thread(server.submit, reply)
        return len(self.people)

    async def stop(self) -> None:
        if self.server is not None:
            await asyncio.to_thread(self.server.stop)


def _answer(mail: EmailMessage, text: str, *, sender: str, quote: str) -> EmailMessage:
    from pledgebot_sandbox.mail import answer

    return answer(mail, text, sender=sender, quote=quote)


def _body(mail: EmailMessage) -> str:
    plain = mail.get_body(preferencelist=("plain",))
    return str(plain.get_content()) if plain is not None else ""


class Invites:
    """The rooms ``account`` is invited to, by incremental /sync as a client does (Synapse
    answers a repeated initial sync from a cache for a while)."""

    def __init__(self, synapse: Synapse, account: Account) -> None:
        self.synapse, self.account, self.since = synapse, account, ""
        self.found: list[str] = []

    def rooms(self) -> list[str]:
        query = f"?timeout=0&since={self.since}" if self.since else "?timeout=0"
        answer = self.synapse.request(
            "GET", "/_matrix/client/v3/sync" + query, token=self.account.access_token
        )
        self.since = answer["next_batch"]
        self.found += list((answer.get("rooms") or {}).get("invite") or {})
        return self.found


class MatrixPeople:
    """A real Synapse; the bot invites each pledgemaker's account to a direct room."""

    name: ClassVar[str] = "matrix"
    TOKEN_ENV: ClassVar[str] = "PLEDGEBOT_DEMO_MATRIX_TOKEN"

    def __init__(self) -> None:
        self.synapse: Synapse | None = None
        self.bot: Account | None = None
        self.rooms: dict[str, tuple[Account, str]] = {}  # room id -> (their account, language)

    async def start(self, say: Say) -> None:
        from pledgebot_sandbox import synapse

        if not synapse.venv_ready():
            say(
                f"matrix: building Synapse's own venv in {synapse.venv_path()} "
                "(once, ~30 s, from PyPI)…"
            )
        try:
            python = await asyncio.to_thread(synapse.build_venv)
        except (synapse.SynapseUnavailable, OSError) as exc:
            raise ChannelUnavailable(first_line(exc)) from exc
        say("matrix: starting Synapse (~5 s)…")
        self.synapse = synapse.Synapse()
        try:
            await asyncio.to_thread(self.synapse.start, python)
            self.bot = await asyncio.to_thread(self.synapse.register, "pledgebot")
        except (RuntimeError, OSError, subprocess.CalledProcessError) as exc:
            raise ChannelUnavailable(f"Synapse did not start: {first_line(exc)}") from exc
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

    async def invite(self, app: App, people: list[Person], say: Say) -> None:
        """Each has an account, recorded as their Matrix handle; the bot invites them to a
        direct room, and each accepts by joining it."""
        if not people:
            return
        synapse = self.synapse
        assert synapse is not None
        accounts = await asyncio.to_thread(self._register, people)
        with app.db.session() as session:
            for pledgemaker_id, account in accounts.items():
                pledgemaker = session.get(Pledgemaker, pledgemaker_id)
                assert pledgemaker is not None
                pledgemaker.handles["matrix"] = account.user_id
        say(f"matrix: {len(people)} pledgemaker(s) invited by the bot to a room (they join it)")
        send_invitations(app, list(accounts), "matrix")
        invites = {pledgemaker_id: Invites(synapse, a) for pledgemaker_id, a in accounts.items()}

        def everyone_invited() -> bool:
            return all(inbox.found or inbox.rooms() for inbox in invites.values())

        await wait_until(everyone_invited, "the Matrix room invitations", in_thread=True)
        languages = {pledgemaker_id: language for pledgemaker_id, _, language in people}
        for pledgemaker_id, inbox in invites.items():
            room = inbox.found[0]
            await asyncio.to_thread(synapse.join, inbox.account, room)
            self.rooms[room] = (inbox.account, languages[pledgemaker_id])

    def _register(self, people: Iterable[Person]) -> dict[str, Account]:
        assert self.synapse is not None
        return {
            pledgemaker_id: self.synapse.register(
                re.sub(r"[^a-z0-9._=-]", "-", pledgemaker_id.lower())
            )
            for pledgemaker_id, _, _ in people
        }

    async def answer(self, which: slice) -> int:
        answering = list(enumerate(self.rooms.items()))[which]
        await asyncio.to_thread(self._answer_all, answering)
        return len(answering)

    def _answer_all(self, answering: list[tuple[int, tuple[str, tuple[Account, str]]]]) -> None:
        """Every other one replies to the prompt's event; the rest just write (which answers
        their most recent open prompt)."""
        for index, (room, (maker, language)) in answering:
            prompt = self._bot_said(maker, room)[-1]
            self._say(maker, room, ANSWERS[language][index % 2], prompt if index % 2 == 0 else None)

    async def consent(self) -> int:
        await asyncio.to_thread(self._consent_all)
        return len(self.rooms)

    def _consent_all(self) -> None:
        """Under the consent question's numbered options, each types a number or a word,
        every other one as a reply to the question; the last of several says no."""
        for index, (room, (maker, language)) in enumerate(self.rooms.items()):
            said = self._bot_said(maker, room)
            question = next(e for e in reversed(said) if OPTIONS in str(e["content"]["body"]))
            word = consent_word(index, len(self.rooms), language)
            self._say(maker, room, word, question if index % 2 else None)

    def _bot_said(self, maker: Account, room: str) -> list[dict[str, Any]]:
        assert self.synapse is not None and self.bot is not None
        bot = self.bot.user_id
        return [e for e in self.synapse.messages(maker, room) if e["sender"] == bot]

    def _say(self, maker: Account, room: str, text: str, reply_to: dict[str, Any] | None) -> None:
        assert self.synapse is not None
        content: dict[str, Any] = {"msgtype": "m.text", "body": text}
        if reply_to is not None:
            content["m.relates_to"] = {"m.in_reply_to": {"event_id": reply_to["event_id"]}}
        self.synapse.say(maker, room, content)

    async def stop(self) -> None:
        if self.synapse is not None:
            await asyncio.to_thread(self.synapse.stop)
