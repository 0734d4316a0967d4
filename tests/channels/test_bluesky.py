"""The Bluesky adapter end to end: the real atproto SDK over HTTP against the in-package PDS
sandbox (sandbox/pledgebot_sandbox/bluesky.py), which checks posts against the lexicons and answers with the
PDS's own error shapes."""

from __future__ import annotations

import asyncio
import logging
import struct
import time
import zlib
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from atproto_client.models.string_formats import TID_RE
from pydantic import SecretStr
from sqlalchemy import select

from bot.campaigns import posts
from bot.campaigns.amplify import AmplifyCampaign
from bot.campaigns.base import Destinations
from bot.channels.base import Media, OutboundMessage
from bot.channels.bluesky.adapter import BlueskyChannel, record_key
from bot.channels.bluesky.settings import BlueskySettings
from bot.channels.bluesky.text import bluesky_length
from bot.channels.registry import plain_text_channels
from bot.community.importer import import_pledgemakers
from bot.core.errors import ChannelUnauthorized, RateLimited, Rejected, TransientError
from bot.core.models import CampaignControl, JourneyUpdate, OutboxMessage, Pledgemaker
from bot.delivery import outbox
from bot.delivery.dispatcher import Dispatcher
from bot.delivery.messages import PlannedMessage
from bot.scheduling import runs
from bot.service.app import App, build_app
from bot.settings.config import load_config
from bot.text.templates import Templates
from pledgebot_sandbox.bluesky import BlueskySandbox
from tests.conftest import ROOT, SAMPLE_CSV, TOKEN_ENV, write_config

CREATE = "com.atproto.repo.createRecord"
ILO = ("ilo.bsky.social", "did:plc:ilochildlabour0000000000a")
PASSWORD_VAR = "PB_TEST_BLUESKY_APP_PASSWORD"


def png(path: Path, *, pad_to: int = 0) -> Path:
    """A real 1×1 PNG (written by hand: no imaging library needed), padded to ``pad_to`` bytes."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    data = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(b"\x00\xff\x00\x00"))
        + chunk(b"IEND", b"")
    )
    path.write_bytes(data + b"\x00" * max(0, pad_to - len(data)))
    return path


@pytest.fixture
async def sandbox() -> AsyncIterator[BlueskySandbox]:
    running = BlueskySandbox(known_handles=dict([ILO]))
    await running.start()
    yield running
    await running.stop()


def adapter(
    sandbox: BlueskySandbox, *, password: str | None = None, **settings: Any
) -> BlueskyChannel:
    values = {
        "enabled": True,
        "service_url": sandbox.base_url,
        "handle": sandbox.handle,
        "request_timeout": 3,
        **settings,
    }
    secret = SecretStr(password or sandbox.app_password)
    return BlueskyChannel(BlueskySettings.model_validate(values), {"app_password": secret})


@pytest.fixture
async def channel(sandbox: BlueskySandbox) -> AsyncIterator[BlueskyChannel]:
    made = adapter(sandbox)
    await made.start()
    yield made
    await made.aclose()


def message(text: str, key: str = "", **extra: Any) -> OutboundMessage:
    return OutboundMessage(id=1, recipient="timeline", text=text, idempotency_key=key, **extra)


# -- counting ---------------------------------------------------------------------------------


def test_bluesky_counts_graphemes_and_bytes() -> None:
    assert bluesky_length("e\u0301" * 300) == 300, "a letter and its combining accent: one"
    assert bluesky_length("🇫🇷👍🏽1️⃣") == 3, "a flag, a skin tone, a keycap: one each"
    assert bluesky_length("\u1100\u1161\u11a8") == 1, "Hangul jamo make one syllable"
    family = "👨‍👩‍👧"  # one grapheme, 18 bytes: 3,000 bytes come before 300 graphemes
    assert bluesky_length(family * 166) == 299 and bluesky_length(family * 167) == 301
    assert bluesky_length("https://www.ilo.org/" + "x" * 100) == 120, "a URL counts in full"


def test_record_keys_are_tids_made_from_the_idempotency_key() -> None:
    key = record_key("amplify:journeys:2026-03-01T09:00:00.000000Z:bluesky:1")
    assert TID_RE.match(key) and key == record_key(
        "amplify:journeys:2026-03-01T09:00:00.000000Z:bluesky:1"
    )
    others = {record_key(f"amplify:journeys:slot:bluesky:{n}") for n in range(1000)}
    assert len(others) == 1000 and all(TID_RE.match(k) for k in others)
    now = datetime.now(UTC).timestamp() * 1_000_000
    alphabet = "234567abcdefghijklmnopqrstuvwxyz"
    for k in others:  # the TID's clock: from 2023 on, never ahead of now
        value = 0
        for char in k:
            value = value * 32 + alphabet.index(char)
        assert datetime(2023, 1, 1, tzinfo=UTC).timestamp() * 1e6 <= value >> 10 < now


# -- posting ----------------------------------------------------------------------------------


async def test_a_long_update_is_a_thread_with_root_and_parent_refs(
    sandbox: BlueskySandbox, channel: BlueskyChannel
) -> None:
    text = (
        "Des comités de protection de l’enfance sont actifs dans 212 communautés 🌱, "
        "et 87 enfants ont repris l’école ce trimestre. "
    ) * 5 + "https://www.ilo.org/childlabour #EndChildLabour2021"
    planned = posts.thread(
        key_prefix="amplify:j:slot", channel="bluesky", destination="timeline", text=text,
        media=(), post={},
    )  # fmt: skip
    assert len(planned) == 3 and all(bluesky_length(p.text) <= 300 for p in planned)
    previous = None
    for part in planned:
        sent = await channel.send(message(part.text, part.idempotency_key, reply_to=previous))
        previous = sent.external_id
    first, second, third = sandbox.posts()
    assert [p["value"]["text"] for p in (first, second, third)] == [p.text for p in planned]
    assert "reply" not in first["value"]
    ref = {p["uri"]: {"uri": p["uri"], "cid": p["cid"]} for p in (first, second)}

    def refs(post: dict[str, Any]) -> tuple[dict[str, str], dict[str, str]]:
        reply = post["value"]["reply"]
        return tuple({k: reply[side][k] for k in ("uri", "cid")} for side in ("root", "parent"))  # type: ignore[return-value]

    assert refs(second) == (ref[first["uri"]], ref[first["uri"]])
    assert refs(third) == (ref[first["uri"]], ref[second["uri"]])
    assert third["value"]["text"].endswith("#EndChildLabour2021 (3/3)")
    assert [p["rkey"] for p in (first, second, third)] == [
        record_key(p.idempotency_key) for p in planned
    ]


async def test_the_sandbox_counts_graphemes_as_the_adapter_does(
    sandbox: BlueskySandbox, channel: BlueskyChannel
) -> None:
    accents = "e\u0301" * 300  # 600 code points, 300 graphemes: one post
    await channel.send(message(accents))
    with pytest.raises(Rejected, match="301 graphemes"):
        await channel.send(message(accents + "!"))
    record = channel._models.AppBskyFeedPost.Record(
        created_at=channel.client.get_current_time_iso(), text="é" * 301
    )
    with pytest.raises(Rejected, match="must not be longer than 300 graphemes"):
        await channel._xrpc(channel.client.app.bsky.feed.post.create, sandbox.did, record)
    assert sandbox.texts() == [accents]


async def test_links_mentions_and_hashtags_are_facets_at_utf8_byte_offsets(
    sandbox: BlueskySandbox, channel: BlueskyChannel
) -> None:
    text = (
        "Écoles rouvertes ✓ — 👨‍👩‍👧 merci @ilo.bsky.social et @nobody.bsky.social : "
        "https://www.ilo.org/childlabour #EndChildLabour2021"
    )
    await channel.send(message(text))
    [post] = sandbox.posts()
    encoded = text.encode()
    found = {
        encoded[f["index"]["byteStart"] : f["index"]["byteEnd"]].decode(): f["features"][0]
        for f in post["value"]["facets"]
    }
    assert found == {
        "@ilo.bsky.social": {"$type": "app.bsky.richtext.facet#mention", "did": ILO[1]},
        "https://www.ilo.org/childlabour": {
            "$type": "app.bsky.richtext.facet#link",
            "uri": "https://www.ilo.org/childlabour",
        },
        "#EndChildLabour2021": {
            "$type": "app.bsky.richtext.facet#tag",
            "tag": "EndChildLabour2021",
        },
    }, "a handle that does not resolve stays plain text"


async def test_an_image_goes_up_as_a_blob_with_its_alt_text(
    sandbox: BlueskySandbox, channel: BlueskyChannel, tmp_path: Path
) -> None:
    image = png(tmp_path / "classroom.png")
    await channel.send(message("Back to school.", media=(Media(str(image), "Children in class"),)))
    [post] = sandbox.posts()
    embed = post["value"]["embed"]
    assert embed["$type"] == "app.bsky.embed.images"
    [item] = embed["images"]
    assert item["alt"] == "Children in class"
    assert (item["aspectRatio"]["width"], item["aspectRatio"]["height"]) == (1, 1)
    blob = sandbox.blobs()[item["image"]["ref"]["$link"]]
    assert blob == {"size": image.stat().st_size, "mimeType": "image/png"}


async def test_an_image_whose_size_cannot_be_read_goes_up_without_an_aspect_ratio(
    sandbox: BlueskySandbox, channel: BlueskyChannel, tmp_path: Path
) -> None:
    """The aspect ratio is only recommended: an image Pillow cannot read still goes up."""
    image = tmp_path / "scan.png"
    image.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))  # a PNG by its first bytes, then nothing
    await channel.send(message("A scan.", media=(Media(str(image), "A letter"),)))
    [post] = sandbox.posts()
    [item] = post["value"]["embed"]["images"]
    assert item["alt"] == "A letter" and "aspectRatio" not in item


async def test_an_image_without_alt_text_is_refused_before_anything_is_sent(
    sandbox: BlueskySandbox, channel: BlueskyChannel, tmp_path: Path
) -> None:
    image = png(tmp_path / "classroom.png")
    with pytest.raises(Rejected, match="no alt text"):
        await channel.send(message("Back to school.", media=(Media(str(image)),)))
    assert sandbox.posts() == [] and sandbox.blobs() == {}


async def test_the_sandbox_refuses_an_image_whose_alt_field_is_missing(
    sandbox: BlueskySandbox, tmp_path: Path
) -> None:
    """The lexicon requires ``alt`` (it may be empty): a client that leaves it out gets 400."""
    async with httpx.AsyncClient(base_url=f"{sandbox.base_url}/xrpc") as http:
        login = {"identifier": sandbox.handle, "password": sandbox.app_password}
        session = (await http.post("/com.atproto.server.createSession", json=login)).json()
        auth = {"Authorization": f"Bearer {session['accessJwt']}"}
        data = png(tmp_path / "a.png").read_bytes()
        blob = (await http.post("/com.atproto.repo.uploadBlob", content=data, headers=auth)).json()
        record = {
            "$type": "app.bsky.feed.post",
            "text": "no alt",
            "createdAt": "2026-03-01T09:00:00.000Z",
            "embed": {"$type": "app.bsky.embed.images", "images": [{"image": blob["blob"]}]},
        }
        body = {"repo": session["did"], "collection": "app.bsky.feed.post", "record": record}
        answer = await http.post("/com.atproto.repo.createRecord", json=body, headers=auth)
    assert answer.status_code == 400
    assert answer.json() == {
        "error": "InvalidRequest",
        "message": 'Invalid app.bsky.feed.post record: Record/embed/images/0 must have the property "alt"',
    }


async def test_an_image_over_the_limit_is_refused(
    sandbox: BlueskySandbox, channel: BlueskyChannel, tmp_path: Path
) -> None:
    big = png(tmp_path / "big.png", pad_to=2_000_001)
    with pytest.raises(Rejected, match="2,000,001 bytes"):
        await channel.send(message("Too big.", media=(Media(str(big), "a"),)))
    assert sandbox.blobs() == {}, "refused before uploading"
    older = adapter(sandbox, max_image_bytes=1_000_000)  # a PDS still on the 1 MB lexicon
    with pytest.raises(Rejected, match="at most 1,000,000"):
        await older.send(
            message(
                "Too big.",
                media=(Media(str(png(tmp_path / "m.png", pad_to=1_000_001)), "a"),),
            )
        )
    await older.aclose()
    trusting = adapter(sandbox, max_image_bytes=5_000_000)  # the PDS refuses it all the same
    with pytest.raises(Rejected, match="BlobTooLarge"):
        await trusting.send(message("Too big.", media=(Media(str(big), "a"),)))
    await trusting.aclose()
    assert sandbox.posts() == []


async def test_delete_takes_the_post_down_and_twice_is_harmless(
    sandbox: BlueskySandbox, channel: BlueskyChannel
) -> None:
    kept = await channel.send(message("Stays.", "k:1"))
    withdrawn = await channel.send(message("Consent withdrawn.", "k:2"))
    assert withdrawn.external_id == f"at://{sandbox.did}/app.bsky.feed.post/{record_key('k:2')}"
    await channel.delete(message(withdrawn.external_id, action="delete"))
    await channel.delete(message(withdrawn.external_id, action="delete"))
    assert [p["uri"] for p in sandbox.posts()] == [kept.external_id]
    with pytest.raises(Rejected, match="not one of this account's posts"):
        await channel.delete(message(f"at://{ILO[1]}/app.bsky.feed.post/3abc", action="delete"))


# -- failures ---------------------------------------------------------------------------------


async def test_429_waits_until_the_reset_then_posts(
    sandbox: BlueskySandbox, channel: BlueskyChannel
) -> None:
    sandbox.fail_next(
        CREATE, "rate_limited", headers={"ratelimit-reset": str(int(time.time()) + 1)}
    )
    with pytest.raises(RateLimited) as caught:
        await channel.send(message("one too many", "k:1"))
    assert 0 < caught.value.retry_after <= 2
    calls = sandbox.method_calls[CREATE]
    with pytest.raises(RateLimited):  # held: no request before the reset
        await channel.send(message("one too many", "k:1"))
    assert sandbox.method_calls[CREATE] == calls
    await asyncio.sleep(caught.value.retry_after + 0.05)
    await channel.send(message("one too many", "k:1"))
    assert sandbox.texts() == ["one too many"] and sandbox.rate_limited == 1


async def test_a_spent_write_budget_holds_posting_before_any_429() -> None:
    sandbox = BlueskySandbox(points_per_window=6)  # two posts (3 points each) per window
    await sandbox.start()
    channel = adapter(sandbox)
    try:
        await channel.send(message("one"))
        await channel.send(message("two"))
        with pytest.raises(RateLimited) as caught:
            await channel.send(message("three"))
        assert caught.value.retry_after > 3000  # the hour's window
        assert sandbox.rate_limited == 0 and sandbox.texts() == ["one", "two"]
    finally:
        await channel.aclose()
        await sandbox.stop()


@pytest.mark.parametrize("how", ["server_error", "bad_gateway", "unavailable"])
async def test_a_server_error_is_transient(
    sandbox: BlueskySandbox, channel: BlueskyChannel, how: str
) -> None:
    sandbox.fail_next(CREATE, how)
    with pytest.raises(TransientError) as caught:
        await channel.send(message("Retry me.", "k:1"))
    assert not caught.value.maybe_delivered
    await channel.send(message("Retry me.", "k:1"))
    assert sandbox.texts() == ["Retry me."]


async def test_a_timeout_before_the_pds_wrote_may_have_delivered_and_the_resend_posts_once(
    sandbox: BlueskySandbox,
) -> None:
    channel = adapter(sandbox, request_timeout=0.5)
    sandbox.fail_next(CREATE, "timeout", delay=1.5)  # no answer in time, and nothing made
    with pytest.raises(TransientError) as caught:
        await channel.send(message("Slow but sure.", "amplify:slow:1"))
    assert caught.value.maybe_delivered
    receipt = await channel.send(message("Slow but sure.", "amplify:slow:1", maybe_sent=True))
    [post] = sandbox.posts()
    assert receipt.external_id == post["uri"] and post["value"]["text"] == "Slow but sure."
    await channel.aclose()


@pytest.mark.parametrize("how", ["timeout", "bad_gateway"])
async def test_a_post_made_but_not_confirmed_is_found_at_once(
    sandbox: BlueskySandbox, how: str
) -> None:
    """The PDS wrote the post, then the answer was lost (no answer in time, a proxy's 502): the
    record key names it, so the same send finds it instead of failing."""
    channel = adapter(sandbox, request_timeout=0.5)
    delay = {"delay": 1.5} if how == "timeout" else {}
    sandbox.fail_next(CREATE, how, deliver=True, **delay)
    receipt = await channel.send(message("Made once.", "amplify:lost:1"))
    [post] = sandbox.posts()
    assert receipt.external_id == post["uri"] and sandbox.method_calls[CREATE] == 1
    await channel.aclose()


@pytest.mark.parametrize("status", [500, 409])
async def test_a_resend_on_an_existing_record_key_is_already_sent(status: int) -> None:
    """A resend of a message the PDS already has (same idempotency key, same record key): the
    PDS refuses the duplicate (500 from the reference PDS today, 409 from others) and the post
    it has is the one we meant."""
    sandbox = BlueskySandbox(duplicate_status=status)
    await sandbox.start()
    channel = adapter(sandbox)
    try:
        first = await channel.send(message("Posted once.", "amplify:j:1"))
        again = await channel.send(message("Posted once.", "amplify:j:1"))
        assert again.external_id == first.external_id and sandbox.texts() == ["Posted once."]
        assert sandbox.method_calls[CREATE] == 2, "the second create hit the existing key"
        other = await channel.send(message("Posted once.", "amplify:j:2"))
        assert other.external_id != first.external_id, "another message may say the same"
    finally:
        await channel.aclose()
        await sandbox.stop()


async def test_an_expired_session_signs_in_again(
    sandbox: BlueskySandbox, channel: BlueskyChannel
) -> None:
    sandbox.expire_tokens()
    await channel.send(message("Still here."))
    assert sandbox.texts() == ["Still here."] and sandbox.sessions_created == 2


async def test_a_short_lived_access_token_is_refreshed_by_the_sdk() -> None:
    sandbox = BlueskySandbox(access_lifetime=60)  # under the SDK's 15-minute margin
    await sandbox.start()
    channel = adapter(sandbox)
    try:
        await channel.send(message("one"))
        await channel.send(message("two"))
        assert sandbox.sessions_created == 1 and sandbox.sessions_refreshed >= 2
        assert sandbox.texts() == ["one", "two"]
    finally:
        await channel.aclose()
        await sandbox.stop()


async def test_a_token_refused_twice_is_channel_unauthorized(
    sandbox: BlueskySandbox, channel: BlueskyChannel
) -> None:
    sandbox.fail_next(CREATE, "expired_token", times=2)
    with pytest.raises(ChannelUnauthorized, match="ExpiredToken"):
        await channel.send(message("hello"))
    assert sandbox.posts() == []


async def test_a_refused_app_password_is_channel_unauthorized(sandbox: BlueskySandbox) -> None:
    channel = adapter(sandbox, password="wrong-pass-word-1234")
    with pytest.raises(ChannelUnauthorized, match="Invalid identifier or password"):
        await channel.start()
    with pytest.raises(ChannelUnauthorized):
        await channel.send(message("hello"))
    await channel.aclose()


async def test_no_password_or_token_reaches_the_debug_logs(
    sandbox: BlueskySandbox, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    caplog.set_level(logging.DEBUG)
    channel = adapter(sandbox)
    await channel.send(message("hello @ilo.bsky.social", media=[]))
    sandbox.expire_tokens()
    await channel.send(message("again", media=(Media(str(png(tmp_path / "a.png")), "a"),)))
    sandbox.revoke_app_password()
    with pytest.raises(ChannelUnauthorized) as caught:
        await channel.send(message("refused"))
    await channel.aclose()
    logged = caplog.text + str(caught.value)
    assert "httpx" in caplog.text, "the HTTP client did log at DEBUG"
    for secret in [sandbox.app_password, *sandbox.tokens.issued]:
        assert secret not in logged


# -- end to end: through the outbox and the dispatcher ---------------------------------------


@pytest.fixture
def app(
    sandbox: BlueskySandbox,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[App]:
    monkeypatch.setenv(TOKEN_ENV, "123456:TEST-TOKEN")
    monkeypatch.setenv(PASSWORD_VAR, sandbox.app_password)
    extra = (
        f'[channels.bluesky]\nenabled = true\nservice_url = "{sandbox.base_url}"\n'
        f'handle = "{sandbox.handle}"\napp_password_env = "{PASSWORD_VAR}"\nrequest_timeout = 3\n'
    )
    built = build_app(load_config(write_config(tmp_path, extra=extra), required=True))
    built.db.upgrade()
    yield built
    built.close()


def dispatcher(app: App) -> Dispatcher:
    return Dispatcher(app.db, {"bluesky": app.channel("bluesky")}, app.config.dispatcher)


def rows(app: App) -> list[OutboxMessage]:
    with app.db.session() as session:
        return list(session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


async def test_an_amplify_slot_posts_a_thread(app: App, sandbox: BlueskySandbox) -> None:
    with app.db.session() as session:
        import_pledgemakers(session, SAMPLE_CSV)
    with app.db.session() as session:
        session.add(
            JourneyUpdate(
                pledgemaker_id="ilo", pillar="act", kind="progress",
                text="We support constituents at national level & train labour inspectors. " * 6,
                moderation="approved", consent_to_publish=True, source="import", source_ref="e2e",
            )
        )  # fmt: skip
    spec = AmplifyCampaign.model_validate(
        {"id": "journeys", "kind": "amplify", "cron": "0 9 * * *", "channels": ["bluesky"],
         "hashtags": ["#EndChildLabour2021"]}
    )  # fmt: skip
    destinations = Destinations({"bluesky": "timeline"})
    runs.fire(app.db, app.templates, spec, datetime.now(UTC), trigger="manual",
              destinations=destinations)  # fmt: skip
    for _ in range(5):  # one part per round: each waits for its parent's URI
        await dispatcher(app).dispatch_once()
    await app.aclose()
    found = sandbox.posts()
    assert len(found) == 2 and found[0]["value"]["text"].startswith(
        "International Labour Organization on Act:"
    )
    assert "&amp;" not in found[0]["value"]["text"]
    assert found[1]["value"]["reply"]["parent"]["uri"] == found[0]["uri"]
    tag = found[1]["value"]["facets"][-1]["features"][0]
    assert tag == {"$type": "app.bsky.richtext.facet#tag", "tag": "EndChildLabour2021"}
    assert [(r.state, r.external_id) for r in rows(app)] == [("sent", p["uri"]) for p in found]


async def test_a_500_is_retried_by_the_dispatcher(app: App, sandbox: BlueskySandbox) -> None:
    with app.db.session() as session:
        outbox.enqueue(session, [PlannedMessage("post:1", "bluesky", "timeline", "hello")])
    sandbox.fail_next(CREATE, "server_error")
    assert await dispatcher(app).dispatch_once() == 1
    [row] = rows(app)
    assert (row.state, row.attempts) == ("retry_wait", 1) and "500" in (row.last_error or "")
    await asyncio.sleep(0.2)  # the test config's backoff is 0.05 s
    assert await dispatcher(app).dispatch_once() == 1
    await app.aclose()
    [row] = rows(app)
    assert (row.state, row.external_id) == ("sent", sandbox.posts()[0]["uri"])


async def test_an_expired_token_with_a_revoked_password_pauses_the_channel(
    app: App, sandbox: BlueskySandbox
) -> None:
    with app.db.session() as session:
        outbox.enqueue(session, [PlannedMessage("post:1", "bluesky", "timeline", "hello")])
    await app.channel("bluesky").start()
    sandbox.expire_tokens()
    sandbox.revoke_app_password()
    assert await dispatcher(app).dispatch_once() == 1
    assert await dispatcher(app).dispatch_once() == 0, "paused: not a retry loop"
    await app.aclose()
    with app.db.session() as session:
        control = session.get(CampaignControl, "channel:bluesky")
        assert control is not None and control.paused
    [row] = rows(app)
    assert (row.state, row.attempts) == ("retry_wait", 0) and sandbox.posts() == []


async def test_a_message_in_flight_at_a_crash_is_not_posted_twice(
    app: App, sandbox: BlueskySandbox
) -> None:
    """The PDS made the post, the process died before recording it: the resend (same record
    key) finds it instead of posting it again."""
    with app.db.session() as session:
        outbox.enqueue(session, [PlannedMessage("manual:crash:1", "bluesky", "timeline", "Once.")])
    await app.channel("bluesky").send(message("Once.", "manual:crash:1"))  # before the crash
    with app.db.session() as session:
        row = session.scalar(select(OutboxMessage))
        assert row is not None
        row.state, row.claimed_until = "sending", row.created_at - timedelta(minutes=5)
    assert await dispatcher(app).dispatch_once() == 1
    await app.aclose()
    [post] = sandbox.posts()
    assert sandbox.method_calls[CREATE] == 1, "found by getRecord before creating again"
    [row] = rows(app)
    assert (row.state, row.external_id, row.possible_duplicate) == ("sent", post["uri"], True)


# -- templates --------------------------------------------------------------------------------


@pytest.mark.parametrize("language", ["en", "fr", "es"])
def test_bluesky_templates_are_plain_text(language: str) -> None:
    from bot.campaigns.amplify import post_context

    templates = Templates(ROOT / "templates", plain_text=plain_text_channels())
    spec = AmplifyCampaign.model_validate(
        {"id": "journeys", "kind": "amplify", "cron": "0 9 * * *", "hashtags": ["#AchieveSDG87"]}
    )
    update = JourneyUpdate(pillar="act", kind="progress", text="Safe & sound <today>", media=[])
    maker = Pledgemaker(id="ilo", name="ILO & partners", handles={"x": "@ilo"})
    text = templates.render(
        "amplify/bluesky", language, **post_context(spec, update, maker, language)
    )
    assert "ILO & partners" in text and "Safe & sound <today>" in text and "&amp;" not in text
    assert "@" not in text, "an X handle means nothing on Bluesky"
    assert text.endswith("#AchieveSDG87")
    fact = templates.render(
        "knowledge/bluesky", language, text="160 million children & counting",
        source="https://www.ilo.org", hashtags="#AchieveSDG87", fact=None,
    )  # fmt: skip
    assert "160 million children & counting" in fact and "https://www.ilo.org" in fact
