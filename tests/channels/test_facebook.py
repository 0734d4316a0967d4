"""The Facebook Page adapter end to end: its Graph client (httpx) over HTTP against the
in-package Graph sandbox (sandbox/pledgebot_sandbox/facebook.py), which answers with the Graph API's own
error shapes and usage headers."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import select

from bot.campaigns.amplify import AmplifyCampaign
from bot.campaigns.base import Destinations
from bot.channels.base import Media, OutboundMessage
from bot.channels.facebook.adapter import FacebookChannel
from bot.channels.facebook.graph import GraphRefusal
from bot.channels.facebook.settings import FacebookSettings
from bot.channels.registry import plain_text_channels
from bot.community import consent
from bot.community.importer import import_pledgemakers
from bot.core.errors import ChannelUnauthorized, RateLimited, Rejected, TransientError
from bot.core.models import CampaignControl, JourneyUpdate, OutboxMessage, Pledgemaker
from bot.core.staff_models import StaffAlert
from bot.delivery import outbox
from bot.delivery.alerts import Alerts
from bot.delivery.dispatcher import Dispatcher
from bot.delivery.messages import PlannedMessage
from bot.scheduling import runs
from bot.service.app import App, build_app
from bot.settings.config import load_config
from bot.text.templates import Templates
from pledgebot_sandbox.facebook import GraphSandbox
from tests.conftest import ROOT, SAMPLE_CSV, TOKEN_ENV, write_config

TOKEN_VAR = "PB_TEST_FACEBOOK_PAGE_TOKEN"


def png(path: Path, size: tuple[int, int] = (64, 48)) -> Path:
    from PIL import Image

    Image.new("RGB", size, (200, 80, 40)).save(path, "PNG")
    return path


@pytest.fixture
async def sandbox() -> AsyncIterator[GraphSandbox]:
    running = GraphSandbox()
    await running.start()
    yield running
    await running.stop()


def adapter(sandbox: GraphSandbox, *, token: str | None = None, **settings: Any) -> FacebookChannel:
    transport = settings.pop("transport", None)
    values = {"enabled": True, "page_id": sandbox.page_id, "graph_url": sandbox.base_url,
              "request_timeout": 3, **settings}  # fmt: skip
    secrets = {"page_token": SecretStr(token or sandbox.page_token)}
    return FacebookChannel(FacebookSettings.model_validate(values), secrets, transport=transport)


@pytest.fixture
async def channel(sandbox: GraphSandbox) -> AsyncIterator[FacebookChannel]:
    made = adapter(sandbox)
    yield made
    await made.aclose()


def message(text: str, key: str = "", **extra: Any) -> OutboundMessage:
    return OutboundMessage(id=1, recipient="timeline", text=text, idempotency_key=key, **extra)


# -- posting ----------------------------------------------------------------------------------


async def test_a_text_post_goes_to_the_page_feed(
    sandbox: GraphSandbox, channel: FacebookChannel
) -> None:
    await channel.start()
    receipt = await channel.send(message("40 inspecteurs formés & <plus> ✓"))
    [post] = sandbox.posts()
    assert receipt.external_id == post["id"] and post["id"].startswith(sandbox.page_id + "_")
    assert post["message"] == "40 inspecteurs formés & <plus> ✓" and post["photos"] == []


async def test_one_image_is_a_photo_post_with_its_alt_text(
    sandbox: GraphSandbox, channel: FacebookChannel, tmp_path: Path
) -> None:
    image = png(tmp_path / "class.png")
    media = (Media(str(image), "Children back in class"),)
    receipt = await channel.send(message("Back to school.", media=media))
    [post] = sandbox.posts()
    [photo] = post["photos"]
    assert receipt.external_id == post["id"], "the post's id, not the photo's"
    assert (post["message"], photo["caption"]) == ("Back to school.", "Back to school.")
    assert photo["alt_text"] == "Children back in class" and photo["mime"] == "image/png"
    assert photo["data"] == image.read_bytes(), "uploaded as multipart source"


async def test_several_images_are_one_post_with_attached_media(
    sandbox: GraphSandbox, channel: FacebookChannel, tmp_path: Path
) -> None:
    media = tuple(Media(str(png(tmp_path / f"{n}.png")), f"Photo {n}") for n in (1, 2, 3))
    await channel.send(message("Three moments.", media=media))
    [post] = sandbox.posts()
    assert post["message"] == "Three moments."
    assert [p["alt_text"] for p in post["photos"]] == ["Photo 1", "Photo 2", "Photo 3"]
    assert not any(p["published"] for p in post["photos"]), "uploaded unpublished, then attached"


async def test_an_unfit_image_is_refused_before_anything_is_sent(
    sandbox: GraphSandbox, tmp_path: Path
) -> None:
    channel = adapter(sandbox, max_image_bytes=100)
    with pytest.raises(Rejected, match="no alt text"):
        await channel.send(message("x", media=(Media(str(png(tmp_path / "a.png"))),)))
    with pytest.raises(Rejected, match="at most 100"):
        await channel.send(message("x", media=(Media(str(png(tmp_path / "b.png")), "b"),)))  # fmt: skip
    with pytest.raises(Rejected, match="missing"):
        await channel.send(message("x", media=(Media(str(tmp_path / "gone.png"), "c"),)))  # fmt: skip
    await channel.aclose()
    assert sandbox.method_calls["photos"] == 0 and sandbox.posts() == []


async def test_too_long_is_refused_by_the_adapter_and_by_the_page(
    sandbox: GraphSandbox, channel: FacebookChannel
) -> None:
    await channel.send(message("x" * 63_206))
    with pytest.raises(Rejected, match="63,207 > 63,206"):
        await channel.send(message("y" * 63_207))
    with pytest.raises(GraphRefusal) as caught:  # the sandbox's own check, bypassing ours
        await channel.graph.call("POST", f"{sandbox.page_id}/feed", data={"message": "z" * 63_207})
    assert caught.value.code == 100 and sandbox.texts() == ["x" * 63_206]
    with pytest.raises(Rejected, match="never split"):
        await channel.send(message("part 2", reply_to=sandbox.posts()[0]["id"]))


async def test_delete_takes_the_post_down_and_twice_is_harmless(
    sandbox: GraphSandbox, channel: FacebookChannel
) -> None:
    kept = await channel.send(message("Stays."))
    withdrawn = await channel.send(message("Consent withdrawn."))
    await channel.delete(message(withdrawn.external_id, action="delete"))
    await channel.delete(message(withdrawn.external_id, action="delete"))  # code 100/33: gone
    assert [p["id"] for p in sandbox.posts()] == [kept.external_id]
    assert sandbox.deleted() == [withdrawn.external_id]
    with pytest.raises(Rejected, match="not one of this Page's posts"):
        await channel.delete(message("999_123", action="delete"))


# -- the Graph API's errors -------------------------------------------------------------------

ERRORS = [
    ("rate_limited", RateLimited, "code 4"),
    ("user_rate_limited", RateLimited, "code 17"),
    ("page_rate_limited", RateLimited, "code 32"),
    ("too_many_calls", RateLimited, "code 613"),
    ("http_429", RateLimited, "HTTP 429"),
    ("expired_token", ChannelUnauthorized, "code 190, subcode 463"),
    ("invalid_token", ChannelUnauthorized, "code 190"),
    ("permission", ChannelUnauthorized, "code 200"),
    ("no_capability", ChannelUnauthorized, "code 10"),
    ("temporary", TransientError, "code 2"),
    ("unknown_error", TransientError, "code 1"),
    ("server_error", TransientError, "HTTP 500"),
    ("unavailable", TransientError, "HTTP 503"),
    ("invalid_parameter", Rejected, "code 100"),
    ("duplicate", Rejected, "code 506"),
]


@pytest.mark.parametrize(("how", "kind", "says"), ERRORS, ids=[e[0] for e in ERRORS])
async def test_each_graph_error_maps_to_its_typed_error(
    sandbox: GraphSandbox, channel: FacebookChannel, how: str, kind: type, says: str
) -> None:
    sandbox.fail_next(how, "feed")
    with pytest.raises(kind) as caught:
        await channel.send(message("hello"))
    assert says in str(caught.value) and "fbtrace_id" in str(caught.value)
    assert sandbox.posts() == []
    if kind is RateLimited:
        assert caught.value.retry_after > 0
        if how in ("page_rate_limited", "http_429"):  # the usage header's estimate: 2 minutes
            assert caught.value.retry_after == 120
        calls = sandbox.method_calls["feed"]
        with pytest.raises(RateLimited):  # held for every process: no request meanwhile
            await channel.send(message("hello"))
        assert sandbox.method_calls["feed"] == calls


async def test_a_timeout_may_have_delivered(sandbox: GraphSandbox) -> None:
    channel = adapter(sandbox, request_timeout=0.3)
    sandbox.fail_next("timeout", "feed", delay=1.0)
    with pytest.raises(TransientError) as caught:
        await channel.send(message("Slow."))
    assert caught.value.maybe_delivered
    await channel.aclose()


async def test_usage_near_the_limit_holds_posting_before_any_error() -> None:
    sandbox = GraphSandbox(page_calls_per_hour=20)
    await sandbox.start()
    channel = adapter(sandbox)
    try:
        with pytest.raises(RateLimited) as caught:
            for n in range(25):
                await channel.send(message(f"post {n}"))
        assert len(sandbox.texts()) == 19, "the 19th answer said 95 %: posting held"
        assert sandbox.rate_limited == 0 and caught.value.retry_after > 0
    finally:
        await channel.aclose()
        await sandbox.stop()


@pytest.mark.parametrize(
    ("header", "value", "wait"),
    [
        ("x-app-usage", '{"call_count": 97, "total_cputime": 10, "total_time": 12}', 300),
        ("x-business-use-case-usage",
         '{"1": [{"type": "pages", "call_count": 40, "total_cputime": 96, "total_time": 50, '
         '"estimated_time_to_regain_access": 7}]}', 420),
    ],
    ids=["app", "business-use-case"],
)  # fmt: skip
async def test_a_usage_header_near_100_percent_holds_posting(
    header: str, value: str, wait: float
) -> None:
    requests: list[str] = []

    def graph(request: httpx.Request) -> httpx.Response:
        requests.append(request.url.path)
        return httpx.Response(200, json={"id": "1_2"}, headers={header: value})

    settings = FacebookSettings(enabled=True, page_id="1", graph_url="http://graph.test")
    channel = FacebookChannel(
        settings, {"page_token": SecretStr("t" * 20)}, transport=httpx.MockTransport(graph)
    )
    assert (await channel.send(message("sent"))).external_id == "1_2"
    with pytest.raises(RateLimited) as caught:
        await channel.send(message("held"))
    assert requests == ["/v24.0/1/feed"] and wait - 2 < caught.value.retry_after <= wait
    await channel.aclose()


async def test_a_message_in_flight_at_a_crash_is_found_not_posted_twice(
    sandbox: GraphSandbox, channel: FacebookChannel
) -> None:
    first = await channel.send(message("Once.", "amplify:j:1"))
    again = await channel.send(message("Once.", "amplify:j:1", maybe_sent=True))
    assert again.external_id == first.external_id
    assert sandbox.texts() == ["Once."] and sandbox.method_calls["feed"] == 1


async def test_a_duplicate_on_a_first_send_is_rejected(
    sandbox: GraphSandbox, channel: FacebookChannel
) -> None:
    await channel.send(message("Same words."))
    with pytest.raises(GraphRefusal, match="Duplicate status message") as caught:
        await channel.send(message("Same words."))
    assert caught.value.code == 506 and sandbox.texts() == ["Same words."]


async def test_a_506_on_a_resend_means_already_sent() -> None:
    """The Page's feed lags behind: the first look misses the post, Facebook then answers 506
    (a duplicate), and the second look finds it: it was sent before the crash."""
    looks: list[int] = []

    def graph(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            looks.append(1)
            found = [{"id": "1_2", "message": "Once."}] if len(looks) > 1 else []
            return httpx.Response(200, json={"data": found})
        error = {
            "message": "(#506) Duplicate status message",
            "type": "OAuthException",
            "code": 506,
        }
        return httpx.Response(400, json={"error": error})

    settings = FacebookSettings(enabled=True, page_id="1", graph_url="http://graph.test")
    channel = FacebookChannel(
        settings, {"page_token": SecretStr("t" * 20)}, transport=httpx.MockTransport(graph)
    )
    receipt = await channel.send(message("Once.", "k", maybe_sent=True))
    assert receipt.external_id == "1_2" and len(looks) == 2
    await channel.aclose()


async def test_the_sandbox_checks_the_version_and_answers_in_the_graph_shape(
    sandbox: GraphSandbox,
) -> None:
    old = adapter(sandbox, api_version="v2.0")
    with pytest.raises(Rejected, match="code 2635"):
        await old.start()
    await old.aclose()
    async with httpx.AsyncClient(base_url=sandbox.base_url) as http:
        unversioned = await http.get(f"/{sandbox.page_id}", params={"access_token": "x"})
        refused = await http.get(f"/v24.0/{sandbox.page_id}", headers={"Authorization": "Bearer nope"})  # fmt: skip
    assert unversioned.json()["error"]["code"] == 2500
    error = refused.json()["error"]
    assert (refused.status_code, error["type"], error["code"]) == (400, "OAuthException", 190)
    assert error["fbtrace_id"] and "invalid_token" in refused.headers["www-authenticate"]


async def test_no_token_reaches_the_debug_logs(
    sandbox: GraphSandbox, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    caplog.set_level(logging.DEBUG)
    channel = adapter(sandbox)
    await channel.start()
    await channel.send(message("hello", media=(Media(str(png(tmp_path / "a.png")), "a"),)))  # fmt: skip
    sandbox.expire_tokens()
    with pytest.raises(ChannelUnauthorized) as caught:
        await channel.send(message("refused"))
    await channel.aclose()
    assert "HTTP Request: POST" in caplog.text, "httpx did log at DEBUG"
    for secret in (sandbox.page_token, sandbox.ig_token):
        assert secret not in caplog.text + str(caught.value)


# -- through the outbox and the dispatcher ----------------------------------------------------


@pytest.fixture
def app(sandbox: GraphSandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[App]:
    monkeypatch.setenv(TOKEN_ENV, "123456:TEST-TOKEN")
    monkeypatch.setenv(TOKEN_VAR, sandbox.page_token)
    extra = (
        f'[channels.facebook]\nenabled = true\npage_id = "{sandbox.page_id}"\n'
        f'graph_url = "{sandbox.base_url}"\npage_token_env = "{TOKEN_VAR}"\n'
        "request_timeout = 3\ndelete_on_withdraw = true\n"
    )
    built = build_app(load_config(write_config(tmp_path, extra=extra), required=True))
    built.db.upgrade()
    yield built
    built.close()


def dispatcher(app: App) -> Dispatcher:
    alerts = Alerts(app.db, app.config.alerts)
    return Dispatcher(app.db, {"facebook": app.channel("facebook")}, app.config.dispatcher, alerts)


def rows(app: App) -> list[OutboxMessage]:
    with app.db.session() as session:
        return list(session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


async def test_an_expired_token_pauses_the_channel_and_alerts_staff(
    app: App, sandbox: GraphSandbox
) -> None:
    with app.db.session() as session:
        outbox.enqueue(session, [PlannedMessage("post:1", "facebook", "timeline", "hello")])
    sandbox.expire_tokens()
    assert await dispatcher(app).dispatch_once() == 1
    assert await dispatcher(app).dispatch_once() == 0, "paused: not a retry loop"
    await app.aclose()
    with app.db.session() as session:
        control = session.get(CampaignControl, "channel:facebook")
        assert control is not None and control.paused
        alert = session.scalar(select(StaffAlert).where(StaffAlert.key == "unauthorized:facebook"))
        assert alert is not None and "code 190" in alert.text
        assert "pledgebot resume --channel facebook" in alert.text
    [row] = rows(app)
    assert (row.state, row.attempts) == ("retry_wait", 0) and sandbox.posts() == []


async def test_an_amplify_slot_posts_the_photo_and_a_withdrawal_deletes_it(
    app: App, sandbox: GraphSandbox, tmp_path: Path
) -> None:
    image = png(tmp_path / "inspectors.png")
    with app.db.session() as session:
        import_pledgemakers(session, SAMPLE_CSV)
    with app.db.session() as session:
        session.add(
            JourneyUpdate(
                pledgemaker_id="ilo", pillar="act", kind="progress",
                text="We train labour inspectors & employers.",
                media=[{"path": str(image), "alt_text": "Inspectors in training"}],
                moderation="approved", consent_to_publish=True, source="import", source_ref="fb",
            )
        )  # fmt: skip
    spec = AmplifyCampaign.model_validate(
        {"id": "journeys", "kind": "amplify", "cron": "0 9 * * *", "channels": ["facebook"],
         "hashtags": ["#EndChildLabour2021"]}
    )  # fmt: skip
    runs.fire(app.db, app.templates, spec, datetime.now(UTC), trigger="manual",
              destinations=Destinations({"facebook": "timeline"}))  # fmt: skip
    assert await dispatcher(app).dispatch_once() == 1
    [post] = sandbox.posts()
    assert post["message"].startswith("International Labour Organization on Act:")
    assert "&amp;" not in post["message"] and post["message"].endswith("#EndChildLabour2021")
    assert post["photos"][0]["alt_text"] == "Inspectors in training"
    assert [(r.state, r.external_id) for r in rows(app)] == [("sent", post["id"])]
    with app.db.session() as session:
        taken = consent.withdraw(session, "ilo", None, app.conversation().deletable)
    assert (taken.deleting, taken.live) == (1, [])
    assert await dispatcher(app).dispatch_once() == 1
    await app.aclose()
    assert sandbox.posts() == [] and sandbox.deleted() == [post["id"]]


# -- templates --------------------------------------------------------------------------------


@pytest.mark.parametrize("language", ["en", "fr", "es"])
@pytest.mark.parametrize("channel_name", ["facebook", "instagram"])
def test_the_templates_are_plain_text(language: str, channel_name: str) -> None:
    from bot.campaigns.amplify import post_context

    templates = Templates(ROOT / "templates", plain_text=plain_text_channels())
    spec = AmplifyCampaign.model_validate(
        {"id": "journeys", "kind": "amplify", "cron": "0 9 * * *", "hashtags": ["#AchieveSDG87"]}
    )
    update = JourneyUpdate(pillar="act", kind="progress", text="Safe & sound <today>", media=[])
    maker = Pledgemaker(id="ilo", name="ILO & partners", handles={"x": "@ilo"})
    text = templates.render(
        f"amplify/{channel_name}", language, **post_context(spec, update, maker, language)
    )
    assert "ILO & partners" in text and "Safe & sound <today>" in text and "&amp;" not in text
    assert "@" not in text, "an X handle means nothing on Facebook or Instagram"
    assert text.endswith("#AchieveSDG87")
    fact = templates.render(
        f"knowledge/{channel_name}", language, text="160 million children & counting",
        source="https://www.ilo.org", hashtags="#AchieveSDG87", fact=None,
    )  # fmt: skip
    assert "160 million children & counting" in fact and "https://www.ilo.org" in fact
