"""X: posts (threads of 280 weighted characters) on the campaign's account."""

from bot.channels.spec import ChannelSpec, HandleShape

SPEC = ChannelSpec(
    name="x",
    adapter="bot.channels.x.adapter:XChannel",
    destination="timeline",
    text_limit=280,
    caption_limit=280,
    markup="plain",
    measure="bot.channels.text_split:weighted_length",  # X's weighted length (twitter-text)
    handle="x_handle",
    handle_shape=HandleShape(r"@[A-Za-z0-9_]{1,15}", "must be @ and 1-15 letters, digits or '_'"),
    link=lambda destination, external_id: f"https://x.com/i/web/status/{external_id}",
    extra="x",
)
