"""Instagram: image posts with a caption on the campaign's professional account.

``spec``: what the rest of pledgebot knows of it (no client library); ``adapter``: the
client, imported only when the channel is used."""
