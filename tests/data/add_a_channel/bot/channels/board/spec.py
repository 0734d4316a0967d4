"""Board: notes pinned on a public board (the channel docs/add-a-channel.md adds)."""

from bot.channels.spec import ChannelSpec

SPEC = ChannelSpec(
    name="board",
    adapter="bot.channels.board.adapter:BoardChannel",
    destination="timeline",
    text_limit=200,
    caption_limit=200,
    markup="plain",
    link=lambda destination, external_id: f"https://board.example/notes/{external_id}",
)
