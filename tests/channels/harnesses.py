"""Every channel's contract harness: a new channel adds one line here (and its harness module)."""

from __future__ import annotations

from tests.channels.harness_bluesky import BlueskyHarness
from tests.channels.harness_email import EmailHarness
from tests.channels.harness_facebook import FacebookHarness
from tests.channels.harness_instagram import InstagramHarness
from tests.channels.harness_linkedin import LinkedInHarness
from tests.channels.harness_mastodon import MastodonHarness
from tests.channels.harness_matrix import MatrixHarness
from tests.channels.harness_telegram import TelegramHarness
from tests.channels.harness_webhook import WebhookHarness
from tests.channels.harness_x import XHarness

HARNESSES = {
    "telegram": TelegramHarness,
    "mastodon": MastodonHarness,
    "bluesky": BlueskyHarness,
    "linkedin": LinkedInHarness,
    "facebook": FacebookHarness,
    "instagram": InstagramHarness,
    "email": EmailHarness,
    "matrix": MatrixHarness,
    "x": XHarness,
    "webhook": WebhookHarness,
}
