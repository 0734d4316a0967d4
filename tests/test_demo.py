"""`pledgebot demo` runs the whole loop and prints one `label: number` line per figure."""

from __future__ import annotations

import re
import signal
import subprocess
import time
from pathlib import Path

import httpx

from tests.auxil.cli import PLEDGEBOT, pledgebot
from tests.conftest import ROOT, cli_env


def test_demo_runs_the_whole_loop_and_prints_a_summary(tmp_path: Path) -> None:
    done = pledgebot(
        tmp_path,
        "--config",
        str(ROOT / "config.toml"),
        "demo",
        "--folder",
        str(tmp_path),
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    lines = dict(line.split(": ", 1) for line in done.stdout.splitlines())
    assert lines["pledgemakers imported"] == "40"
    assert lines["invitations accepted"] == "40"
    assert lines["prompts sent"] == "40"
    assert int(lines["replies stored"]) > int(lines["journey updates"]) > 0
    assert int(lines["updates act"]) == int(lines["journey updates"])
    assert int(lines["updates with media"]) > 0 and int(lines["prompts snoozed"]) > 0
    assert lines["opted out"] == "1" and lines["messages failed"] == "0"
    assert int(lines["consents given"]) > 0 and int(lines["consents declined"]) > 0
    assert lines["posts on X"] == lines["posts on the Telegram channel"] == "3"
    assert int(lines["X posts incl. thread parts"]) > 3, "a long answer became a thread"
    assert lines["thank-yous with a link to the post"] == "6"
    assert Path(lines["database"]).is_file()
    assert Path(lines["database"]).parent == tmp_path


def test_demo_then_serves_the_dashboard_on_its_data_until_interrupted(tmp_path: Path) -> None:
    """`pledgebot demo --dashboard`: the loop, then the dashboard (any free port) with a
    sign-in made for the demo; Ctrl-C stops everything cleanly."""
    config = tmp_path / "config.toml"
    config.write_text(
        (ROOT / "config.toml").read_text(encoding="utf-8").replace("port = 8080", "port = 0"),
        encoding="utf-8",
    )
    for folder in ("templates", "schedules", "data"):
        (tmp_path / folder).symlink_to(ROOT / folder)
    process = subprocess.Popen(
        [PLEDGEBOT, "--config", str(config), "demo", "--dashboard", "--folder", "demo"],
        cwd=tmp_path,
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        deadline = time.monotonic() + 240
        seen = []
        while not any(line.startswith("dashboard: http") for line in seen):
            assert time.monotonic() < deadline and process.poll() is None, "".join(seen)
            seen.append(process.stderr.readline())
        found = re.search(r"dashboard: (http://\S+) — sign in as (\S+) with (\S+) ", seen[-1])
        assert found is not None, seen[-1]
        url, email, password = found.groups()
        with httpx.Client(base_url=url, follow_redirects=True) as browser:
            form = browser.get("/login").text
            token = re.search(r'name="csrf" value="([^"]+)"', form)
            assert token is not None
            signed = browser.post(
                "/login", data={"csrf": token.group(1), "email": email, "password": password}
            )
            assert signed.status_code == 200
            report = browser.get("/reports.csv", params={"by": "channel"}).text
            assert report.splitlines()[1].startswith("telegram,40,"), "40 prompts sent"
            assert browser.get("/inbox").text.count('id="reply-') >= 30, "the replies stored"
        process.send_signal(signal.SIGINT)
        output, errors = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, errors
    assert "Traceback" not in errors
    assert "pledgemakers imported: 40" in output
