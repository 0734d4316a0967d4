"""What a channel's test harness gives the shared contract test (tests/channels/test_contract.py).

Each channel has one harness module, ``tests/channels/harness_<name>.py``, defining a class
that satisfies ``Harness`` against a real local server (a sandbox in ``sandbox/pledgebot_sandbox``, or a real
server started by a fixture: aiosmtpd/pymap, Synapse, mastodon-mock, a webhook receiver). The
contract test runs the same table of cases on every harness listed in ``tests/channels/harnesses.py``.

A case that cannot apply to a channel (a public timeline has no recipient who can leave) says
so: the harness's method returns ``None`` and the test is reported as not applicable, with the
channel's reason (``NOT_APPLICABLE``), never silently skipped.
"""

from __future__ import annotations

from typing import Any, Protocol


class Harness(Protocol):
    name: str  # the channel's registry name
    # Why a case does not apply to this channel: {"recipient_gone": "a timeline has no …"}.
    not_applicable: dict[str, str]
    # Optional: loggers of a server running in the test's own process (e.g. the mock's
    # "sqlalchemy"), left out of the search for secrets: theirs, not pledgebot's.
    # server_loggers: tuple[str, ...]
    # What deleting a post the adapter already deleted does (the dispatcher retrying a
    # "delete" row after a crash): None = it returns, the post counts as deleted; else the
    # exception the adapter documents raising (a ``DeliveryError``: the row fails, recorded).
    delete_again: type[Exception] | None

    async def start(self) -> None:
        """Start the local server (once per test) and anything the adapter needs."""

    async def stop(self) -> None: ...

    def secrets(self) -> list[str]:
        """Every secret value configured for the adapter (searched for in the captured logs)."""

    async def adapter(self, *, bad_credentials: bool = False) -> Any:
        """A fresh, started adapter pointed at the local server (credentials the server
        refuses when ``bad_credentials``)."""

    def recipient(self) -> str:
        """Where a test message goes: a chat, a mailbox, a room, or the channel's timeline."""

    def received(self) -> list[str]:
        """The texts the server has accepted so far, oldest first (what a reader would see)."""

    async def fail_next_send(self, how: str) -> bool | None:
        """Make the server answer the next send with ``how``: "rate_limited" (429 with a
        delay), "transient" (a 5xx), "unauthorized" (401). None if the server cannot."""

    async def gone_recipient(self) -> str | None:
        """A recipient that blocked us / left / bounces; None when not applicable."""

    async def push_inbound(self, text: str) -> bool | None:
        """Someone writes to us on this channel; None for outbound-only channels."""

    def too_long(self) -> str:
        """A text the platform refuses as too long for one message."""

    def gone(self, external_id: str) -> bool | None:
        """Whether the server's own state shows the post ``external_id`` (a send's receipt)
        taken down; None for a channel that cannot delete ("delete" in ``not_applicable``)."""
