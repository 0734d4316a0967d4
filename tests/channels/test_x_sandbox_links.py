"""The X sandbox returns links as X does: wrapped in t.co, expanded in ``entities.urls``.

Driven by the real tweepy client, signed for ``https://api.twitter.com`` and re-pointed at the
sandbox after signing, as the adapter does. What X documents: ``docs/platforms/x.md``.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator

import pytest
import tweepy

from bot.channels.text_split import weighted_length
from bot.channels.x import X_API, _ToBaseUrl
from bot.sandbox.x import XSandboxThread

TCO = r"https://t\.co/[0-9A-Za-z]{10}"
REPORT = "https://www.ilo.org/resource/news/cocoa-2024?lang=en&src=x"
TEXT = f"Report: {REPORT} & <summary> at ilo.org/cocoa."


@pytest.fixture
def x() -> Iterator[XSandboxThread]:
    with XSandboxThread() as sandbox:
        yield sandbox


@pytest.fixture
def client(x: XSandboxThread) -> tweepy.Client:
    client = tweepy.Client(**x.credentials, wait_on_rate_limit=False)
    client.session.mount(X_API, _ToBaseUrl(x.base_url, 5))
    return client


def test_every_link_comes_back_wrapped_in_tco(x: XSandboxThread, client: tweepy.Client) -> None:
    created = client.create_tweet(text=TEXT).data
    # Both links, the one without a scheme too, are t.co; & < > come back as HTML entities.
    pattern = f"Report: ({TCO}) &amp; &lt;summary&gt; at ({TCO})\\."
    match = re.fullmatch(pattern, created["text"])
    assert match is not None, created["text"]
    assert len(match.group(1)) == 23 and match.group(1) != match.group(2)
    # A wrapped link weighs what the link did: 23.
    assert weighted_length(html.unescape(created["text"])) == weighted_length(TEXT)

    [stored] = x.posts()
    assert stored["text"] == html.unescape(created["text"]) and stored["sent_text"] == TEXT
    timeline = client.get_users_tweets(x.user_id, user_auth=True, tweet_fields=["entities"])
    [post] = timeline.data
    assert post.text == created["text"]
    first, second = post.entities["urls"]
    assert (first["url"], first["expanded_url"]) == (match.group(1), REPORT)
    assert first["display_url"].endswith("…")
    assert REPORT.removeprefix("https://").startswith(first["display_url"][:-1])
    assert (second["url"], second["expanded_url"], second["display_url"]) == (
        match.group(2),
        "http://ilo.org/cocoa",  # typed without a scheme
        "ilo.org/cocoa",
    )
    for url in (first, second):
        assert stored["text"][url["start"] : url["end"]] == url["url"]


def test_entities_only_when_asked_and_only_when_there_are_links(
    x: XSandboxThread, client: tweepy.Client
) -> None:
    client.create_tweet(text="No link here")
    client.create_tweet(text="One link: https://ilo.org")
    plain = client.get_users_tweets(x.user_id, user_auth=True)
    assert all("entities" not in post.data for post in plain.data)
    asked = client.get_users_tweets(x.user_id, user_auth=True, tweet_fields=["entities"])
    linked, unlinked = asked.data
    assert unlinked.text == "No link here" and "entities" not in unlinked.data
    assert [u["expanded_url"] for u in linked.entities["urls"]] == ["https://ilo.org"]


def test_duplicate_check_compares_the_text_as_sent(
    x: XSandboxThread, client: tweepy.Client
) -> None:
    client.create_tweet(text=TEXT)
    # The stored text's t.co links differ from post to post; X still sees the same post.
    with pytest.raises(tweepy.Forbidden, match="duplicate content"):
        client.create_tweet(text=TEXT)
    other = client.create_tweet(text=TEXT.replace("cocoa-2024", "cocoa-2025")).data
    assert other["text"] != x.posts()[0]["text"]
    assert len(x.posts()) == 2
