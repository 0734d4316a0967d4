"""Commands a new user gets wrong: one plain line and the documented exit code (2 for the
configuration, 1 otherwise), never a traceback or a silent success."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest

from bot.core.errors import ConfigError
from bot.service.app import build_app
from bot.settings.config import load_config
from tests.auxil.cli import pledgebot
from tests.conftest import TOKEN_ENV, write_config

TOKEN = "123456:TEST-TOKEN-for-errors"


def run_cli(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return pledgebot(cwd, *args, token=TOKEN, **env)


def assert_error(proc: subprocess.CompletedProcess[str], line: str, code: int = 1) -> None:
    assert (proc.returncode, proc.stdout, proc.stderr) == (code, "", line + "\n")


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    write_config(tmp_path)
    assert run_cli(tmp_path, "db", "upgrade").returncode == 0
    return tmp_path


def test_cancelling_a_run_that_does_not_exist(folder: Path) -> None:
    assert_error(
        run_cli(folder, "outbox", "cancel", "--run", "999999"),
        "no run 999999 (see `pledgebot runs list`)",
    )


def test_listing_the_outbox_in_a_state_that_does_not_exist(folder: Path) -> None:
    assert_error(
        run_cli(folder, "outbox", "list", "--state", "bogus"),
        "--state must be one of pending, sending, retry_wait, sent, failed, cancelled "
        "(got 'bogus')",
    )
    assert run_cli(folder, "outbox", "list", "--state", "failed").returncode == 0


@pytest.mark.parametrize(
    "command",
    [("pause", "--channel", "fax"), ("contacts", "invite", "ilo", "--channel", "fax")],
    ids=["pause", "invite"],
)
def test_a_channel_that_does_not_exist_is_called_unknown(
    folder: Path, command: tuple[str, ...]
) -> None:
    proc = run_cli(folder, *command)
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.startswith("unknown channel 'fax' (known: bluesky, email, ")
    assert proc.stderr.count("\n") == 1


@pytest.mark.parametrize(
    "command", [("export", "feed"), ("schedules", "export-ics")], ids=["feed", "ics"]
)
def test_output_to_a_folder_that_does_not_exist(folder: Path, command: tuple[str, ...]) -> None:
    target = "/nonexistent/pledgebot/out.txt"
    assert_error(
        run_cli(folder, *command, "-o", target),
        f"cannot write {target}: No such file or directory",
    )


def test_run_with_the_dashboard_port_taken_is_one_line_exit_2(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        path = write_config(tmp_path)
        text = path.read_text(encoding="utf-8")
        path.write_text(text.replace("port = 0", f"port = {port}"), encoding="utf-8")
        proc = run_cli(tmp_path, "run", timeout=30)
    assert_error(
        proc,
        f"config.toml:10: dashboard.port: cannot serve on 127.0.0.1:{port} (Address already "
        "in use); stop the program using it or choose another [dashboard] host or port",
        2,
    )


def test_a_short_metrics_token_stops_the_dashboard_before_it_starts(tmp_path: Path) -> None:
    write_config(tmp_path)
    proc = run_cli(tmp_path, "web", PLEDGEBOT_METRICS_TOKEN="scrape", timeout=30)
    assert_error(
        proc,
        "config.toml: dashboard.metrics_token_env: environment variable PLEDGEBOT_METRICS_TOKEN "
        "is too short: use at least 16 random characters (e.g. from `openssl rand -hex 16`)",
        2,
    )


EMAIL = """
[channels.email]
enabled = true
from_address = "Action Pledge <pledge@example.org>"
unsubscribe_url = "https://pledge.example.org/unsubscribe/{token}"
"""


def test_a_short_email_signing_key_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    monkeypatch.setenv("PLEDGEBOT_IMAP_PASSWORD", "imap-secret")
    path = write_config(tmp_path, extra=EMAIL)
    app = build_app(load_config(path, required=True))
    try:
        monkeypatch.setenv("PLEDGEBOT_EMAIL_SIGNING_KEY", "key")
        with pytest.raises(ConfigError) as caught:
            app.channel("email")
        assert caught.value.exit_code == 2
        assert str(caught.value) == (
            f"{path}: channels.email.signing_key_env: environment variable "
            "PLEDGEBOT_EMAIL_SIGNING_KEY is too short: use at least 16 random characters "
            "(e.g. from `openssl rand -hex 16`)"
        )
        monkeypatch.setenv("PLEDGEBOT_EMAIL_SIGNING_KEY", "k" * 16)
        assert app.channel("email") is not None
    finally:
        app.close()
