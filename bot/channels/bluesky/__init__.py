"""Bluesky: posts (300 graphemes) on the campaign's account.

``spec``: what the rest of pledgebot knows of it (no client library); ``adapter``: the
client, imported only when the channel is used."""
