"""The LinkedIn adapter end to end: httpx against the in-package LinkedIn REST sandbox
(sandbox/pledgebot_sandbox/linkedin.py), which checks posts against LinkedIn's schema, reads their commentary
as little text and answers with LinkedIn's own error shapes."""

from __future__ import annotations

import asyncio
import logging
import struct
import zlib
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import select

from bot.campaigns import posts
from bot.campaigns.amplify import AmplifyCampaign
from bot.campaigns.base import Destinations
from bot.channels.base import Media, OutboundMessage
from bot.channels.linkedin.adapter import LinkedInChannel
from bot.channels.linkedin.settings import LinkedInSettings
from bot.channels.linkedin.text import linkedin_length, little_text
from bot.channels.registry import plain_text_channels
from bot.community.importer import import_pledgemakers
from bot.core.errors import ChannelUnauthorized, RateLimited, Rejected, TransientError
from bot.core.models import CampaignControl, JourneyUpdate, OutboxMessage
from bot.delivery import outbox
from bot.delivery.alerts import Alerts, open_alerts
from bot.delivery.dispatcher import Dispatcher
from bot.delivery.messages import PlannedMessage
from bot.scheduling import runs
from bot.service.app import App, build_app
from bot.service.status import collect
from bot.settings.config import load_config
from bot.text.templates import Templates
from pledgebot_sandbox.linkedin import LinkedInSandbox
from tests.conftest import ROOT, SAMPLE_CSV, TOKEN_ENV, write_config

CREATE = "posts.create"
TOKEN_VAR = "PB_TEST_LINKEDIN_ACCESS_TOKEN"
SHARE = r"urn:li:share:\d{19}"


def png(path: Path) -> Path:
    """A real 1×1 PNG, written by hand."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))  # fmt: skip

    ihdr = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    body = chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00\xff\x00\x00"))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + body + chunk(b"IEND", b""))
    return path


@pytest.fixture
async def sandbox() -> AsyncIterator[LinkedInSandbox]:
    running = LinkedInSandbox()
    await running.start()
    yield running
    await running.stop()


def adapter(sandbox: LinkedInSandbox, *, token: str | None = None, **settings: Any) -> LinkedInChannel:  # fmt: skip
    values = {
        "enabled": True,
        "api_base_url": sandbox.api_base_url,
        "organization_id": sandbox.organization_id,
        "api_version": sandbox.latest_version,
        "request_timeout": 3,
        **settings,
    }
    secret = SecretStr(token or sandbox.access_token)
    return LinkedInChannel(LinkedInSettings.model_validate(values), {"access_token": secret})


@pytest.fixture
async def channel(sandbox: LinkedInSandbox) -> AsyncIterator[LinkedInChannel]:
    made = adapter(sandbox)
    await made.start()
    yield made
    await made.aclose()


def message(text: str, key: str = "", **extra: Any) -> OutboundMessage:
    return OutboundMessage(id=1, recipient="timeline", text=text, idempotency_key=key, **extra)


# -- little text ------------------------------------------------------------------------------


def test_reserved_characters_are_escaped_and_hashtags_and_page_mentions_kept() -> None:
    text = "Training #2 (pilot): 40 inspectors_trained, thanks @ilo <all> a|b {c} [d] *e* ~f~ \\ #EndChildLabour2021"  # fmt: skip
    assert little_text(text) == (
        "Training \\#2 \\(pilot\\): 40 inspectors\\_trained, thanks \\@ilo \\<all\\> a\\|b "
        "\\{c\\} \\[d\\] \\*e\\* \\~f\\~ \\\\ #EndChildLabour2021"
    )
    assert little_text("@[ILO (Geneva)](urn:li:organization:123) and us") == (
        "@[ILO \\(Geneva\\)](urn:li:organization:123) and us"
    ), "a page mention stays one; its name is escaped"
    assert little_text("@[Eddy](urn:li:person:1)") == "\\@\\[Eddy\\]\\(urn:li:person:1\\)"
    assert little_text("C# and #2021 and é#x") == "C\\# and \\#2021 and é\\#x", "no hashtag there"
    assert linkedin_length("é") == 1 and linkedin_length("👍") == 2 and linkedin_length("#2") == 3


def test_the_token_goes_only_to_linkedins_hosts_or_the_apis(sandbox: LinkedInSandbox) -> None:
    channel = adapter(sandbox)
    assert channel._ours(f"{sandbox.base_url}/_upload/abc")
    assert channel._ours("https://www.linkedin.com/dms-uploads/sp/v2/D4E10AQ/uploaded-image/0")
    assert not channel._ours("http://www.linkedin.com/dms-uploads/x"), "never in clear text"
    assert not channel._ours("https://linkedin.com.example.org/upload")
    assert not channel._ours("https://uploads.example.org/linkedin.com")


# -- posting ----------------------------------------------------------------------------------


async def test_a_post_goes_to_the_page_escaped_and_its_urn_is_the_receipt(
    sandbox: LinkedInSandbox, channel: LinkedInChannel
) -> None:
    text = "Week #2 (pilot) done: 40 inspectors_trained with @ilo_team #EndChildLabour2021"
    receipt = await channel.send(message(text))
    [post] = sandbox.posts()
    assert receipt.external_id == post["id"] and post["id"].startswith("urn:li:share:")
    assert post["commentary"] == (
        "Week \\#2 \\(pilot\\) done: 40 inspectors\\_trained with \\@ilo\\_team #EndChildLabour2021"
    )
    assert post["text"] == text and not post["cut"], "readers see the words as written"
    assert post["hashtags"] == ["EndChildLabour2021"] and post["mentions"] == []
    assert {k: post[k] for k in ("author", "visibility", "lifecycleState")} == {
        "author": f"urn:li:organization:{sandbox.organization_id}",
        "visibility": "PUBLIC",
        "lifecycleState": "PUBLISHED",
    }
    assert post["distribution"] == {
        "feedDistribution": "MAIN_FEED", "targetEntities": [], "thirdPartyDistributionChannels": [],
    }  # fmt: skip
    assert post["isReshareDisabledByAuthor"] is False


async def test_unescaped_commentary_is_cut_short_as_linkedin_cuts_it(
    sandbox: LinkedInSandbox,
) -> None:
    """Why the adapter escapes: LinkedIn takes the post and silently drops the rest."""
    headers = {
        "Authorization": f"Bearer {sandbox.access_token}",
        "LinkedIn-Version": sandbox.latest_version,
        "X-Restli-Protocol-Version": "2.0.0",
    }
    body = {
        "author": sandbox.author, "commentary": "We trained 40 inspectors (in 2026) today",
        "visibility": "PUBLIC", "lifecycleState": "PUBLISHED",
        "distribution": {"feedDistribution": "MAIN_FEED"},
    }  # fmt: skip
    async with httpx.AsyncClient(base_url=sandbox.api_base_url) as http:
        answer = await http.post("/posts", json=body, headers=headers)
        assert answer.status_code == 201
        del headers["LinkedIn-Version"]
        missing = await http.post("/posts", json=body, headers=headers)
    [post] = sandbox.posts()
    assert post["text"] == "We trained 40 inspectors " and post["cut"]
    assert missing.status_code == 400 and missing.json() == {
        "status": 400,
        "code": "VERSION_MISSING",
        "message": "A version must be present. Please specify a version by adding the "
        "LinkedIn-Version header.",
    }


async def test_a_pledgemakers_page_is_mentioned(
    sandbox: LinkedInSandbox, channel: LinkedInChannel
) -> None:
    await channel.send(message("@[ILO (Geneva)](urn:li:organization:123) on Act: “Done.”"))
    [post] = sandbox.posts()
    assert post["mentions"] == [{"name": "ILO (Geneva)", "urn": "urn:li:organization:123"}]
    assert post["text"] == "ILO (Geneva) on Act: “Done.”"


async def test_every_call_names_the_version_and_an_old_one_pauses_the_channel(
    sandbox: LinkedInSandbox, channel: LinkedInChannel, tmp_path: Path
) -> None:
    image = png(tmp_path / "a.png")
    await channel.send(message("With a picture.", media=(Media(str(image), "A"),)))
    rest = [r for r in sandbox.requests if r["path"].startswith("/rest/")]
    assert [r["endpoint"] for r in rest] == ["images.initializeUpload", "images.get", CREATE]
    for request in rest:
        assert request["headers"]["LinkedIn-Version"] == sandbox.latest_version
        assert request["headers"]["X-Restli-Protocol-Version"] == "2.0.0"
        assert request["authorized"]
    old = adapter(sandbox, api_version="202401")
    with pytest.raises(ChannelUnauthorized, match=r"426 NONEXISTENT_VERSION.*api_version"):
        await old.send(message("Too old a version."))
    await old.aclose()
    assert sandbox.texts() == ["With a picture."]


# -- images -----------------------------------------------------------------------------------


async def test_an_image_goes_up_through_the_upload_flow_with_its_alt_text(tmp_path: Path) -> None:
    sandbox = LinkedInSandbox(processing_polls=2)  # two status reads answer PROCESSING
    await sandbox.start()
    channel = adapter(sandbox)
    try:
        image = png(tmp_path / "classroom.png")
        alt = "Children back in class"
        await channel.send(message("Back to school.", media=(Media(str(image), alt),)))  # fmt: skip
        steps = [r["endpoint"] for r in sandbox.requests]
        assert steps == ["images.initializeUpload", "images.upload", *["images.get"] * 3, CREATE]
        assert sandbox.requests[1]["method"] == "PUT" and sandbox.requests[1]["authorized"]
        [(urn, uploaded)] = sandbox.images().items()
        assert uploaded["owner"] == sandbox.author and uploaded["status"] == "AVAILABLE"
        assert uploaded["size"] == image.stat().st_size
        [post] = sandbox.posts()
        assert post["content"] == {"media": {"id": urn, "altText": alt}}
    finally:
        await channel.aclose()
        await sandbox.stop()


async def test_several_images_are_one_multi_image_post(
    sandbox: LinkedInSandbox, channel: LinkedInChannel, tmp_path: Path
) -> None:
    media = tuple(Media(str(png(tmp_path / f"{n}.png")), f"Photo {n}") for n in (1, 2))
    await channel.send(message("Two photos.", media=media))
    [post] = sandbox.posts()
    images = post["content"]["multiImage"]["images"]
    assert [i["altText"] for i in images] == ["Photo 1", "Photo 2"]
    assert {i["id"] for i in images} == set(sandbox.images())


async def test_an_unfit_image_is_refused_before_anything_is_sent(
    sandbox: LinkedInSandbox, channel: LinkedInChannel, tmp_path: Path
) -> None:
    with pytest.raises(Rejected, match="no alt text"):
        await channel.send(message("No alt.", media=(Media(str(png(tmp_path / "a.png"))),)))
    (tmp_path / "b.webp").write_bytes(b"RIFF\x00\x00\x00\x00WEBPVP8 ")
    with pytest.raises(Rejected, match="not a JPEG, PNG or GIF"):
        await channel.send(message("WebP.", media=(Media(str(tmp_path / "b.webp"), "b"),)))  # fmt: skip
    assert sandbox.requests == [] and sandbox.posts() == []


async def test_the_sandbox_refuses_a_post_naming_an_image_not_uploaded(
    sandbox: LinkedInSandbox, channel: LinkedInChannel
) -> None:
    request = {"initializeUploadRequest": {"owner": sandbox.author}}
    started = await channel._call(
        "POST",
        "images",
        "images.initializeUpload",
        params={"action": "initializeUpload"},
        json=request,
    )
    urn = started.json()["value"]["image"]
    body = {
        "author": sandbox.author, "commentary": "Missing image", "visibility": "PUBLIC",
        "lifecycleState": "PUBLISHED", "distribution": {"feedDistribution": "MAIN_FEED"},
        "content": {"media": {"id": urn, "altText": "x"}},
    }  # fmt: skip
    with pytest.raises(Rejected, match=r"400 .*not available \(WAITING_UPLOAD\)"):
        await channel._call("POST", "posts", CREATE, json=body)
    assert sandbox.posts() == []


# -- length -----------------------------------------------------------------------------------


async def test_too_long_is_refused_and_the_planner_splits_at_3000(
    sandbox: LinkedInSandbox, channel: LinkedInChannel
) -> None:
    with pytest.raises(Rejected, match="3001 > 3000"):
        await channel.send(message("x" * 3001))
    with pytest.raises(Rejected, match="3002 > 3000"):  # the escapes count: 1,501 × 2
        await channel.send(message("_" * 1501))
    assert sandbox.posts() == []
    text = "We train labour inspectors (all 40 of them) across #Region_3. " * 60
    planned = posts.thread(
        key_prefix="amplify:j:slot", channel="linkedin", destination="timeline", text=text,
        media=(), post={},
    )  # fmt: skip
    assert len(planned) == 2 and all(linkedin_length(p.text) <= 3000 for p in planned)
    previous = None
    for part in planned:  # LinkedIn has no threads: the numbered second part is its own post
        previous = (await channel.send(message(part.text, reply_to=previous))).external_id
    assert [p["text"] for p in sandbox.posts()] == [p.text for p in planned]


# -- delete -----------------------------------------------------------------------------------


async def test_delete_takes_the_post_down_and_twice_is_harmless(
    sandbox: LinkedInSandbox, channel: LinkedInChannel
) -> None:
    kept = await channel.send(message("Stays."))
    withdrawn = await channel.send(message("Consent withdrawn."))
    await channel.delete(message(withdrawn.external_id, action="delete"))
    await channel.delete(message(withdrawn.external_id, action="delete"))
    assert [p["id"] for p in sandbox.posts()] == [kept.external_id]
    assert [p["id"] for p in sandbox.posts(deleted=True)] == [withdrawn.external_id]
    deletes = [r for r in sandbox.requests if r["endpoint"] == "posts.delete"]
    assert deletes[0]["raw_path"] == "/rest/posts/" + quote(withdrawn.external_id, safe="")
    with pytest.raises(Rejected, match="not a post's URN"):
        await channel.delete(message("7300000000000000001", action="delete"))
    with pytest.raises(Rejected, match="not a post's URN"):
        await channel.delete(message("urn:li:share:1/../../images", action="delete"))


# -- failures ---------------------------------------------------------------------------------


async def test_429_waits_a_minute_or_as_told_and_holds_posting(
    sandbox: LinkedInSandbox, channel: LinkedInChannel
) -> None:
    sandbox.fail_next(CREATE, "rate_limited")
    with pytest.raises(RateLimited) as caught:
        await channel.send(message("one too many"))
    assert caught.value.retry_after == 60, "LinkedIn said nothing of when: a minute"
    calls = sandbox.method_calls[CREATE]
    with pytest.raises(RateLimited):  # held: no request before then
        await channel.send(message("one too many"))
    assert sandbox.method_calls[CREATE] == calls
    told = adapter(sandbox)
    sandbox.fail_next(CREATE, "rate_limited", headers={"Retry-After": "2"})
    with pytest.raises(RateLimited) as caught:
        await told.send(message("one too many"))
    assert caught.value.retry_after == 2
    await told.aclose()
    assert sandbox.posts() == []


async def test_a_daily_quota_waits_until_midnight_utc() -> None:
    sandbox = LinkedInSandbox(posts_per_day=1)
    await sandbox.start()
    channel = adapter(sandbox)
    try:
        await channel.send(message("one"))
        with pytest.raises(RateLimited, match="DAY limit") as caught:
            await channel.send(message("two"))
        now = datetime.now(UTC)
        midnight = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), UTC)
        assert abs(caught.value.retry_after - (midnight - now).total_seconds()) < 5
        assert sandbox.texts() == ["one"]
    finally:
        await channel.aclose()
        await sandbox.stop()


@pytest.mark.parametrize("how", ["server_error", "bad_gateway", "unavailable"])
async def test_a_server_error_is_transient_and_may_have_posted(
    sandbox: LinkedInSandbox, channel: LinkedInChannel, how: str
) -> None:
    sandbox.fail_next(CREATE, how)
    with pytest.raises(TransientError) as caught:
        await channel.send(message("Retry me."))
    assert caught.value.maybe_delivered, "a 5xx may come after LinkedIn made the post"
    await channel.send(message("Retry me.", maybe_sent=True))
    assert sandbox.texts() == ["Retry me."]


async def test_a_post_made_but_not_confirmed_is_recognised_by_linkedins_duplicate_refusal(
    sandbox: LinkedInSandbox,
) -> None:
    channel = adapter(sandbox, request_timeout=0.5)
    sandbox.fail_next(CREATE, "timeout", delay=1.5, deliver=True)  # made; the answer lost
    with pytest.raises(TransientError) as caught:
        await channel.send(message("Made once.", "amplify:lost:1"))
    assert caught.value.maybe_delivered
    receipt = await channel.send(message("Made once.", "amplify:lost:1", maybe_sent=True))
    [post] = sandbox.posts()
    assert receipt.external_id == post["id"] and sandbox.method_calls[CREATE] == 2
    assert sandbox.method_calls["posts.get"] == 1, "the URN LinkedIn names was checked live"
    with pytest.raises(Rejected, match=f"duplicate of {post['id']}"):  # not in flight: refused
        await channel.send(message("Made once.", "amplify:other:1"))
    await channel.aclose()


async def test_a_duplicate_of_a_post_since_deleted_is_not_taken_for_ours() -> None:
    """LinkedIn names posts deleted a day or two ago as duplicates too: the URN it gives
    answers 404, so the resend is refused rather than recorded as that (gone) post."""
    sandbox = LinkedInSandbox(ghost_duplicates=True)
    await sandbox.start()
    channel = adapter(sandbox)
    try:
        gone = await channel.send(message("Said once."))
        await channel.delete(message(gone.external_id, action="delete"))
        with pytest.raises(Rejected, match=f"duplicate of {gone.external_id}"):
            await channel.send(message("Said once.", maybe_sent=True))
        assert sandbox.method_calls["posts.get"] == 1 and sandbox.posts() == []
    finally:
        await channel.aclose()
        await sandbox.stop()


async def test_a_token_that_may_not_read_posts_takes_linkedins_word_for_the_duplicate(
    sandbox: LinkedInSandbox, channel: LinkedInChannel
) -> None:
    first = await channel.send(message("Made once."))
    sandbox.fail_next("posts.get", "forbidden")  # no r_organization_social
    again = await channel.send(message("Made once.", maybe_sent=True))
    assert again.external_id == first.external_id and len(sandbox.posts()) == 1


@pytest.mark.parametrize(
    ("how", "says"),
    [("expired_token", "EXPIRED_ACCESS_TOKEN"), ("revoked_token", "REVOKED_ACCESS_TOKEN"),
     ("forbidden", "ACCESS_DENIED")],
)  # fmt: skip
async def test_a_refused_token_or_permission_is_channel_unauthorized(
    sandbox: LinkedInSandbox, channel: LinkedInChannel, how: str, says: str
) -> None:
    sandbox.fail_next(CREATE, how)
    with pytest.raises(ChannelUnauthorized, match=says):
        await channel.send(message("hello"))
    assert sandbox.posts() == []


async def test_the_token_never_reaches_the_debug_logs(
    sandbox: LinkedInSandbox, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    caplog.set_level(logging.DEBUG)
    channel = adapter(sandbox)
    await channel.start()
    await channel.send(message("hello", media=(Media(str(png(tmp_path / "a.png")), "a"),)))  # fmt: skip
    sandbox.expire_token()
    with pytest.raises(ChannelUnauthorized) as caught:
        await channel.send(message("refused"))
    await channel.aclose()
    logged = caplog.text + str(caught.value)
    assert "httpx" in caplog.text and "EXPIRED_ACCESS_TOKEN" in logged
    assert sandbox.access_token not in logged


# -- end to end: through the outbox and the dispatcher ---------------------------------------


@pytest.fixture
def app(
    sandbox: LinkedInSandbox,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[App]:
    monkeypatch.setenv(TOKEN_ENV, "123456:TEST-TOKEN")
    monkeypatch.setenv(TOKEN_VAR, sandbox.access_token)
    extra = (
        f'[channels.linkedin]\nenabled = true\napi_base_url = "{sandbox.api_base_url}"\n'
        f'organization_id = "{sandbox.organization_id}"\napi_version = "{sandbox.latest_version}"\n'
        f'access_token_env = "{TOKEN_VAR}"\nrequest_timeout = 3\n'
    )
    built = build_app(load_config(write_config(tmp_path, extra=extra), required=True))
    built.db.upgrade()
    yield built
    built.close()


def dispatcher(app: App) -> Dispatcher:
    alerts = Alerts(app.db, app.config.alerts)
    return Dispatcher(app.db, {"linkedin": app.channel("linkedin")}, app.config.dispatcher, alerts)


def rows(app: App) -> list[OutboxMessage]:
    with app.db.session() as session:
        return list(session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


def enqueue(app: App, text: str = "hello", key: str = "post:1") -> None:
    with app.db.session() as session:
        outbox.enqueue(session, [PlannedMessage(key, "linkedin", "timeline", text)])


async def test_an_amplify_slot_posts_on_the_page(app: App, sandbox: LinkedInSandbox) -> None:
    with app.db.session() as session:
        import_pledgemakers(session, SAMPLE_CSV)
    with app.db.session() as session:
        session.add(
            JourneyUpdate(
                pledgemaker_id="ilo", pillar="act", kind="progress",
                text="We train labour inspectors (40 so far) & support #1 priority: schools.",
                moderation="approved", consent_to_publish=True, source="import", source_ref="e2e",
            )
        )  # fmt: skip
    spec = AmplifyCampaign.model_validate(
        {"id": "journeys", "kind": "amplify", "cron": "0 9 * * *", "channels": ["linkedin"],
         "hashtags": ["#EndChildLabour2021", "#AchieveSDG87"]}
    )  # fmt: skip
    runs.fire(app.db, app.templates, spec, datetime.now(UTC), trigger="manual",
              destinations=Destinations({"linkedin": "timeline"}))  # fmt: skip
    assert await dispatcher(app).dispatch_once() == 1
    await app.aclose()
    [post] = sandbox.posts()
    assert post["text"].startswith("International Labour Organization on Act:")
    assert "(40 so far) & support #1 priority" in post["text"] and "&amp;" not in post["text"]
    assert post["hashtags"] == ["EndChildLabour2021", "AchieveSDG87"] and not post["cut"]
    assert [(r.state, r.external_id) for r in rows(app)] == [("sent", post["id"])]


async def test_429_then_success_through_the_dispatcher(app: App, sandbox: LinkedInSandbox) -> None:
    enqueue(app)
    sandbox.fail_next(CREATE, "rate_limited", headers={"Retry-After": "1"})
    assert await dispatcher(app).dispatch_once() == 1
    [row] = rows(app)
    assert (row.state, row.attempts) == ("retry_wait", 0), "a rate limit uses up no attempt"
    assert "429" in (row.last_error or "")
    await asyncio.sleep(1.1)
    assert await dispatcher(app).dispatch_once() == 1
    await app.aclose()
    [row] = rows(app)
    assert (row.state, row.external_id) == ("sent", sandbox.posts()[0]["id"])


async def test_a_500_is_retried_by_the_dispatcher(app: App, sandbox: LinkedInSandbox) -> None:
    enqueue(app)
    sandbox.fail_next(CREATE, "server_error")
    assert await dispatcher(app).dispatch_once() == 1
    [row] = rows(app)
    assert (row.state, row.attempts) == ("retry_wait", 1) and "500" in (row.last_error or "")
    await asyncio.sleep(0.2)  # the test config's backoff is 0.05 s
    assert await dispatcher(app).dispatch_once() == 1
    await app.aclose()
    [row] = rows(app)
    assert (row.state, row.external_id) == ("sent", sandbox.posts()[0]["id"])
    assert sandbox.method_calls[CREATE] == 2 and len(sandbox.posts()) == 1


async def test_an_expired_token_pauses_the_channel_and_alerts_staff(
    app: App, sandbox: LinkedInSandbox
) -> None:
    enqueue(app)
    sandbox.expire_token()
    assert await dispatcher(app).dispatch_once() == 1
    assert await dispatcher(app).dispatch_once() == 0, "paused: not a retry loop"
    await app.aclose()
    with app.db.session() as session:
        control = session.get(CampaignControl, "channel:linkedin")
        assert control is not None and control.paused
        [alert] = open_alerts(session)
        assert alert.key == "unauthorized:linkedin"
        assert "EXPIRED_ACCESS_TOKEN" in alert.text
        assert "pledgebot resume --channel linkedin" in alert.text
        assert sandbox.access_token not in alert.text
    assert collect(app)["paused"] == "channel:linkedin", "what `pledgebot status` shows"
    [row] = rows(app)
    assert (row.state, row.attempts) == ("retry_wait", 0) and sandbox.posts() == []


async def test_a_message_in_flight_at_a_crash_is_not_posted_twice(
    app: App, sandbox: LinkedInSandbox
) -> None:
    """LinkedIn made the post, the process died before recording it: the resend is refused as a
    duplicate, and that refusal names the post — the receipt."""
    enqueue(app, "Once.", "manual:crash:1")
    await app.channel("linkedin").send(message("Once."))  # before the crash
    with app.db.session() as session:
        row = session.scalar(select(OutboxMessage))
        assert row is not None
        row.state, row.claimed_until = "sending", row.created_at - timedelta(minutes=5)
    assert await dispatcher(app).dispatch_once() == 1
    await app.aclose()
    [post] = sandbox.posts()
    [row] = rows(app)
    assert (row.state, row.external_id, row.possible_duplicate) == ("sent", post["id"], True)


# -- templates --------------------------------------------------------------------------------


@pytest.mark.parametrize("language", ["en", "fr", "es"])
def test_linkedin_templates_are_plain_text_and_mention_a_known_page(language: str) -> None:
    templates = Templates(ROOT / "templates", plain_text=plain_text_channels())
    context = {"text": "Safe & sound <today>", "pillar": "Act", "hashtags": "#AchieveSDG87"}
    maker = SimpleNamespace(name="ILO & partners", handles={"x": "@ilo"})
    plain = templates.render("amplify/linkedin", language, pledgemaker=maker, **context)
    assert plain.startswith("ILO & partners") and "Safe & sound <today>" in plain
    assert "&amp;" not in plain and "@ilo" not in plain and plain.endswith("#AchieveSDG87")
    page = SimpleNamespace(name="ILO & partners", handles={"linkedin": "123"})
    mentioned = templates.render("amplify/linkedin", language, pledgemaker=page, **context)
    assert mentioned.startswith("@[ILO & partners](urn:li:organization:123)")
    assert little_text(mentioned).startswith("@[ILO & partners](urn:li:organization:123)")
    fact = templates.render(
        "knowledge/linkedin", language, text="160 million children & counting",
        source="https://www.ilo.org", hashtags="#AchieveSDG87", fact=None,
    )  # fmt: skip
    assert "160 million children & counting" in fact and "https://www.ilo.org" in fact


def test_the_settings_need_the_page_and_a_version() -> None:
    with pytest.raises(ValueError, match="organization_id"):
        LinkedInSettings(enabled=True)
    with pytest.raises(ValueError, match="api_version"):
        LinkedInSettings(enabled=True, organization_id="1", api_version="2026-09")
