"""The Mastodon server of the tests: moved to ``bot.sandbox.mastodon`` (the demo starts it too)."""

from bot.sandbox.mastodon import MEDIA, REMOTE_HANDLE, STATUSES, MastodonServer

__all__ = ["MEDIA", "REMOTE_HANDLE", "STATUSES", "MastodonServer"]
