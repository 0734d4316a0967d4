"""The ``[channels.email]`` table: the campaign's addresses, its SMTP and IMAP servers, signing,
invitations and pacing. Secrets are named (``*_env``), never held.

Answers come to tagged reply addresses (``pledge+<tag>@example.org`` by default): a prompt's
signed token, ``join`` (an invitation's mailto) or ``unsubscribe`` (List-Unsubscribe).
"""

from __future__ import annotations

import re
from email.utils import parseaddr

from pydantic import Field, field_validator, model_validator

from bot.channels.settings import ChannelSettings
from bot.core.env import EnvVarName

# The client library the adapter imports (aiosmtplib, the email extra): whether it is installed
# is asked without importing it (registry.unavailable).
LIBRARY = "aiosmtplib"

UNSUBSCRIBE_TAG = "unsubscribe"
JOIN_TAG = "join"


class EmailSettings(ChannelSettings):
    from_address: str = "Action Pledge <pledge@example.org>"
    # Where answers go: "{token}" is replaced by a signed tag per prompt. Default: the From
    # mailbox with "+{token}" (plus-addressing), e.g. "pledge+{token}@example.org".
    reply_address: str | None = None
    subject: str | None = None  # one subject for every mail; default: the text's first line
    smtp_host: str = "localhost"
    smtp_port: int = Field(default=587, gt=0, lt=65536)
    smtp_starttls: bool = True
    smtp_ssl: bool = False  # implicit TLS (port 465)
    smtp_username: str | None = None
    smtp_password_env: EnvVarName | None = None
    imap_host: str = "localhost"
    imap_port: int = Field(default=993, gt=0, lt=65536)
    imap_ssl: bool = True
    imap_starttls: bool = False
    imap_username: str | None = None  # default: the From address
    imap_password_env: EnvVarName = "PLEDGEBOT_IMAP_PASSWORD"
    imap_folder: str = "INBOX"
    signing_key_env: EnvVarName = "PLEDGEBOT_EMAIL_SIGNING_KEY"
    # One-click unsubscribe (RFC 8058), e.g. "https://pledge.example.org/unsubscribe/{token}";
    # "{token}" is the recipient's signed address (tokens.unsubscribe_token).
    unsubscribe_url: str | None = None
    invite_valid_days: int = Field(default=30, gt=0)
    request_timeout: float = Field(default=20, gt=0)
    poll_interval: float = Field(default=30, ge=0)  # seconds between looks at an empty mailbox
    poll_batch: int = Field(default=50, gt=0)  # messages per poll
    max_messages_per_second: float = Field(default=5, gt=0)
    min_image_bytes: int = Field(default=4096, ge=0)  # smaller inline images: logos, icons

    @field_validator("from_address")
    @classmethod
    def _has_mailbox(cls, value: str) -> str:
        if not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", parseaddr(value)[1]):
            raise ValueError("must be an address, e.g. 'Action Pledge <pledge@example.org>'")
        return value

    @field_validator("reply_address")
    @classmethod
    def _has_token(cls, value: str | None) -> str | None:
        if value is not None and (
            value.count("{token}") != 1
            or not re.fullmatch(r"[^@\s]+@[^@\s]+", value.replace("{token}", "t"))
        ):
            raise ValueError("must be an address with {token} once, e.g. pledge+{token}@x.org")
        return value

    @field_validator("unsubscribe_url")
    @classmethod
    def _is_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("https://", "http://")):
            raise ValueError("must be an http(s) URL")
        return value

    @model_validator(mode="after")
    def _one_tls_mode(self) -> EmailSettings:
        if self.smtp_ssl and self.smtp_starttls:
            raise ValueError("smtp_ssl and smtp_starttls: choose one")
        if self.imap_ssl and self.imap_starttls:
            raise ValueError("imap_ssl and imap_starttls: choose one")
        if self.smtp_username and not self.smtp_password_env:
            raise ValueError("smtp_username needs smtp_password_env")
        return self

    def mailbox(self) -> str:
        return parseaddr(self.from_address)[1].lower()

    def domain(self) -> str:
        return self.mailbox().rpartition("@")[2]

    def reply_template(self) -> str:
        if self.reply_address:
            return self.reply_address
        local, _, domain = self.mailbox().partition("@")
        return f"{local}+{{token}}@{domain}"

    def tagged(self, tag: str) -> str:
        """The reply address with ``tag`` in it (a prompt's signed token, ``join``, …)."""
        return self.reply_template().replace("{token}", tag)

    def tag_of(self, address: str) -> str | None:
        """The tag in one of our reply addresses, or None if ``address`` is not one."""
        head, _, tail = self.reply_template().lower().partition("{token}")
        address = address.lower()
        long_enough = len(address) > len(head) + len(tail)
        if long_enough and address.startswith(head) and address.endswith(tail):
            return address[len(head) : len(address) - len(tail)]
        return None
