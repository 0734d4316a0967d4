"""The X sandbox returns links as X does: wrapped in t.co, expanded in ``entities.urls``, and a
t.co link to a post's media appended to its text.

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
from bot.channels.x.adapter import _ToBaseUrl
from bot.channels.x.settings import X_API
from pledgebot_sandbox.x import XSandboxThread

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


def upload(client: tweepy.Client, x: XSandboxThread) -> str:
    """One image uploaded as the adapter does (tweepy's signed session); its media id."""
    auth = tweepy.OAuth1UserHandler(*x.credentials.values()).apply_auth()
    answer = client.session.post(
        f"{X_API}/2/media/upload",
        files={"media": ("a.jpg", b"\xff\xd8\xff\xe0" + b"\x00" * 64, "image/jpeg")},
        data={"media_category": "tweet_image"},
        auth=auth,
    )
    assert answer.status_code == 200, answer.text
    return str(answer.json()["data"]["id"])


def test_a_post_with_media_ends_with_a_tco_link_to_it(
    x: XSandboxThread, client: tweepy.Client
) -> None:
    photos = [upload(client, x), upload(client, x)]
    # 280 weighted characters: the media link X appends does not count against them.
    text = TEXT + " " + "a" * (280 - weighted_length(TEXT) - 1)
    assert weighted_length(text) == 280
    created = client.create_tweet(text=text, media_ids=photos).data
    post_id = created["id"]
    match = re.fullmatch(
        f"Report: {TCO} &amp; &lt;summary&gt; at {TCO}\\. a+ ({TCO})", created["text"]
    )
    assert match is not None, created["text"]
    media_link = match.group(1)

    timeline = client.get_users_tweets(
        x.user_id, user_auth=True, tweet_fields=["entities", "attachments"]
    )
    [post] = timeline.data
    assert post.text == created["text"]
    assert post.data["attachments"] == {"media_keys": [f"3_{photo}" for photo in photos]}
    *links, first, second = post.entities["urls"]
    assert [link["expanded_url"] for link in links] == [REPORT, "http://ilo.org/cocoa"]
    assert all("media_key" not in link for link in links)
    # One entry per photo, the same link for both, each with its media_key (as X answers).
    page = f"https://x.com/{x.username}/status/{post_id}/photo/1"
    for entry, photo in zip((first, second), photos, strict=True):
        assert entry == {
            "start": len(html.unescape(created["text"])) - 23,
            "end": len(html.unescape(created["text"])),
            "url": media_link,
            "expanded_url": page,
            "display_url": "pic.x.com/" + media_link.removeprefix("https://t.co/"),
            "media_key": f"3_{photo}",
        }
    [stored] = x.posts()
    assert stored["sent_text"] == text and stored["text"] == html.unescape(created["text"])
    assert stored["text"][first["start"] : first["end"]] == media_link


def test_a_post_of_media_alone_is_the_media_link(x: XSandboxThread, client: tweepy.Client) -> None:
    created = client.create_tweet(media_ids=[upload(client, x)]).data
    assert re.fullmatch(TCO, created["text"]), created["text"]
    [stored] = x.posts()
    assert stored["sent_text"] == "" and stored["urls"][0]["start"] == 0
