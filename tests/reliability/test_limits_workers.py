"""Telegram's limits hold as Telegram sees them across real processes (issue 16): three
`pledgebot worker` processes on PostgreSQL, counting in Redis, one of them killed with SIGKILL a
third of the way and restarted (its new connections open cold), send to 110 chats — 20 of them
get two messages. From the sandbox's arrival log: at most 30 in every sliding second, and never
two in one chat within a second (a resend after the kill included)."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from bot.core.models import OutboxMessage
from bot.delivery.messages import PlannedMessage
from bot.delivery.outbox import OPEN_STATES, enqueue
from bot.service.app import build_app
from bot.settings.config import load_config
from pledgebot_sandbox import SandboxThread
from pledgebot_sandbox._telegram_state import busiest_window, closest_in_one_chat
from tests.conftest import TOKEN_ENV, only_on_demand_campaign, write_config
from tests.reliability._procs import Proc, count, tune_config, use_database, wait_for

pytestmark = [pytest.mark.reliability, pytest.mark.crash]

REDIS_URL = "redis://127.0.0.1:6379/15"
REDIS_ENV = "PLEDGEBOT_LIMITS_TEST_REDIS_URL"
WORKERS = 3
SINGLES = list(range(610_001, 610_091))  # one message each
PAIRS = list(range(620_001, 620_021))  # two each: the second is claimed once the first is sent
TELEGRAM_PER_SECOND = 30


@pytest.fixture
def redis_available() -> None:
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.RedisError as exc:
        if os.environ.get("CI") == "true":
            raise RuntimeError(f"CI needs Redis at 127.0.0.1:6379 ({exc})") from exc
        pytest.skip(f"Redis is not reachable at 127.0.0.1:6379 ({exc}); CI runs these")
    finally:
        client.close()


@pytest.fixture
def sandbox() -> Iterator[SandboxThread]:
    # A token of its own (its Redis keys are this test's); the sandbox never refuses: the
    # arrival log is the judge.
    token = f"{secrets.randbelow(10**9) + 1}:LIMITS-{secrets.token_hex(4)}"
    with SandboxThread(
        token=token, overall_rate=10_000.0, chat_rate=1_000.0, chat_burst=1_000
    ) as sandbox:
        yield sandbox


@pytest.mark.timeout(240)
def test_three_workers_and_a_kill_keep_telegrams_limits_where_messages_arrive(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    sandbox: SandboxThread,
    postgres_database: str,
    redis_available: None,
) -> None:
    monkeypatch.setenv(TOKEN_ENV, sandbox.token)
    monkeypatch.setenv(REDIS_ENV, REDIS_URL)
    only_on_demand_campaign(tmp_path)
    path = write_config(tmp_path, base_url=sandbox.base_url)
    use_database(path, postgres_database)
    tune_config(
        path,
        {
            "dispatcher": {"batch_size": 16, "lease_seconds": 4, "poll_interval": 0.1},
            "ratelimit": {"backend": "redis", "redis_url_env": REDIS_ENV},
            "channels.telegram": {  # Telegram's documented limits, not the suite's loose ones
                "request_timeout": 2,
                "max_messages_per_second": TELEGRAM_PER_SECOND,
                "max_messages_per_chat_per_second": 1,
            },
        },
    )
    app = build_app(load_config(path, required=True))
    app.db.upgrade()
    for chat in SINGLES + PAIRS:
        sandbox.add_chat(chat)
    planned = [PlannedMessage(f"limits:1:{c}", "telegram", str(c), "Hello") for c in SINGLES]
    planned += [
        PlannedMessage(f"limits:{n}:{c}", "telegram", str(c), f"Part {n}")
        for c in PAIRS
        for n in (1, 2)
    ]
    with app.db.session() as session:
        enqueue(session, planned)
    workers = [Proc(tmp_path, "worker", sandbox.token, f"worker-{n}") for n in range(WORKERS)]
    logs = lambda: "\n".join(f"--- {w.name}\n{w.tail()}" for w in workers)  # noqa: E731
    try:
        for worker in workers:
            worker.start()
        wait_for(
            lambda: len(sandbox.call("arrivals")) >= len(planned) // 3,
            f"a third of the messages sent\n{logs()}",
            timeout=90,
            every=0.02,
        )
        workers[0].kill9()
        workers[0].start()  # a fresh process: its first connections open as it sends
        wait_for(
            lambda: count(app, OutboxMessage, OutboxMessage.state.in_(OPEN_STATES)) == 0,
            f"the outbox to drain\n{logs()}",
            timeout=120,
        )
        for worker in workers:  # the exit status is the crash suites' to check, not this one's
            worker.terminate()
    finally:
        for worker in workers:
            worker.cleanup()
        app.close()
    arrivals = sandbox.call("arrivals")
    most = busiest_window([at for at, _ in arrivals])
    closest = closest_in_one_chat(arrivals)
    print(
        f"\n{WORKERS} workers, 1 kill: {len(arrivals)} messages arrived "
        f"({len(planned)} planned); busiest second {most}; closest in one chat {closest:.3f} s"
    )
    assert {chat for _, chat in arrivals} == set(SINGLES + PAIRS)
    assert len(arrivals) >= len(planned)
    assert most <= TELEGRAM_PER_SECOND
    assert closest >= 1.0
