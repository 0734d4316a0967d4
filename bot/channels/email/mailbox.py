"""The campaign's IMAP mailbox, read with the stdlib ``imaplib`` in a thread.

Every look opens its own connection, read-only (``EXAMINE``: nothing is flagged or moved), and
returns the messages whose UID is above the cursor (the highest UID already stored). A mailbox
whose UIDVALIDITY changed, or whose UIDNEXT is not above the cursor (it was recreated), is read
again from the start: the event key (``mail:<Message-ID>``) makes a message seen twice one
stored event. A refused login → ``ChannelUnauthorized``; other IMAP and connection failures →
``TransientError``.
"""

from __future__ import annotations

import asyncio
import contextlib
import imaplib
import logging
import re
import ssl
from collections.abc import Callable, Iterator
from typing import TypeVar

from pydantic import SecretStr

from bot.channels.email.settings import EmailSettings
from bot.core.errors import ChannelUnauthorized, DeliveryError, Rejected, TransientError

log = logging.getLogger(__name__)
T = TypeVar("T")


class Mailbox:
    """The ``imap_folder`` of ``imap_username`` (default: the From address)."""

    def __init__(self, settings: EmailSettings, password: SecretStr | None) -> None:
        self.settings = settings
        self.user = settings.imap_username or settings.mailbox()
        self._password = password
        self._validity: int | None = None  # the mailbox's UIDVALIDITY, as last seen

    async def new_messages(self, cursor: int) -> tuple[list[tuple[int, bytes]], int, int]:
        """Up to ``poll_batch`` (uid, message) above ``cursor``, UIDVALIDITY, the next cursor."""
        return await self._in_thread(self._fetch_new, cursor)

    async def message(self, uid: int, validity: int) -> bytes:
        """One message again (its attachments), if the mailbox is still the one it was in."""
        return await self._in_thread(self._fetch_one, uid, validity)

    @staticmethod
    async def _in_thread(fn: Callable[..., T], *args: int) -> T:
        try:
            return await asyncio.to_thread(fn, *args)
        except DeliveryError:
            raise
        except (imaplib.IMAP4.error, OSError, TimeoutError) as exc:
            raise TransientError(f"IMAP: {exc or type(exc).__name__}") from None

    # Blocking: run in a thread.
    @contextlib.contextmanager
    def _open(self) -> Iterator[imaplib.IMAP4]:
        settings = self.settings
        timeout = settings.request_timeout
        context = ssl.create_default_context()
        imap: imaplib.IMAP4
        if settings.imap_ssl:
            imap = imaplib.IMAP4_SSL(
                settings.imap_host, settings.imap_port, ssl_context=context, timeout=timeout
            )
        else:
            imap = imaplib.IMAP4(settings.imap_host, settings.imap_port, timeout=timeout)
        try:
            if settings.imap_starttls:
                imap.starttls(context)
            password = self._password.get_secret_value() if self._password else ""
            try:
                imap.login(self.user, password)
            except imaplib.IMAP4.error as exc:
                raise ChannelUnauthorized(
                    f"IMAP refused the login of {self.user}: {_imap_text(exc)}"
                ) from None
            status, data = imap.select(_quoted(settings.imap_folder), readonly=True)
            if status != "OK":
                raise TransientError(f"IMAP: cannot open {settings.imap_folder}: {data!r}")
            yield imap
        finally:
            with contextlib.suppress(imaplib.IMAP4.error, OSError):
                imap.logout()

    def _fetch_new(self, cursor: int) -> tuple[list[tuple[int, bytes]], int, int]:
        with self._open() as imap:
            validity = _response_int(imap, "UIDVALIDITY") or 0
            uidnext = _response_int(imap, "UIDNEXT")
            start = cursor
            if self._validity is not None and validity != self._validity:
                log.warning("email: UIDVALIDITY changed; reading the mailbox again")
                start = 0
            elif uidnext is not None and start >= uidnext:
                start = 0  # the mailbox was recreated: its UIDs start again
            self._validity = validity
            status, data = imap.uid("SEARCH", f"UID {start + 1}:*")
            if status != "OK":
                raise TransientError(f"IMAP search failed: {data!r}")
            # "n:*" always includes the highest UID, even below n: filter.
            uids = sorted(u for u in (int(x) for x in (data[0] or b"").split()) if u > start)
            uids = uids[: self.settings.poll_batch]
            # A message deleted between SEARCH and FETCH is simply not there any more.
            found = [(uid, mail) for uid in uids if (mail := self._fetch(imap, uid)) is not None]
        return found, validity, max(uids, default=start)

    def _fetch_one(self, uid: int, validity: int) -> bytes:
        with self._open() as imap:
            if (_response_int(imap, "UIDVALIDITY") or 0) != validity:
                raise Rejected("the mailbox was recreated; the attachment is gone")
            data = self._fetch(imap, uid)
            if data is None:
                raise Rejected(f"message {uid} is no longer in the mailbox")
            return data

    @staticmethod
    def _fetch(imap: imaplib.IMAP4, uid: int) -> bytes | None:
        status, data = imap.uid("FETCH", str(uid), "(BODY.PEEK[])")
        if status != "OK":
            raise TransientError(f"IMAP: fetching message {uid} failed: {data!r}")
        for item in data:
            if isinstance(item, tuple) and len(item) == 2:
                return bytes(item[1])
        return None


def _response_int(imap: imaplib.IMAP4, code: str) -> int | None:
    _, data = imap.response(code)
    try:
        return int(data[0]) if data and data[0] is not None else None
    except (TypeError, ValueError):
        return None


def _quoted(folder: str) -> str:
    return f'"{folder}"' if re.search(r'[\s"]', folder) else folder


def _imap_text(exc: imaplib.IMAP4.error) -> str:
    text = exc.args[0] if exc.args else exc
    return text.decode(errors="replace") if isinstance(text, bytes) else str(text)
