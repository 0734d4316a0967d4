"""Bluesky: posts (300 graphemes) on the campaign's account."""

from bot.channels.spec import ChannelSpec, HandleShape


def link(destination: str, external_id: str) -> str | None:
    """bsky.app/profile/<did>/post/<rkey> from the post's at:// URI."""
    if not external_id.startswith("at://"):
        return None
    did, _, rkey = external_id.removeprefix("at://").partition("/app.bsky.feed.post/")
    return f"https://bsky.app/profile/{did}/post/{rkey}" if rkey else None


SPEC = ChannelSpec(
    name="bluesky",
    adapter="bot.channels.bluesky.adapter:BlueskyChannel",
    destination="timeline",
    text_limit=300,  # graphemes, and 3,000 UTF-8 bytes (its measure counts both)
    caption_limit=300,
    markup="plain",
    measure="bot.channels.bluesky.text:bluesky_length",
    handle="bluesky_handle",
    handle_shape=HandleShape(
        r"(?=.{4,254}$)@(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,61}[a-z0-9]",
        "must be @ and a Bluesky handle, e.g. @ilo.bsky.social",
        lower=True,
    ),
    link=link,
    extra="bluesky",
)
