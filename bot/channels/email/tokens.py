"""Signed tokens of the email channel: HMAC-SHA256 of the ``signing_key``, one purpose prefix
each so a token made for one use never verifies for another; compared in constant time.

``reply_token`` (the plus-address and Message-ID of a prompt: links an answer to its outbox
message), ``invite_code`` (an expiring email invitation), ``unsubscribe_token`` (a one-click URL).
Pure: no network, no clock unless given one.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Mapping
from datetime import datetime

from pydantic import SecretStr

REPLY_MAC_CHARS = 16  # 80 bits, lower-case base32: survives MTAs that lower-case local parts
INVITE_MAC_CHARS = 20


def _mac(key: bytes, purpose: str, payload: str, chars: int) -> str:
    digest = hmac.new(key, f"{purpose}\x00{payload}".encode(), hashlib.sha256).digest()
    return base64.b32encode(digest).decode().lower().rstrip("=")[:chars]


def reply_token(key: bytes, outbox_id: int) -> str:
    """``<outbox id>-<mac>``: the plus-address tag of a prompt (``pledge+42-k3…@example.org``)."""
    return f"{outbox_id}-{_mac(key, 'reply', str(outbox_id), REPLY_MAC_CHARS)}"


def read_reply_token(key: bytes, token: str) -> int | None:
    """The outbox id in a reply token, or None if it is not one we signed."""
    match = re.fullmatch(r"(\d{1,18})-([a-z2-7]+)", token.strip().lower())
    if match is None:
        return None
    expected = _mac(key, "reply", match[1], REPLY_MAC_CHARS)
    return int(match[1]) if hmac.compare_digest(expected, match[2]) else None


def message_id_for(key: bytes, outbox_id: int, idempotency_key: str, domain: str) -> str:
    """A prompt's Message-ID: the reply token (so an ``In-Reply-To`` links to it too) and a hash
    of the idempotency key. The same outbox message always gets the same Message-ID, so a resend
    after a crash is recognised as the same mail (Gmail and others keep one copy)."""
    stable = hashlib.sha256((idempotency_key or f"outbox:{outbox_id}").encode()).hexdigest()[:12]
    return f"<pledge.{reply_token(key, outbox_id)}.{stable}@{domain}>"


def outbox_id_in_message_ids(key: bytes, header: str, domain: str) -> int | None:
    """The outbox id of the first of our Message-IDs in an ``In-Reply-To``/``References``."""
    for found in re.findall(r"<([^<>@\s]+)@([^<>\s]+)>", header or ""):
        local, host = found
        if host.lower() != domain.lower():
            continue
        parts = local.split(".")
        if len(parts) == 3 and parts[0] == "pledge":
            outbox_id = read_reply_token(key, parts[1])
            if outbox_id is not None:
                return outbox_id
    return None


class InviteCodeError(ValueError):
    """An invitation code that is not ours (``reason="invalid"``) or too old (``"expired"``)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"invitation code {reason}")


# Not \b: a token may begin with "-", which \b would cut off (and the code would not verify).
INVITE_CODE = re.compile(
    r"(?<![A-Za-z0-9_-])([A-Za-z0-9_-]{8,64})\.([0-9a-z]{1,10})\.([a-z2-7]{20})(?![A-Za-z0-9])"
)


def invite_code(key: bytes, token: str, expires_at: datetime) -> str:
    """``<invitation token>.<expiry, base-36 Unix seconds>.<mac>``: signed and expiring, so a
    mistyped or forged code is refused without a database look-up (the token itself stays
    single use in ``bot.community.contacts``)."""
    if not re.fullmatch(r"[A-Za-z0-9_-]{8,64}", token):
        raise ValueError("an invitation token is 8-64 characters of A-Za-z0-9_-")
    expiry = _base36(int(expires_at.timestamp()))
    return f"{token}.{expiry}.{_mac(key, 'invite', f'{token}.{expiry}', INVITE_MAC_CHARS)}"


def read_invite_code(key: bytes, code: str, now: datetime) -> str:
    """The invitation token in a code; raises ``InviteCodeError`` if it is tampered or expired."""
    match = INVITE_CODE.fullmatch(code.strip())
    if match is None:
        raise InviteCodeError("invalid")
    token, expiry, mac = match.groups()
    if not hmac.compare_digest(_mac(key, "invite", f"{token}.{expiry}", INVITE_MAC_CHARS), mac):
        raise InviteCodeError("invalid")
    if int(expiry, 36) <= now.timestamp():
        raise InviteCodeError("expired")
    return token


def find_invite_code(text: str) -> str | None:
    """The first thing shaped like an invitation code in a subject or a body."""
    match = INVITE_CODE.search(text or "")
    return match[0] if match else None


def unsubscribe_token(key: bytes, address: str) -> str:
    """For a one-click unsubscribe URL: the address (base64url) and its mac."""
    address = address.strip().lower()
    encoded = base64.urlsafe_b64encode(address.encode()).decode().rstrip("=")
    return f"{encoded}.{_mac(key, 'unsubscribe', address, REPLY_MAC_CHARS)}"


def read_unsubscribe_token(key: bytes, token: str) -> str | None:
    encoded, _, mac = token.partition(".")
    try:
        address = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    expected = _mac(key, "unsubscribe", address, REPLY_MAC_CHARS)
    return address if hmac.compare_digest(expected, mac) else None


def _base36(value: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        value, rest = divmod(value, 36)
        out = digits[rest] + out
        if not value:
            return out


def read_unsubscribe(secrets: Mapping[str, SecretStr], token: str) -> str | None:
    """The address in a one-click unsubscribe token signed with the channel's ``signing_key``
    (its spec's reader: no mail library needed), or None if we did not sign it."""
    key = secrets.get("signing_key")
    return None if key is None else read_unsubscribe_token(key.get_secret_value().encode(), token)
