"""`pledgebot --help` (and the parsing of any command line) loads the command's modules only:
no database, web, scheduling or platform library until a command needs it. bench/startup.py
times it; this names the module that slipped in."""

from __future__ import annotations

import subprocess
import sys

HEAVY = (
    "sqlalchemy",
    "alembic",
    "starlette",
    "apscheduler",
    "jinja2",
    "telegram",
    "tweepy",
    "atproto",
    "nio",
    "mastodon",
    "matplotlib",
    "sklearn",
    "httpx",
)


def test_the_command_line_loads_no_heavy_library_before_a_command_runs() -> None:
    probe = (
        "import sys, bot.cli.main\n"
        f"print(' '.join(sorted(m for m in {HEAVY!r} if m in sys.modules)))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.split() == []
