"""`kill -9` of `pledgebot run` mid-work, then a restart: nothing lost, nothing stored twice,
and duplicates sent only for messages that were on the wire at the kill (and counted)."""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.community.importer import import_pledgemakers
from bot.core.models import Contact, InboundEvent, OutboxMessage, Pledgemaker, Reply, utcnow
from bot.scheduling import runs
from bot.service.app import App, build_app
from bot.settings.config import load_config
from pledgebot_sandbox import SandboxThread
from tests.auxil.cli import PLEDGEBOT
from tests.conftest import SAMPLE_CSV, TOKEN_ENV, cli_env, only_on_demand_campaign, write_config

pytestmark = pytest.mark.crash


def wait_for(check: Callable[[], Any], what: str, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)
    return value


class Bot:
    """`pledgebot run` as a real child process."""

    def __init__(self, folder: Path, token: str) -> None:
        self.folder, self.token = folder, token
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [PLEDGEBOT, "--config", str(self.folder / "config.toml"), "run"],
            cwd=self.folder,
            env=cli_env(**{TOKEN_ENV: self.token}),
            stdout=subprocess.DEVNULL,
            stderr=(self.folder / "run.log").open("ab"),
        )

    def kill9(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def terminate(self) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(30)


@pytest.fixture
def world(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[SandboxThread, App, Bot]]:
    with SandboxThread(overall_rate=5000.0, chat_rate=1000.0, chat_burst=1000) as sandbox:
        monkeypatch.setenv(TOKEN_ENV, sandbox.token)
        only_on_demand_campaign(tmp_path)
        write_config(tmp_path, base_url=sandbox.base_url)
        app = build_app(load_config(tmp_path / "config.toml", required=True))
        app.db.upgrade()
        with app.db.session() as session:
            import_pledgemakers(session, SAMPLE_CSV)
        bot = Bot(tmp_path, sandbox.token)
        yield sandbox, app, bot
        if bot.process is not None and bot.process.poll() is None:
            bot.kill9()
        app.close()


def count(app: App, model: Any, *conditions: Any) -> int:
    with app.db.session() as session:
        return int(session.scalar(select(func.count()).select_from(model).where(*conditions)) or 0)


def bind_chats(app: App, chat_ids: list[int]) -> None:
    """Contacts made directly (binding is tested elsewhere): one pledgemaker per chat."""
    with app.db.session() as session:
        template = session.get(Pledgemaker, "gh-min-labour")
        assert template is not None
        for chat_id in chat_ids:
            pledgemaker_id = f"crash-{chat_id}"
            fields = {c.key: getattr(template, c.key) for c in Pledgemaker.__table__.columns}
            session.add(Pledgemaker(**{**fields, "id": pledgemaker_id, "name": f"Org {chat_id}"}))
        session.flush()
        for chat_id in chat_ids:
            pledgemaker_id = f"crash-{chat_id}"
            session.add(
                Contact(
                    pledgemaker_id=pledgemaker_id,
                    channel="telegram",
                    address=str(chat_id),
                    bound_at=utcnow(),
                )
            )


def test_kill9_while_receiving_500_messages_stores_each_exactly_once(world: Any) -> None:
    sandbox, app, bot = world
    chats = [7001, 7002, 7003, 7004, 7005]
    bind_chats(app, chats)
    spec = app.schedules().get("act-checkin").spec  # an open prompt each: answers do real work
    runs.fire(app.db, app.templates, spec, utcnow(), trigger="manual")
    texts = [f"message {i} — progress ✓" for i in range(500)]

    def user_traffic() -> None:
        for i, text in enumerate(texts):
            sandbox.push_message(chats[i % len(chats)], text)
            if i % 10 == 0:  # ~5 s of traffic: the kill lands while messages still arrive
                time.sleep(0.1)

    pusher = threading.Thread(target=user_traffic)
    bot.start()
    pusher.start()
    wait_for(lambda: count(app, InboundEvent) >= 150, "a good part of the messages to be stored")
    bot.kill9()
    stored_at_kill = count(app, InboundEvent)
    pusher.join()
    assert stored_at_kill < 500, "the kill must land mid-way to prove anything"
    print(
        f"stored at kill: {stored_at_kill}, processed: {count(app, InboundEvent, InboundEvent.processed_at.is_not(None))}"
    )

    bot.start()
    wait_for(
        lambda: (
            count(app, InboundEvent, InboundEvent.processed_at.is_(None)) == 0
            and count(app, Reply) >= 500
        ),
        "all messages to be stored and processed",
    )
    assert bot.terminate() == 0

    with app.db.session() as session:
        stored = list(session.scalars(select(Reply.text)))
        keys = list(session.scalars(select(InboundEvent.event_key)))
    assert Counter(stored) == Counter(texts), "every message stored exactly once"
    assert len(keys) == len(set(keys))
    assert count(app, InboundEvent, InboundEvent.processed_at.is_(None)) == 0
    assert count(app, InboundEvent, InboundEvent.outcome.like("error%")) == 0


def test_kill9_while_sending_500_prompts_delivers_all_duplicates_only_in_flight(world: Any) -> None:
    sandbox, app, bot = world
    chats = list(range(8001, 8501))
    for chat_id in chats:
        sandbox.add_chat(chat_id)
    bind_chats(app, chats)
    spec = app.schedules().get("act-checkin").spec
    fired = runs.fire(app.db, app.templates, spec, utcnow(), trigger="manual")
    assert fired.enqueued == 500
    # Slow the platform a little so the kill lands with sends on the wire.
    sandbox.call("inject_fault", "sendMessage", delay=0.01, times=10_000)

    def delivered() -> int:
        return sum(1 for m in sandbox.sent_messages() if m.get("reply_markup"))

    bot.start()
    wait_for(lambda: delivered() >= 150, "a good part of the prompts to go out")
    bot.kill9()
    in_flight = count(app, OutboxMessage, OutboxMessage.state == "sending")
    sent_at_kill = count(app, OutboxMessage, OutboxMessage.state == "sent")
    assert sent_at_kill < 500, "the kill must land mid-way to prove anything"

    bot.start()
    wait_for(
        lambda: count(app, OutboxMessage, OutboxMessage.state == "sent") == 500,
        "every prompt to be sent",
        timeout=90,
    )
    assert bot.terminate() == 0

    per_chat = Counter(m["chat_id"] for m in sandbox.sent_messages() if m.get("reply_markup"))
    assert set(per_chat) == set(chats), "every prompt delivered"
    duplicates = sum(n - 1 for n in per_chat.values())
    flagged = count(app, OutboxMessage, OutboxMessage.possible_duplicate)
    assert duplicates <= in_flight, f"{duplicates} duplicates but only {in_flight} were in flight"
    assert flagged == in_flight, "each message resent after the crash is counted"
    print(f"sent at kill {sent_at_kill}, in flight {in_flight}, duplicates {duplicates}")
    assert count(app, OutboxMessage, OutboxMessage.state == "failed") == 0
