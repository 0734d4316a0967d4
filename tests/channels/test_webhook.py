"""The webhook channel: signed JSON documents to the comms team's own tool, against a real
receiver on loopback (``pledgebot_sandbox.webhook``) that checks every signature."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError
from sqlalchemy import select

from bot.channels.base import Media, OutboundMessage
from bot.channels.webhook.adapter import (
    SIGNATURE,
    TIMESTAMP,
    WebhookChannel,
    sign,
    verify,
)
from bot.channels.webhook.settings import WebhookSettings
from bot.community import consent
from bot.core.errors import ChannelUnauthorized, Rejected
from bot.core.models import OutboxMessage
from bot.scheduling import runs
from pledgebot_sandbox.webhook import WebhookReceiver
from tests.auxil.live import start_live
from tests.test_amplify import amplify, approved

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32


@pytest.fixture
async def hook() -> AsyncIterator[tuple[WebhookReceiver, WebhookChannel]]:
    receiver = WebhookReceiver(secret="s3cret-for-tests")
    await receiver.start()
    channel = WebhookChannel(
        WebhookSettings(enabled=True, url=receiver.url), {"secret": SecretStr("s3cret-for-tests")}
    )
    yield receiver, channel
    await channel.aclose()
    await receiver.stop()


def message(text: str, **extra: object) -> OutboundMessage:
    return OutboundMessage(id=7, recipient="webhook", text=text, idempotency_key="k:7", **extra)  # type: ignore[arg-type]


async def test_a_rendered_json_document_arrives_signed_with_its_image_inline(
    hook: tuple[WebhookReceiver, WebhookChannel], tmp_path: Path
) -> None:
    receiver, channel = hook
    image = tmp_path / "class.png"
    image.write_bytes(PNG)
    document = {"kind": "journey_update", "texts": {"linkedin": "We trained 40 inspectors"}}
    receipt = await channel.send(
        message(json.dumps(document), media=(Media(str(image), "A classroom"),))
    )
    assert receipt.external_id == "wh-1"
    [body] = receiver.received
    assert body["event"] == "post" and body["id"] == 7 and body["idempotency_key"] == "k:7"
    assert body["document"] == document
    [media] = body["media"]
    assert media["alt_text"] == "A classroom" and media["content_type"] == "image/png"
    assert base64.b64decode(media["data_base64"]) == PNG
    assert receiver.refused == 0


async def test_a_resend_with_the_same_key_is_recognised_by_the_receiver(
    hook: tuple[WebhookReceiver, WebhookChannel],
) -> None:
    receiver, channel = hook
    first = await channel.send(message("plain words, not JSON"))
    again = await channel.send(message("plain words, not JSON"))
    assert first == again and len(receiver.received) == 1
    assert receiver.received[0]["document"] == {"text": "plain words, not JSON"}


async def test_a_withdrawal_tells_the_receiver_which_post(
    hook: tuple[WebhookReceiver, WebhookChannel],
) -> None:
    receiver, channel = hook
    await channel.delete(message("wh-41", action="delete"))
    assert receiver.received == [{"event": "delete", "post_id": "wh-41"}]


async def test_a_wrong_secret_or_a_missing_image_fails_as_it_should(
    hook: tuple[WebhookReceiver, WebhookChannel],
) -> None:
    receiver, _ = hook
    wrong = WebhookChannel(
        WebhookSettings(enabled=True, url=receiver.url), {"secret": SecretStr("guess")}
    )
    with pytest.raises(ChannelUnauthorized, match="HTTP 401"):
        await wrong.send(message("hello"))
    await wrong.aclose()
    _, channel = hook
    with pytest.raises(Rejected, match="cannot read the image"):
        await channel.send(message("hello", media=(Media("/nowhere.png", "x"),)))
    receiver.inject_fault(422)
    with pytest.raises(Rejected, match="HTTP 422"):
        await channel.send(message("hello"))
    assert receiver.received == []


def test_the_receivers_check_refuses_a_changed_body_or_an_old_signature() -> None:
    body, stamp = b'{"event": "post"}', str(int(time.time()))
    headers = {TIMESTAMP: stamp, SIGNATURE: sign("k", stamp, body)}
    assert verify("k", headers, body)
    assert not verify("k", headers, body + b" ")
    assert not verify("other", headers, body)
    old = str(int(time.time()) - 3600)
    assert not verify("k", {TIMESTAMP: old, SIGNATURE: sign("k", old, body)}, body)


def test_enabled_without_an_address_is_a_configuration_error() -> None:
    with pytest.raises(ValidationError, match="url"):
        WebhookSettings(enabled=True)
    with pytest.raises(ValidationError):
        WebhookSettings(enabled=True, url="ftp://example.org/hook")


async def test_an_approved_update_reaches_the_receiver_as_one_json_document(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """End to end: an amplify slot on the webhook channel, through the outbox and dispatcher;
    then the pledgemaker withdraws and the receiver is told to take the post down."""
    receiver = WebhookReceiver(secret="e2e-webhook-secret")
    await receiver.start()
    monkeypatch.setenv("PLEDGEBOT_WEBHOOK_SECRET", "e2e-webhook-secret")
    extra = (
        f'[channels.webhook]\nenabled = true\nurl = "{receiver.url}"\ndelete_on_withdraw = true\n'
    )
    live = await start_live(tmp_path, monkeypatch, extra=extra)
    try:
        text = 'We trained 40 inspectors in Kumasi — "all of them" <women>.'
        with live.app.db.session() as session:
            session.add(approved("gh-min-labour", text, "wh-e2e"))
        runs.fire(
            live.app.db,
            live.app.templates,
            amplify(channels=["webhook"]),
            datetime.now(UTC),
            trigger="manual",
            destinations=live.app.destinations(),
        )
        await live.settle()
        [body] = receiver.received
        document = body["document"]
        assert (
            document["kind"] == "journey_update" and document["pledgemaker_id"] == "gh-min-labour"
        )
        assert document["quote"] == text, "the pledgemaker's words, intact through JSON"
        assert (
            text in document["texts"]["linkedin"] and "#EndChildLabour2021" in document["hashtags"]
        )
        with live.app.db.session() as session:
            post = session.scalar(select(OutboxMessage).where(OutboxMessage.channel == "webhook"))
            assert post is not None and (post.state, post.external_id) == ("sent", "wh-1")
            consent.withdraw(session, "gh-min-labour", None, frozenset({"webhook"}))
        await live.settle()
        assert receiver.received[-1] == {"event": "delete", "post_id": "wh-1"}
    finally:
        await live.close()
        live.app.close()
        await live.sandbox.stop()
        await receiver.stop()
