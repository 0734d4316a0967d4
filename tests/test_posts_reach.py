"""Where a post can go: Instagram only with an image and in one caption, the others split to
their limits (the planner's rules, shared by amplify, knowledge and the composer)."""

from __future__ import annotations

from datetime import UTC, datetime

from bot.campaigns import posts
from bot.campaigns.base import Destinations, RunContext
from bot.channels.base import Media
from bot.channels.registry import plain_text_channels
from bot.text.templates import Templates
from tests.conftest import ROOT

IMAGE = (Media("media/photo.jpg", "Children back in class in Kumasi"),)
CONTEXT = {
    "text": "We trained 40 labour inspectors in Kumasi.",
    "credit": "Ministry of Employment",
    "pillar": "Act",
    "hashtags": "#EndChildLabour2021",
    "pledgemaker": {"name": "Ministry", "handles": {}, "language": "en", "id": "gh"},
    "update": {"id": 1},
}


def plan(channels: list[str], media: tuple[dict[str, str], ...], text: str) -> posts.Plan:
    run = RunContext(
        "journeys",
        datetime(2026, 12, 10, 9, tzinfo=UTC),
        destinations=Destinations({c: "timeline" for c in channels}),
    )
    return posts.plan_post(
        kind="amplify",
        campaign_id="journeys",
        channels=channels,
        template="amplify",
        language="en",
        context={**CONTEXT, "text": text},
        run=run,
        templates=Templates(ROOT / "templates", plain_text=plain_text_channels()),
        media=media,
        post={"pillar": "act"},
    )


def test_instagram_needs_an_image() -> None:
    found = plan(["instagram", "facebook"], (), "We trained 40 labour inspectors.")
    assert [m.channel for m in found.messages] == ["facebook"]
    assert found.skipped == {"instagram: an image is required, and this post has none": 1}


def test_instagram_takes_one_caption_or_nothing() -> None:
    long = "We trained labour inspectors in every district of the region. " * 40
    found = plan(["instagram", "x"], IMAGE, long)
    assert {m.channel for m in found.messages} == {"x"}
    assert len(found.messages) > 1, "x threads it"
    assert found.skipped == {"instagram: too long for one caption": 1}
    short = plan(["instagram"], IMAGE, "We trained 40 labour inspectors.")
    [message] = short.messages
    assert message.media == IMAGE


def test_public_links_where_the_id_makes_one() -> None:
    from bot.channels.registry import spec
    from bot.community.closing import post_link

    def public_link(channel: str, destination: str, external_id: str) -> str | None:
        return spec(channel).public_link(destination, external_id)

    assert public_link("x", "timeline", "19") == "https://x.com/i/web/status/19"
    assert public_link("telegram", "@journeys", "7") == "https://t.me/journeys/7"
    assert public_link("telegram", "-1001234", "7") == "https://t.me/c/1234/7"
    assert (
        public_link("bluesky", "timeline", "at://did:plc:abc/app.bsky.feed.post/3kx")
        == "https://bsky.app/profile/did:plc:abc/post/3kx"
    )
    assert (
        public_link("linkedin", "timeline", "urn:li:share:7")
        == "https://www.linkedin.com/feed/update/urn:li:share:7/"
    )
    assert public_link("facebook", "timeline", "12_34") == "https://www.facebook.com/12_34"
    assert public_link("instagram", "timeline", "1789") is None, "needs a permalink look-up"
    assert public_link("mastodon", "timeline", "1") is None
    assert post_link("mastodon", "timeline", "1") == "mastodon post 1", "staff still see which"
