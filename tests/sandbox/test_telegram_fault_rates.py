"""Random fault injection in the Telegram sandbox: seeded, counted, and reachable from every
way of driving the sandbox (in-process, ``SandboxThread``, control surface, command line)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
import telegram
from telegram.error import TimedOut

from pledgebot_sandbox import SandboxThread, TelegramSandbox

pytestmark = pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")

FAST = {"overall_rate": 100_000.0, "chat_rate": 100_000.0, "chat_burst": 100_000}
REPO = Path(__file__).resolve().parents[2]
CHAT = 42


@pytest_asyncio.fixture
async def sandbox() -> AsyncIterator[TelegramSandbox]:
    sandbox = TelegramSandbox(**FAST)
    await sandbox.start()
    sandbox.add_chat(CHAT)
    try:
        yield sandbox
    finally:
        await sandbox.stop()


async def statuses(sandbox: TelegramSandbox, n: int, *, timeout: float = 5) -> list[int]:
    """``n`` sendMessage calls one after another; the HTTP status of each."""
    url = f"{sandbox.base_url}{sandbox.token}/sendMessage"
    seen = []
    async with httpx.AsyncClient(timeout=timeout) as http:
        for i in range(n):
            answer = await http.post(url, json={"chat_id": CHAT, "text": f"m{i}"})
            seen.append(answer.status_code)
    return seen


@pytest.mark.asyncio
async def test_rates_are_seeded_counted_and_roughly_kept(sandbox: TelegramSandbox) -> None:
    rates = {"server_error": 0.10, "rate_limit": 0.05, "timeout": 0.02}
    sandbox.set_fault_rates("sendMessage", **rates, timeout_delay=0.01, seed=7)
    first = await statuses(sandbox, 1000)
    sandbox.set_fault_rates("SENDMESSAGE", **rates, timeout_delay=0.01, seed=7)  # same draws again
    again = await statuses(sandbox, 1000)
    assert first == again, "the same seed gives the same faults in the same order"

    counts = sandbox.fault_counts("sendMessage")
    assert counts["server_error"] == 2 * sum(s in (500, 502, 503) for s in first)
    assert counts["rate_limit"] == 2 * first.count(429) == sandbox.rate_limited
    assert counts["timeout"] == 2 * (first.count(504) + counts["timeout_delivered"] // 2)
    assert 60 <= counts["server_error"] / 2 <= 140
    assert 25 <= counts["rate_limit"] / 2 <= 75
    assert 5 <= counts["timeout"] / 2 <= 40
    assert {500, 502, 503} <= set(first)
    # Only served calls and timeouts that were carried out reach the chat.
    assert sandbox.sent_counts() == Counter({CHAT: first.count(200) * 2})
    assert sandbox.method_calls["sendMessage"] == 2000
    assert sandbox.fault_counts() == counts and sandbox.fault_counts("getMe") == Counter()

    sandbox.set_fault_rates("sendMessage")  # all rates 0: faults stop
    assert await statuses(sandbox, 20) == [200] * 20


@pytest.mark.asyncio
async def test_a_timeout_is_delivered_or_lost_as_drawn(sandbox: TelegramSandbox) -> None:
    sandbox.set_fault_rates(timeout=1.0, timeout_delay=0.5, timeout_delivered=0.5, seed=3)
    async with telegram.Bot(sandbox.token, base_url=sandbox.base_url) as bot:
        results = await asyncio.gather(
            *(bot.send_message(CHAT, f"t{i}", read_timeout=0.1) for i in range(12)),
            return_exceptions=True,
        )
    assert all(isinstance(r, TimedOut) for r in results), results
    counts = sandbox.fault_counts("sendMessage")
    assert counts["timeout"] == 12
    assert 0 < counts["timeout_delivered"] < 12, "the seed gives both outcomes"
    await asyncio.sleep(0.6)  # the lost ones are never carried out, even after the hold
    assert len(sandbox.sent_messages(CHAT)) == counts["timeout_delivered"]


@pytest.mark.asyncio
async def test_a_client_that_waits_out_a_lost_timeout_gets_504(sandbox: TelegramSandbox) -> None:
    sandbox.set_fault_rates(timeout=1.0, timeout_delay=0.05, timeout_delivered=0.0)
    assert await statuses(sandbox, 3) == [504] * 3
    sandbox.set_fault_rates(timeout=1.0, timeout_delay=0.05, timeout_delivered=1.0)
    assert await statuses(sandbox, 3) == [200] * 3  # slow, but carried out and answered
    assert sandbox.fault_counts("sendMessage") == Counter(timeout=6, timeout_delivered=3)


@pytest.mark.asyncio
async def test_scripted_faults_come_first_and_other_methods_are_untouched(
    sandbox: TelegramSandbox,
) -> None:
    sandbox.set_fault_rates(server_error=1.0)
    sandbox.inject_fault("sendMessage", retry_after=3)
    first, second = await statuses(sandbox, 2)
    assert first == 429 and second in (500, 502, 503)
    async with httpx.AsyncClient() as http:
        answer = await http.get(f"{sandbox.base_url}{sandbox.token}/getMe")
    assert answer.status_code == 200
    assert sandbox.fault_counts("sendMessage") == Counter(scripted=1, server_error=1)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"server_error": 0.6, "rate_limit": 0.5}, "at most 1"),
        ({"timeout": -0.1}, "probability"),
        ({"timeout": 0.1, "timeout_delivered": 2}, "probability"),
        ({"rate_limit": 0.1, "retry_after": 0}, "at least 1"),
        ({"rate_limit": 0.1, "retry_after": 1.5}, "whole number"),
        ({"timeout": 0.1, "timeout_delay": 0}, "positive"),
    ],
)
def test_bad_rates_are_refused(kwargs: dict[str, float], error: str) -> None:
    sandbox = TelegramSandbox()
    with pytest.raises(ValueError, match=error):
        sandbox.set_fault_rates("sendMessage", **kwargs)
    with pytest.raises(ValueError, match="does not implement"):
        sandbox.set_fault_rates("sendTelepathy", server_error=0.1)


def test_fault_rates_from_a_thread_and_the_control_surface() -> None:
    with SandboxThread(**FAST) as tg:
        tg.add_chat(CHAT)
        tg.set_fault_rates("sendMessage", rate_limit=1.0, retry_after=9, seed=1)
        url = f"{tg.base_url}{tg.token}/sendMessage"
        control = f"http://127.0.0.1:{tg.port}/_sandbox"
        with httpx.Client() as http:
            answer = http.post(url, json={"chat_id": CHAT, "text": "a"})
            assert answer.status_code == 429
            assert answer.json()["parameters"] == {"retry_after": 9}
            assert http.post(f"{control}/fault_rates", json={"server_error": 1.0}).json() == {
                "ok": True
            }
            assert http.post(url, json={"chat_id": CHAT, "text": "b"}).status_code >= 500
            answer = http.post(f"{control}/fault_rates", json={"server_error": 2.0})
            assert answer.status_code == 400 and "probability" in answer.json()["error"]
            http.post(f"{control}/fault_rates", json={"method": "sendMessage"})  # off again
            assert http.post(url, json={"chat_id": CHAT, "text": "c"}).status_code == 200
            stats = http.get(f"{control}/stats").json()
        assert stats == {
            "method_calls": {"sendMessage": 3},
            "rate_limited": 1,
            "faults": {"sendMessage": {"rate_limit": 1, "server_error": 1}},
            "sent_per_chat": {str(CHAT): 1},
        }
        assert tg.stats() == stats
        assert tg.fault_counts() == Counter(rate_limit=1, server_error=1)
        assert tg.sent_counts() == Counter({CHAT: 1})


def test_python_m_bot_sandbox_fault_flags() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(
        [sys.executable, "-m", "pledgebot_sandbox", "--port", "0", "--fault-5xx", "1"],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO,
    )
    try:
        assert process.stdout is not None
        lines = dict(process.stdout.readline().strip().split("=", 1) for _ in range(4))
        url = f"{lines['base_url']}{lines['token']}"
        httpx.post(f"{lines['control_url']}/message", json={"chat_id": CHAT, "text": "hi"})
        answer = httpx.post(f"{url}/sendMessage", json={"chat_id": CHAT, "text": "x"})
        assert answer.status_code in (500, 502, 503)
        assert httpx.get(f"{url}/getMe").status_code == 200
        stats = httpx.get(f"{lines['control_url']}/stats").json()
        assert stats["faults"] == {"sendMessage": {"server_error": 1}}
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0

    refused = subprocess.run(
        [sys.executable, "-m", "pledgebot_sandbox", *("--fault-5xx", "0.8", "--fault-429", "0.5")],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=30,
    )
    assert refused.returncode == 2 and "at most 1" in refused.stderr
