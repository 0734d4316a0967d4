"""Logging to stderr, with secrets scrubbed from every record.

Bot API URLs carry the token (``…/bot<TOKEN>/sendMessage``), and client libraries log URLs:
the filter masks every secret pledgebot has read, and anything shaped like a bot token.
"""

from __future__ import annotations

import logging
import re
import warnings

from rich.console import Console
from rich.logging import RichHandler

TOKEN_SHAPE = re.compile(r"\b\d{3,}:[A-Za-z0-9_-]{10,}")
# Secrets read from the environment this process; a set so the filter needs no wiring per channel.
_SECRETS: set[str] = set()


def register_secret(value: str) -> None:
    if len(value) >= 6:
        _SECRETS.add(value)


def scrub(text: str) -> str:
    for secret in _SECRETS:
        text = text.replace(secret, "***")
    return TOKEN_SHAPE.sub("***", text)


class ScrubSecrets(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = scrub(record.getMessage())
        record.args = ()
        return True


def setup_logging(verbose: int = 0) -> None:
    level = logging.DEBUG if verbose > 1 else logging.INFO if verbose else logging.WARNING
    handler = RichHandler(
        console=Console(stderr=True), show_path=False, rich_tracebacks=False, markup=False
    )
    handler.addFilter(ScrubSecrets())
    logging.basicConfig(level=level, handlers=[handler], format="%(message)s", force=True)
    for noisy in ("httpx", "httpcore", "apscheduler", "telegram", "aiohttp.access", "alembic"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
    # PTB 22 warns on every RetryAfter while its type moves to timedelta; we read it either way.
    warnings.filterwarnings("ignore", message=".*retry_after.*")
    # PTB logs every 429 as an ERROR with a traceback; the dispatcher reschedules it and says so.
    logging.getLogger("telegram.ext.AIORateLimiter").setLevel(logging.CRITICAL)
