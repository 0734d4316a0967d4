"""The signed-in X account behind the X sandbox, and the endpoints that act on it.

Owns the account's posts and media and what each endpoint does with a request that already
passed authentication and fault injection: ``POST``/``DELETE /2/tweets``, ``GET /2/users/me``,
the user timeline (its paging and post fields are ``_x_timeline``'s), and the media upload
and metadata endpoints. HTTP plumbing, OAuth and faults are ``x.py``'s; X's rules and error
bodies come from ``_x_rules``.

As on X, a post's links are stored wrapped in t.co (``text``), with the URLs as sent in
``entities.urls`` (``tweet.fields=entities``); a post with media also gets a t.co link to the
media at the end of its text, with one ``entities.urls`` entry per item carrying its
``media_key``. Returned text has ``&``, ``<``, ``>`` escaped. The duplicate-content check
compares the text as sent, not the wrapped text, whose t.co links differ from post to post.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from multidict import MultiDictProxy

from pledgebot_sandbox._control import json_object
from pledgebot_sandbox._x_rules import (
    DUPLICATE,
    MAX_ALT_TEXT_LENGTH,
    MAX_MEDIA_PER_POST,
    MAX_WEIGHTED_LENGTH,
    MEDIA_EXPIRES_AFTER_SECONDS,
    TOO_LONG,
    FixedWindow,
    Snowflakes,
    XError,
    check_upload,
    escape_text,
    forbidden,
    invalid_request,
    media_key,
    media_link,
    normalize_text,
    not_found,
    problem,
    weighted_length,
    wrap_links,
)
from pledgebot_sandbox._x_timeline import timeline_page

REPLY_SETTINGS = ("following", "mentionedUsers", "subscribers", "verified")


@dataclass
class Call:
    """One authenticated request; the body was read before authentication."""

    match: dict[str, str]
    query: MultiDictProxy[str]
    body: bytes
    content_type: str
    form: MultiDictProxy[Any] | None

    def json_object(self) -> dict[str, Any]:
        if self.content_type != "application/json":
            raise invalid_request("The request body must be JSON (application/json).")
        return json_object(
            self.body,
            invalid_request,
            not_json="The request body is not valid JSON.",
            not_object="The request body must be a JSON object.",
        )


@dataclass
class Answer:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[[Call], Awaitable[Answer]]


class XAccount:
    """One user's posts and media, and the endpoint handlers (``Call`` in, ``Answer`` out).

    Every ``POST /2/tweets`` request takes from ``post_window``, refused ones included, as on
    X; a request refused for the rate limit takes nothing and changes nothing.
    """

    def __init__(
        self, user_id: str, username: str, post_window: FixedWindow, clock: Callable[[], float]
    ) -> None:
        self.user_id = user_id
        self.username = username
        self.post_window = post_window
        self.posts: dict[str, dict[str, Any]] = {}  # insertion order is posting order
        self.media: dict[str, dict[str, Any]] = {}
        self._clock = clock
        self._ids = Snowflakes(clock)
        self.handlers: dict[str, Handler] = {
            "POST /2/tweets": self.create_post,
            "DELETE /2/tweets/{id}": self.delete_post,
            "GET /2/users/me": self.me,
            "GET /2/users/{id}/tweets": self.user_posts,
            "POST /2/media/upload": self.upload_media,
            "POST /2/media/metadata": self.media_metadata,
        }

    # --- POST and DELETE /2/tweets ------------------------------------------------------------
    async def create_post(self, call: Call) -> Answer:
        if not self.post_window.take():
            error = problem(429)
            error.headers.update(self.post_window.headers())
            raise error
        headers = self.post_window.headers()
        try:
            post = self._new_post(call.json_object())
        except XError as exc:
            exc.headers.update(headers)
            raise
        data = {
            "id": post["id"],
            "text": escape_text(post["text"]),
            "edit_history_tweet_ids": [post["id"]],
        }
        return Answer(201, {"data": data}, headers)

    def _new_post(self, body: dict[str, Any]) -> dict[str, Any]:
        unsupported = sorted(set(body) - {"text", "reply", "media", "reply_settings"})
        if unsupported:
            raise invalid_request(f"The X sandbox does not support {unsupported} in a post.")
        text = body.get("text", "")
        if not isinstance(text, str):
            raise invalid_request("`text` must be a string.", {"text": [repr(text)]})
        text = normalize_text(text)
        if body.get("reply_settings") not in (None, *REPLY_SETTINGS):
            raise invalid_request(f"`reply_settings` must be one of {list(REPLY_SETTINGS)}.")
        media_ids = self._attached_media(body.get("media"))
        reply_to = self._reply_target(body.get("reply"))
        if not text and not media_ids:
            raise invalid_request("Post text is empty and no media is attached.", {"text": [""]})
        if weighted_length(text) > MAX_WEIGHTED_LENGTH:
            raise forbidden(TOO_LONG)
        if text and any(p["sent_text"] == text for p in self.posts.values() if not p["deleted"]):
            raise forbidden(DUPLICATE)
        post_id = self._ids.next()
        stored, urls = wrap_links(text, post_id)
        if media_ids:  # X appends a link to the media, which the 280 did not count
            keys = [media_key(media_id) for media_id in media_ids]
            stored, media_urls = media_link(stored, post_id, self.username, keys)
            urls += media_urls
        post = {
            "id": post_id,
            "text": stored,  # links wrapped in t.co (+ the media link), as X stores and returns it
            "sent_text": text,  # as the client sent it (NFC): what the duplicate check compares
            "urls": urls,  # entities.urls
            "author_id": self.user_id,
            "in_reply_to_tweet_id": reply_to,
            "media_ids": media_ids,
            "created_at": _iso(self._clock()),
            "deleted": False,
        }
        self.posts[post_id] = post
        return post

    def _reply_target(self, reply: Any) -> str | None:
        if reply is None:
            return None
        target = reply.get("in_reply_to_tweet_id") if isinstance(reply, dict) else None
        if not isinstance(target, str) or not target.isdigit():
            raise invalid_request(
                "`reply.in_reply_to_tweet_id` must be a Tweet id string.",
                {"reply.in_reply_to_tweet_id": [repr(target)]},
            )
        post = self.posts.get(target)
        if post is None or post["deleted"]:
            raise invalid_request(
                "You attempted to reply to a Tweet that is deleted or not visible to you.",
                {"reply.in_reply_to_tweet_id": [target]},
            )
        return target

    def _attached_media(self, media: Any) -> list[str]:
        if media is None:
            return []
        ids = media.get("media_ids") if isinstance(media, dict) else None
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise invalid_request("`media.media_ids` must be a list of media id strings.")
        if not 1 <= len(ids) <= MAX_MEDIA_PER_POST:
            raise invalid_request(
                f"`media.media_ids` must have between 1 and {MAX_MEDIA_PER_POST} items.",
                {"media.media_ids": ids},
            )
        for media_id in ids:
            if self._live_media(media_id) is None:
                raise invalid_request(
                    f"Your media IDs are invalid: [{media_id}].", {"media.media_ids": [media_id]}
                )
        if len(ids) > 1 and any(self.media[i]["media_category"] != "tweet_image" for i in ids):
            raise invalid_request("An animated GIF must be the only media of a post.")
        return list(ids)

    async def delete_post(self, call: Call) -> Answer:
        post_id = call.match["id"]
        post = self.posts.get(post_id)
        if post is None or post["deleted"]:
            # Deleting twice finds nothing the second time, like any id that names no post.
            error = not_found("tweet", "id", post_id)
            body = {
                "errors": [error],
                "title": error["title"],
                "detail": error["detail"],
                "type": error["type"],
            }
            raise XError(404, body)
        post["deleted"] = True
        return Answer(200, {"data": {"deleted": True}})

    # --- users --------------------------------------------------------------------------------
    async def me(self, call: Call) -> Answer:
        data = {"id": self.user_id, "name": "Pledgebot Sandbox", "username": self.username}
        return Answer(200, {"data": data})

    async def user_posts(self, call: Call) -> Answer:
        user_id = call.match["id"]
        if not user_id.isdigit():
            raise invalid_request(
                f"The `id` query parameter value [{user_id}] does not match ^[0-9]{{1,19}}$",
                {"id": [user_id]},
            )
        if user_id != self.user_id:
            # X answers 200 with only an errors array for an id that names no user.
            return Answer(200, {"errors": [not_found("user", "id", user_id)]})
        return Answer(200, timeline_page(self.posts, call.query))

    # --- media --------------------------------------------------------------------------------
    async def upload_media(self, call: Call) -> Answer:
        if call.content_type != "multipart/form-data" or call.form is None:
            raise invalid_request("The media upload must be multipart/form-data.")
        upload = call.form.get("media")
        if not isinstance(upload, web.FileField):
            raise invalid_request("The `media` file field is required.", {"media": []})
        upload.file.seek(0)  # the same parsed form serves a retried or delivered call
        data = upload.file.read()
        category = _form_str(call, "media_category") or "tweet_image"
        media_type = check_upload(data, category, _form_str(call, "media_type"))
        media_id = self._ids.next()
        self.media[media_id] = {
            "size": len(data),
            "media_type": media_type,
            "media_category": category,
            "alt_text": None,
            "expires_at": self._clock() + MEDIA_EXPIRES_AFTER_SECONDS,
        }
        result = {
            "id": media_id,
            "media_key": media_key(media_id),
            "size": len(data),
            "expires_after_secs": MEDIA_EXPIRES_AFTER_SECONDS,
        }
        return Answer(200, {"data": result})

    async def media_metadata(self, call: Call) -> Answer:
        body = call.json_object()
        media_id = body.get("id")
        metadata = body.get("metadata")
        alt = metadata.get("alt_text") if isinstance(metadata, dict) else None
        text = alt.get("text") if isinstance(alt, dict) else None
        if not isinstance(media_id, str) or self._live_media(media_id) is None:
            raise invalid_request(f"Your media ID is invalid: [{media_id}].", {"id": [media_id]})
        if not isinstance(text, str):
            raise invalid_request("`metadata.alt_text.text` must be a string.")
        if len(text) > MAX_ALT_TEXT_LENGTH:
            raise invalid_request(
                f"Alt text must be at most {MAX_ALT_TEXT_LENGTH} characters.",
                {"metadata.alt_text.text": [f"{len(text)} characters"]},
            )
        self.media[media_id]["alt_text"] = text
        data = {"id": media_id, "associated_metadata": {"alt_text": {"text": text}}}
        return Answer(200, {"data": data})

    def _live_media(self, media_id: str) -> dict[str, Any] | None:
        item = self.media.get(media_id)
        return item if item is not None and item["expires_at"] > self._clock() else None


# --- helpers ----------------------------------------------------------------------------------
def _iso(timestamp: float) -> str:
    """X's timestamp format: ``2025-01-31T12:00:00.000Z``."""
    moment = datetime.fromtimestamp(timestamp, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _form_str(call: Call, name: str) -> str | None:
    value = call.form.get(name) if call.form is not None else None
    if value is None:
        value = call.query.get(name)
    return value if isinstance(value, str) and value else None
