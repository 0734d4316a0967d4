"""The `pledgebot` command with its clock moved: ``python -m tests.auxil.frozen ISO-TIME ARGS…``.

A test that runs the command in a child process cannot freeze that process's clock from outside;
this starts time-machine at ``ISO-TIME`` (ticking from there) before the command is imported, so
whatever the command reads — ``datetime.now``, ``time.time`` — says that day, whatever day the test
runs on. time-machine 2.19 moves ``time.monotonic`` too; ticking, it stays steady from there, so
asyncio's timers behave as usual.
"""

from __future__ import annotations

import sys
from datetime import datetime

import time_machine


def main() -> None:
    when = datetime.fromisoformat(sys.argv[1])
    sys.argv = ["pledgebot", *sys.argv[2:]]
    with time_machine.travel(when, tick=True):
        from bot.cli.main import main as command

        command()


if __name__ == "__main__":
    main()
