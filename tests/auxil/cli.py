"""Running the `pledgebot` console script as a person would: a child process, stdin not a TTY."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime
from pathlib import Path

from tests.conftest import ROOT, TOKEN_ENV, cli_env

PLEDGEBOT = str(Path(sys.executable).parent / "pledgebot")


def pledgebot(
    cwd: Path,
    *args: str,
    token: str | None = None,
    timeout: float = 60,
    now: datetime | None = None,
    **env: str,
) -> subprocess.CompletedProcess[str]:
    """Run one command; ``token`` sets the bot-token variable (unset when None); ``now`` moves
    the command's clock there (it ticks on from it), for a test whose outcome depends on the day.

    Every run checks what must hold for any command: no traceback, and the token never printed.
    """
    environment = cli_env(**env)
    environment.pop(TOKEN_ENV, None)
    if token is not None:
        environment[TOKEN_ENV] = token
    command = [PLEDGEBOT, *args]
    if now is not None:
        command = [sys.executable, "-m", "tests.auxil.frozen", now.isoformat(), *args]
        environment["PYTHONPATH"] = str(ROOT)
    proc = subprocess.run(
        command,
        cwd=cwd,
        env=environment,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    if token:
        assert token not in proc.stdout + proc.stderr, "the secret's value was printed"
    return proc
