"""Webhook: each post as a signed JSON document to one configured receiver."""

from bot.channels.spec import ChannelSpec

SPEC = ChannelSpec(
    name="webhook",
    adapter="bot.channels.webhook.adapter:WebhookChannel",
    destination="receiver",
    text_limit=1_000_000,  # a JSON document: never split
    caption_limit=1_000_000,
    markup="plain",
)
