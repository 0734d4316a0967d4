"""Optional libraries: pledgebot's pip extras, and the one line said when one is missing.

A plain ``pip install pledgebot`` is the core: SQLite, the scheduler, the dashboard, and the
channels that need no client library (LinkedIn, Facebook, Instagram, the webhook). Each network's
client library and each heavy feature is an extra of pyproject.toml — ``telegram``, ``x``,
``mastodon``, ``bluesky``, ``matrix``, ``email``, ``reports`` (charts), ``matchmaking``,
``postgresql``, ``redis``; ``all`` is every one. Code that needs one imports it where it is used,
inside ``needs(extra, what)``: without it, that channel or feature is off and says so in one line
naming the extra (``ExtraMissing``), never with a traceback.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from importlib.util import find_spec

from bot.core.errors import UserInputError


class ExtraMissing(UserInputError):
    """A channel or feature whose library (a pip extra of pledgebot) is not installed."""

    exit_code = 2  # as for the configuration: it asks for what this install cannot do

    def __init__(self, what: str, extra: str) -> None:
        self.what, self.extra = what, extra
        super().__init__(f"{what}: {install_hint(extra)}")


def install_hint(extra: str) -> str:
    return f"pip install 'pledgebot[{extra}]'"


def is_library_missing(exc: ModuleNotFoundError) -> bool:
    """Whether an import failed for want of a library (a module outside pledgebot), not for a
    module of pledgebot's own that is not there (a bug, which no install fixes)."""
    top = (exc.name or "").partition(".")[0]
    return top not in ("", "bot")


def importable(module: str) -> bool:
    """Whether ``module`` (a top-level one) can be imported here, asked without importing it."""
    try:
        return find_spec(module) is not None
    except ImportError:  # a finder that refuses it outright
        return False


@contextmanager
def needs(extra: str, what: str) -> Iterator[None]:
    """Wrap the imports of an extra's library: one that is not installed raises
    ``ExtraMissing(what, extra)``, e.g. ``needs("reports", "chart omitted: its library is not
    installed")``."""
    try:
        yield
    except ModuleNotFoundError as exc:
        if not is_library_missing(exc):
            raise
        raise ExtraMissing(what, extra) from None
