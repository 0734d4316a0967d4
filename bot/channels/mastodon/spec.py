"""Mastodon: statuses on the campaign's account (the instance's limit, URLs count 23)."""

from bot.channels.spec import ChannelSpec

SPEC = ChannelSpec(
    name="mastodon",
    adapter="bot.channels.mastodon.adapter:MastodonChannel",
    destination="timeline",
    text_limit=500,  # an instance's default; [channels.mastodon] max_characters overrides it
    caption_limit=500,
    markup="plain",
    measure="bot.channels.mastodon.adapter:mastodon_length",
    handle="fediverse_handle",
    # A status's address needs the account's URL: the id alone makes none.
    extra="mastodon",
)
