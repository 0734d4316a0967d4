"""Email: conversations with pledgemakers by mail (SMTP out, IMAP in)."""

from bot.channels.spec import ChannelSpec

SPEC = ChannelSpec(
    name="email",
    adapter="bot.channels.email.adapter:EmailChannel",
    destination="chat",
    text_limit=500_000,
    caption_limit=500_000,
    markup="html",
    inbound=True,
    can_delete=False,  # a sent mail stays sent
    handle="email",
    replies_name_outbox_id=True,  # In-Reply-To names our Message-ID, made from the outbox id
    unsubscribe_links=True,  # List-Unsubscribe (RFC 8058) on every message
    extra="email",
)
