"""Real mail servers on loopback, for the email channel's tests and for ``pledgebot demo``.

Needs ``aiosmtpd`` and ``pymap`` (requirements of ``pip install -e ./sandbox``); import this
module only after checking that they are there (``pledgebot_sandbox.demo_invited`` does).

- SMTP: ``aiosmtpd``'s ``Controller`` (its own thread and event loop) on a free port, AUTH
  required (a wrong password gets the server's own 535). Its handler delivers every accepted
  mail into a maildir per recipient, as a mail server's local delivery would (``Return-Path``
  and ``Delivered-To`` prepended): mail to the bot's address (``pledge@example.org``, with any
  ``+tag``) into the bot's mailbox, which pymap serves; mail to anyone else into
  ``people/<address>/``, where a test (or the demo) reads what a pledgemaker received and
  answers it (``answer``, ``submit``).
- IMAP: ``pymap`` with its maildir backend, run as a subprocess on a free port (no TLS), with
  one user, the bot, whose password is hashed into pymap's own ``pymap-etc-shadow`` file.

Faults: ``fail_next(code)`` makes the next transaction answer ``code`` at the stage where a real
server would say it (421 at MAIL FROM, 451/552/554 after DATA, 550/551/553 at RCPT TO, 535 at
AUTH); ``refuse(address)`` makes an address permanently unknown (550 5.1.1 at RCPT TO). An IMAP
server that is down is a port nobody listens on (``free_port()``).
"""

from __future__ import annotations

import contextlib
import logging
import mailbox
import os
import smtplib
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import formatdate, parseaddr
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from pydantic import SecretStr
from pysasl.hashing import BuiltinHash

from bot.channels.email.adapter import EmailChannel
from bot.channels.email.settings import EmailSettings
from pledgebot_sandbox._server import end_process, free_port

DOMAIN = "example.org"
BOT_USER = "pledge"
BOT_ADDRESS = f"{BOT_USER}@{DOMAIN}"
IMAP_PASSWORD = "imap-secret-4f9c1d"
SMTP_USER, SMTP_PASSWORD = "pledgebot", "smtp-secret-8b27e0"
PEOPLE_USER, PEOPLE_PASSWORD = "people", "people-secret-5d1a"  # how a pledgemaker's mail arrives
SIGNING_KEY = "signing-key-0c6e2b9a7d41f385"
PARSER = BytesParser(policy=policy.default)

# Where a real server answers each code (the stage of the transaction).
STAGE = {421: "MAIL", 450: "RCPT", 451: "DATA", 452: "RCPT", 535: "AUTH", 550: "RCPT",
         551: "RCPT", 552: "DATA", 553: "RCPT", 554: "DATA"}  # fmt: skip
WORDING = {
    421: "4.7.0 Too many messages from your account, try again in 30 seconds",
    450: "4.2.1 Mailbox temporarily unavailable",
    451: "4.3.0 Local error in processing, please retry",
    452: "4.5.3 Too many recipients",
    550: "5.1.1 Recipient address rejected: User unknown in virtual mailbox table",
    551: "5.1.6 User not local; mailbox has moved",
    552: "5.3.4 Message size exceeds fixed maximum message size",
    553: "5.1.3 Mailbox name not allowed",
    554: "5.7.1 Message rejected as spam",
}


def _not_login_data_deprecation(record: logging.LogRecord) -> bool:
    # aiosmtpd itself sets Session.login_data on every AUTH and then warns about it.
    return "login_data is deprecated" not in record.getMessage()


@dataclass
class Fault:
    code: int
    text: str
    stage: str


class _Delivery:
    """The aiosmtpd handler: answers faults when told, else delivers into maildirs."""

    def __init__(self, server: MailServer) -> None:
        self.server = server

    async def handle_MAIL(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if not session.authenticated:  # AUTH required (checked here: see MailServer.start)
            return "530 5.7.0 Authentication required"
        if (fault := self.server._take_fault("MAIL")) is not None:
            return f"{fault.code} {fault.text}"
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if (fault := self.server._take_fault("RCPT")) is not None:
            return f"{fault.code} {fault.text}"
        if address.lower() in self.server.refused:
            return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if (fault := self.server._take_fault("DATA")) is not None:
            return f"{fault.code} {fault.text}"
        for recipient in envelope.rcpt_tos:
            self.server.deliver(envelope.original_content, recipient, sender=envelope.mail_from)
        return "250 2.0.0 Ok: queued"


class MailServer:
    def __init__(self, root: Path, *, max_message_bytes: int = 2_000_000) -> None:
        self.root = root
        self.imap_dir = root / "imap"
        self.people_dir = root / "people"
        self.max_message_bytes = max_message_bytes
        self.refused: set[str] = set()
        self.smtp_port = 0
        self.imap_port = 0
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        self._sequence = 0
        self._controller: Controller | None = None
        self._failing_session: Any = None
        self._imap: subprocess.Popen[bytes] | None = None

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> None:
        aiosmtpd_log = logging.getLogger("mail.log")
        if _not_login_data_deprecation not in aiosmtpd_log.filters:
            aiosmtpd_log.addFilter(_not_login_data_deprecation)
        self.imap_dir.mkdir(parents=True, exist_ok=True)
        self.people_dir.mkdir(parents=True, exist_ok=True)
        # pymap's maildir backend reads passwd/shadow-like files; 1,000 PBKDF2 rounds (the
        # hash says so) keep each login fast.
        hashed = BuiltinHash(rounds=1000).hash(IMAP_PASSWORD)
        (self.imap_dir / "pymap-etc-passwd").write_text(f"{BOT_USER}::1000:1000::{BOT_USER}:\r\n")
        (self.imap_dir / "pymap-etc-shadow").write_text(f"{BOT_USER}:{hashed}:::::::\r\n")
        self.bot_maildir()  # created before pymap looks
        self.imap_port = free_port()
        script = Path(sys.executable).with_name("pymap")
        log = (self.root / "pymap.log").open("wb")
        self._imap = subprocess.Popen(
            [str(script), "--host", "127.0.0.1", "--port", str(self.imap_port), "--no-tls",
             "maildir", str(self.imap_dir)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "FQDN": "imap.test"},  # its greeting, without a DNS look-up
        )  # fmt: skip
        log.close()
        self.smtp_port = free_port()
        self._controller = Controller(
            _Delivery(self),
            hostname="127.0.0.1",
            port=self.smtp_port,
            server_hostname="smtp.test",
            # AUTH over plain text on loopback; "required" is enforced in handle_MAIL, as
            # aiosmtpd's own auth_required warns on every connection without TLS.
            auth_require_tls=False,
            authenticator=self._authenticate,
            data_size_limit=self.max_message_bytes,
        )
        self._controller.start()
        self._wait_for(self.imap_port)

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None
        if self._imap is not None:
            end_process(self._imap)
            self._imap = None

    def _wait_for(self, port: int, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._imap is not None and self._imap.poll() is not None:
                log = (self.root / "pymap.log").read_text(errors="replace")
                raise RuntimeError(f"pymap exited: {log[-2000:]}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                return
            time.sleep(0.05)
        raise RuntimeError(f"pymap did not listen on {port} within {timeout} s")

    # -- faults --------------------------------------------------------------------------------
    def fail_next(self, code: int, text: str | None = None, *, stage: str | None = None) -> None:
        """The next transaction gets ``code`` at its stage (once)."""
        with self._lock:
            self._faults.append(
                Fault(code, text or WORDING.get(code, "error"), stage or STAGE.get(code, "DATA"))
            )

    def refuse(self, address: str) -> str:
        """From now on, ``address`` is unknown here (550 5.1.1 at RCPT TO)."""
        self.refused.add(address.lower())
        return address

    def _take_fault(self, stage: str) -> Fault | None:
        with self._lock:
            for i, fault in enumerate(self._faults):
                if fault.stage == stage:
                    return self._faults.pop(i)
        return None

    def _authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        # A client tries its other mechanisms after a 535: the fault holds for the session.
        if self._take_fault("AUTH") is not None:
            self._failing_session = session
        if session is self._failing_session or not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        users = {SMTP_USER: SMTP_PASSWORD, PEOPLE_USER: PEOPLE_PASSWORD}
        login, password = auth_data.login.decode(), auth_data.password.decode()
        return AuthResult(success=users.get(login) == password, handled=False)

    # -- mailboxes -----------------------------------------------------------------------------
    def bot_maildir(self) -> mailbox.Maildir:
        return mailbox.Maildir(self.imap_dir / BOT_USER, create=True)

    def person_maildir(self, address: str) -> mailbox.Maildir:
        return mailbox.Maildir(self.people_dir / address.lower(), create=True)

    def deliver(self, content: bytes, recipient: str, *, sender: str = "") -> None:
        """Local delivery: the bot's address (any +tag) into pymap's mailbox, others aside."""
        local, _, domain = recipient.lower().partition("@")
        is_bot = local.split("+")[0] == BOT_USER and domain == DOMAIN
        with self._lock:
            self._sequence += 1
            sequence = self._sequence
        trace = (
            f"Return-Path: <{sender}>\r\nDelivered-To: {recipient}\r\n"
            f"X-Test-Sequence: {sequence}\r\n"
        ).encode()
        box = self.bot_maildir() if is_bot else self.person_maildir(recipient)
        box.add(trace + content)

    def received(self, address: str) -> list[EmailMessage]:
        """What ``address`` has been delivered, oldest first."""
        folder = self.people_dir / address.lower()
        if not folder.exists():
            return []
        messages = [PARSER.parsebytes(m.as_bytes()) for m in self.person_maildir(address)]
        return sorted(messages, key=lambda m: int(str(m["X-Test-Sequence"])))  # type: ignore[return-value]

    def everyone_received(self) -> list[EmailMessage]:
        messages = [
            PARSER.parsebytes(m.as_bytes())
            for folder in sorted(self.people_dir.iterdir())
            for m in mailbox.Maildir(folder, create=False)
        ]
        return sorted(messages, key=lambda m: int(str(m["X-Test-Sequence"])))  # type: ignore[return-value]

    def submit(self, mail: EmailMessage) -> None:
        """Someone else sends ``mail`` through this server (as a pledgemaker's provider would)."""
        with smtplib.SMTP("127.0.0.1", self.smtp_port, timeout=10) as smtp:
            smtp.login(PEOPLE_USER, PEOPLE_PASSWORD)
            smtp.send_message(mail)

    # -- the bot's side ------------------------------------------------------------------------
    def settings(self, **overrides: Any) -> EmailSettings:
        values: dict[str, Any] = {
            "enabled": True,
            "from_address": f"Action Pledge <{BOT_ADDRESS}>",
            "smtp_host": "127.0.0.1",
            "smtp_port": self.smtp_port,
            "smtp_starttls": False,
            "smtp_username": SMTP_USER,
            "smtp_password_env": "PLEDGEBOT_TEST_SMTP_PASSWORD",
            "imap_host": "127.0.0.1",
            "imap_port": self.imap_port,
            "imap_ssl": False,
            "imap_username": BOT_USER,
            "request_timeout": 5,
            "poll_interval": 0,
            "max_messages_per_second": 1000,
        }
        return EmailSettings(**(values | overrides))

    def secrets(self, *, bad_credentials: bool = False) -> dict[str, SecretStr]:
        wrong = "-wrong" if bad_credentials else ""
        return {
            "smtp_password": SecretStr(SMTP_PASSWORD + wrong),
            "imap_password": SecretStr(IMAP_PASSWORD + wrong),
            "signing_key": SecretStr(SIGNING_KEY),
        }

    def channel(self, *, bad_credentials: bool = False, **overrides: Any) -> EmailChannel:
        return EmailChannel(
            self.settings(**overrides), self.secrets(bad_credentials=bad_credentials)
        )


def answer(prompt: EmailMessage, text: str, *, sender: str, quote: str = "gmail") -> EmailMessage:
    """A pledgemaker's answer to ``prompt`` as their mail client would write it: to its
    Reply-To, threaded, with the prompt quoted below their text (``quote``: gmail | outlook |
    apple | none)."""
    prompt_text = prompt.get_body(preferencelist=("plain",))
    original = str(prompt_text.get_content()) if prompt_text is not None else ""
    quoted = "\n".join(f"> {line}" if line else ">" for line in original.splitlines())
    sender_name = parseaddr(sender)[1]
    if quote == "gmail":
        body = (
            f"{text}\n\nOn Tue, 3 Mar 2026 at 10:02, Action Pledge <{BOT_ADDRESS}> wrote:\n"
            f"{quoted}\n"
        )
    elif quote == "outlook":
        body = (
            f"{text}\n\n________________________________\nFrom: Action Pledge <{BOT_ADDRESS}>\n"
            f"Sent: Tuesday, March 3, 2026 10:02 AM\nTo: {sender_name}\n"
            f"Subject: {prompt['Subject']}\n\n{original}\n"
        )
    elif quote == "apple":
        body = (
            f"{text}\n\nSent from my iPhone\n\n> On 3 Mar 2026, at 10:02, Action Pledge "
            f"<{BOT_ADDRESS}> wrote:\n>\n{quoted}\n"
        )
    else:
        body = text
    mail = EmailMessage(policy=policy.SMTP)
    mail["From"] = sender
    mail["To"] = str(prompt["Reply-To"])
    mail["Subject"] = f"Re: {prompt['Subject']}"
    mail["In-Reply-To"] = str(prompt["Message-ID"])
    mail["References"] = str(prompt["Message-ID"])
    mail["Date"] = formatdate(usegmt=True)
    mail["Message-ID"] = f"<answer.{time.monotonic_ns()}@{sender_name.partition('@')[2]}>"
    mail.set_content(body)
    return mail
