"""The objects behind the Graph sandbox: one Page (its posts and photos) and one Instagram
business account (its media containers and media), and what each endpoint does with a request
that passed the sandbox's token check, fault injection and rate limits.

Endpoints: ``GET /{page}``, ``GET|POST /{page}/feed``, ``POST /{page}/photos``, ``GET
/{ig-user}``, ``GET|POST /{ig-user}/media``, ``POST /{ig-user}/media_publish``, ``GET
/{object}`` (a container's ``status_code``, a post, a media) and ``DELETE /{object}``. HTTP
plumbing, faults and fetching an ``image_url`` are ``facebook.py``'s; rules and error bodies
``_facebook_rules``'.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pledgebot_sandbox._facebook_rules import (
    GraphError,
    Ids,
    check_caption,
    check_instagram_image,
    check_message,
    check_page_photo,
    invalid_parameter,
    no_such_object,
    not_ready,
    posts_a_day_reached,
)

Fetch = Callable[[str], Awaitable[bytes]]  # downloads an image_url (or raises GraphError)


@dataclass
class Call:
    """One request, past the sandbox's checks: its parameters (query and form), uploads."""

    method: str
    object_id: str
    edge: str
    params: dict[str, str]
    files: dict[str, tuple[str, bytes]] = field(default_factory=dict)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S+0000")


def _fields(record: dict[str, Any], wanted: str | None, default: tuple[str, ...]) -> dict[str, Any]:
    names = [f for f in (wanted or "").split(",") if f] or list(default)
    return {"id": record["id"], **{n: record[n] for n in names if n in record and n != "id"}}


class GraphObjects:
    """The Page and the Instagram account; ``handle`` answers one ``Call`` with a dict."""

    def __init__(
        self,
        *,
        page_id: str,
        page_name: str,
        ig_user_id: str,
        ig_username: str,
        fetch: Fetch,
        posts_per_day: int,
        in_progress_polls: int,
    ) -> None:
        self.page_id, self.page_name = page_id, page_name
        self.ig_user_id, self.ig_username = ig_user_id, ig_username
        self.fetch = fetch
        self.posts_per_day, self.in_progress_polls = posts_per_day, in_progress_polls
        self.ids = Ids()
        self.posts: dict[str, dict[str, Any]] = {}  # by id, in posting order
        self.photos: dict[str, dict[str, Any]] = {}
        self.containers: dict[str, dict[str, Any]] = {}
        self.media: dict[str, dict[str, Any]] = {}
        self.next_container: list[str] = []  # outcomes for the next containers: error, stuck…

    def endpoint(self, method: str, object_id: str, edge: str) -> str | None:
        """The endpoint's name (faults and call counts use it), or None if there is none."""
        if object_id == self.page_id and edge in ("", "feed", "photos"):
            if method == "GET" and edge in ("", "feed"):
                return "feed_read" if edge else "page"
            if method == "POST" and edge:
                return edge
        if object_id == self.ig_user_id and edge in ("", "media", "media_publish"):
            if method == "GET" and edge in ("", "media"):
                return "media_read" if edge else "ig_user"
            if method == "POST" and edge:
                return edge
        if not edge and method == "GET":
            return "status" if object_id in self.containers else "object"
        if not edge and method == "DELETE":
            return "delete"
        return None

    async def handle(self, name: str, call: Call) -> dict[str, Any]:
        handler = getattr(self, f"_{name}")
        answer: dict[str, Any] = await handler(call)
        return answer

    # --- the Page -------------------------------------------------------------------------
    async def _page(self, call: Call) -> dict[str, Any]:
        record = {"id": self.page_id, "name": self.page_name}
        return _fields(record, call.params.get("fields"), ("name",))

    async def _feed_read(self, call: Call) -> dict[str, Any]:
        limit = int(call.params.get("limit") or 25)
        live = [p for p in reversed(self.posts.values()) if not p["deleted"]][:limit]
        wanted = call.params.get("fields")
        return {"data": [_fields(p, wanted, ("message", "created_time")) for p in live]}

    async def _feed(self, call: Call) -> dict[str, Any]:
        message = call.params.get("message", "")
        check_message(message)
        attached = []
        for key in sorted(k for k in call.params if k.startswith("attached_media[")):
            try:
                fbid = str(json.loads(call.params[key])["media_fbid"])
            except (ValueError, KeyError, TypeError):
                raise invalid_parameter(f'{key} must be {{"media_fbid": …}}') from None
            photo = self.photos.get(fbid)
            if photo is None or photo["published"] or photo["post_id"]:
                raise invalid_parameter(f"{key}: {fbid} is not an unpublished photo of the Page")
            attached.append(photo)
        if not message and not attached:
            raise invalid_parameter("Missing message or attachment")
        latest = next((p for p in reversed(self.posts.values()) if not p["deleted"]), None)
        if not attached and latest is not None and latest["message"] == message:
            raise GraphError(400, "(#506) Duplicate status message", 506)
        post = self._new_post(message, attached)
        return {"id": post["id"]}

    async def _photos(self, call: Call) -> dict[str, Any]:
        if "source" in call.files:
            filename, data = call.files["source"]
        elif call.params.get("url"):
            filename, data = (
                call.params["url"].rsplit("/", 1)[-1],
                await self.fetch(call.params["url"]),
            )
        else:
            raise GraphError(400, "(#324) Requires upload file", 324)
        mime = check_page_photo(data)
        caption = call.params.get("caption", "")
        check_message(caption)
        published = call.params.get("published", "true").lower() != "false"
        photo = {
            "id": self.ids.number("5"),
            "caption": caption,
            "alt_text": call.params.get("alt_text_custom"),
            "filename": filename,
            "size": len(data),
            "mime": mime,
            "data": data,
            "published": published,
            "post_id": None,
        }
        self.photos[photo["id"]] = photo
        if not published:
            return {"id": photo["id"]}
        post = self._new_post(caption, [photo])
        return {"id": photo["id"], "post_id": post["id"]}

    def _new_post(self, message: str, photos: list[dict[str, Any]]) -> dict[str, Any]:
        post = {
            "id": f"{self.page_id}_{self.ids.number('9')}",
            "message": message,
            "created_time": _now(),
            "photos": [p["id"] for p in photos],
            "deleted": False,
        }
        for photo in photos:
            photo["post_id"] = post["id"]
        self.posts[post["id"]] = post
        return post

    # --- the Instagram account ------------------------------------------------------------
    async def _ig_user(self, call: Call) -> dict[str, Any]:
        record = {"id": self.ig_user_id, "username": self.ig_username}
        return _fields(record, call.params.get("fields"), ("username",))

    async def _media_read(self, call: Call) -> dict[str, Any]:
        limit = int(call.params.get("limit") or 25)
        recent = list(reversed(self.media.values()))[:limit]
        wanted = call.params.get("fields")
        return {"data": [_fields(m, wanted, ("caption", "timestamp")) for m in recent]}

    async def _media(self, call: Call) -> dict[str, Any]:
        url = call.params.get("image_url")
        if not url:
            raise invalid_parameter("The parameter image_url is required")
        caption = call.params.get("caption", "")
        check_caption(caption)
        data = await self.fetch(url)  # Instagram downloads it now, and refuses what is unfit
        check_instagram_image(data)
        outcome = self.next_container.pop(0) if self.next_container else "fine"
        container = {
            "id": self.ids.number("178"),
            "image_url": url,
            "caption": caption,
            "alt_text": call.params.get("alt_text"),
            "size": len(data),
            "data": data,
            "status_code": "IN_PROGRESS",
            "polls": 0,
            "outcome": outcome,
        }
        self.containers[container["id"]] = container
        return {"id": container["id"]}

    async def _status(self, call: Call) -> dict[str, Any]:
        container = self.containers[call.object_id]
        if container["status_code"] == "IN_PROGRESS":
            container["polls"] += 1
            if container["outcome"] != "stuck" and container["polls"] > self.in_progress_polls:
                container["status_code"] = {"error": "ERROR", "expired": "EXPIRED"}.get(
                    container["outcome"], "FINISHED"
                )
        record = {**container, "status": _status_detail(container["status_code"])}
        return _fields(record, call.params.get("fields"), ("status_code",))

    async def _media_publish(self, call: Call) -> dict[str, Any]:
        container = self.containers.get(call.params.get("creation_id", ""))
        if container is None:
            raise invalid_parameter("The parameter creation_id is not a media container", 33)
        state = container["status_code"]
        if state != "FINISHED":
            raise not_ready(f"The media is not ready for publishing ({state}).")
        day_ago = datetime.now(UTC).timestamp() - 86400
        if sum(1 for m in self.media.values() if m["at"] > day_ago) >= self.posts_per_day:
            raise posts_a_day_reached()
        media = {
            "id": self.ids.number("179"),
            "caption": container["caption"],
            "alt_text": container["alt_text"],
            "media_type": "IMAGE",
            "media_url": container["image_url"],
            "timestamp": _now(),
            "at": datetime.now(UTC).timestamp(),
            "size": container["size"],
            "data": container["data"],
            "container": container["id"],
        }
        container["status_code"] = "PUBLISHED"
        self.media[media["id"]] = media
        return {"id": media["id"]}

    # --- any object -----------------------------------------------------------------------
    async def _object(self, call: Call) -> dict[str, Any]:
        found = self.posts.get(call.object_id) or self.media.get(call.object_id)
        if found is None or found.get("deleted"):
            raise no_such_object("GET", call.object_id)
        return _fields(found, call.params.get("fields"), ("message", "caption"))

    async def _delete(self, call: Call) -> dict[str, Any]:
        post = self.posts.get(call.object_id)
        if post is not None and not post["deleted"]:
            post["deleted"] = True
            return {"success": True}
        photo = self.photos.get(call.object_id)
        if photo is not None:  # a photo of a post: the post stays, without it
            del self.photos[call.object_id]
            return {"success": True}
        # Instagram's API deletes no published media; anything else does not exist.
        raise no_such_object("DELETE", call.object_id)


def _status_detail(state: str) -> str:
    if state == "ERROR":
        return "Error: Media upload has failed with error code 2207032"
    if state == "EXPIRED":
        return "Error: the container was not published within 24 hours"
    return state.capitalize().replace("_", " ")
