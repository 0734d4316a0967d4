"""`pledgebot demo`: the whole loop on SQLite against local servers, with simulated pledgemakers.

Imports the sample pledgemakers and shares them among the chat channels chosen (``--channels``:
telegram, email, matrix — each against a real local server, see
``pledgebot_sandbox.demo_channels`` and ``pledgebot_sandbox.demo_invited``); each one joins
(Telegram: their deep link; email and Matrix: the bot invites them itself, and they reply to the
mail or join the room); fires the ``act-checkin``
follow-up from ``schedules/`` on those channels; the simulated pledgemakers answer (on Telegram:
text, buttons, a photo, a bare "thanks", "Not now", one ``/stop``; by mail and on Matrix: replies
to the prompt); the answers are stored as replies and journey updates linked to their prompts.
Each update's author gives or declines consent (a button on Telegram; by mail and on Matrix a
typed "1", "yes", "oui", "2"…), the comms team approves, and posts go to X, the Telegram
channel, Bluesky, LinkedIn, Facebook, Instagram and Mastodon (``pledgebot_sandbox.demo_reach``;
Mastodon only when mastodon-mock is installed). Everything goes over the platforms' own protocols
through the real client libraries.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from bot.cli.runner import serve
from bot.community import review
from bot.community.closing import close_loop
from bot.community.importer import import_pledgemakers
from bot.core.errors import UserInputError
from bot.core.models import (
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
from bot.core.models import InboundEvent as EventRow
from bot.core.vocab import PILLARS, UPDATE_KINDS
from bot.scheduling import runs
from bot.service.app import App, build_app
from bot.settings.config import Config, config_from_dict
from pledgebot_sandbox import TelegramSandbox
from pledgebot_sandbox.demo_channels import (
    CHAT_CHANNELS,
    DemoPeople,
    Person,
    Say,
    TelegramPeople,
    channel_figures,
    share,
    wait_until,
)
from pledgebot_sandbox.demo_invited import start_chat_servers
from pledgebot_sandbox.demo_reach import Reach
from pledgebot_sandbox.x import XSandbox

X_ENV = {
    name: f"PLEDGEBOT_DEMO_X_{name.upper()}"
    for name in ("consumer_key", "consumer_secret", "access_token", "access_token_secret")
}
AMPLIFY = "journeys"
POSTING_SLOTS = 3
CAMPAIGN = "act-checkin"
PHOTO_ALT = "A plain blue picture, standing in for the pledgemaker's photo"


def demo_config(
    base: Config, folder: Path, x: XSandbox, chat_channels: dict[str, dict[str, Any]], reach: Reach
) -> Config:
    data = base.model_dump(exclude={"source", "base_dir", "channels"})
    data["database"]["url"] = f"sqlite:///{(folder / 'pledgebot-demo.db').resolve()}"
    data["paths"] = {
        "schedules": str(base.path("schedules").resolve()),
        "templates": str(base.path("templates").resolve()),
    }
    data["media"]["dir"] = str((folder / "media").resolve())
    data["media"]["public_base_url"] = reach.public_base_url  # Instagram fetches from there
    data["dispatcher"]["poll_interval"] = 0.2
    data["channels"] = {
        **chat_channels,
        "x": {
            "enabled": True,
            "api_base_url": x.base_url,
            **{f"{name}_env": env for name, env in X_ENV.items()},
        },
        **reach.settings(),
    }
    return config_from_dict(data, source=base.source, base_dir=base.base_dir)


def _so_far(app: App, label: str, expected: dict[str, int]) -> str:
    """``telegram 3/3, matrix 1/3``: how many of each channel's ``label`` are done."""
    done = channel_figures(app, expected)
    return ", ".join(f"{name} {done[f'{name} {label}']}/{n}" for name, n in expected.items())


def _fresh_folder(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("pledgebot-demo.db*"):
        stale.unlink()


def _first_rows(csv_path: Path, count: int | None) -> bytes | None:
    """The CSV's header and its first ``count`` pledgemakers (None: the file as it is)."""
    if count is None:
        return None
    rows = list(csv.reader(io.StringIO(csv_path.read_text(encoding="utf-8"), newline="")))
    kept = io.StringIO()
    csv.writer(kept, lineterminator="\r\n").writerows(rows[: count + 1])
    return kept.getvalue().encode()


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


async def run_demo(
    base: Config,
    folder: Path,
    *,
    channels: Sequence[str] | None = None,
    pledgemakers: int | None = None,
    csv_path: Path | None = None,
    dashboard: Callable[[App, dict[str, str]], Awaitable[None]] | None = None,
    say: Say = _stderr,
) -> dict[str, str]:
    """The whole loop against the local servers; then, with ``dashboard``, that coroutine runs
    (the dashboard served) while pledgebot and the servers keep running. ``channels``: the chat
    channels for the pledgemakers (None: every one that can run here); ``pledgemakers``: only
    the first N of the CSV, dealt among the channels in turn."""
    _fresh_folder(folder)
    csv_path = csv_path or base.base_dir / "data" / "sample" / "pledgemakers.csv"
    stack = contextlib.AsyncExitStack()
    try:
        x, telegram, reach = XSandbox(), TelegramPeople(), Reach()
        await x.start()
        stack.push_async_callback(x.stop)
        await reach.start(stack, say)
        for name, env in X_ENV.items():
            os.environ[env] = x.credentials[name]
        await telegram.start(say)
        stack.push_async_callback(telegram.stop)
        asked = list(channels or CHAT_CHANNELS)
        others = await start_chat_servers(
            asked, folder, stack, explicit=channels is not None, say=say
        )
        servers: dict[str, DemoPeople] = {"telegram": telegram, **others}
        chosen = [name for name in asked if name in servers]
        sections = {name: people.settings() for name, people in servers.items()}
        app = build_app(demo_config(base, folder, x, sections, reach))
        stack.callback(app.close)
        stack.push_async_callback(app.aclose)
        app.db.upgrade()
        await reach.serve_media(app, stack)
        with app.db.session() as session:
            import_pledgemakers(session, csv_path, data=_first_rows(csv_path, pledgemakers))
            people = [
                (p.id, p.name, p.language)
                for p in session.scalars(select(Pledgemaker).order_by(Pledgemaker.id))
            ]
        if len(people) < len(chosen):
            raise UserInputError(
                f"demo: --pledgemakers {len(people)}: at least one per channel ({len(chosen)})"
            )
        stop = asyncio.Event()
        service = asyncio.create_task(serve(app, stop, with_scheduler=False))

        async def stop_service() -> None:
            stop.set()
            await asyncio.gather(service, return_exceptions=True)

        stack.push_async_callback(stop_service)
        networks = ["x", "telegram", *reach.networks]
        prompts = await play(app, telegram, servers, share(people, chosen), networks, say)
        result = summary(app, prompts, x, chosen, reach)
        if dashboard is not None:
            await dashboard(app, result)
        return result
    finally:
        await stack.aclose()


async def play(
    app: App,
    telegram: TelegramPeople,
    servers: dict[str, DemoPeople],
    shares: dict[str, list[Person]],
    networks: list[str],
    say: Say,
) -> int:
    """Invitations, the follow-up on every chosen channel, the answers, consent; then approval
    and posts. Returns the number of prompts queued."""
    sandbox = telegram.sandbox
    await asyncio.gather(
        *(servers[name].invite(app, people, say) for name, people in shares.items())
    )
    invited = {name: len(people) for name, people in shares.items()}
    await wait_until(
        lambda: _count(app, Contact, Contact.status == "active") == sum(invited.values()),
        lambda: f"invitations to be accepted (joined: {_so_far(app, 'joined', invited)})",
    )
    await wait_until(lambda: _settled(app, sandbox), "the welcomes to be sent")
    spec = app.schedules().get(CAMPAIGN).spec.model_copy(update={"channels": list(shares)})
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
    # The first pledgemaker of each channel answers first: a posting slot features the oldest
    # update waiting (regions rotating), so each channel's first update is among the first posted.
    expected = dict.fromkeys(shares, 0)
    for wave in (slice(0, 1), slice(1, None)):
        for name in shares:
            expected[name] += await servers[name].answer(wave)
        await wait_until(
            lambda: (
                _settled(app, sandbox)
                and all(
                    channel_figures(app, [name])[f"{name} answers linked"] >= count
                    for name, count in expected.items()
                )
            ),
            lambda: f"answers to be processed (linked: {_so_far(app, 'answers linked', expected)})",
            timeout=120,
        )
    consents = {name: await servers[name].consent() for name in shares}
    await wait_until(
        lambda: (
            _settled(app, sandbox)
            and all(_consents(app, name) >= n for name, n in consents.items())
        ),
        lambda: (
            "consents to be recorded ("
            + ", ".join(f"{name} {_consents(app, name)}/{n}" for name, n in consents.items())
            + ")"
        ),
    )
    await amplify_some(app, sandbox, networks)
    return fired.enqueued


def _consents(app: App, channel: str) -> int:
    figures = channel_figures(app, [channel])
    return figures[f"{channel} consents given"] + figures[f"{channel} consents declined"]


async def amplify_some(app: App, sandbox: TelegramSandbox, networks: list[str]) -> None:
    """The comms team approves every update its author agreed to share, on any channel — those
    with a photo first (described: alt text), so the first slot features one, which Instagram
    needs —; three slots post on every network; the pledgemakers are thanked with the link."""
    spec = app.schedules().get(AMPLIFY).spec.model_copy(update={"channels": networks})
    fired = 0
    for with_photo in (True, False):
        approved = 0
        with app.db.session() as session:
            waiting = session.scalars(
                select(JourneyUpdate).where(
                    JourneyUpdate.consent_to_publish.is_(True),
                    JourneyUpdate.moderation != "approved",
                )
            ).all()
            for update in (u for u in waiting if bool(u.media) == with_photo):
                if review.missing_alt_text(update):
                    review.set_alt_text(session, update.id, PHOTO_ALT)
                review.approve(session, update.id)
                approved += 1
        # A photo has the first slot to itself; the other updates share the rest.
        for _ in range(min(1, approved) if with_photo else POSTING_SLOTS - fired):
            runs.fire(
                app.db,
                app.templates,
                spec,
                utcnow() + timedelta(seconds=fired),
                trigger="manual",
                destinations=app.destinations(),
            )
            fired += 1
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


def summary(
    app: App, prompts: int, x: XSandbox, channels: list[str], reach: Reach
) -> dict[str, str]:
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
        **{f"posts on {n}": _count(app, Post, Post.channel == n) for n in reach.networks},
        "thank-yous with a link to the post": _count(
            app, OutboxMessage, OutboxMessage.idempotency_key.startswith("post-live:")
        ),
        "messages sent in total": _count(app, OutboxMessage, OutboxMessage.state == "sent"),
        "messages failed": _count(app, OutboxMessage, OutboxMessage.state == "failed"),
        **channel_figures(app, channels),
    }
    result = {label: str(value) for label, value in figures.items()}
    if (posted := reach.links(app)) is not None:
        result[f"posted update {posted[0]} to"] = ", ".join(posted[1])
    result["database"] = app.db.url.removeprefix("sqlite:///")
    return result


async def serve_dashboard(app: App, say: Callable[[str], None]) -> None:
    """The dashboard on the demo's data until Ctrl-C, with an admin made for the demo."""
    import secrets
    import signal

    from bot.community import staff
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
