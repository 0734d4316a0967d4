"""The Mastodon server of the tests: moved to ``pledgebot_sandbox.mastodon`` (the demo starts it too)."""

from pledgebot_sandbox.mastodon import MEDIA, REMOTE_HANDLE, STATUSES, MastodonServer

__all__ = ["MEDIA", "REMOTE_HANDLE", "STATUSES", "MastodonServer"]
