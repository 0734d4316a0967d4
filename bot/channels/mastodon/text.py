"""How Mastodon counts a status's length: every http(s) URL as 23 characters, a mention without
its domain, an emoji sequence as one. Light: twitter-text finds the URLs and emoji, and
Mastodon.py is not imported (a planner measures posts without loading the client)."""

from __future__ import annotations

import re

from twitter_text.extract_emojis import extract_emojis_with_indices
from twitter_text.extract_urls import extract_urls_with_indices

URL_LENGTH = 23  # Mastodon counts every http(s) URL as 23 characters
# A mention counts as its user name alone: "@ilo@mastodon.social" as "@ilo".
MENTION_DOMAIN = re.compile(
    r"(?<![=/\w])(@[A-Za-z0-9_]+(?:[.-]+[A-Za-z0-9_]+)*)@[\w.-]+\w", re.IGNORECASE
)


def mastodon_length(text: str) -> int:
    """A status's length as Mastodon counts it: every http(s) URL 23, a mention without its
    domain, an emoji sequence as one character (other combining sequences count per code
    point, which errs only on the short side)."""
    for url in reversed(extract_urls_with_indices(text, extract_urls_without_protocol=False)):
        start, end = url["indices"]
        text = text[:start] + "x" * URL_LENGTH + text[end:]
    text = MENTION_DOMAIN.sub(r"\1", text)
    emoji = (item["indices"] for item in extract_emojis_with_indices(text))
    folded: int = sum(end - start - 1 for start, end in emoji)  # twitter_text is untyped
    return len(text) - folded
