"""SMTP replies as ``bot.core.errors``: 4xx → ``TransientError`` (``RateLimited`` when the
server says to slow down), 550/551/553 to a recipient → ``RecipientGone``, 552/554 →
``Rejected``, 530/535 → ``ChannelUnauthorized``, connection problems and timeouts →
``TransientError``."""

from __future__ import annotations

import re

import aiosmtplib

from bot.core.errors import (
    ChannelUnauthorized,
    DeliveryError,
    RateLimited,
    RecipientGone,
    Rejected,
    TransientError,
)

RATE_WORDS = (
    "rate limit", "rate-limit", "ratelimit", "too many messages", "too many mails",
    "too many emails", "too many connections", "throttl", "slow down", "sending limit",
    "sending quota",
)  # fmt: skip
GONE_STATUS = re.compile(r"\b5\.(1\.[0-9]|2\.1)\b")  # bad mailbox, mailbox disabled


def smtp_error(exc: aiosmtplib.SMTPException) -> DeliveryError:
    """An SMTP failure as the error the dispatcher understands."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused) and exc.recipients:
        exc = exc.recipients[0]
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        code, text = exc.code, " ".join(str(exc.message).split())
        said = f"SMTP {code} {text}"
        if isinstance(exc, aiosmtplib.SMTPAuthenticationError) or code in (530, 534, 535):
            return ChannelUnauthorized(f"{said} (check smtp_username / smtp_password_env)")
        if 400 <= code < 500:
            delay = _retry_after(text)
            if delay is not None or any(word in text.lower() for word in RATE_WORDS):
                return RateLimited(delay if delay is not None else 60.0, said)
            return TransientError(said)
        recipient_refused = isinstance(exc, aiosmtplib.SMTPRecipientRefused)
        if (recipient_refused and code in (550, 551, 553)) or GONE_STATUS.search(text):
            return RecipientGone(said)
        return Rejected(said)
    plain = type(exc) is aiosmtplib.SMTPException  # aiosmtplib's own "not offered" checks
    said = str(exc).lower()
    if isinstance(exc, aiosmtplib.SMTPNotSupported) or (
        plain and ("not supported" in said or "authentication method" in said)
    ):
        # STARTTLS or AUTH not offered: a setting to fix, not a message to retry.
        return ChannelUnauthorized(f"SMTP: {exc} (check smtp_starttls / smtp_ssl / smtp_port)")
    if isinstance(exc, aiosmtplib.SMTPConnectError):
        return TransientError(f"SMTP: cannot connect ({exc})")
    if isinstance(exc, aiosmtplib.SMTPTimeoutError | aiosmtplib.SMTPServerDisconnected):
        # The mail may have been accepted just before the connection dropped.
        return TransientError(f"SMTP: {exc}", maybe_delivered=True)
    return TransientError(f"SMTP: {exc}")


def _retry_after(text: str) -> float | None:
    match = re.search(r"(\d+)\s*(s|sec|seconds?|m|min|minutes?)\b", text, re.IGNORECASE)
    if match is None:
        return None
    value = float(match[1])
    return value * 60 if match[2].lower().startswith("m") else value
