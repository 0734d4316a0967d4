"""Email: conversations with pledgemakers by mail (SMTP out, IMAP in)."""

from bot.channels.spec import ChannelSpec, HandleShape

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
    handle_shape=HandleShape(
        r"(?=.{3,254}$)[^@\s,;<>\"]+@[^@\s,;<>\"]+\.[A-Za-z]{2,63}",
        "must be one email address, e.g. info@example.org",
        lower=True,
    ),
    replies_name_outbox_id=True,  # In-Reply-To names our Message-ID, made from the outbox id
    unsubscribe="bot.channels.email.tokens:read_unsubscribe",  # List-Unsubscribe (RFC 8058)
    extra="email",
)
