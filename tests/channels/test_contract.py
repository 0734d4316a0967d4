"""The channel contract: one table of cases every adapter passes against its real local server.

Rows are cases, columns are channels (``tests/channels/harnesses.py``). A case that cannot
apply to a channel is reported as not applicable with the channel's own reason — a skip that
says why, listed in the test report — never left out silently. Every case runs with every
logger at DEBUG through pledgebot's own log handler, and no configured secret may appear in
what it wrote.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.channels import registry
from bot.channels.base import OutboundMessage
from bot.core.db import Database
from bot.core.errors import (
    ChannelUnauthorized,
    DeliveryError,
    RateLimited,
    RecipientGone,
    Rejected,
    TransientError,
)
from bot.core.logs import JsonLines, ScrubSecrets, register_secret
from bot.core.models import InboundEvent as EventRow
from bot.inbound.inbox import store_events
from tests.channels.contract import Harness
from tests.channels.harnesses import HARNESSES

TEXT = "Hello from the contract ✓ — 40 inspecteurs formés & <more>"


def message(recipient: str, text: str = TEXT, number: int = 1) -> OutboundMessage:
    return OutboundMessage(
        id=number, recipient=recipient, text=text, idempotency_key=f"contract:{number}"
    )


# -- the table itself ---------------------------------------------------------------------------


def test_every_registered_channel_has_a_contract_harness() -> None:
    assert set(HARNESSES) == set(registry.known_channels())
    for name, made in HARNESSES.items():
        assert made.name == name, f"{made.__name__} says it is {made.name!r}"


@pytest.mark.parametrize("name", sorted(HARNESSES))
def test_the_delete_case_applies_exactly_where_the_adapter_can_delete(name: str) -> None:
    can_delete = registry.spec(name).can_delete  # what the dispatcher asks
    assert ("delete" not in HARNESSES[name].not_applicable) == can_delete


@pytest.fixture
def logs() -> Iterator[io.StringIO]:
    """Everything logged, at DEBUG for every logger, through pledgebot's handler (scrubbed)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonLines())
    handler.addFilter(ScrubSecrets())
    root = logging.getLogger()
    levels = {name: logging.getLogger(name).level for name in logging.root.manager.loggerDict}
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    for name in levels:
        logging.getLogger(name).setLevel(logging.DEBUG)
    yield stream
    root.removeHandler(handler)
    root.setLevel(old_level)
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


@pytest.fixture(params=sorted(HARNESSES))
async def harness(request: pytest.FixtureRequest, logs: io.StringIO) -> AsyncIterator[Harness]:
    made: Harness = HARNESSES[request.param]()
    await made.start()
    for (
        secret
    ) in made.secrets():  # as bot.settings.config.read_secret does for every secret it reads
        register_secret(secret)
    try:
        yield made
    finally:
        await made.stop()
        # What the test's own server logged (in this process) is not pledgebot's log.
        theirs = tuple(getattr(made, "server_loggers", ()))
        written = "\n".join(
            line
            for line in logs.getvalue().splitlines()
            if not theirs or not json.loads(line)["logger"].startswith(theirs)
        )
        for secret in made.secrets():
            # Also as HTTP Basic or SMTP AUTH PLAIN would carry it.
            for shape in (secret, base64.b64encode(secret.encode()).decode().rstrip("=")):
                assert shape not in written, f"{made.name}: a secret was logged"


def applies(harness: Harness, case: str) -> None:
    if case in harness.not_applicable:
        pytest.skip(f"not applicable to {harness.name}: {harness.not_applicable[case]}")


async def using(harness: Harness, act: Callable[[Any], Awaitable[Any]], **options: Any) -> Any:
    adapter = await harness.adapter(**options)
    try:
        return await act(adapter)
    finally:
        await adapter.aclose()


async def test_send_text(harness: Harness) -> None:
    async def act(adapter: Any) -> Any:
        await adapter.start()
        return await adapter.send(message(harness.recipient()))

    receipt = await using(harness, act)
    assert receipt.external_id
    assert harness.received() == [TEXT], "the words arrive exactly as sent, once"


async def test_too_long_is_rejected_not_retried(harness: Harness) -> None:
    applies(harness, "too_long")

    async def act(adapter: Any) -> None:
        with pytest.raises(Rejected):
            await adapter.send(message(harness.recipient(), harness.too_long()))

    await using(harness, act)
    assert harness.received() == []


async def test_rate_limited_says_how_long_to_wait(harness: Harness) -> None:
    assert await harness.fail_next_send("rate_limited")

    async def act(adapter: Any) -> None:
        with pytest.raises(RateLimited) as caught:
            await adapter.send(message(harness.recipient()))
        assert caught.value.retry_after > 0

    await using(harness, act)
    assert harness.received() == []


async def test_transient_failure_is_retryable_and_a_retry_delivers_once(
    harness: Harness,
) -> None:
    assert await harness.fail_next_send("transient")

    async def act(adapter: Any) -> None:
        with pytest.raises(TransientError):
            await adapter.send(message(harness.recipient()))
        await adapter.send(message(harness.recipient()))

    await using(harness, act)
    assert harness.received() == [TEXT]


async def test_a_recipient_who_left_is_gone(harness: Harness) -> None:
    applies(harness, "recipient_gone")
    gone = await harness.gone_recipient()
    assert gone is not None

    async def act(adapter: Any) -> None:
        with pytest.raises(RecipientGone):
            await adapter.send(message(gone))

    await using(harness, act)


async def test_bad_credentials_are_a_configuration_error(harness: Harness) -> None:
    async def act(adapter: Any) -> None:
        with pytest.raises(ChannelUnauthorized):
            await adapter.start()
            await adapter.send(message(harness.recipient()))

    await using(harness, act, bad_credentials=True)
    assert harness.received() == []


async def test_an_inbound_message_is_stored_once(harness: Harness, tmp_path: Path) -> None:
    applies(harness, "inbound")
    assert await harness.push_inbound("Nous avons formé 40 inspecteurs.")
    db = Database(f"sqlite:///{tmp_path / 'contract.db'}")
    db.upgrade()

    async def act(adapter: Any) -> None:
        await adapter.start()
        events, cursor, deadline = [], None, time.monotonic() + 20
        while not events and time.monotonic() < deadline:
            events, cursor = await adapter.poll(cursor)
            events = [e for e in events if e.kind == "message"]  # not a room join, say
        assert [e.text for e in events] == ["Nous avons formé 40 inspecteurs."]
        with db.session() as session:  # the same batch served twice (no ack yet) is stored once
            assert len(store_events(session, harness.name, events, None)) == 1
        with db.session() as session:
            assert store_events(session, harness.name, events, None) == []
        again, _ = await adapter.poll(cursor)  # acknowledged: not served again
        assert [e.key for e in again if e.key == events[0].key] == []

    try:
        await using(harness, act)
        with db.session() as session:
            assert session.scalar(select(func.count()).select_from(EventRow)) == 1
    finally:
        db.dispose()


async def test_delete_takes_a_sent_post_down_and_a_second_delete_is_handled(
    harness: Harness,
) -> None:
    applies(harness, "delete")

    async def act(adapter: Any) -> None:
        await adapter.start()
        receipt = await adapter.send(message(harness.recipient()))
        assert harness.received() == [TEXT] and not harness.gone(receipt.external_id)
        # What bot.community.consent queues on a withdrawal: the post's id as the text, action "delete".
        deletion = OutboundMessage(
            id=2, recipient=harness.recipient(), text=receipt.external_id,
            idempotency_key=f"delete:{receipt.external_id}", action="delete",
        )  # fmt: skip
        await adapter.delete(deletion)
        assert harness.gone(receipt.external_id), "the server shows the post taken down"
        assert harness.received() == [], "no reader sees it any more"
        # The same row again (a retry after a crash): what the adapter documents, no crash.
        if harness.delete_again is None:
            await adapter.delete(deletion)
        else:
            assert issubclass(harness.delete_again, DeliveryError)
            with pytest.raises(harness.delete_again):
                await adapter.delete(deletion)
        assert harness.gone(receipt.external_id) and harness.received() == []

    await using(harness, act)
