"""The X sandbox, driven by the real tweepy client over real HTTP.

Requests are signed for ``https://api.twitter.com`` and only then re-pointed at the sandbox by
a transport adapter, the way pledgebot sends them; tweepy is synchronous, so the sandbox runs
in ``XSandboxThread``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import tweepy
from requests.adapters import HTTPAdapter
from requests_oauthlib import OAuth1

from pledgebot_sandbox._x_rules import FixedWindow, weighted_length
from pledgebot_sandbox.x import XSandboxThread

API = "https://api.twitter.com"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64  # the sandbox only sniffs the signature bytes
UNAUTHORIZED = {
    "title": "Unauthorized",
    "type": "about:blank",
    "status": 401,
    "detail": "Unauthorized",
}


class RewriteHost(HTTPAdapter):
    """Sends requests meant for api.twitter.com to the sandbox, after they were signed."""

    def __init__(self, base_url: str) -> None:
        super().__init__()
        self.base_url = base_url

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> Any:
        assert request.url is not None
        request.url = request.url.replace(API, self.base_url, 1)
        return super().send(request, *args, **kwargs)


def make_client(x: XSandboxThread, **overrides: Any) -> tweepy.Client:
    client = tweepy.Client(**{**x.credentials, **overrides}, wait_on_rate_limit=False)
    client.session.mount(API, RewriteHost(x.base_url))
    return client


def oauth(x: XSandboxThread) -> OAuth1:
    creds = x.credentials
    return OAuth1(
        creds["consumer_key"],
        creds["consumer_secret"],
        creds["access_token"],
        creds["access_token_secret"],
    )


@pytest.fixture
def x() -> Iterator[XSandboxThread]:
    with XSandboxThread() as sandbox:
        yield sandbox


@pytest.fixture
def client(x: XSandboxThread) -> tweepy.Client:
    return make_client(x)


def upload(client: tweepy.Client, x: XSandboxThread, data: bytes = PNG, **fields: str) -> Any:
    return client.session.post(
        f"{API}/2/media/upload",
        files={"media": ("pledge.png", data, "application/octet-stream")},
        data={"media_category": "tweet_image", **fields},
        auth=oauth(x),
    )


# --- posting ----------------------------------------------------------------------------------
def test_create_tweet_is_recorded(x: XSandboxThread, client: tweepy.Client) -> None:
    me = client.get_me(user_auth=True).data
    assert (me.id, me.username) == (int(x.user_id), "pledgebot_sandbox")
    created = client.create_tweet(text="I pledged to cycle to work!").data
    assert created["text"] == "I pledged to cycle to work!"
    assert created["edit_history_tweet_ids"] == [created["id"]]
    (post,) = x.posts()
    assert post["id"] == created["id"] and post["author_id"] == x.user_id
    assert post["in_reply_to_tweet_id"] is None and post["media_ids"] == []
    assert post["created_at"].endswith("Z") and post["deleted"] is False
    second = client.create_tweet(text="and by train").data
    assert int(second["id"]) > int(created["id"])  # snowflake-like: later posts, larger ids


def test_reply_chain(x: XSandboxThread, client: tweepy.Client) -> None:
    first = client.create_tweet(text="1/3 A thread about my pledge").data["id"]
    second = client.create_tweet(text="2/3 Week one", in_reply_to_tweet_id=first).data["id"]
    client.create_tweet(text="3/3 Week two", in_reply_to_tweet_id=second)
    assert [p["in_reply_to_tweet_id"] for p in x.posts()] == [None, first, second]
    with pytest.raises(tweepy.BadRequest, match="deleted or not visible"):
        client.create_tweet(text="to nowhere", in_reply_to_tweet_id="1234567890")
    client.delete_tweet(second)
    with pytest.raises(tweepy.BadRequest):
        client.create_tweet(text="to a deleted post", in_reply_to_tweet_id=second)
    timeline = client.get_users_tweets(
        x.user_id, user_auth=True, tweet_fields=["conversation_id", "referenced_tweets"]
    )
    last = timeline.data[0]
    assert last.conversation_id == int(first)
    assert last.referenced_tweets[0].type == "replied_to"


def test_text_length_is_weighted(x: XSandboxThread, client: tweepy.Client) -> None:
    with pytest.raises(tweepy.Forbidden, match="too long") as caught:
        client.create_tweet(text="中" * 141)  # CJK weighs 2: 282
    assert caught.value.response.json()["title"] == "Forbidden"
    client.create_tweet(text="中" * 140)
    # Every URL weighs 23 however long it is: 256 + 1 + 23 = 280, from 357 characters.
    text = "a" * 256 + " https://example.org/" + "p" * 80
    assert (weighted_length(text), len(text)) == (280, 357)
    client.create_tweet(text=text)
    with pytest.raises(tweepy.Forbidden):
        client.create_tweet(text="b" + text)
    assert len(x.posts()) == 2
    with pytest.raises(tweepy.BadRequest):
        client.create_tweet(text="")


def test_duplicate_text_is_forbidden(x: XSandboxThread, client: tweepy.Client) -> None:
    first = client.create_tweet(text="Same words twice").data["id"]
    with pytest.raises(tweepy.Forbidden, match="duplicate content"):
        client.create_tweet(text="Same words twice")
    # NFC normalisation makes a decomposed "é" the same text as a composed one.
    client.create_tweet(text="caf\u00e9")
    with pytest.raises(tweepy.Forbidden, match="duplicate content"):
        client.create_tweet(text="cafe\u0301")
    client.delete_tweet(first)
    client.create_tweet(text="Same words twice")  # only live posts count


# --- authentication ---------------------------------------------------------------------------
def test_wrong_consumer_secret_is_unauthorized(x: XSandboxThread) -> None:
    client = make_client(x, consumer_secret="not-the-secret")
    with pytest.raises(tweepy.Unauthorized) as caught:
        client.create_tweet(text="hello")
    assert caught.value.response.json() == UNAUTHORIZED
    with pytest.raises(tweepy.Unauthorized):
        make_client(x, access_token="1-unknown").get_me(user_auth=True)
    assert x.posts() == []


class SignedElsewhere(HTTPAdapter):
    """Sends a request somewhere other than where it was signed for."""

    def __init__(self, rewrite: Any) -> None:
        super().__init__()
        self.rewrite = rewrite

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> Any:
        request.url = self.rewrite(request.url)
        return super().send(request, *args, **kwargs)


@pytest.mark.parametrize(
    ("signed", "sent", "status"),
    [
        ("{api}/2/users/me", "{api}/2/users/me", 200),  # the control: consistent
        ("{base}/2/users/me", "{base}/2/users/me", 401),  # signed for the sandbox's own URL
        ("{api}/2/users/me?user.fields=id", "{api}/2/users/me", 401),  # query dropped
        ("{api}/2/users/me", "{api}/2/users/{user}/tweets", 401),  # path changed
        ("http://api.twitter.com/2/users/me", "{api}/2/users/me", 401),  # another scheme
    ],
)
def test_signature_covers_the_real_url(
    x: XSandboxThread, signed: str, sent: str, status: int
) -> None:
    def fill(url: str) -> str:
        return url.format(api=API, base=x.base_url, user=x.user_id)

    session = requests.Session()
    target = fill(sent).replace(API, x.base_url, 1)
    adapter = SignedElsewhere(lambda url: target)
    session.mount(API, adapter)
    session.mount("http://", adapter)
    response = session.get(fill(signed), auth=oauth(x))
    assert response.status_code == status
    if status == 200:
        assert response.json()["data"]["id"] == x.user_id
    else:
        assert response.json() == UNAUTHORIZED


def test_form_encoded_bodies_are_signed(x: XSandboxThread, client: tweepy.Client) -> None:
    url = f"{API}/2/tweets"
    # Signed with its form body: authentication passes, then X wants JSON.
    response = client.session.post(url, data={"text": "hi"}, auth=oauth(x))
    assert response.status_code == 400
    request = requests.Request("POST", url, data={"text": "hi"}, auth=oauth(x)).prepare()
    request.body = "text=tampered"
    request.headers["Content-Length"] = str(len(request.body))
    assert client.session.send(request).status_code == 401


def test_a_replayed_request_is_refused(x: XSandboxThread, client: tweepy.Client) -> None:
    request = requests.Request("GET", f"{API}/2/users/me", auth=oauth(x)).prepare()
    assert client.session.send(request).status_code == 200
    assert client.session.send(request).status_code == 401  # same nonce and timestamp


def test_revoked_tokens_are_unauthorized(x: XSandboxThread, client: tweepy.Client) -> None:
    client.create_tweet(text="before")
    x.revoke_tokens()
    with pytest.raises(tweepy.Unauthorized):
        client.create_tweet(text="after")
    with pytest.raises(tweepy.Unauthorized):
        client.get_me(user_auth=True)
    assert [p["text"] for p in x.posts()] == ["before"]


# --- reading and deleting ---------------------------------------------------------------------
def test_users_tweets_newest_first_without_deleted(
    x: XSandboxThread, client: tweepy.Client
) -> None:
    ids = [client.create_tweet(text=f"post {n}").data["id"] for n in range(7)]
    client.delete_tweet(ids[5])
    page = client.get_users_tweets(x.user_id, max_results=5, user_auth=True)
    assert [str(t.id) for t in page.data] == [ids[6], ids[4], ids[3], ids[2], ids[1]]
    assert page.data[0].text == "post 6"
    assert page.meta["result_count"] == 5
    assert (page.meta["newest_id"], page.meta["oldest_id"]) == (ids[6], ids[1])
    rest = client.get_users_tweets(
        x.user_id, max_results=5, pagination_token=page.meta["next_token"], user_auth=True
    )
    assert [str(t.id) for t in rest.data] == [ids[0]] and "next_token" not in rest.meta
    since = client.get_users_tweets(x.user_id, since_id=ids[3], user_auth=True)
    assert [str(t.id) for t in since.data] == [ids[6], ids[4]]
    with pytest.raises(tweepy.BadRequest, match="between 5 and 100"):
        client.get_users_tweets(x.user_id, max_results=4, user_auth=True)


def test_empty_timeline_has_no_data(x: XSandboxThread, client: tweepy.Client) -> None:
    response = client.session.get(
        f"{API}/2/users/{x.user_id}/tweets", params={"max_results": 5}, auth=oauth(x)
    )
    assert response.status_code == 200 and response.json() == {"meta": {"result_count": 0}}


def test_delete_tweet(x: XSandboxThread, client: tweepy.Client) -> None:
    post_id = client.create_tweet(text="oops").data["id"]
    assert client.delete_tweet(post_id).data == {"deleted": True}
    assert x.posts() == []
    assert x.posts(include_deleted=True)[0]["deleted"] is True
    with pytest.raises(tweepy.NotFound, match="Could not find tweet"):
        client.delete_tweet(post_id)


# --- rate limit -------------------------------------------------------------------------------
def test_rate_limit_on_posting() -> None:
    with XSandboxThread(posts_per_window=2) as x:
        client = make_client(x)
        raw = make_client(x)
        raw.return_type = requests.Response
        first = raw.create_tweet(text="one")
        assert first.status_code == 201
        assert first.headers["x-rate-limit-limit"] == "2"
        assert first.headers["x-rate-limit-remaining"] == "1"
        reset = int(first.headers["x-rate-limit-reset"])
        assert time.time() < reset <= time.time() + 901
        with pytest.raises(tweepy.Forbidden) as refused:
            client.create_tweet(text="one")  # refused requests count too
        assert refused.value.response.headers["x-rate-limit-remaining"] == "0"
        with pytest.raises(tweepy.TooManyRequests) as caught:
            client.create_tweet(text="three")
        response = caught.value.response
        assert response.json() == {
            "title": "Too Many Requests",
            "detail": "Too Many Requests",
            "type": "about:blank",
            "status": 429,
        }
        assert int(response.headers["x-rate-limit-reset"]) == reset
        assert response.headers["x-rate-limit-remaining"] == "0"
        assert [p["text"] for p in x.posts()] == ["one"] and x.rate_limited == 1
        client.get_me(user_auth=True)  # other routes are not limited by it


def test_fixed_window_comes_back_whole_at_reset() -> None:
    now = [1000.0]
    window = FixedWindow(2, 900.0, lambda: now[0])
    assert window.take() and window.take() and not window.take()
    assert window.headers()["x-rate-limit-reset"] == "1900"
    now[0] = 1899.9
    assert not window.take()
    now[0] = 1900.0
    assert window.take()
    assert window.headers() == {
        "x-rate-limit-limit": "2",
        "x-rate-limit-remaining": "1",
        "x-rate-limit-reset": "2800",
    }


# --- faults -----------------------------------------------------------------------------------
def test_injected_server_error(x: XSandboxThread, client: tweepy.Client) -> None:
    x.inject_fault("POST /2/tweets", status=503, times=2)
    for _ in range(2):
        with pytest.raises(tweepy.TwitterServerError) as caught:
            client.create_tweet(text="try")
    assert caught.value.response.json()["title"] == "Service Unavailable"
    assert x.posts() == []
    client.create_tweet(text="try")
    assert len(x.posts()) == 1
    with pytest.raises(ValueError, match="unknown route"):
        x.inject_fault("POST /1.1/statuses/update.json", status=500)


def test_accepted_but_the_client_never_heard(x: XSandboxThread, client: tweepy.Client) -> None:
    x.inject_fault("POST /2/tweets", status=500, deliver=True)
    with pytest.raises(tweepy.TwitterServerError):
        client.create_tweet(text="Did it go out?")
    assert [p["text"] for p in x.posts()] == ["Did it go out?"]
    with pytest.raises(tweepy.Forbidden, match="duplicate content"):
        client.create_tweet(text="Did it go out?")


def test_a_timeout_before_delivery_posts_nothing(x: XSandboxThread) -> None:
    x.inject_fault("POST /2/tweets", delay=0.5)
    session = requests.Session()
    session.mount(API, RewriteHost(x.base_url))
    with pytest.raises(requests.Timeout):
        session.post(f"{API}/2/tweets", json={"text": "late"}, auth=oauth(x), timeout=0.1)
    time.sleep(0.6)
    assert x.posts() == []


def test_a_slow_answer_succeeds(x: XSandboxThread, client: tweepy.Client) -> None:
    x.inject_fault("GET /2/users/me", delay=0.1, headers={"x-sandbox": "slow"})
    started = time.monotonic()
    client.get_me(user_auth=True)
    assert time.monotonic() - started >= 0.1


def test_injected_fault_body_and_headers(x: XSandboxThread, client: tweepy.Client) -> None:
    body = {"title": "Too Many Requests", "detail": "daily cap", "type": "about:blank"}
    x.inject_fault("POST /2/tweets", status=429, body=body, headers={"x-user-limit-24hour": "0"})
    with pytest.raises(tweepy.TooManyRequests, match="daily cap") as caught:
        client.create_tweet(text="capped")
    assert caught.value.response.headers["x-user-limit-24hour"] == "0"
    assert "x-rate-limit-reset" in caught.value.response.headers
    assert x.rate_limited == 1 and x.posts() == []


# --- media ------------------------------------------------------------------------------------
def test_media_upload_alt_text_and_post(x: XSandboxThread, client: tweepy.Client) -> None:
    uploaded = upload(client, x)
    assert uploaded.status_code == 200, uploaded.text
    data = uploaded.json()["data"]
    media_id = data["id"]
    assert data == {
        "id": media_id,
        "media_key": f"3_{media_id}",
        "size": len(PNG),
        "expires_after_secs": 86400,
    }
    described = client.session.post(
        f"{API}/2/media/metadata",
        json={"id": media_id, "metadata": {"alt_text": {"text": "A bike by a tree"}}},
        auth=oauth(x),
    )
    assert described.json() == {
        "data": {"id": media_id, "associated_metadata": {"alt_text": {"text": "A bike by a tree"}}}
    }
    client.create_tweet(text="My pledge", media_ids=[media_id])
    assert x.media() == {
        media_id: {
            "size": len(PNG),
            "media_type": "image/png",
            "media_category": "tweet_image",
            "alt_text": "A bike by a tree",
        }
    }
    assert x.posts()[0]["media_ids"] == [media_id]
    client.create_tweet(media_ids=[media_id])  # media without text is a post too


def test_media_limits(x: XSandboxThread, client: tweepy.Client) -> None:
    ids = [upload(client, x).json()["data"]["id"] for _ in range(5)]
    with pytest.raises(tweepy.BadRequest, match="between 1 and 4"):
        client.create_tweet(text="five pictures", media_ids=ids)
    with pytest.raises(tweepy.BadRequest, match="media IDs are invalid"):
        client.create_tweet(text="a made-up picture", media_ids=["123"])
    client.create_tweet(text="four pictures", media_ids=ids[:4])
    assert upload(client, x, b"\xff\xd8\xff" + b"\x00" * (5 * 1024 * 1024)).status_code == 400
    assert upload(client, x, b"not an image").status_code == 400
    missing = client.session.post(
        f"{API}/2/media/upload", files={"other": ("a.png", PNG)}, auth=oauth(x)
    )
    assert missing.status_code == 400
    too_long = client.session.post(
        f"{API}/2/media/metadata",
        json={"id": ids[0], "metadata": {"alt_text": {"text": "x" * 1001}}},
        auth=oauth(x),
    )
    assert too_long.status_code == 400 and too_long.json()["title"] == "Invalid Request"
    unknown = client.session.post(
        f"{API}/2/media/metadata",
        json={"id": "42", "metadata": {"alt_text": {"text": "hi"}}},
        auth=oauth(x),
    )
    assert unknown.status_code == 400
    assert [p["media_ids"] for p in x.posts()] == [ids[:4]]


# --- control surface and odds and ends --------------------------------------------------------
def test_control_surface_for_subprocess_tests(x: XSandboxThread, client: tweepy.Client) -> None:
    control = f"{x.base_url}/_sandbox"
    assert requests.post(f"{control}/fault", json={"route": "POST /2/tweets", "status": 502}).ok
    with pytest.raises(tweepy.TwitterServerError):
        client.create_tweet(text="hello")
    client.create_tweet(text="hello")
    assert [p["text"] for p in requests.get(f"{control}/posts").json()] == ["hello"]
    assert requests.get(f"{control}/media").json() == {}
    assert requests.post(f"{control}/revoke").ok
    with pytest.raises(tweepy.Unauthorized):
        client.get_me(user_auth=True)
    assert (
        requests.post(f"{control}/fault", json={"route": "nope", "status": 500}).status_code == 400
    )


def test_unknown_paths_and_call_counts(x: XSandboxThread, client: tweepy.Client) -> None:
    response = client.session.get(f"{API}/2/tweets/search/recent", auth=oauth(x))
    assert response.status_code == 404
    client.get_me(user_auth=True)
    assert x.method_calls["GET /2/users/me"] == 1
    assert x.call("username") == "pledgebot_sandbox"
