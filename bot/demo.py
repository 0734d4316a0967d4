"""`pledgebot demo`: the whole loop on SQLite against the sandbox Telegram Bot API server.

Imports the sample pledgemakers, invites each one, and lets simulated pledgemakers open their
links; fires a follow-up campaign from ``schedules/``; the simulated pledgemakers answer (text,
buttons, a photo, a bare "thanks", "Not now", one ``/stop``); the answers are stored as replies
and journey updates. Everything goes over HTTP through python-telegram-bot, as in production.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from bot import contacts, review, runs
from bot.app import App, build_app
from bot.closing import close_loop
from bot.config import Config, config_from_dict
from bot.errors import UserInputError
from bot.importer import import_pledgemakers
from bot.models import (
    Consent,
    Contact,
    JourneyUpdate,
    OutboxMessage,
    Pledgemaker,
    Post,
    Prompt,
    Reply,
    utcnow,
)
from bot.models import InboundEvent as EventRow
from bot.runner import serve
from bot.sandbox import TelegramSandbox
from bot.sandbox.x import XSandbox
from bot.vocab import PILLARS, UPDATE_KINDS

TOKEN_ENV = "PLEDGEBOT_DEMO_TELEGRAM_TOKEN"
X_ENV = {
    name: f"PLEDGEBOT_DEMO_X_{name.upper()}"
    for name in ("consumer_key", "consumer_secret", "access_token", "access_token_secret")
}
POST_CHANNEL = -1_001_000_000_001  # the sandbox's public Telegram channel for posts
AMPLIFY = "journeys"
POSTING_SLOTS = 3
CAMPAIGN = "act-checkin"
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


def demo_config(base: Config, folder: Path, sandbox: TelegramSandbox, x: XSandbox) -> Config:
    data = base.model_dump(exclude={"source", "base_dir", "channels"})
    data["database"]["url"] = f"sqlite:///{(folder / 'pledgebot-demo.db').resolve()}"
    data["paths"] = {
        "schedules": str(base.path("schedules").resolve()),
        "templates": str(base.path("templates").resolve()),
    }
    data["media"]["dir"] = str((folder / "media").resolve())
    data["dispatcher"]["poll_interval"] = 0.2
    data["channels"] = {
        "telegram": {
            "enabled": True,
            "token_env": TOKEN_ENV,
            "base_url": sandbox.base_url,
            "base_file_url": sandbox.base_file_url,
            "poll_timeout": 1,
            "post_chat_id": str(POST_CHANNEL),
        },
        "x": {
            "enabled": True,
            "api_base_url": x.base_url,
            **{f"{name}_env": env for name, env in X_ENV.items()},
        },
    }
    return config_from_dict(data, source=base.source, base_dir=base.base_dir)


async def wait_until(check: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise UserInputError(f"demo: timed out waiting for {what}")
        await asyncio.sleep(0.1)


def _fresh_folder(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("pledgebot-demo.db*"):
        stale.unlink()


async def run_demo(
    base: Config,
    folder: Path,
    *,
    csv_path: Path | None = None,
    dashboard: Callable[[App, dict[str, str]], Awaitable[None]] | None = None,
) -> dict[str, str]:
    """The whole loop against the sandboxes; then, with ``dashboard``, that coroutine runs
    (the dashboard served) while pledgebot and the sandboxes keep running."""
    _fresh_folder(folder)
    csv_path = csv_path or base.base_dir / "data" / "sample" / "pledgemakers.csv"
    sandbox, x = TelegramSandbox(), XSandbox()
    await sandbox.start()
    await x.start()
    sandbox.add_chat(POST_CHANNEL, chat_type="channel", title="Action Pledge journeys")
    os.environ[TOKEN_ENV] = sandbox.token
    for name, env in X_ENV.items():
        os.environ[env] = x.credentials[name]
    app = build_app(demo_config(base, folder, sandbox, x))
    stop = asyncio.Event()
    service: asyncio.Task[None] | None = None
    try:
        app.db.upgrade()
        with app.db.session() as session:
            import_pledgemakers(session, csv_path)
            people = [
                (p.id, p.name, p.language)
                for p in session.scalars(select(Pledgemaker).order_by(Pledgemaker.id))
            ]
        channel = app.channel("telegram")
        service = asyncio.create_task(serve(app, stop, with_scheduler=False))
        chats = await invite_everyone(app, channel, sandbox, people)
        sandbox.push_message(99_999, "hello, who are you?")  # a stranger: one onboarding hint
        spec = app.schedules().get(CAMPAIGN).spec
        fired = runs.fire(app.db, app.templates, spec, utcnow(), trigger="manual")
        await wait_until(
            lambda: (
                _count(
                    app,
                    OutboxMessage,
                    OutboxMessage.run_id == fired.run_id,
                    OutboxMessage.state.in_(("sent", "failed")),
                )
                == fired.enqueued
            ),
            "prompts to be sent",
        )
        answer_prompts(sandbox, chats)
        await wait_until(lambda: _settled(app, sandbox), "answers to be processed", timeout=120)
        await amplify_some(app, sandbox, chats)
        result = summary(app, fired.enqueued, x)
        if dashboard is not None:
            await dashboard(app, result)
        return result
    finally:
        stop.set()
        if service is not None:
            await asyncio.gather(service, return_exceptions=True)
        await app.aclose()
        app.close()
        await sandbox.stop()
        await x.stop()


async def invite_everyone(
    app: App, channel: Any, sandbox: TelegramSandbox, people: list[tuple[str, str, str]]
) -> dict[int, tuple[str, str]]:
    """Each simulated pledgemaker opens their own invitation link in a private chat."""
    chats: dict[int, tuple[str, str]] = {}
    db = app.db
    for index, (pledgemaker_id, name, language) in enumerate(people):
        with db.session() as session:
            token = contacts.create_invite(session, pledgemaker_id, "telegram").token
        link = await channel.invite_link(token)
        chat_id = 10_001 + index
        sandbox.add_chat(chat_id, first_name=name.split()[0], language_code=language)
        sandbox.push_message(chat_id, "/start " + link.rpartition("start=")[2])
        chats[chat_id] = (pledgemaker_id, language)
    await wait_until(
        lambda: _count(app, Contact, Contact.status == "active") == len(people),
        "invitations to be accepted",
    )
    return chats


def answer_prompts(sandbox: TelegramSandbox, chats: dict[int, tuple[str, str]]) -> None:
    """Eight ways a pledgemaker may react, in turn; the last chat opts out with /stop."""
    for index, (chat_id, (_, language)) in enumerate(sorted(chats.items())):
        prompt = next(m for m in reversed(sandbox.sent_messages(chat_id)) if m.get("reply_markup"))
        progress, challenge = ANSWERS[language]
        if index == len(chats) - 1:
            sandbox.push_message(chat_id, "/stop")
            continue
        style = index % 8
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


async def amplify_some(app: App, sandbox: TelegramSandbox, chats: dict[int, Any]) -> None:
    """Most pledgemakers say yes to publishing, the comms team approves, three slots post."""
    for index, chat_id in enumerate(sorted(chats)):
        question = next(
            (
                m
                for m in reversed(sandbox.sent_messages(chat_id))
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
        sandbox.press_button(
            chat_id,
            question["message_id"],
            data if index % 5 else data.replace("pc:yes:", "pc:no:"),
        )
    await wait_until(lambda: _settled(app, sandbox), "consents to be recorded")
    with app.db.session() as session:
        for update in session.scalars(
            select(JourneyUpdate).where(JourneyUpdate.consent_to_publish.is_(True))
        ):
            if review.missing_alt_text(update):
                review.set_alt_text(session, update.id, "A photo shared by the pledgemaker")
            review.approve(session, update.id)
    spec = app.schedules().get(AMPLIFY).spec
    for slot in range(POSTING_SLOTS):
        runs.fire(
            app.db,
            app.templates,
            spec,
            utcnow() + timedelta(seconds=slot),
            trigger="manual",
            destinations=app.destinations(),
        )
    await wait_until(lambda: _settled(app, sandbox), "posts to go out", timeout=120)
    close_loop(app.db, app.templates)
    await wait_until(lambda: _settled(app, sandbox), "pledgemakers to be thanked")


def _count(app: App, model: Any, *conditions: Any) -> int:
    with app.db.session() as session:
        return int(session.scalar(select(func.count()).select_from(model).where(*conditions)) or 0)


def _settled(app: App, sandbox: TelegramSandbox) -> bool:
    unprocessed = _count(app, EventRow, EventRow.processed_at.is_(None))
    unsent = _count(
        app, OutboxMessage, OutboxMessage.state.in_(("pending", "sending", "retry_wait"))
    )
    # Updates still waiting in the sandbox are not in our database yet.
    return sandbox.pending_updates == 0 and unprocessed == 0 and unsent == 0


def _with_media(app: App) -> int:
    # Counted in Python: JSON columns have no portable equality in SQL (PostgreSQL's json).
    with app.db.session() as session:
        return sum(1 for media in session.scalars(select(JourneyUpdate.media)) if media)


def summary(app: App, prompts: int, x: XSandbox) -> dict[str, str]:
    replied = JourneyUpdate.source == "reply"
    sent_prompts = Prompt.__table__.join(OutboxMessage.__table__)
    figures = {
        "prompts queued": prompts,
        "pledgemakers imported": _count(app, Pledgemaker),
        "invitations accepted": _count(app, Contact),
        "prompts sent": _count(app, sent_prompts, OutboxMessage.state == "sent"),
        "replies stored": _count(app, Reply),
        "acknowledgements (no update)": _count(app, Reply, Reply.acknowledgement),
        "journey updates": _count(app, JourneyUpdate, replied),
        **{
            f"updates {p}": _count(app, JourneyUpdate, replied, JourneyUpdate.pillar == p)
            for p in PILLARS
        },
        **{
            f"updates {k}": _count(app, JourneyUpdate, replied, JourneyUpdate.kind == k)
            for k in UPDATE_KINDS
        },
        "updates with media": _with_media(app),
        "prompts snoozed": _count(app, Prompt, Prompt.state == "snoozed"),
        "prompts still open": _count(app, Prompt, Prompt.state == "open"),
        "opted out": _count(app, Contact, Contact.status == "stopped"),
        "consents given": _count(app, Consent, Consent.answer == "yes"),
        "consents declined": _count(app, Consent, Consent.answer == "no"),
        "updates approved": _count(app, JourneyUpdate, JourneyUpdate.moderation == "approved"),
        "posts on X": _count(app, Post, Post.channel == "x"),
        "X posts incl. thread parts": len(x.posts()),
        "posts on the Telegram channel": _count(app, Post, Post.channel == "telegram"),
        "thank-yous with a link to the post": _count(app, Post, Post.thanked.is_(True)),
        "messages sent in total": _count(app, OutboxMessage, OutboxMessage.state == "sent"),
        "messages failed": _count(app, OutboxMessage, OutboxMessage.state == "failed"),
    }
    result = {label: str(value) for label, value in figures.items()}
    result["database"] = app.db.url.removeprefix("sqlite:///")
    return result


async def serve_dashboard(app: App, say: Callable[[str], None]) -> None:
    """The dashboard on the demo's data until Ctrl-C, with an admin made for the demo."""
    import secrets
    import signal

    from bot import staff
    from bot.web import serve_web

    password = secrets.token_urlsafe(12)
    with app.db.session() as session:
        staff.add_user(session, "demo@example.org", password, "admin", actor="demo")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)

    def ready(url: str) -> None:
        say(
            f"dashboard: {url} — sign in as demo@example.org with {password} "
            "(made for this demo only); Ctrl-C stops"
        )

    try:
        await serve_web(app, stop, ready)
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
