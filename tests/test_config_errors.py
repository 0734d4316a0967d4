"""config.toml mistakes: one line on stderr naming file and key, exit 2, no traceback, no changes.

Also: secrets come only from the environment, only commands that talk to a channel need them, and
the secret's value never shows up in any output.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bot.channels.registry import known_channels
from bot.community.importer import import_pledgemakers
from bot.core.errors import ConfigError
from bot.core.models import InviteToken, Pledgemaker
from bot.service.app import build_app
from bot.settings.config import load_config
from tests.auxil.cli import PLEDGEBOT, pledgebot
from tests.conftest import SAMPLE_CSV, TOKEN_ENV, cli_env, write_config

TOKEN = "123456:TEST-TOKEN-not-for-printing"


def run_cli(
    cwd: Path, *args: str, token: str | None = TOKEN, **env: str
) -> subprocess.CompletedProcess[str]:
    """Run the console script; ``token=None`` runs it with the secret variable unset."""
    return pledgebot(cwd, *args, token=token, **env)


def edit_config(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in the generated config"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def count(config_path: Path, model: type) -> int:
    app = build_app(load_config(config_path, required=True))
    try:
        with app.db.session() as session:
            return int(session.scalar(select(func.count()).select_from(model)) or 0)
    finally:
        app.close()


def import_sample(config_path: Path) -> None:
    app = build_app(load_config(config_path, required=True))
    try:
        app.db.upgrade()
        with app.db.session() as session:
            import_pledgemakers(session, SAMPLE_CSV)
    finally:
        app.close()


def assert_one_line_error(proc: subprocess.CompletedProcess[str], line: str, code: int) -> None:
    assert proc.returncode == code, proc.stderr
    assert proc.stdout == ""
    assert "Traceback" not in proc.stderr
    assert proc.stderr == line + "\n"


# -- one bad value, one line -----------------------------------------------------------------------
BAD_CONFIGS = {
    "bad-token-env": (
        (f'token_env = "{TOKEN_ENV}"', 'token_env = "not a valid name!"'),
        "config.toml:19: channels.telegram.token_env: must be the name of an environment variable "
        "(letters, digits, _), not the secret itself (got 'not a valid name!')",
    ),
    "unknown-key": (
        ('url = "sqlite:///pledgebot.db"', 'urll = "sqlite:///pledgebot.db"'),
        "config.toml:4: unknown key 'urll' in [database] (did you mean 'url'?)",
    ),
    "unknown-channel-table": (
        ("[channels.telegram]", "[channels.whatsapp]\nenabled = true\n[channels.telegram]"),
        "config.toml:17: channels.whatsapp: unknown channel (known: "
        + ", ".join(known_channels())
        + ")",
    ),
    "unknown-channel-key": (
        ("poll_timeout = 1", "poll_timeout = 1\npoll_timout = 2"),
        "config.toml:22: unknown key 'poll_timout' in [channels.telegram] "
        "(did you mean 'poll_timeout'?)",
    ),
    "bad-timezone": (
        ('timezone = "UTC"', 'timezone = "Mars/Olympus_Mons"'),
        "config.toml:2: timezone: unknown time zone 'Mars/Olympus_Mons'",
    ),
    "enabled-as-a-string": (
        ("enabled = true", 'enabled = "yes"'),
        "config.toml:18: channels.telegram.enabled: Input should be a valid boolean (got 'yes')",
    ),
    "boolean-for-a-number": (
        ("[dispatcher]", "[conversation]\nanswer_window_minutes = true\n[dispatcher]"),
        "config.toml:13: conversation.answer_window_minutes: Input should be a valid number "
        "(got True)",
    ),
    "base-url-not-a-url": (
        ('base_url = "http://127.0.0.1:9/bot"', 'base_url = "not a url"'),
        "config.toml:20: channels.telegram.base_url: not an http(s) URL like "
        "'https://api.example.org/' (got 'not a url')",
    ),
    "invalid-toml": (
        ("[database]", "[database"),
        "config.toml: not valid TOML: Expected ']' at the end of a table declaration "
        "(at line 3, column 10)",
    ),
}


@pytest.mark.parametrize("case", ["bad-token-env", "unknown-key"])
def test_bad_config_is_one_line_exit_2_and_touches_nothing(tmp_path: Path, case: str) -> None:
    (old, new), expected = BAD_CONFIGS[case]
    edit_config(write_config(tmp_path), old, new)
    proc = run_cli(tmp_path, "import", "pledgemakers", str(SAMPLE_CSV))
    assert_one_line_error(proc, expected, 2)
    assert not (tmp_path / "pledgebot.db").exists(), "a bad config must not create the database"


@pytest.mark.parametrize("case", list(BAD_CONFIGS))
def test_every_bad_config_is_a_config_error_naming_file_and_key(tmp_path: Path, case: str) -> None:
    """What the CLI prints is str(ConfigError); its exit code is 2 (see the two CLI runs above)."""
    (old, new), expected = BAD_CONFIGS[case]
    path = write_config(tmp_path)
    edit_config(path, old, new)
    with pytest.raises(ConfigError) as caught:
        load_config(path, required=True)
    assert caught.value.exit_code == 2
    assert str(caught.value) == expected.replace("config.toml", str(path), 1)
    assert "\n" not in str(caught.value)


def test_missing_config_file_given_with_config_is_an_error(tmp_path: Path) -> None:
    proc = run_cli(tmp_path, "--config", "missing.toml", "status")
    assert_one_line_error(proc, "missing.toml: file not found", 2)
    assert list(tmp_path.iterdir()) == []


# -- the secret --------------------------------------------------------------------------------------
def test_unset_secret_fails_only_commands_that_use_the_channel(tmp_path: Path) -> None:
    write_config(tmp_path)
    upgrade = run_cli(tmp_path, "db", "upgrade", token=None)
    assert upgrade.returncode == 0, upgrade.stderr
    imported = run_cli(tmp_path, "import", "pledgemakers", str(SAMPLE_CSV), token=None)
    assert imported.returncode == 0, imported.stderr
    assert imported.stdout == "pledgemakers created: 40\npledgemakers updated: 0\n"
    checked = run_cli(tmp_path, "schedules", "check", token=None)
    assert checked.returncode == 0, checked.stderr

    invite = run_cli(tmp_path, "contacts", "invite", "gh-min-labour", token=None)
    assert_one_line_error(
        invite,
        f"config.toml: channels.telegram.token_env: environment variable {TOKEN_ENV} "
        "is not set (it holds the secret)",
        2,
    )
    assert count(tmp_path / "config.toml", InviteToken) == 0


def test_a_disabled_channel_needs_no_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_config(tmp_path)
    edit_config(path, "enabled = true", "enabled = false")
    edit_config(path, f'token_env = "{TOKEN_ENV}"', 'token_env = "PLEDGEBOT_TEST_NEVER_SET"')
    monkeypatch.delenv("PLEDGEBOT_TEST_NEVER_SET", raising=False)
    app = build_app(load_config(path, required=True))
    try:
        assert app.config.enabled_channels() == []
        assert app.enabled_channels() == {}
        with pytest.raises(ConfigError) as caught:
            app.channel("telegram")  # what `contacts invite` asks for: refused, no secret read
        assert str(caught.value) == f"{path}: channels.telegram.enabled: the channel is not enabled"
    finally:
        app.close()

    status = run_cli(tmp_path, "status", token=None)
    assert status.returncode == 0, status.stderr
    assert "channel telegram: disabled" in status.stdout.splitlines()


# -- relative paths ----------------------------------------------------------------------------------
def test_relative_database_url_resolves_against_the_config_folder(tmp_path: Path) -> None:
    sub = tmp_path / "sub"
    sub.mkdir()
    write_config(sub)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    proc = run_cli(
        elsewhere, "--config", "../sub/config.toml", "import", "pledgemakers", str(SAMPLE_CSV)
    )
    assert proc.returncode == 0, proc.stderr
    assert (sub / "pledgebot.db").is_file()
    assert list(elsewhere.iterdir()) == []
    assert not (tmp_path / "pledgebot.db").exists()
    assert count(sub / "config.toml", Pledgemaker) == 40

    config = load_config(sub / "config.toml", required=True)
    assert config.database_url == f"sqlite:///{(sub / 'pledgebot.db').resolve()}"
    assert config.path("schedules") == sub.resolve() / "schedules"


# -- the secret's value never leaks -------------------------------------------------------------------
PASTED = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"


def test_token_pasted_into_the_file_is_masked_in_the_error(tmp_path: Path) -> None:
    edit_config(write_config(tmp_path), f'token_env = "{TOKEN_ENV}"', f'token_env = "{PASTED}"')
    proc = run_cli(tmp_path, "status", token=PASTED)
    assert proc.returncode == 2
    assert PASTED not in proc.stdout + proc.stderr
    assert "AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw" not in proc.stderr
    assert proc.stderr == (
        "config.toml:19: channels.telegram.token_env: must be the name of an environment variable "
        "(letters, digits, _), not the secret itself (got '***')\n"
    )


def test_unreachable_channel_error_never_shows_the_token(tmp_path: Path) -> None:
    """write_config points base_url at a closed port and sets no bot_username."""
    path = write_config(tmp_path)
    secret = "a-long-secret-that-is-not-token-shaped"
    import_sample(path)
    proc = run_cli(tmp_path, "-vv", "contacts", "invite", "gh-min-labour", token=secret)
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert secret not in proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.splitlines()[-1].startswith("cannot reach telegram to learn the bot's")
    assert count(path, InviteToken) == 0, "no link printed, so no usable token is left behind"


async def test_token_rejected_by_the_server_is_masked(tmp_path: Path) -> None:
    """python-telegram-bot puts the token in its InvalidToken message; it must be scrubbed."""
    import asyncio

    from pledgebot_sandbox import TelegramSandbox

    sandbox = TelegramSandbox()
    await sandbox.start()
    try:
        import_sample(write_config(tmp_path, base_url=sandbox.base_url))
        wrong = "wrong-secret-value-xyz"  # not token-shaped: masked because it was read as a secret
        proc = await asyncio.create_subprocess_exec(
            str(PLEDGEBOT),
            "contacts",
            "invite",
            "gh-min-labour",
            cwd=tmp_path,
            env=cli_env(**{TOKEN_ENV: wrong}),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    finally:
        await sandbox.stop()
    stdout, stderr = out.decode(), err.decode()
    assert proc.returncode == 1, stderr
    assert stdout == ""
    assert wrong not in stderr
    assert stderr == (
        "cannot reach telegram to learn the bot's username (Telegram rejected the bot token "
        "(The token `***` was rejected by the server.); check token_env); "
        "set channels.telegram.bot_username in the config\n"
    )
    assert count(tmp_path / "config.toml", InviteToken) == 0


def test_a_disabled_stub_section_without_its_url_is_fine_and_an_ipv6_url_is_a_url(
    tmp_path: Path,
) -> None:
    """`[channels.mastodon] enabled = false` with nothing else (a stub for later) is no error;
    once enabled, its URL must be one — and a bracketed IPv6 address is one."""
    path = write_config(tmp_path, extra="[channels.mastodon]\nenabled = false\n")
    assert run_cli(tmp_path, "status").returncode == 0
    edit_config(path, 'base_url = "http://127.0.0.1:9/bot"', 'base_url = "http://[::1]:9/bot"')
    done = run_cli(tmp_path, "status")
    assert done.returncode == 0, done.stderr
    edit_config(path, "[channels.mastodon]\nenabled = false", "[channels.mastodon]\nenabled = true")
    enabled = run_cli(tmp_path, "status")
    assert enabled.returncode == 2, enabled.stderr
    assert enabled.stderr.startswith("config.toml:") and "channels.mastodon" in enabled.stderr
    assert "api_base_url" in enabled.stderr and enabled.stderr.count("\n") == 1
