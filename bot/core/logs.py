"""Logging to stderr, with secrets scrubbed from every record.

Bot API URLs carry the token (``…/bot<TOKEN>/sendMessage``), and client libraries log URLs:
the filter masks every secret pledgebot has read, and anything shaped like a bot token.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import warnings
from datetime import UTC, datetime

# A Telegram bot token, also where a URL glues it to "bot" (…/bot123456:AA…/sendMessage).
TOKEN_SHAPE = re.compile(r"(?<![0-9])\d{3,}:[A-Za-z0-9_-]{10,}")
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


class JsonLines(logging.Formatter):
    """One JSON object per line, for log shippers: time, level, logger, message (scrubbed)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
        }
        if record.exc_info:
            entry["error"] = scrub(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False)


def setup_logging(verbose: int = 0, log_format: str = "text") -> None:
    level = logging.DEBUG if verbose > 1 else logging.INFO if verbose else logging.WARNING
    handler: logging.Handler
    if log_format == "json":
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonLines())
    else:
        from rich.console import Console
        from rich.logging import RichHandler

        handler = RichHandler(
            console=Console(stderr=True), show_path=False, rich_tracebacks=False, markup=False
        )
    handler.addFilter(ScrubSecrets())
    logging.basicConfig(level=level, handlers=[handler], format="%(message)s", force=True)
    # requests_oauthlib and oauthlib log OAuth keys and signatures at DEBUG.
    for noisy in (
        "httpx",
        "httpcore",
        "apscheduler",
        "telegram",
        "aiohttp.access",
        "alembic",
        "requests_oauthlib",
        "oauthlib",
    ):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
    # PTB 22 warns on every RetryAfter while its type moves to timedelta; we read it either way.
    warnings.filterwarnings("ignore", message=".*retry_after.*")
