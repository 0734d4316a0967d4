"""The email channel's real local servers (aiosmtpd SMTP + pymap IMAP) now live in
``pledgebot_sandbox.mail``, where ``pledgebot demo`` uses them too; re-exported for the tests."""

from pledgebot_sandbox._server import free_port
from pledgebot_sandbox.mail import (
    BOT_ADDRESS,
    BOT_USER,
    DOMAIN,
    IMAP_PASSWORD,
    PARSER,
    PEOPLE_PASSWORD,
    PEOPLE_USER,
    SIGNING_KEY,
    SMTP_PASSWORD,
    SMTP_USER,
    STAGE,
    WORDING,
    Fault,
    MailServer,
    answer,
)

__all__ = [
    "BOT_ADDRESS",
    "BOT_USER",
    "DOMAIN",
    "IMAP_PASSWORD",
    "PARSER",
    "PEOPLE_PASSWORD",
    "PEOPLE_USER",
    "SIGNING_KEY",
    "SMTP_PASSWORD",
    "SMTP_USER",
    "STAGE",
    "WORDING",
    "Fault",
    "MailServer",
    "answer",
    "free_port",
]
