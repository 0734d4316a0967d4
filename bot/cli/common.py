"""What every ``pledgebot`` command module shares: the consoles, the global options, opening the
app and writing an ``--output`` file. Below ``bot.cli.main`` and the ``bot.cli_*`` modules, which
all
import it (and it imports none of them).

Light on purpose: ``pledgebot --help`` imports this, so the app, the database and rich's console
are imported only when a command needs them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.core.errors import UserInputError

if TYPE_CHECKING:  # the heavy imports wait for the command that needs them: --help stays fast
    from rich.console import Console

    from bot.service.app import App


class _Console:
    """A rich Console made on first use: ``pledgebot --help`` never imports rich's console."""

    def __init__(self, **options: Any) -> None:
        self._options: dict[str, Any] = options
        self._console: Console | None = None

    @property
    def rich(self) -> Console:
        """The console itself (what rich's prompts take), made on first use."""
        if self._console is None:
            from rich.console import Console

            self._console = Console(**self._options)
        return self._console

    def __getattr__(self, name: str) -> Any:
        return getattr(self.rich, name)


out = _Console(soft_wrap=True)
err = _Console(stderr=True, soft_wrap=True)


class State:
    config_path = Path("config.toml")
    config_given = False
    debug = False
    verbose = 0
    log_format = "text"


def open_app(*, migrate: bool = True) -> App:
    from bot.core.db import LockPatience
    from bot.service.app import build_app
    from bot.settings.config import load_config

    app = build_app(load_config(State.config_path, required=State.config_given))
    app.db.wait_for_lock(LockPatience(LOCK_PATIENCE_SECONDS, _say_waiting))
    if migrate:
        app.db.upgrade()
    return app


LOCK_PATIENCE_SECONDS = 600.0  # a one-shot command waits this long for a busy SQLite database


def _say_waiting() -> None:
    err.print(
        "waiting for the database: another pledgebot process is writing to it "
        "(an import, or run catching up); Ctrl-C to give up",
        markup=False,
    )


def write_output(path: Path, body: bytes) -> None:
    """Write a command's ``--output`` file; a path that cannot be written is one line."""
    try:
        path.write_bytes(body)
    except OSError as exc:
        raise UserInputError(f"cannot write {path}: {exc.strerror or exc}") from None
    err.print(f"wrote {path}", markup=False)
