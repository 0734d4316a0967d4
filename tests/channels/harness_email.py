"""The email channel for the shared contract (tests/channels/contract.py): the real adapter
against real servers on loopback — aiosmtpd delivering into maildirs, pymap serving the bot's
mailbox (tests/channels/mailserver.py) — with faults answered by the SMTP server itself."""

from __future__ import annotations

import asyncio
import tempfile
from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any, ClassVar

from bot.channels.email.adapter import EmailChannel
from tests.channels import mailserver
from tests.channels.mailserver import MailServer

RECIPIENT = "ana@ngo.example"
GONE = "left@ngo.example"


class EmailHarness:
    name = "email"
    not_applicable: ClassVar[dict[str, str]] = {
        "delete": "an email cannot be recalled once the server has accepted it",
    }
    delete_again = None
    # aiosmtpd runs in this process and logs the SMTP dialogue it serves (AUTH included).
    server_loggers = ("mail.log", "mail.debug")

    def __init__(self) -> None:
        self._folder: tempfile.TemporaryDirectory[str] | None = None
        self.server: MailServer | None = None
        self._adapters: list[EmailChannel] = []

    async def start(self) -> None:
        self._folder = tempfile.TemporaryDirectory(prefix="pledgebot-mail-")
        self.server = MailServer(Path(self._folder.name))
        await asyncio.to_thread(self.server.start)

    async def stop(self) -> None:
        for adapter in self._adapters:
            await adapter.aclose()
        self._adapters.clear()
        if self.server is not None:
            await asyncio.to_thread(self.server.stop)
        if self._folder is not None:
            self._folder.cleanup()

    def _server(self) -> MailServer:
        assert self.server is not None, "start() first"
        return self.server

    def secrets(self) -> list[str]:
        return sorted(
            {
                secret.get_secret_value()
                for bad in (False, True)
                for secret in self._server().secrets(bad_credentials=bad).values()
            }
        )

    async def adapter(self, *, bad_credentials: bool = False) -> Any:
        adapter = self._server().channel(bad_credentials=bad_credentials, poll_interval=0.2)
        self._adapters.append(adapter)
        await adapter.start()
        return adapter

    def recipient(self) -> str:
        return RECIPIENT

    def received(self) -> list[str]:
        texts = []
        for mail in self._server().received(RECIPIENT):
            body = mail.get_body(preferencelist=("plain",))
            texts.append(str(body.get_content()).removesuffix("\n") if body is not None else "")
        return texts

    async def fail_next_send(self, how: str) -> bool | None:
        code = {"rate_limited": 421, "transient": 451, "unauthorized": 535}.get(how)
        if code is None:
            return None
        self._server().fail_next(code)
        return True

    async def gone_recipient(self) -> str | None:
        return self._server().refuse(GONE)

    async def push_inbound(self, text: str) -> bool | None:
        mail = EmailMessage(policy=policy.SMTP)
        mail["From"] = f"Ana Pérez <{RECIPIENT}>"
        mail["To"] = mailserver.BOT_ADDRESS
        mail["Subject"] = "Our progress"
        mail["Message-ID"] = "<contract.1@ngo.example>"
        mail.set_content(text)
        await asyncio.to_thread(self._server().submit, mail)
        return True

    def too_long(self) -> str:
        return "x" * (self._server().max_message_bytes + 1)

    def gone(self, external_id: str) -> bool | None:
        return None
