"""The Mastodon adapter end to end: real Mastodon.py over HTTP against a real mastodon-mock server
(a stateful Mastodon REST API), its faults injected through the mock's control plane."""

from __future__ import annotations

import struct
import zlib
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import select

from bot.campaigns import posts
from bot.campaigns.amplify import AmplifyCampaign
from bot.campaigns.base import Destinations, post_limit
from bot.channels.base import Media, OutboundMessage
from bot.channels.mastodon.adapter import MastodonChannel
from bot.channels.mastodon.settings import MastodonSettings
from bot.channels.mastodon.text import mastodon_length
from bot.channels.registry import plain_text_channels
from bot.community.importer import import_pledgemakers
from bot.core.errors import ChannelUnauthorized, RateLimited, Rejected, TransientError
from bot.core.models import JourneyUpdate, OutboxMessage, Pledgemaker, Post
from bot.delivery.dispatcher import Dispatcher
from bot.scheduling import runs
from bot.service.app import App, build_app
from bot.settings.config import DispatcherSettings, load_config
from bot.text.templates import Templates
from tests.channels.mastodon_server import REMOTE_HANDLE, MastodonServer
from tests.conftest import ROOT, SAMPLE_CSV, TOKEN_ENV, write_config

TOKEN_VAR = "PB_TEST_MASTODON_TOKEN"


def png(path: Path) -> Path:
    """A real 1×1 PNG, written by hand so the test needs no imaging library."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(b"\x00\xff\x00\x00"))
        + chunk(b"IEND", b"")
    )
    return path


@pytest.fixture(scope="module")
def server() -> Iterator[MastodonServer]:
    """One mock instance for the module (it starts in ~0.5 s); each test resets it."""
    running = MastodonServer().start()
    yield running
    running.stop()


@pytest.fixture
def mock(server: MastodonServer) -> MastodonServer:
    server.reset()
    return server


def adapter(
    server: MastodonServer, token: str | None = None, **settings: object
) -> MastodonChannel:
    values = {"enabled": True, "api_base_url": server.base_url, "request_timeout": 3, **settings}
    return MastodonChannel(
        MastodonSettings.model_validate(values),
        {"access_token": SecretStr(token or server.token)},
    )


@pytest.fixture
async def channel(mock: MastodonServer) -> AsyncIterator[MastodonChannel]:
    started = adapter(mock)
    await started.start()
    yield started
    await started.aclose()


def message(text: str, key: str = "", **extra: object) -> OutboundMessage:
    return OutboundMessage(id=1, recipient="timeline", text=text, idempotency_key=key, **extra)  # type: ignore[arg-type]


# -- posting ---------------------------------------------------------------------------------


async def test_a_post_is_public_on_the_timeline_without_a_content_warning(
    mock: MastodonServer, channel: MastodonChannel
) -> None:
    receipt = await channel.send(message("Back to school in 212 communities. #EndChildLabour2021"))
    [status] = mock.statuses()
    assert status["id"] == receipt.external_id
    assert status["text"] == "Back to school in 212 communities. #EndChildLabour2021"
    assert (status["visibility"], status["spoiler_text"], status["sensitive"]) == (
        "public",
        "",
        False,
    )


async def test_a_content_warning_is_set_when_configured(mock: MastodonServer) -> None:
    channel = adapter(mock, spoiler_text="Child labour", visibility="unlisted")
    await channel.send(message("A hard story, told with consent."))
    await channel.aclose()
    [status] = mock.statuses()
    assert (status["spoiler_text"], status["visibility"]) == ("Child labour", "unlisted")


async def test_a_long_post_is_a_thread_whose_parts_reply_to_one_another(
    mock: MastodonServer, channel: MastodonChannel
) -> None:
    text = (
        "Community child protection committees are now active in 212 cocoa-growing "
        "communities, and 87 children were referred to school this quarter. "
    ) * 8 + "https://www.ilo.org/childlabour #EndChildLabour2021"
    planned = posts.thread(
        key_prefix="amplify:t:slot",
        channel="mastodon",
        destination="timeline",
        text=text,
        media=(),
        post={},
    )
    assert len(planned) == 3 and all(mastodon_length(p.text) <= 500 for p in planned)
    previous = None
    for part in planned:
        sent = await channel.send(message(part.text, part.idempotency_key, reply_to=previous))
        previous = sent.external_id
    statuses = mock.statuses()
    assert [s["text"] for s in statuses] == [p.text for p in planned]
    assert [s["in_reply_to_id"] for s in statuses] == [None, statuses[0]["id"], statuses[1]["id"]]
    assert statuses[-1]["text"].endswith("#EndChildLabour2021 (3/3)")


async def test_an_image_goes_up_first_with_its_alt_text(
    mock: MastodonServer, channel: MastodonChannel, tmp_path: Path
) -> None:
    image = png(tmp_path / "classroom.png")
    receipt = await channel.send(
        message("Back to school.", media=(Media(str(image), "Children in class"),))
    )
    status = mock.status(receipt.external_id)
    assert status is not None
    [attachment] = status["media_attachments"]
    assert (attachment["type"], attachment["description"]) == ("image", "Children in class")


async def test_the_pledgemakers_fediverse_handle_is_a_mention(
    mock: MastodonServer, channel: MastodonChannel
) -> None:
    receipt = await channel.send(message(f"ILO ({REMOTE_HANDLE}) on Act: “We did it.”"))
    status = mock.status(receipt.external_id)
    assert status is not None
    assert [m["acct"] for m in status["mentions"]] == ["ilo@mastodon.social"]


async def test_the_same_idempotency_key_posts_once(
    mock: MastodonServer, channel: MastodonChannel
) -> None:
    """A resend after a crash (same outbox message, same key) finds the status made before."""
    first = await channel.send(message("Posted once.", "amplify:j:2026-03-01:mastodon:1"))
    again = await channel.send(
        message("Posted once.", "amplify:j:2026-03-01:mastodon:1", maybe_sent=True)
    )
    assert again.external_id == first.external_id
    assert mock.texts() == ["Posted once."]
    other = await channel.send(message("Posted once.", "amplify:j:2026-03-02:mastodon:1"))
    assert other.external_id != first.external_id, "another message may say the same words"


async def test_delete_takes_the_status_down_and_a_gone_one_is_not_an_error(
    mock: MastodonServer, channel: MastodonChannel
) -> None:
    kept = await channel.send(message("Stays."))
    withdrawn = await channel.send(message("Consent withdrawn."))
    await channel.delete(message(withdrawn.external_id, action="delete"))
    assert mock.texts() == ["Stays."] and mock.status(withdrawn.external_id) is None
    await channel.delete(message(withdrawn.external_id, action="delete"))  # 404: already gone
    assert mock.status(kept.external_id) is not None


# -- failures --------------------------------------------------------------------------------


async def test_429_is_rate_limited_until_the_reset_and_holds_posting(
    mock: MastodonServer, channel: MastodonChannel
) -> None:
    mock.rate_limit_next(seconds=30)
    with pytest.raises(RateLimited) as caught:
        await channel.send(message("one too many"))
    assert 25 <= caught.value.retry_after <= 36  # until X-RateLimit-Reset, by the server's clock
    with pytest.raises(RateLimited):  # held: not another request before the reset
        await channel.send(message("still too early"))
    assert mock.statuses() == []


async def test_429_with_mastodons_iso_reset_time(
    mock: MastodonServer, channel: MastodonChannel
) -> None:
    """Mastodon itself says the reset as an ISO 8601 time, not a Unix one."""
    reset = (datetime.now(UTC) + timedelta(minutes=2)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    mock.fault(kind="ratelimit", headers={"X-RateLimit-Reset": reset})
    with pytest.raises(RateLimited) as caught:
        await channel.send(message("one too many"))
    # The server's Date header has whole seconds and may lag on a busy machine: a few s more.
    assert 110 <= caught.value.retry_after <= 126


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_a_server_error_is_transient_and_the_retry_posts(
    mock: MastodonServer, channel: MastodonChannel, status: int
) -> None:
    mock.fault(status=status)
    with pytest.raises(TransientError) as caught:
        await channel.send(message("Retry me.", "k"))
    assert not caught.value.maybe_delivered
    await channel.send(message("Retry me.", "k"))
    assert mock.texts() == ["Retry me."]


async def test_a_timeout_after_sending_may_have_delivered_and_the_retry_posts_once(
    mock: MastodonServer,
) -> None:
    """No answer in time: the request went out, so the status may exist (a possible duplicate
    for the dispatcher); the retry carries the same key, so the instance keeps one status."""
    channel = adapter(mock, request_timeout=0.5)
    mock.fault(kind="latency", delay_ms=1500)
    with pytest.raises(TransientError) as caught:
        await channel.send(message("Slow but sure.", "amplify:slow:1"))
    assert caught.value.maybe_delivered
    receipt = await channel.send(message("Slow but sure.", "amplify:slow:1", maybe_sent=True))
    [status] = mock.statuses()
    assert (status["id"], status["text"]) == (receipt.external_id, "Slow but sure.")
    await channel.aclose()


async def test_an_unreachable_instance_is_transient_and_nothing_was_sent(
    server: MastodonServer,
) -> None:
    channel = MastodonChannel(
        MastodonSettings(enabled=True, api_base_url="http://127.0.0.1:9", request_timeout=1),
        {"access_token": SecretStr("any")},
    )
    with pytest.raises(TransientError) as caught:
        await channel.send(message("hello"))
    assert not caught.value.maybe_delivered
    await channel.aclose()


async def test_a_refused_token_is_channel_unauthorized(mock: MastodonServer) -> None:
    channel = adapter(mock, token="revoked-token")
    with pytest.raises(ChannelUnauthorized):
        await channel.start()
    with pytest.raises(ChannelUnauthorized):
        await channel.send(message("hello"))
    await channel.aclose()
    assert mock.statuses() == []


@pytest.mark.parametrize("status", [401, 403])
async def test_401_or_403_on_posting_is_channel_unauthorized(
    mock: MastodonServer, channel: MastodonChannel, status: int
) -> None:
    mock.fault(status=status, body={"error": "The access token was revoked"})
    with pytest.raises(ChannelUnauthorized, match="revoked"):
        await channel.send(message("hello"))


async def test_too_long_is_rejected_before_sending(
    mock: MastodonServer, channel: MastodonChannel
) -> None:
    with pytest.raises(Rejected, match="too long"):
        await channel.send(message("word " * 101))
    assert mock.statuses() == []


async def test_the_instances_422_is_rejected(mock: MastodonServer) -> None:
    """An instance whose limit is lower than configured refuses with 422: Rejected."""
    channel = adapter(mock, max_characters=1000)
    with pytest.raises(Rejected, match=r"422.*too long"):
        await channel.send(message("word " * 120))
    await channel.aclose()
    assert mock.statuses() == []


async def test_a_missing_image_file_is_rejected(
    mock: MastodonServer, channel: MastodonChannel, tmp_path: Path
) -> None:
    with pytest.raises(Rejected, match="media file"):
        await channel.send(message("x", media=(Media(str(tmp_path / "gone.png"), "a"),)))


async def test_the_token_never_reaches_the_logs(
    mock: MastodonServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    channel = adapter(mock)
    await channel.start()
    await channel.send(message("hello"))
    mock.fault(status=401)
    with pytest.raises(ChannelUnauthorized) as caught:
        await channel.send(message("again"))
    await channel.aclose()
    assert mock.token not in caplog.text and mock.token not in str(caught.value)


# -- counting and templates -------------------------------------------------------------------


def test_mastodon_counts_a_url_as_23_and_a_mention_without_its_domain() -> None:
    url = "https://www.ilo.org/global/topics/child-labour/lang--en/index.htm"
    assert mastodon_length(f"See {url}") == 4 + 23
    assert mastodon_length(f"Hi {REMOTE_HANDLE}!") == len("Hi @ilo!")
    assert mastodon_length("👨‍👩‍👧 ok") == 4
    assert mastodon_length("example.org") == 11, "only links with a scheme become links"


@pytest.mark.parametrize("language", ["en", "fr", "es"])
def test_mastodon_templates_are_plain_text_and_mention_the_handle(language: str) -> None:
    from bot.campaigns.amplify import post_context

    templates = Templates(ROOT / "templates", plain_text=plain_text_channels())
    spec = AmplifyCampaign.model_validate(
        {"id": "journeys", "kind": "amplify", "cron": "0 9 * * *", "hashtags": ["#AchieveSDG87"]}
    )
    update = JourneyUpdate(pillar="act", kind="progress", text="Safe & sound <today>", media=[])
    maker = Pledgemaker(id="ilo", name="ILO & partners", handles={"x": "@ilo"})
    text = templates.render("amplify/mastodon", language, **post_context(spec, update, maker))
    assert "ILO & partners" in text and "Safe & sound <today>" in text and "&amp;" not in text
    assert "@" not in text, "no fediverse handle: no mention (an X handle means nothing there)"
    maker.handles["mastodon"] = REMOTE_HANDLE
    text = templates.render("amplify/mastodon", language, **post_context(spec, update, maker))
    assert f"ILO & partners ({REMOTE_HANDLE})" in text and text.endswith("#AchieveSDG87")
    fact = templates.render(
        "knowledge/mastodon",
        language,
        text="160 million children & counting",
        source="https://www.ilo.org",
        hashtags="#AchieveSDG87",
        fact=None,
    )
    assert "160 million children & counting" in fact and "https://www.ilo.org" in fact


# -- end to end: an amplify slot through the outbox and the dispatcher -------------------------


@pytest.fixture
def app(mock: MastodonServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[App]:
    monkeypatch.setenv(TOKEN_ENV, "123456:TEST-TOKEN")
    monkeypatch.setenv(TOKEN_VAR, mock.token)
    extra = (
        "[channels.mastodon]\nenabled = true\n"
        f'api_base_url = "{mock.base_url}"\naccess_token_env = "{TOKEN_VAR}"\n'
        "request_timeout = 3\ndelete_on_withdraw = true\n"
    )
    built = build_app(load_config(write_config(tmp_path, extra=extra), required=True))
    built.db.upgrade()
    with built.db.session() as session:
        import_pledgemakers(session, SAMPLE_CSV)
        session.get(Pledgemaker, "ilo").handles["mastodon"] = REMOTE_HANDLE  # type: ignore[union-attr]
        session.add(
            JourneyUpdate(
                pledgemaker_id="ilo",
                pillar="act",
                kind="progress",
                text="We support constituents at national level & train labour inspectors. " * 9,
                moderation="approved",
                consent_to_publish=True,
                source="import",
                source_ref="e2e",
            )
        )
    yield built
    built.close()


async def deliver_everything(app: App) -> None:
    dispatcher = Dispatcher(app.db, {"mastodon": app.channel("mastodon")}, DispatcherSettings())
    for _ in range(10):  # one part of the thread per round: each waits for its parent's id
        if not await dispatcher.dispatch_once():
            break
    await app.aclose()


async def test_an_amplify_slot_posts_a_thread_with_a_mention(
    app: App, mock: MastodonServer
) -> None:
    assert app.destinations()["mastodon"] == "timeline"
    spec = AmplifyCampaign.model_validate(
        {
            "id": "journeys",
            "kind": "amplify",
            "cron": "0 9 * * *",
            "channels": ["mastodon"],
            "hashtags": ["#EndChildLabour2021"],
        }
    )
    runs.fire(
        app.db,
        app.templates,
        spec,
        datetime.now(UTC),
        trigger="manual",
        destinations=app.destinations(),
    )
    await deliver_everything(app)
    statuses = mock.statuses()
    assert len(statuses) == 2, "over 500 characters: a thread"
    assert statuses[0]["text"].startswith(f"International Labour Organization ({REMOTE_HANDLE})")
    assert "&amp;" not in statuses[0]["text"]
    assert [m["acct"] for m in statuses[0]["mentions"]] == ["ilo@mastodon.social"]
    assert statuses[1]["in_reply_to_id"] == statuses[0]["id"]
    assert statuses[1]["text"].endswith("#EndChildLabour2021 (2/2)")
    with app.db.session() as session:
        rows = list(session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))
        post = session.scalar(select(Post))
    assert [(r.state, r.external_id) for r in rows] == [("sent", s["id"]) for s in statuses]
    assert post is not None and (post.channel, post.parts) == ("mastodon", 2)


async def test_a_message_in_flight_at_a_crash_is_not_posted_twice(
    app: App, mock: MastodonServer
) -> None:
    """Mastodon made the status, the process died before recording it: the resend (same
    idempotency key) gets the same status back."""
    from bot.delivery import outbox
    from bot.delivery.messages import PlannedMessage

    with app.db.session() as session:
        outbox.enqueue(session, [PlannedMessage("manual:crash:1", "mastodon", "timeline", "Once.")])
    await app.channel("mastodon").send(message("Once.", "manual:crash:1"))  # before the crash
    with app.db.session() as session:
        row = session.scalar(select(OutboxMessage))
        row.state, row.claimed_until = "sending", row.created_at - timedelta(minutes=5)  # type: ignore[union-attr]
    await deliver_everything(app)
    [status] = mock.statuses()
    with app.db.session() as session:
        row = session.scalar(select(OutboxMessage))
    assert row is not None and (row.state, row.external_id) == ("sent", status["id"])


# -- the harness the shared contract test drives ------------------------------------------------


async def test_the_contract_harness_drives_a_server_of_its_own() -> None:
    from tests.channels.harness_mastodon import MastodonHarness

    harness = MastodonHarness()
    await harness.start()
    try:
        channel = await harness.adapter()
        recipient = harness.recipient()
        await channel.send(
            OutboundMessage(id=1, recipient=recipient, text="first", idempotency_key="c1")
        )
        for how, error in (
            ("rate_limited", RateLimited),
            ("transient", TransientError),
            ("unauthorized", ChannelUnauthorized),
        ):
            assert await harness.fail_next_send(how)
            with pytest.raises(error):
                await (await harness.adapter()).send(
                    OutboundMessage(id=2, recipient=recipient, text=how, idempotency_key=how)
                )
        with pytest.raises(Rejected):
            await channel.send(OutboundMessage(id=3, recipient=recipient, text=harness.too_long()))
        refused = await harness.adapter(bad_credentials=True)
        with pytest.raises(ChannelUnauthorized):
            await refused.send(OutboundMessage(id=4, recipient=recipient, text="nope"))
        assert harness.received() == ["first"]
        assert await harness.gone_recipient() is None and await harness.push_inbound("hi") is None
        assert set(harness.not_applicable) == {"recipient_gone", "inbound"}
        assert all(secret for secret in harness.secrets())
    finally:
        await harness.stop()


def test_the_instance_limit_in_the_config_is_where_threads_split(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = "We trained labour inspectors in every district of the region this year. " * 10
    assert 500 < mastodon_length(text) <= 1000

    def parts(destinations: Destinations) -> int:
        return len(
            posts.thread(
                key_prefix="k",
                channel="mastodon",
                destination="timeline",
                text=text,
                media=(),
                post={},
                limit=post_limit(destinations, "mastodon"),
            )
        )

    monkeypatch.setenv(TOKEN_ENV, "123456:TEST-TOKEN")
    for chars, expected in ((None, 2), (1000, 1)):
        setting = f"max_characters = {chars}" if chars else ""
        extra = f"""
[channels.mastodon]
enabled = true
api_base_url = "https://mastodon.example"
{setting}
"""
        app = build_app(load_config(write_config(tmp_path, extra=extra), required=True))
        try:
            assert parts(app.destinations()) == expected, chars
        finally:
            app.close()
