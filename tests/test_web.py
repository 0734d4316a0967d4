"""Health and metrics: what an operator's monitoring reads, from any process."""

from __future__ import annotations

import socket
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import time_machine
from starlette.testclient import TestClient

from bot.core.models import CampaignControl, ChannelState
from bot.delivery import outbox
from bot.delivery.messages import PlannedMessage
from bot.service.app import App
from bot.web.app import build
from tests.auxil.cli import PLEDGEBOT, pledgebot
from tests.conftest import TOKEN_ENV, cli_env

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def test_health_and_metrics_report_queue_depth_and_failures(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PLEDGEBOT_METRICS_TOKEN", "scrape-token")
    with app.db.session() as session:
        outbox.enqueue(
            session,
            [PlannedMessage(f"h:{i}", "telegram", str(100 + i), "hi") for i in range(3)],
        )
        outbox.mark_failed(session, 1, "rejected: message is too long")
    client = TestClient(build(app))
    health = client.get("/healthz")
    assert health.status_code == 200
    body = health.json()
    assert body["status"] == "ok" and body["database"] == "ok"
    assert body["outbox"]["telegram"] == {"pending": 2, "failed": 1}
    metrics = client.get("/metrics", headers={"authorization": "Bearer scrape-token"})
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    lines = metrics.text.splitlines()
    assert 'pledgebot_outbox_messages{channel="telegram",state="pending"} 2.0' in lines
    assert 'pledgebot_outbox_messages{channel="telegram",state="failed"} 1.0' in lines
    assert any(line.startswith("pledgebot_inbox_unprocessed ") for line in lines)


@time_machine.travel(NOW, tick=False)
@pytest.mark.parametrize("app", ["sqlite"], indirect=True)
def test_public_health_gives_counts_only_and_the_details_need_a_sign_in_or_the_token(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PLEDGEBOT_METRICS_TOKEN", "scrape-token")
    leak = "535 5.7.8 Authentication failed for campaign@mail.example.org"
    with app.db.session() as session:
        session.add_all(
            [
                ChannelState(
                    channel="email",
                    last_ok_at=NOW - timedelta(hours=1),
                    last_error_at=NOW,
                    last_error=leak,
                ),
                ChannelState(
                    channel="telegram", last_ok_at=NOW, last_error_at=NOW - timedelta(hours=1)
                ),
                CampaignControl(campaign_id="act-checkin", paused=True),
            ]
        )
    client = TestClient(build(app))
    public = client.get("/healthz")
    assert public.status_code == 200
    for secret in (leak, "sqlite", "pledgebot.db", "act-checkin", "email"):
        assert secret not in public.text
    body = public.json()
    assert body["channels_failing"] == 1 and body["paused"] == 1
    assert client.get("/healthz/details").status_code == 401
    wrong = client.get("/healthz/details", headers={"authorization": "Bearer nope"})
    assert wrong.status_code == 401 and leak not in wrong.text
    details = client.get("/healthz/details", headers={"authorization": "Bearer scrape-token"})
    assert details.status_code == 200
    full = details.json()
    assert full["channels"]["email"]["last_error"] == leak
    assert full["paused"] == ["act-checkin"] and "pledgebot.db" in full["database"]
    assert full["outbox"] == body["outbox"]


@pytest.mark.parametrize("app", ["sqlite"], indirect=True)
def test_health_says_503_when_the_database_is_gone(app: App, tmp_path: Path) -> None:
    app.db.dispose()
    (tmp_path / "pledgebot.db").unlink()
    (tmp_path / "pledgebot.db").mkdir()  # not a database any more
    health = TestClient(build(app)).get("/healthz")
    assert health.status_code == 503
    assert health.json() == {"status": "error", "database": "unreachable"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("app", ["sqlite"], indirect=True)
def test_pledgebot_web_serves_health_until_stopped(app: App, tmp_path: Path) -> None:
    """On a port of its own (`--port`) when the configured one is taken: a second process on
    one host."""
    port = _free_port()
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    config = tmp_path / "config.toml"
    config.write_text(
        config.read_text(encoding="utf-8").replace("port = 0", f"port = {taken.getsockname()[1]}"),
        encoding="utf-8",
    )
    process = subprocess.Popen(
        [PLEDGEBOT, "web", "--port", str(port)],
        cwd=tmp_path,
        env={k: v for k, v in cli_env().items() if k != TOKEN_ENV},  # web needs no bot token
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                break
            except httpx.TransportError:
                assert process.poll() is None, process.stderr and process.stderr.read()
                assert time.monotonic() < deadline, "pledgebot web did not come up"
                time.sleep(0.1)
        assert response.status_code == 200 and response.json()["status"] == "ok"
        page = httpx.get(f"http://127.0.0.1:{port}/outbox", timeout=2)
        assert page.status_code == 303 and page.headers["location"] == "/login?next=/outbox"
        signin = httpx.get(f"http://127.0.0.1:{port}/login", timeout=2)
        assert signin.status_code == 200 and "<h1>Sign in</h1>" in signin.text
    finally:
        process.terminate()
        _, logs = process.communicate(timeout=30)
        taken.close()
    assert process.returncode == 0
    assert f"dashboard on http://127.0.0.1:{port}/" in logs


@pytest.mark.parametrize("app", ["sqlite"], indirect=True)
def test_a_taken_port_stops_pledgebot_web_with_a_clear_error(app: App, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = tmp_path / "config.toml"
        config.write_text(
            config.read_text(encoding="utf-8").replace("port = 0", f"port = {port}"),
            encoding="utf-8",
        )
        result = pledgebot(tmp_path, "web")
        ran = pledgebot(tmp_path, "run")
    for done in (result, ran):  # a configuration problem: one line naming the key, exit 2
        assert done.returncode == 2, done.stderr
        assert done.stderr.count("\n") == 1, done.stderr
        assert done.stderr.startswith("config.toml:")
        assert f"dashboard.port: cannot serve on 127.0.0.1:{port}" in done.stderr
