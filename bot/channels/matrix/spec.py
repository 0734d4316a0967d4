"""Matrix: direct rooms with pledgemakers, and posts to a room."""

from bot.channels.spec import ChannelSpec

SPEC = ChannelSpec(
    name="matrix",
    adapter="bot.channels.matrix.adapter:MatrixChannel",
    destination="chat",
    text_limit=6_000,
    caption_limit=6_000,
    markup="html",
    inbound=True,
    handle="matrix_id",
    extra="matrix",
)
