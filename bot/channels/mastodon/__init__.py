"""Mastodon: statuses on the campaign's account (the instance's limit, URLs count 23).

``spec``: what the rest of pledgebot knows of it (no client library); ``adapter``: the
client, imported only when the channel is used."""
