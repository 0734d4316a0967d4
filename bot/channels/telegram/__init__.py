"""Telegram: chats with pledgemakers (buttons, a command menu) and posts to a channel.

``spec``: what the rest of pledgebot knows of it (no client library); ``adapter``: the
client, imported only when the channel is used."""
