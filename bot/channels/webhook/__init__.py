"""Webhook: each post as a signed JSON document to one configured receiver.

``spec``: what the rest of pledgebot knows of it (no client library); ``adapter``: the
client, imported only when the channel is used."""
