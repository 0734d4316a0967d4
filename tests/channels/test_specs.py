"""Every registered channel's spec: it agrees with the channel's adapter, costs no client library
to read, and is what the core's planning, templates and previews follow — through the real
registry, never a monkeypatched table. (That every registered channel has a contract harness is
tests/channels/test_contract.py's first test.)"""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from bot.campaigns import posts
from bot.campaigns.base import Destinations, RunContext
from bot.channels import registry
from bot.channels.base import Media
from bot.scheduling.preview import channel_length, readable
from bot.text.templates import Templates

NAMES = registry.known_channels()
# Platform client libraries: an adapter may import them, a spec (or its measure) never.
CLIENTS = ("telegram", "tweepy", "nio", "mastodon", "atproto", "aiosmtplib", "requests_oauthlib")
IMAGE = (Media("media/photo.jpg", "Children back in class"),)


@pytest.mark.parametrize("name", NAMES)
def test_each_channel_has_a_spec_an_adapter_and_a_settings_model(name: str) -> None:
    spec = registry.spec(name)
    adapter = registry.adapter_class(name)
    assert spec.name == adapter.name == name
    settings = registry.settings_model(name)
    assert issubclass(settings, BaseModel) and "enabled" in settings.model_fields
    assert spec.text_limit >= spec.caption_limit > 0
    assert isinstance(spec.length()("Hello, world"), int)
    assert not hasattr(adapter, "capabilities"), "what a channel can do is its spec's to say"


@pytest.mark.parametrize("name", NAMES)
def test_the_optional_capabilities_are_where_the_spec_says(name: str) -> None:
    spec, adapter = registry.spec(name), registry.adapter_class(name)

    def has(*methods: str) -> bool:
        return all(callable(getattr(adapter, method, None)) for method in methods)

    assert has("delete") == spec.can_delete, "the dispatcher deletes where can_delete"
    assert has("set_commands") == spec.commands, "the runner sets a menu where commands"
    chat = has("poll", "answer_button", "download", "invite_link")
    assert chat == spec.inbound, "the runner listens to the inbound ones"


def test_an_unknown_channel_is_refused_with_the_known_ones_named() -> None:
    with pytest.raises(KeyError, match=r"unknown channel 'myspace' \(known: .*telegram"):
        registry.spec("myspace")


def test_reading_every_spec_loads_no_client_library() -> None:
    script = (
        "import sys\n"
        "from bot.channels import registry\n"
        "for name in registry.known_channels():\n"
        "    spec = registry.spec(name)\n"
        "    spec.length()('Hello <b>world</b> &amp; https://example.org')\n"
        "    spec.public_link('@news', '1')\n"
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({CLIENTS!r})))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "[]"


# -- the core's real tables ------------------------------------------------------------------


class Rendered:
    """Templates that render ``text`` as it is (what is planned is not about the words here)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def render(self, name: str, language: str, **context: Any) -> str:
        return self.text


def plan(channels: list[str], media: tuple[dict[str, str], ...], text: str) -> posts.Plan:
    run = RunContext(
        "journeys",
        datetime(2026, 12, 10, 9, tzinfo=UTC),
        destinations=Destinations({name: "timeline" for name in channels}),
    )
    return posts.plan_post(
        kind="amplify",
        campaign_id="journeys",
        channels=channels,
        template="amplify",
        language="en",
        context={},
        run=run,
        templates=Rendered(text),  # type: ignore[arg-type]
        media=media,
        post={"pillar": "act"},
    )


def test_a_post_without_an_image_is_skipped_exactly_where_the_spec_requires_one() -> None:
    text = "We trained 40 labour inspectors."
    required = {name for name in NAMES if registry.spec(name).image_required}
    assert required == {"instagram"}
    found = plan(NAMES, (), text)
    assert {m.channel for m in found.messages} == set(NAMES) - required
    assert found.skipped == {
        f"{n}: an image is required, and this post has none": 1 for n in required
    }
    assert {m.channel for m in plan(NAMES, IMAGE, text).messages} == set(NAMES)


@pytest.mark.parametrize("name", [n for n in NAMES if registry.spec(n).text_limit <= 10_000])
def test_a_post_is_split_at_the_spec_limit_as_the_channel_counts(name: str) -> None:
    spec = registry.spec(name)
    words = "Forty labour inspectors trained in Kumasi & Tamale. "
    text = words * (spec.text_limit // len(words) + 2)
    parts = posts.thread(
        key_prefix="k", channel=name, destination="timeline", text=text, media=(), post={}
    )
    measure = spec.length()
    assert len(parts) > 1 and all(measure(part.text) <= spec.text_limit for part in parts)
    assert {part.parse_mode for part in parts} == {"HTML" if spec.markup == "html" else None}
    [one] = posts.thread(
        key_prefix="k", channel=name, destination="timeline", text=words, media=(), post={}
    )
    assert one.text == words.strip()


def test_telegram_counts_a_caption_as_telegram_does_and_the_preview_agrees() -> None:
    """After its HTML parse mode (tags gone, entities one character), in UTF-16 units."""
    markup = "<b>R&amp;D</b> " * 100  # 1,500 characters as stored, 400 as Telegram counts them
    [caption] = posts.thread(
        key_prefix="k", channel="telegram", destination="@news", text=markup, media=IMAGE, post={}
    )
    assert caption.media == IMAGE and channel_length("telegram", markup) == 400
    emoji = "😀 " * 400  # 800 characters, 1,200 UTF-16 units: past a caption's 1,024
    parts = posts.thread(
        key_prefix="k", channel="telegram", destination="@news", text=emoji, media=IMAGE, post={}
    )
    assert len(parts) == 2 and all(channel_length("telegram", p.text) <= 1024 for p in parts)


def test_templates_escape_values_only_where_the_spec_says_html(tmp_path: Path) -> None:
    for name in NAMES:
        (tmp_path / "post").mkdir(exist_ok=True)
        (tmp_path / "post" / f"{name}.en.j2").write_text("{{ text }}", encoding="utf-8")
    templates = Templates(tmp_path, plain_text=registry.plain_text_channels())
    for name in NAMES:
        text = templates.render(f"post/{name}", "en", text="R&D <today>")
        html = registry.spec(name).markup == "html"
        assert text == ("R&amp;D &lt;today&gt;" if html else "R&D <today>"), name
        assert readable(name, text) == "R&D <today>", "the preview shows what the reader reads"
