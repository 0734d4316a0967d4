"""Browser tests: Playwright driving Debian's headless Chromium against a real `pledgebot web`.

The server is the real command in its own process, on a temporary SQLite database with the
sample pledgemakers and three users made with `pledgebot users add`. Screenshots go to
``$PLEDGEBOT_ARTIFACTS`` (default ``test-artifacts/`` in the repo).

Where Chromium (``apt-get install chromium``) or axe-core (``make axe``) is missing, these
tests skip with the reason; under ``CI=true`` they fail instead, because CI must run them.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.auxil.cli import PLEDGEBOT
from tests.conftest import ROOT, SAMPLE_CSV, cli_env, write_config

CHROMIUM = Path("/usr/bin/chromium")
AXE = ROOT / ".cache" / "npm" / "node_modules" / "axe-core" / "axe.min.js"
ARTIFACTS = Path(os.environ.get("PLEDGEBOT_ARTIFACTS", ROOT / "test-artifacts"))
PASSWORD = "correct-horse-battery-staple"
USERS = {
    "admin@example.org": "admin",
    "editor@example.org": "editor",
    "viewer@example.org": "viewer",
}


def _missing(what: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{what} (CI must run the browser tests; .ci/run installs it)")
    pytest.skip(what)


@dataclass
class Dashboard:
    url: str
    folder: Path
    process: subprocess.Popen[str]

    def cli(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [PLEDGEBOT, *args],
            cwd=self.folder,
            env=cli_env(**env),
            capture_output=True,
            text=True,
            timeout=60,
        )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def dashboard(tmp_path: Path) -> Iterator[Dashboard]:
    port = _free_port()
    config = write_config(tmp_path, extra='post_chat_id = "@pledge_news"')  # posts on Telegram
    config.write_text(
        config.read_text(encoding="utf-8").replace("port = 0", f"port = {port}"), encoding="utf-8"
    )
    for email, role in USERS.items():
        result = subprocess.run(
            [PLEDGEBOT, "users", "add", email, "--role", role, "--password-env", "PW"],
            cwd=tmp_path,
            env=cli_env(PW=PASSWORD),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
    imported = subprocess.run(
        [PLEDGEBOT, "import", "pledgemakers", str(SAMPLE_CSV)],
        cwd=tmp_path,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert imported.returncode == 0, imported.stderr
    process = subprocess.Popen(
        [PLEDGEBOT, "web"],
        cwd=tmp_path,
        env=cli_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(f"{url}/healthz", timeout=2)
            break
        except httpx.TransportError:
            assert process.poll() is None, process.stderr and process.stderr.read()
            assert time.monotonic() < deadline, "pledgebot web did not come up"
            time.sleep(0.1)
    yield Dashboard(url, tmp_path, process)
    process.terminate()
    _, logs = process.communicate(timeout=30)
    assert process.returncode == 0, logs
    assert "Traceback" not in logs, logs


@pytest.fixture(scope="module")  # not longer: Playwright's loop must be gone before other files
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        _missing(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--disable-background-networking", "--disable-component-update"],
        )
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    tab = context.new_page()
    yield tab
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
    tab.screenshot(path=str(ARTIFACTS / f"{name}-last.png"), full_page=True)
    context.close()


def sign_in(page: Any, dashboard: Dashboard, email: str, next_: str = "/") -> None:
    page.goto(f"{dashboard.url}/login?next={next_}")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r"^(?!.*/login).*$"))


def axe_violations(page: Any) -> list[dict[str, Any]]:
    """axe-core's serious and critical violations on the page as it is now."""
    if not AXE.exists():
        _missing(f"axe-core is not installed at {AXE} (make axe)")
    page.evaluate(AXE.read_text(encoding="utf-8"))  # not a <script>: the page's CSP forbids it
    result = page.evaluate("async () => await axe.run(document)")
    return [v for v in result["violations"] if v.get("impact") in ("serious", "critical")]
