"""Mastodon: statuses on the campaign's account (the instance's limit, URLs count 23)."""

from bot.channels.spec import ChannelSpec, HandleShape

SPEC = ChannelSpec(
    name="mastodon",
    adapter="bot.channels.mastodon.adapter:MastodonChannel",
    destination="timeline",
    text_limit=500,  # an instance's default; [channels.mastodon] max_characters overrides it
    caption_limit=500,
    markup="plain",
    measure="bot.channels.mastodon.text:mastodon_length",
    handle="fediverse_handle",
    handle_shape=HandleShape(
        r"(?=.{5,300}$)@[A-Za-z0-9_]+(?:[.-]+[A-Za-z0-9_]+)*@(?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,63}",
        "must be @user@instance.domain (e.g. @ilo@mastodon.social), at most 300 characters",
    ),
    # A status's address needs the account's URL: the id alone makes none.
    extra="mastodon",
)
