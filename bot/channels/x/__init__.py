"""X: posts (threads of 280 weighted characters) on the campaign's account.

``spec``: what the rest of pledgebot knows of it (no client library); ``adapter``: the
client, imported only when the channel is used."""
