"""The X sandbox's timeline, ``GET /2/users/{id}/tweets`` once the user is known: its
parameters (page size, ``since_id``/``until_id``, ``exclude``, ``tweet.fields``, pagination
tokens) and each post's fields as it returns them. ``_x_api`` owns the account and its posts.
"""

from __future__ import annotations

from typing import Any

from multidict import MultiDictProxy

from pledgebot_sandbox._x_rules import escape_text, invalid_request, media_key

# Tweet fields the sandbox models; X's other documented fields are accepted and left out.
MODELLED_TWEET_FIELDS = frozenset(
    {
        "attachments",
        "author_id",
        "conversation_id",
        "created_at",
        "edit_history_tweet_ids",
        "entities",
        "id",
        "in_reply_to_user_id",
        "public_metrics",
        "referenced_tweets",
        "text",
    }
)
OTHER_TWEET_FIELDS = frozenset(
    {
        "article",
        "card_uri",
        "community_id",
        "context_annotations",
        "display_text_range",
        "edit_controls",
        "geo",
        "lang",
        "media_metadata",
        "non_public_metrics",
        "note_tweet",
        "organic_metrics",
        "possibly_sensitive",
        "promoted_metrics",
        "reply_settings",
        "scopes",
        "source",
        "withheld",
    }
)
# Timeline parameters accepted and ignored: they only shape includes the sandbox never sends.
IGNORED_TIMELINE_PARAMS = frozenset(
    {"expansions", "media.fields", "place.fields", "poll.fields", "user.fields"}
)


def timeline_page(posts: dict[str, dict[str, Any]], query: MultiDictProxy[str]) -> dict[str, Any]:
    """The answer's body: a page of the live posts, newest first, and its ``meta``."""
    unknown = sorted(
        set(query)
        - IGNORED_TIMELINE_PARAMS
        - {"max_results", "pagination_token", "since_id", "until_id", "exclude", "tweet.fields"}
    )
    if unknown:
        raise invalid_request(f"The X sandbox does not support the parameters {unknown}.")
    max_results = _int_param(query, "max_results", 10, 5, 100)
    fields = _list_param(query, "tweet.fields", MODELLED_TWEET_FIELDS | OTHER_TWEET_FIELDS)
    exclude = _list_param(query, "exclude", frozenset({"replies", "retweets"}))
    since_id = _id_param(query, "since_id")
    until_id = _id_param(query, "until_id")
    newest_first = [
        post
        for post in reversed(posts.values())
        if not post["deleted"]
        and (since_id is None or int(post["id"]) > since_id)
        and (until_id is None or int(post["id"]) < until_id)
        and not ("replies" in exclude and post["in_reply_to_tweet_id"])
    ]
    token = query.get("pagination_token")
    if token is not None:
        start = _decode_token(token)
        newest_first = [post for post in newest_first if int(post["id"]) <= start]
    page = newest_first[:max_results]
    meta: dict[str, Any] = {"result_count": len(page)}
    if not page:
        return {"meta": meta}
    meta.update(newest_id=page[0]["id"], oldest_id=page[-1]["id"])
    if len(newest_first) > max_results:
        meta["next_token"] = _encode_token(int(newest_first[max_results]["id"]))
    data = [post_json(posts, post, fields) for post in page]
    return {"data": data, "meta": meta}


def post_json(
    posts: dict[str, dict[str, Any]], post: dict[str, Any], fields: frozenset[str]
) -> dict[str, Any]:
    """One post as the timeline returns it: the default fields and those asked for."""
    data: dict[str, Any] = {
        "id": post["id"],
        "text": escape_text(post["text"]),
        "edit_history_tweet_ids": [post["id"]],
    }
    parent = post["in_reply_to_tweet_id"]
    if "entities" in fields and post["urls"]:  # X leaves out a field with nothing in it
        data["entities"] = {"urls": [dict(url) for url in post["urls"]]}
    if "author_id" in fields:
        data["author_id"] = post["author_id"]
    if "created_at" in fields:
        data["created_at"] = post["created_at"]
    if "conversation_id" in fields:
        root = post
        while root["in_reply_to_tweet_id"] in posts:
            root = posts[root["in_reply_to_tweet_id"]]
        data["conversation_id"] = root["id"]
    if "in_reply_to_user_id" in fields and parent:
        data["in_reply_to_user_id"] = posts[parent]["author_id"]
    if "referenced_tweets" in fields and parent:
        data["referenced_tweets"] = [{"type": "replied_to", "id": parent}]
    if "attachments" in fields and post["media_ids"]:
        data["attachments"] = {"media_keys": [media_key(mid) for mid in post["media_ids"]]}
    if "public_metrics" in fields:
        replies = sum(
            1
            for other in posts.values()
            if other["in_reply_to_tweet_id"] == post["id"] and not other["deleted"]
        )
        data["public_metrics"] = {
            "retweet_count": 0,
            "reply_count": replies,
            "like_count": 0,
            "quote_count": 0,
            "bookmark_count": 0,
            "impression_count": 0,
        }
    return data


def _int_param(query: MultiDictProxy[str], name: str, default: int, low: int, high: int) -> int:
    raw = query.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise invalid_request(
            f"The `{name}` query parameter value [{raw}] is not between {low} and {high}",
            {name: [raw]},
        )
    return int(raw)


def _id_param(query: MultiDictProxy[str], name: str) -> int | None:
    raw = query.get(name)
    if raw is None:
        return None
    if not raw.isdigit():
        raise invalid_request(
            f"The `{name}` query parameter value [{raw}] does not match ^[0-9]{{1,19}}$",
            {name: [raw]},
        )
    return int(raw)


def _list_param(query: MultiDictProxy[str], name: str, allowed: frozenset[str]) -> frozenset[str]:
    values = frozenset(v for v in query.get(name, "").split(",") if v)
    unknown = sorted(values - allowed)
    if unknown:
        raise invalid_request(
            f"The `{name}` query parameter value [{unknown[0]}] is not one of {sorted(allowed)}",
            {name: unknown},
        )
    return values


_TOKEN_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"


def _encode_token(post_id: int) -> str:
    """An opaque-looking next_token: the id the next page starts at, in base 36."""
    digits = ""
    while post_id:
        post_id, rest = divmod(post_id, 36)
        digits = _TOKEN_DIGITS[rest] + digits
    return digits or "0"


def _decode_token(token: str) -> int:
    try:
        return int(token, 36)
    except ValueError:
        raise invalid_request(
            f"The `pagination_token` query parameter value [{token}] is not valid",
            {"pagination_token": [token]},
        ) from None
