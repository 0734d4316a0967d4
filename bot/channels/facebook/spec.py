"""Facebook: posts on the campaign's Page (Graph API)."""

from bot.channels.spec import ChannelSpec

SPEC = ChannelSpec(
    name="facebook",
    adapter="bot.channels.facebook.adapter:FacebookChannel",
    destination="timeline",
    text_limit=63_206,  # a Page post's message, with or without photos: never split
    caption_limit=63_206,
    markup="plain",
    link=lambda destination, external_id: f"https://www.facebook.com/{external_id}",
)
