"""Health and metrics: what an operator's monitoring reads, from any process."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from starlette.testclient import TestClient

from bot import outbox
from bot.app import App
from bot.campaigns.base import PlannedMessage
from bot.web.app import build
from tests.auxil.cli import PLEDGEBOT, pledgebot
from tests.conftest import TOKEN_ENV, cli_env


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
    assert body["status"] == "ok"
    assert body["outbox"]["telegram"] == {"pending": 2, "failed": 1}
    assert "password" not in body["database"]
    metrics = client.get("/metrics", headers={"authorization": "Bearer scrape-token"})
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    lines = metrics.text.splitlines()
    assert 'pledgebot_outbox_messages{channel="telegram",state="pending"} 2.0' in lines
    assert 'pledgebot_outbox_messages{channel="telegram",state="failed"} 1.0' in lines
    assert any(line.startswith("pledgebot_inbox_unprocessed ") for line in lines)


@pytest.mark.parametrize("app", ["sqlite"], indirect=True)
def test_health_says_503_when_the_database_is_gone(app: App, tmp_path: Path) -> None:
    app.db.dispose()
    (tmp_path / "pledgebot.db").unlink()
    (tmp_path / "pledgebot.db").mkdir()  # not a database any more
    health = TestClient(build(app)).get("/healthz")
    assert health.status_code == 503
    assert health.json()["status"] == "error"
    assert "Traceback" not in health.text


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("app", ["sqlite"], indirect=True)
def test_pledgebot_web_serves_health_until_stopped(app: App, tmp_path: Path) -> None:
    port = _free_port()
    config = tmp_path / "config.toml"
    config.write_text(
        config.read_text(encoding="utf-8").replace("port = 0", f"port = {port}"), encoding="utf-8"
    )
    process = subprocess.Popen(
        [PLEDGEBOT, "web"],
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
    assert result.returncode == 1
    assert f"web: cannot serve on 127.0.0.1:{port}" in result.stderr
