"""A campaign of 5,000 prompts through a flaky Telegram: `pledgebot run` as a real process
against the sandbox answering 10 % of sendMessage calls with 5xx, 5 % with 429 (retry_after 1 s)
and timing out 2 % (half of those delivered all the same), with 1.5 % of the chats blocked.

Every prompt to a chat that has not blocked the bot arrives; the blocked contacts are marked
gone; nothing is left in the outbox; retries are bounded (≤ 1.3 requests per message); the only
duplicates are retries after timeouts that had delivered; and the run finishes.
"""

from __future__ import annotations

import random
import re
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, insert, select

from bot.community.importer import import_pledgemakers
from bot.core.models import Contact, OutboxMessage, Pledgemaker, utcnow
from bot.scheduling import runs
from bot.service.app import App, build_app
from bot.settings.config import load_config
from pledgebot_sandbox import SandboxThread
from tests.auxil.cli import PLEDGEBOT
from tests.conftest import SAMPLE_CSV, TOKEN_ENV, cli_env, only_on_demand_campaign, write_config

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(360)]

MESSAGES = 5_000  # one prompt per chat
FIRST_CHAT = 100_001
BLOCKED_SHARE = 0.015
SEED = 20_210_612  # the World Day Against Child Labour
FAULTS = {"server_error": 0.10, "rate_limit": 0.05, "timeout": 0.02}
REQUEST_TIMEOUT = 2.0  # the client's read timeout (channels.telegram.request_timeout)
TIMEOUT_HOLD = 3.0  # a timeout fault holds the answer this long: past the read timeout
MAX_REQUESTS_PER_MESSAGE = 1.3
RUN_DEADLINE = 180  # seconds for the whole campaign to be sent


def wait_for(check: Callable[[], Any], what: str, timeout: float, every: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(every)
    return value


@dataclass
class World:
    sandbox: SandboxThread
    app: App
    folder: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [PLEDGEBOT, "--config", str(self.folder / "config.toml"), "run"],
            cwd=self.folder,
            env=cli_env(**{TOKEN_ENV: self.sandbox.token}),
            stdout=subprocess.DEVNULL,
            stderr=(self.folder / "run.log").open("ab"),
        )

    def terminate(self) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(60)

    def count(self, *conditions: Any, model: Any = OutboxMessage) -> int:
        with self.app.db.session() as session:
            query = select(func.count()).select_from(model).where(*conditions)
            return int(session.scalar(query) or 0)


def tune_config(path: Path) -> None:
    """The suite's config, with quick retries and short timeouts for this run."""
    text = path.read_text(encoding="utf-8")
    changes = {
        "[dispatcher]": "[dispatcher]\nbatch_size = 64\nlease_seconds = 60",
        "backoff_base = ": "backoff_base = 0.1",
        "backoff_max = ": "backoff_max = 1",
        "max_attempts = ": "max_attempts = 8",
        "request_timeout = ": f"request_timeout = {REQUEST_TIMEOUT}",
        "max_messages_per_second = ": "max_messages_per_second = 5000",
        "max_messages_per_chat_per_second = ": "max_messages_per_chat_per_second = 100",
    }
    for start, line in changes.items():
        text, found = re.subn(rf"^{re.escape(start)}.*$", line, text, count=1, flags=re.M)
        assert found, f"tests/conftest.py write_config no longer writes {start!r}"
    path.write_text(text, encoding="utf-8")


def bind_chats(app: App, chat_ids: list[int]) -> None:
    """One pledgemaker per chat, copied from a sample one, with an active Telegram contact."""
    with app.db.session() as session:
        template = session.get(Pledgemaker, "gh-min-labour")
        assert template is not None
        fields = {c.key: getattr(template, c.key) for c in Pledgemaker.__table__.columns}
        session.execute(
            insert(Pledgemaker),
            [{**fields, "id": f"fault-{c}", "name": f"Org {c}"} for c in chat_ids],
        )
        now = utcnow()
        session.execute(
            insert(Contact),
            [
                {
                    "pledgemaker_id": f"fault-{c}",
                    "channel": "telegram",
                    "address": str(c),
                    "status": "active",
                    "bound_at": now,
                }
                for c in chat_ids
            ],
        )


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    # The sandbox's own limits are far above the traffic: every 429 is an injected one.
    with SandboxThread(overall_rate=100_000.0, chat_rate=1000.0, chat_burst=1000) as sandbox:
        monkeypatch.setenv(TOKEN_ENV, sandbox.token)
        only_on_demand_campaign(tmp_path)
        tune_config(write_config(tmp_path, base_url=sandbox.base_url))
        app = build_app(load_config(tmp_path / "config.toml", required=True))
        app.db.upgrade()
        with app.db.session() as session:
            import_pledgemakers(session, SAMPLE_CSV)
        world = World(sandbox, app, tmp_path)
        try:
            yield world
        finally:
            if world.process is not None and world.process.poll() is None:
                world.process.kill()
                world.process.wait(10)
            app.close()


def test_5000_prompts_through_5xx_429_timeouts_and_blocked_chats(world: World) -> None:
    sandbox, app = world.sandbox, world.app
    chats = list(range(FIRST_CHAT, FIRST_CHAT + MESSAGES))
    rng = random.Random(SEED)
    blocked = set(rng.sample(chats, round(MESSAGES * BLOCKED_SHARE)))
    for chat_id in chats:
        sandbox.add_chat(chat_id)
    for chat_id in blocked:
        sandbox.block(chat_id)
    bind_chats(app, chats)
    fired = runs.fire(
        app.db, app.templates, app.schedules().get("act-checkin").spec, utcnow(), trigger="manual"
    )
    assert fired.enqueued == MESSAGES
    sandbox.set_fault_rates(
        "sendMessage",
        **FAULTS,
        retry_after=1,
        timeout_delay=TIMEOUT_HOLD,
        timeout_delivered=0.5,
        seed=SEED,
    )

    started = time.monotonic()
    world.start()
    wait_for(
        lambda: world.count(OutboxMessage.state.in_(("pending", "retry_wait", "sending"))) == 0,
        "the outbox to drain",
        timeout=RUN_DEADLINE,
    )
    drained = time.monotonic() - started
    assert world.terminate() == 0, "the run stops cleanly"

    # What the platform saw.
    requests = sandbox.method_calls["sendMessage"]
    faults = sandbox.fault_counts("sendMessage")
    per_chat = sandbox.sent_counts()
    duplicates = sum(n - 1 for n in per_chat.values())
    with app.db.session() as session:
        outcome = {
            row.recipient: (row.state, row.last_error or "", row.possible_duplicate)
            for row in session.scalars(select(OutboxMessage))
        }
        status = dict(session.execute(select(Contact.address, Contact.status)).tuples().all())
    flagged = sum(1 for _, _, maybe in outcome.values() if maybe)
    print(
        f"\n{MESSAGES} messages, {len(blocked)} blocked chats: drained in {drained:.1f} s; "
        f"{requests} sendMessage requests ({requests / MESSAGES:.3f} per message); "
        f"faults {dict(faults)}; duplicates {duplicates}; flagged possible_duplicate {flagged}"
    )

    assert faults["server_error"] > 0 and faults["rate_limit"] > 0 and faults["timeout"] > 0
    assert faults["timeout_delivered"] > 0, "the seed must give some delivered timeouts"
    assert sandbox.rate_limited == faults["rate_limit"], "only injected 429s: limits scaled up"

    # Every deliverable message delivered, and recorded as sent.
    deliverable = [c for c in chats if c not in blocked]
    assert [c for c in deliverable if per_chat[c] == 0] == [], "every deliverable chat reached"
    assert [c for c in deliverable if outcome[str(c)][0] != "sent"] == []
    # Blocked chats: nothing delivered, failed as gone, contact marked gone; the others active.
    assert [c for c in blocked if per_chat[c]] == []
    for chat_id in blocked:
        state, error, _ = outcome[str(chat_id)]
        assert state == "failed" and error.startswith("recipient_gone"), (chat_id, state, error)
        assert status[str(chat_id)] == "gone", chat_id
    assert {status[str(c)] for c in deliverable} == {"active"}
    assert world.count(OutboxMessage.state.in_(("pending", "retry_wait", "sending"))) == 0

    # Retries bounded: no storm.
    assert requests <= MAX_REQUESTS_PER_MESSAGE * MESSAGES, (
        f"{requests} requests for {MESSAGES} messages ({requests / MESSAGES:.3f} per message)"
    )
    # Duplicates only from timeouts that were delivered, each flagged as a possible duplicate.
    assert duplicates <= faults["timeout_delivered"], (duplicates, dict(faults))
    assert duplicates <= flagged
