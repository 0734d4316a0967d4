"""The Instagram adapter end to end: the Graph sandbox (sandbox/pledgebot_sandbox/facebook.py) really fetches
each image from the dashboard's public media route (bot/web/media.py) on a loopback port, so
the signed URL, the approved-update check and the container flow run as they will in production."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import select
from starlette.testclient import TestClient

from bot.campaigns.amplify import AmplifyCampaign
from bot.campaigns.base import Destinations
from bot.channels.base import Media, OutboundMessage
from bot.channels.facebook.graph import GraphRefusal
from bot.channels.instagram.adapter import InstagramChannel, caption_problem
from bot.channels.instagram.settings import InstagramSettings
from bot.community import consent
from bot.core import media_urls
from bot.core.errors import ChannelUnauthorized, ConfigError, RateLimited, Rejected, TransientError
from bot.core.media_urls import KEY_ENV, MediaUrls
from bot.core.models import CampaignControl, JourneyUpdate, OutboxMessage
from bot.core.staff_models import StaffAlert
from bot.delivery import outbox
from bot.delivery.alerts import Alerts
from bot.delivery.dispatcher import Dispatcher
from bot.delivery.messages import PlannedMessage
from bot.scheduling import runs
from bot.service.app import App
from bot.settings.config import config_from_dict
from bot.web.app import build
from pledgebot_sandbox.facebook import GraphSandbox
from tests.channels.harness_instagram import ALT, MEDIA_KEY, PublicMedia, write_jpeg


@pytest.fixture
async def sandbox() -> AsyncIterator[GraphSandbox]:
    running = GraphSandbox()
    await running.start()
    yield running
    await running.stop()


@pytest.fixture
async def public(tmp_path: Path) -> AsyncIterator[PublicMedia]:
    running = PublicMedia(tmp_path)
    await running.start()
    yield running
    await running.stop()


@pytest.fixture
def image(public: PublicMedia) -> Path:
    """A JPEG a pledgemaker sent, in an approved, consented update."""
    made = write_jpeg(public.media_dir / "telegram" / "AgADsample.jpg")
    public.add_update(made)
    return made


def adapter(sandbox: GraphSandbox, public: PublicMedia, **settings: Any) -> InstagramChannel:
    values = {"enabled": True, "ig_user_id": sandbox.ig_user_id, "graph_url": sandbox.base_url,
              "request_timeout": 3, "poll_interval": 0.05, "publish_timeout": 5, **settings}  # fmt: skip
    return InstagramChannel(
        InstagramSettings.model_validate(values),
        {"access_token": SecretStr(sandbox.ig_token)},
        media_urls=public.urls,
    )


@pytest.fixture
async def channel(sandbox: GraphSandbox, public: PublicMedia) -> AsyncIterator[InstagramChannel]:
    made = adapter(sandbox, public)
    yield made
    await made.aclose()


def message(text: str, image: Path | None = None, key: str = "", **extra: Any) -> OutboundMessage:
    media = (Media(str(image), ALT),) if image is not None else ()
    return OutboundMessage(
        id=1, recipient="timeline", text=text, idempotency_key=key, media=media, **extra
    )


# -- the container flow -----------------------------------------------------------------------


async def test_the_container_flow_publishes_the_image_instagram_fetched_from_the_signed_url(
    sandbox: GraphSandbox, public: PublicMedia, channel: InstagramChannel, image: Path
) -> None:
    await channel.start()
    receipt = await channel.send(message("40 inspecteurs formés & <plus> #AchieveSDG87", image))
    [published] = sandbox.media()
    assert receipt.external_id == published["id"]
    assert published["caption"] == "40 inspecteurs formés & <plus> #AchieveSDG87"
    assert published["alt_text"] == ALT and published["data"] == image.read_bytes()
    [fetched] = sandbox.fetches
    assert fetched == {"url": public.urls.url_for(str(image)), "status": 200}
    assert fetched["url"].startswith(public.base_url + "/media/")
    assert fetched["url"].endswith("/AgADsample.jpg") and "telegram" not in fetched["url"]
    assert sandbox.method_calls["status"] == 2, "IN_PROGRESS once, then FINISHED"
    assert sandbox.containers[published["container"]]["status_code"] == "PUBLISHED"


async def test_a_slow_container_is_polled_until_finished(public: PublicMedia, image: Path) -> None:
    sandbox = GraphSandbox(in_progress_polls=3)
    await sandbox.start()
    channel = adapter(sandbox, public)
    try:
        await channel.send(message("Patience.", image))
        assert sandbox.method_calls["status"] == 4 and sandbox.captions() == ["Patience."]
    finally:
        await channel.aclose()
        await sandbox.stop()


async def test_a_container_in_error_is_rejected(
    sandbox: GraphSandbox, channel: InstagramChannel, image: Path
) -> None:
    sandbox.next_container("error")
    with pytest.raises(Rejected, match=r"ERROR .*2207032"):
        await channel.send(message("Broken.", image))
    assert sandbox.media() == [] and sandbox.method_calls["media_publish"] == 0


async def test_a_container_stuck_in_progress_gives_up_within_the_bounded_wait(
    sandbox: GraphSandbox, public: PublicMedia, image: Path
) -> None:
    channel = adapter(sandbox, public, publish_timeout=0.4)
    sandbox.next_container("stuck")
    started = time.monotonic()
    with pytest.raises(TransientError, match=r"still IN_PROGRESS after 0\.4 s") as caught:
        await channel.send(message("Stuck.", image))
    assert time.monotonic() - started < 2 and not caught.value.maybe_delivered
    assert sandbox.media() == []
    await channel.aclose()


# -- the public media route -------------------------------------------------------------------


async def test_the_public_route_serves_only_approved_consented_media(
    public: PublicMedia, image: Path, tmp_path: Path
) -> None:
    url = public.urls.url_for(str(image))
    token, name = url.rsplit("/", 2)[1:]
    pending = write_jpeg(public.media_dir / "telegram" / "pending.jpg")
    public.add_update(pending, moderation="pending")
    refused = write_jpeg(public.media_dir / "telegram" / "refused.jpg")
    public.add_update(refused, consent=False)
    outside = write_jpeg(tmp_path / "elsewhere" / "outside.jpg")  # approved, not under [media]
    public.add_update(outside)
    stray = write_jpeg(public.media_dir / "posts" / "composer.jpg")  # in no update at all
    forged = MediaUrls(public.base_url, SecretStr("another-key-0123456789"))
    async with httpx.AsyncClient() as http:
        served = await http.get(url)
        assert served.status_code == 200 and served.content == image.read_bytes()
        assert served.headers["content-type"] == "image/jpeg"
        assert served.headers["cache-control"] == "no-store"
        assert (await http.head(url)).status_code == 200
        tampered = token[:-1] + ("A" if token[-1] != "A" else "B")
        for wrong in (
            f"{public.base_url}/media/{tampered}/{name}",
            f"{public.base_url}/media/{token}/other.jpg",
            f"{public.base_url}/media/{token[:10]}/{name}",
            forged.url_for(str(image)),
            *(public.urls.url_for(str(p)) for p in (pending, refused, outside, stray)),
        ):
            assert (await http.get(wrong)).status_code == 404, wrong
        with public.app.db.session() as session:  # consent withdrawn: the URL closes at once
            session.execute(JourneyUpdate.__table__.update().values(consent_to_publish=False))
        assert (await http.get(url)).status_code == 404


def test_the_dashboard_serves_media_without_a_session_and_nothing_without_the_key(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    image = write_jpeg(app.config.path("media") / "telegram" / "dash.jpg")
    with app.db.session() as session:
        session.add(
            JourneyUpdate(
                pledgemaker_id="ilo", pillar="act", kind="progress", text="t",
                media=[{"path": str(image), "alt_text": "a"}], moderation="approved",
                consent_to_publish=True, source="import", source_ref="dash",
            )
        )  # fmt: skip
    path = MediaUrls("", SecretStr(MEDIA_KEY)).url_for(str(image))
    monkeypatch.setenv(KEY_ENV, MEDIA_KEY)
    with TestClient(build(app)) as web:  # no session cookie
        assert web.get(path).content == image.read_bytes()
    monkeypatch.delenv(KEY_ENV)
    with TestClient(build(app)) as web:
        assert web.get(path).status_code == 404, "no key: nothing is public"


async def test_an_unapproved_image_cannot_be_fetched_so_instagram_refuses_it(
    sandbox: GraphSandbox, public: PublicMedia, channel: InstagramChannel
) -> None:
    pending = write_jpeg(public.media_dir / "telegram" / "pending.jpg")
    public.add_update(pending, moderation="pending")
    with pytest.raises(GraphRefusal, match="could not be fetched") as caught:
        await channel.send(message("Not yet approved.", pending))
    assert (caught.value.code, caught.value.subcode) == (9004, 2207052)
    assert [f["status"] for f in sandbox.fetches] == [404] and sandbox.containers == {}


def test_public_media_urls_need_the_base_url_and_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What bot/service/app.py's line does for Instagram: ``media_urls.from_settings(config.media.public_base_url, config.source)``."""
    monkeypatch.delenv(KEY_ENV, raising=False)
    data: dict[str, Any] = {"channels": {"instagram": {"enabled": True, "ig_user_id": "178"}}}
    config = config_from_dict(data, source="config.toml", base_dir=tmp_path)
    with pytest.raises(ConfigError, match=r"media\.public_base_url: Instagram fetches images"):
        media_urls.from_settings(config.media.public_base_url, config.source)
    data["media"] = {"public_base_url": "https://pledge.example.org/"}
    config = config_from_dict(data, source="config.toml", base_dir=tmp_path)
    with pytest.raises(ConfigError, match=f"{KEY_ENV} is not set"):
        media_urls.from_settings(config.media.public_base_url, config.source)
    monkeypatch.setenv(KEY_ENV, "short")
    with pytest.raises(ConfigError, match="at least 16"):
        media_urls.from_settings(config.media.public_base_url, config.source)
    monkeypatch.setenv(KEY_ENV, MEDIA_KEY)
    urls = media_urls.from_settings(config.media.public_base_url, config.source)
    assert urls.url_for("/srv/media/telegram/a b.jpg").startswith(
        "https://pledge.example.org/media/"
    )
    assert urls.url_for("/srv/media/telegram/a b.jpg").endswith("/a%20b.jpg")
    settings = config.channel_settings("instagram")
    token = {"access_token": SecretStr("t" * 20)}
    InstagramChannel(settings, token, media_urls=urls)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="needs public media URLs"):
        InstagramChannel(settings, token)  # type: ignore[arg-type]


# -- what Instagram accepts -------------------------------------------------------------------


def test_hashtags_and_mentions_are_counted_as_instagram_counts_them() -> None:
    assert caption_problem("#a " * 30 + "C# &#39; mail@ilo.org") is None
    assert "31 hashtags" in (caption_problem("#a " * 31) or "")
    assert "21 @mentions" in (caption_problem("@ilo " * 21) or "")
    assert "2,201 > 2,200" in (caption_problem("x" * 2201) or "")


async def test_caption_limits_are_checked_before_and_by_instagram(
    sandbox: GraphSandbox, channel: InstagramChannel, image: Path
) -> None:
    longest = "x" * 2190 + " #a #b #c"[:10]
    await channel.send(message(longest[:2200], image))
    for caption in ("y" * 2201, " ".join(f"#t{n}" for n in range(31)), "@ilo " * 21):
        with pytest.raises(Rejected, match="Instagram: the caption"):
            await channel.send(message(caption, image))
    assert sandbox.method_calls["media"] == 1 and sandbox.captions() == [longest[:2200]]
    url = channel.media_urls.url_for(str(image))
    many = " ".join(f"#t{n}" for n in range(31))
    with pytest.raises(GraphRefusal, match="more than 30 hashtags"):  # the sandbox's own check
        await channel.graph.call("POST", f"{sandbox.ig_user_id}/media", data={"image_url": url, "caption": many})  # fmt: skip


async def test_an_update_without_an_image_is_refused_with_a_clear_reason(
    sandbox: GraphSandbox, channel: InstagramChannel
) -> None:
    with pytest.raises(Rejected, match=r"needs an image.*no text-only posts"):
        await channel.send(message("Words alone."))
    assert sum(sandbox.method_calls.values()) == 0


async def test_a_png_or_a_panorama_is_refused_before_sending(
    sandbox: GraphSandbox, public: PublicMedia, channel: InstagramChannel
) -> None:
    from PIL import Image

    drawing = public.media_dir / "telegram" / "drawing.png"
    drawing.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (400, 400)).save(drawing, "PNG")
    public.add_update(drawing)
    with pytest.raises(Rejected, match="JPEG only"):
        await channel.send(message("A drawing.", drawing))
    panorama = write_jpeg(public.media_dir / "telegram" / "wide.jpg", size=(1000, 400))
    with pytest.raises(Rejected, match=r"aspect ratio of 2\.50"):
        await channel.send(message("Wide.", panorama))
    assert sandbox.method_calls["media"] == 0
    with pytest.raises(GraphRefusal, match="JPEG") as caught:  # Instagram's own check
        await channel.graph.call("POST", f"{sandbox.ig_user_id}/media", data={"image_url": public.urls.url_for(str(drawing))})  # fmt: skip
    assert caught.value.code == 36001


ERRORS = [
    ("rate_limited", "media", RateLimited),
    ("publish_limit", "media_publish", RateLimited),
    ("expired_token", "media", ChannelUnauthorized),
    ("server_error", "media", TransientError),
    ("temporary", "status", TransientError),
    ("invalid_parameter", "media", Rejected),
]


@pytest.mark.parametrize(("how", "endpoint", "kind"), ERRORS, ids=[e[0] for e in ERRORS])
async def test_graph_errors_map_to_typed_errors(
    sandbox: GraphSandbox, channel: InstagramChannel, image: Path, how: str, endpoint: str,
    kind: type,
) -> None:  # fmt: skip
    sandbox.fail_next(how, endpoint)
    with pytest.raises(kind) as caught:
        await channel.send(message("hello", image))
    assert sandbox.media() == []
    if how == "publish_limit":
        assert caught.value.retry_after == 3600, "the posts-a-day limit: try again in an hour"


async def test_a_publish_that_timed_out_is_found_not_published_twice(
    sandbox: GraphSandbox, public: PublicMedia, image: Path
) -> None:
    channel = adapter(sandbox, public, request_timeout=0.5)
    sandbox.fail_next("timeout", "media_publish", delay=1.5, deliver=True)
    with pytest.raises(TransientError) as caught:
        await channel.send(message("Published once.", image, "amplify:j:1"))
    assert caught.value.maybe_delivered
    receipt = await channel.send(message("Published once.", image, "amplify:j:1", maybe_sent=True))
    [published] = sandbox.media()
    assert receipt.external_id == published["id"] and sandbox.method_calls["media"] == 1
    await channel.aclose()


# -- through the outbox and the dispatcher ----------------------------------------------------


def dispatcher(public: PublicMedia, channel: InstagramChannel) -> Dispatcher:
    app = public.app
    alerts = Alerts(app.db, app.config.alerts)
    return Dispatcher(app.db, {"instagram": channel}, app.config.dispatcher, alerts)


def fire(public: PublicMedia) -> runs.FireResult:
    spec = AmplifyCampaign.model_validate(
        {"id": "journeys", "kind": "amplify", "cron": "0 9 * * *", "channels": ["instagram"],
         "hashtags": ["#EndChildLabour2021"]}
    )  # fmt: skip
    return runs.fire(public.app.db, public.app.templates, spec, datetime.now(UTC),
                     trigger="manual", destinations=Destinations({"instagram": "timeline"}))  # fmt: skip


async def test_an_amplify_slot_publishes_and_a_withdrawal_lists_the_post_for_staff(
    sandbox: GraphSandbox, public: PublicMedia, channel: InstagramChannel, image: Path
) -> None:
    fire(public)
    assert await dispatcher(public, channel).dispatch_once() == 1
    [published] = sandbox.media()
    assert published["caption"].startswith("“We trained 40 labour inspectors.”")
    assert published["caption"].endswith("#EndChildLabour2021") and published["alt_text"] == ALT
    with public.app.db.session() as session:
        [row] = session.scalars(select(OutboxMessage)).all()
        assert (row.state, row.external_id) == ("sent", published["id"])
        # Instagram cannot delete: never "deletable", so the post is listed for staff.
        taken = consent.withdraw(session, "ilo", None, frozenset({"facebook"}))
    assert (taken.deleting, taken.live) == (0, [("instagram", "timeline", published["id"])])
    async with httpx.AsyncClient() as http:
        assert (await http.get(published["media_url"])).status_code == 404, "closed at once"


async def test_the_planner_skips_instagram_for_an_update_without_image(public: PublicMedia) -> None:
    public.add_update(None, text="Words only.")
    result = fire(public)
    with public.app.db.session() as session:
        assert session.scalars(select(OutboxMessage)).all() == []
    assert result.skipped == {"instagram: an image is required, and this post has none": 1}


async def test_a_text_only_message_fails_in_the_dispatcher_with_the_reason(
    public: PublicMedia, channel: InstagramChannel
) -> None:
    with public.app.db.session() as session:
        outbox.enqueue(session, [PlannedMessage("post:1", "instagram", "timeline", "Words.")])
    assert await dispatcher(public, channel).dispatch_once() == 1
    with public.app.db.session() as session:
        row = session.scalar(select(OutboxMessage))
        assert row is not None and row.state == "failed"
        assert "a post needs an image" in (row.last_error or "")


async def test_an_expired_token_pauses_the_channel_and_alerts_staff(
    sandbox: GraphSandbox, public: PublicMedia, channel: InstagramChannel, image: Path
) -> None:
    with public.app.db.session() as session:
        planned = PlannedMessage("post:1", "instagram", "timeline", "Hello.",
                                 media=(Media(str(image), ALT),))  # fmt: skip
        outbox.enqueue(session, [planned])
    sandbox.expire_tokens()
    assert await dispatcher(public, channel).dispatch_once() == 1
    assert await dispatcher(public, channel).dispatch_once() == 0, "paused"
    with public.app.db.session() as session:
        control = session.get(CampaignControl, "channel:instagram")
        assert control is not None and control.paused
        alert = session.scalar(select(StaffAlert).where(StaffAlert.key == "unauthorized:instagram"))
        assert alert is not None and "code 190, subcode 463" in alert.text
    assert sandbox.media() == []
