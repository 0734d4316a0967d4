"""Optional extras: each network's client library and each heavy feature is a pip extra of
pledgebot. Without it, that channel or feature is off with one line naming the extra — never a
traceback — and the rest works: config files are still checked, other channels still send, the
figures come without their chart, the digest without new match suggestions.

A missing library is simulated the real way: the command runs in a child process in which what
the extra would install cannot be imported (``tests/auxil/without.py``). That each channel's spec
names the extra its folder's imports need is checked from the source.
"""

from __future__ import annotations

import ast
import importlib.metadata as metadata
import json
import subprocess
import sys
import time
from datetime import timedelta
from functools import cache
from importlib import import_module
from pathlib import Path
from typing import Any

import pytest
from packaging.utils import canonicalize_name
from sqlalchemy import select

from bot.channels import registry
from bot.core.models import OutboxMessage
from bot.delivery import claiming, outbox
from bot.delivery.messages import PlannedMessage
from bot.service.app import build_app
from bot.settings.config import load_config
from pledgebot_sandbox import SandboxThread
from tests.auxil import without
from tests.conftest import ROOT, TOKEN_ENV, cli_env, only_on_demand_campaign, write_config

NAMES = registry.known_channels()
WORKER = ("--log-format", "json", "worker")
WITH_EXTRA = [name for name in NAMES if registry.spec(name).extra]


def run_without(extras: str, cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``pledgebot ARGS`` in a child process in which these extras are not installed."""
    environment = cli_env(PYTHONPATH=str(ROOT), COLUMNS="200", **env)
    done = subprocess.run(
        [sys.executable, "-m", "tests.auxil.without", extras, *args],
        cwd=cwd,
        env=environment,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "Traceback" not in done.stderr, done.stderr
    return done


def log_records(stderr: str) -> list[dict[str, Any]]:
    """The JSON log lines (``--log-format json``) among the lines on stderr."""
    return [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]


def hint(extra: str) -> str:
    return f"pip install 'pledgebot[{extra}]'"


def off(name: str) -> str:
    extra = registry.spec(name).extra
    return f"channel {name} is enabled but its library is not installed: {hint(extra or '')}"


# -- the extras agree with the channels -----------------------------------------------------------
def _third_party_imports(folder: Path) -> set[str]:
    """Top-level modules the folder's code imports (at the top or in a function), but for the
    standard library's and pledgebot's own."""
    found: set[str] = set()
    for path in folder.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found |= {alias.name.partition(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.partition(".")[0])
    return {m for m in found if m not in sys.stdlib_module_names and m not in ("bot", "__future__")}


@cache
def _distributions() -> dict[str, list[str]]:
    return metadata.packages_distributions()


def _providers(module: str) -> set[str]:
    return {canonicalize_name(d) for d in _distributions().get(module, [])}


@pytest.mark.parametrize("name", NAMES)
def test_each_channel_spec_names_the_extra_its_imports_need(name: str) -> None:
    spec = registry.spec(name)
    imported = _third_party_imports(ROOT / "bot" / "channels" / name)
    core = without.core()
    brings = without.brought_by([spec.extra]) if spec.extra else set()
    unprovided = {m for m in imported if not _providers(m) & (core | brings)}
    assert unprovided == set(), f"{name} imports these, which neither the core nor its extra has"
    needed = {m for m in imported if not _providers(m) & core}
    library = getattr(import_module(f"bot.channels.{name}.settings"), "LIBRARY", None)
    if spec.extra is None:
        assert needed == set() and library is None
        return
    assert spec.extra in without.EXTRAS, f"pyproject.toml has no extra {spec.extra!r}"
    assert needed, f"{name} imports nothing of its extra: it needs none"
    assert library in needed, "its settings' LIBRARY is what registry.unavailable looks for"


def test_all_is_every_extra_and_dev_installs_all() -> None:
    named = {e for e in without.EXTRAS if e not in ("all", "dev")}
    assert {canonicalize_name(r) for r in without.extra_requirements("all")} == {
        canonicalize_name(r) for e in named for r in without.EXTRAS[e]
    }
    assert "pledgebot[all]" in without.EXTRAS["dev"]
    assert {registry.spec(n).extra for n in WITH_EXTRA} <= named


def test_settings_models_are_the_adapters_and_import_no_client_library() -> None:
    script = (
        "import sys\n"
        "from tests.auxil.without import block\n"
        "block(['all'])\n"
        "from bot.channels import registry\n"
        "for name in registry.known_channels():\n"
        "    registry.settings_model(name).model_validate({'enabled': False})\n"
        "print('ok')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.stdout.strip() == "ok", done.stderr
    for name in NAMES:
        assert registry.settings_model(name) is registry.adapter_class(name).Settings


# -- a plain install ------------------------------------------------------------------------------
def test_without_any_extra_every_module_but_those_adapters_imports() -> None:
    """What a plain `pip install pledgebot` can import: everything, but the parts of a
    channel's folder that talk to its platform through its client library."""
    script = (
        "import json, pkgutil, importlib\n"
        "from tests.auxil.without import block\n"
        "block(['all'])\n"
        "import bot\n"
        "failed = {}\n"
        "for found in pkgutil.walk_packages(bot.__path__, 'bot.'):\n"
        "    try:\n"
        "        importlib.import_module(found.name)\n"
        "    except ModuleNotFoundError as exc:\n"
        "        failed[found.name] = exc.name\n"
        "print(json.dumps(failed))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    failed: dict[str, str] = json.loads(done.stdout)
    assert failed, "the simulation blocked nothing"
    for module, missing in failed.items():
        parts = module.split(".")
        assert parts[:2] == ["bot", "channels"] and parts[2] in WITH_EXTRA, module
        assert parts[3] not in ("spec", "settings"), f"{module} must import no client library"
        extra = registry.spec(parts[2]).extra or ""
        brings = without.modules_of(without.brought_by([extra]))
        assert missing.partition(".")[0] in brings, f"{module} needs {missing}, not its extra"


def test_a_config_enabling_every_channel_is_checked_without_their_libraries(
    tmp_path: Path,
) -> None:
    tables = {
        "telegram": "",
        "x": "",
        "email": "",
        "matrix": 'homeserver = "https://matrix.example.org"',
        "mastodon": 'api_base_url = "https://mastodon.social"',
        "bluesky": 'handle = "pledgebot.bsky.social"',
        "linkedin": 'organization_id = "2414183"',
        "facebook": 'page_id = "1"',
        "instagram": 'ig_user_id = "1"',
        "webhook": 'url = "https://receiver.example.org/hook"',
    }
    assert set(tables) == set(NAMES)
    only_on_demand_campaign(tmp_path)
    config = f'[paths]\ntemplates = "{ROOT / "templates"}"\n'
    config += "".join(f"[channels.{n}]\nenabled = true\n{more}\n" for n, more in tables.items())
    (tmp_path / "config.toml").write_text(config, encoding="utf-8")

    checked = run_without("all", tmp_path, "schedules", "check")
    assert checked.returncode == 0, checked.stderr
    warned = [line for line in checked.stderr.splitlines() if "library" in line]
    assert warned == [f"warning: {off(name)}" for name in tables if name in WITH_EXTRA]
    assert "campaign(s)" in checked.stdout

    status = run_without("all", tmp_path, "status")
    assert status.returncode == 0, status.stderr
    lines = dict(line.split(": ", 1) for line in status.stdout.splitlines() if ": " in line)
    for name in NAMES:
        said = lines[f"channel {name}"]
        assert said.startswith(f"OFF, its messages wait ({off(name)})") == (name in WITH_EXTRA)


# -- a channel that is off ------------------------------------------------------------------------
def test_telegram_sends_while_bluesky_is_off_and_its_messages_wait(tmp_path: Path) -> None:
    bluesky = '[channels.bluesky]\nenabled = true\nhandle = "pledgebot.bsky.social"\n'
    with SandboxThread() as sandbox:
        write_config(tmp_path, base_url=sandbox.base_url, extra=bluesky)
        sandbox.add_chat(9001)
        app = build_app(load_config(tmp_path / "config.toml", required=True))
        app.db.upgrade()
        with app.db.session() as session:
            outbox.enqueue(
                session,
                [
                    PlannedMessage("extras:telegram", "telegram", "9001", "Hello from Telegram"),
                    PlannedMessage("extras:bluesky", "bluesky", "timeline", "A post for Bluesky"),
                ],
            )
        env = cli_env(PYTHONPATH=str(ROOT), **{TOKEN_ENV: sandbox.token})
        worker = subprocess.Popen(
            [sys.executable, "-m", "tests.auxil.without", "bluesky", *WORKER],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            deadline = time.monotonic() + 60
            while not [m for m in sandbox.sent_messages(9001) if "Telegram" in m.get("text", "")]:
                assert worker.poll() is None, "the worker stopped"
                assert time.monotonic() < deadline, "Telegram's message was not sent"
                time.sleep(0.1)
        finally:
            worker.terminate()
            _, logs = worker.communicate(timeout=30)
        status = run_without("bluesky", tmp_path, "status", **{TOKEN_ENV: sandbox.token})
    assert worker.returncode == 0, logs
    assert "Traceback" not in logs
    said = [r["message"] for r in log_records(logs) if "library" in r["message"]]
    assert said == [off("bluesky")]
    with app.db.session() as session:
        rows = {m.channel: m for m in session.scalars(select(OutboxMessage))}
        assert rows["telegram"].state == "sent"
        waiting = rows["bluesky"]
        assert (waiting.state, waiting.attempts, waiting.last_error) == ("pending", 0, None)
        # Still due: a worker that has the library takes it as it would have.
        taken = claiming.claim(session, channels=["bluesky"], limit=5, lease=timedelta(seconds=60))
        assert [c.message.id for c in taken] == [waiting.id]
        session.rollback()
    app.close()
    assert status.returncode == 0, status.stderr
    assert f"channel bluesky: OFF, its messages wait ({off('bluesky')})" in status.stdout
    assert "outbox pending: 1" in status.stdout


# -- features -------------------------------------------------------------------------------------
def test_a_report_without_matplotlib_prints_its_figures_and_says_why_no_chart(
    tmp_path: Path,
) -> None:
    write_config(tmp_path)
    done = run_without("reports", tmp_path, "report", "--format", "csv", "--chart", "out.png")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("pillar,prompts_sent,")
    assert done.stderr.splitlines() == [
        f"chart omitted: its library is not installed: {hint('reports')}"
    ]
    assert not (tmp_path / "out.png").exists()


DIGEST = """[[campaign]]
id = "weekly-digest"
kind = "digest"
cron = "0 8 * * mon"
timezone = "Europe/Zurich"
to = { telegram = "-1001234567890" }
"""


def test_a_digest_without_matplotlib_and_scikit_learn_goes_out_without_chart_and_matches(
    tmp_path: Path,
) -> None:
    (tmp_path / "schedules").mkdir()
    (tmp_path / "schedules" / "digest.toml").write_text(DIGEST, encoding="utf-8")
    write_config(tmp_path)
    fired = run_without(
        "reports,matchmaking",
        tmp_path,
        *("--log-format", "json", "campaign", "fire", "weekly-digest", "--yes"),
    )
    assert fired.returncode == 0, fired.stderr
    assert "queued 1" in fired.stdout, "the figures, without the chart that would follow them"
    said = [r["message"] for r in log_records(fired.stderr)]
    assert said == [
        "matchmaking is off (no new suggestions): its libraries are not installed: "
        + hint("matchmaking"),
        f"digest weekly-digest: chart omitted: its library is not installed: {hint('reports')}",
    ]
    assert not (tmp_path / "media" / "digest").exists()

    listed = run_without("matchmaking", tmp_path, "--log-format", "json", "matches", "list")
    assert listed.returncode == 0, listed.stderr
    assert [r["message"] for r in log_records(listed.stderr)] == said[:1]


def test_a_postgresql_url_without_its_driver_is_one_line_and_exit_2(tmp_path: Path) -> None:
    write_config(tmp_path)
    config = tmp_path / "config.toml"
    url = "postgresql+psycopg://pledgebot:s3cret@db.internal/pledgebot"
    text = config.read_text(encoding="utf-8").replace("sqlite:///pledgebot.db", url)
    config.write_text(text, encoding="utf-8")
    done = run_without("postgresql", tmp_path, "status")
    assert done.returncode == 2
    (line,) = done.stderr.splitlines()
    assert line.startswith(
        "config.toml:4: database.url: its driver (psycopg) is not installed: " + hint("postgresql")
    ), line
    assert "s3cret" not in line


def test_a_redis_backend_without_its_library_is_one_line_and_exit_2(tmp_path: Path) -> None:
    write_config(tmp_path, extra='[ratelimit]\nbackend = "redis"\n')
    env = {"PLEDGEBOT_REDIS_URL": "redis://127.0.0.1:9/0", TOKEN_ENV: "123456:TEST-TOKEN"}
    done = run_without("redis", tmp_path, "worker", **env)
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"[ratelimit] backend is redis but its library is not installed: {hint('redis')}"
    ]


def test_the_dashboards_chart_without_matplotlib_is_one_sentence_not_an_error(
    tmp_path: Path,
) -> None:
    write_config(tmp_path)
    script = (
        "import sys\n"
        "from tests.auxil.without import block\n"
        "block(['reports'])\n"
        "from starlette.requests import Request\n"
        "from bot.service.app import build_app\n"
        "from bot.settings.config import load_config\n"
        "from bot.web.reports_page import reports_chart\n"
        "app = build_app(load_config(sys.argv[1], required=True))\n"
        "app.db.upgrade()\n"
        "scope = {'type': 'http', 'query_string': b'by=channel', 'headers': []}\n"
        "answer = reports_chart(Request(scope), app)\n"
        "print(answer.status_code, answer.body.decode())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "config.toml")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (
        f"404 Chart omitted: its library is not installed: {hint('reports')}."
    )
