"""Facebook: posts on the campaign's Page (Graph API).

``spec``: what the rest of pledgebot knows of it (no client library); ``adapter``: the
client, imported only when the channel is used."""
