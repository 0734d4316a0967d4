"""Email: conversations with pledgemakers by mail (SMTP out, IMAP in).

``spec``: what the rest of pledgebot knows of it (no client library); ``adapter``: the
client, imported only when the channel is used."""
