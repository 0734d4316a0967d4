"""Matrix: direct rooms with pledgemakers, and posts to a room.

``spec``: what the rest of pledgebot knows of it (no client library); ``adapter``: the
client, imported only when the channel is used."""
