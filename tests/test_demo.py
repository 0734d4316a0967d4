"""`pledgebot demo` runs the whole loop and prints one `label: number` line per figure."""

from __future__ import annotations

from pathlib import Path

from tests.auxil.cli import pledgebot
from tests.conftest import ROOT


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
