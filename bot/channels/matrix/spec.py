"""Matrix: direct rooms with pledgemakers, and posts to a room."""

from bot.channels.spec import ChannelSpec, HandleShape

SPEC = ChannelSpec(
    name="matrix",
    adapter="bot.channels.matrix.adapter:MatrixChannel",
    destination="chat",
    text_limit=6_000,
    caption_limit=6_000,
    markup="html",
    inbound=True,
    handle="matrix_id",
    handle_shape=HandleShape(
        r"(?=.{3,255}$)@[a-z0-9._=/+-]+:[A-Za-z0-9.-]+(?::\d{1,5})?",
        "must be a Matrix user id, e.g. @ilo:matrix.org",
    ),
    extra="matrix",
)
