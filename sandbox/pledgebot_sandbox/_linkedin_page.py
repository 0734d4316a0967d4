"""The organisation page behind the LinkedIn sandbox: its posts, its images, its access tokens,
and what each REST call does once a request has passed the sandbox's header, token and fault
checks (``linkedin.py``). The rules and error bodies are ``_linkedin_rules``'.

Owns ``POST /rest/posts`` (201, the URN in ``x-restli-id``), ``GET`` and ``DELETE
/rest/posts/{urn}`` (a delete is idempotent: 204 again for a post already deleted),
``POST /rest/images?action=initializeUpload``, the upload ``PUT`` to the URL it hands out, and
``GET /rest/images/{urn}`` (``WAITING_UPLOAD`` → ``PROCESSING`` → ``AVAILABLE``).
"""

from __future__ import annotations

import secrets
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pledgebot_sandbox._control import json_object
from pledgebot_sandbox._images import image_type
from pledgebot_sandbox._linkedin_rules import (
    Rendered,
    Tokens,
    bad_request,
    check_post,
    day_limit,
    duplicate,
    forbidden,
    not_found,
    render,
)

FIRST_POST_ID = 7_300_000_000_000_000_000  # LinkedIn's share ids are 19 digits
UPLOAD_LIFETIME_MS = 24 * 3600 * 1000


@dataclass
class Call:
    """One request: its method, the URN or upload token in its path, query and body."""

    method: str
    key: str
    query: Mapping[str, str]
    body: bytes

    def json_object(self) -> dict[str, Any]:
        return json_object(
            self.body or b"null",  # no body at all is "not an object"
            bad_request,
            not_json="Unable to parse the request body as JSON",
            not_object="The request body must be a JSON object",
        )


@dataclass
class Answer:
    status: int = 200
    body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[[Call], Awaitable[Answer]]


class LinkedInPage:
    """One organisation page: its posts by URN (insertion order is posting order), its images
    by URN, the access tokens that may post on it, and the REST handlers."""

    def __init__(
        self,
        *,
        organization_id: str,
        access_token: str,
        upload_base: Callable[[], str],
        clock: Callable[[], float],
        posts_per_day: int | None,
        processing_polls: int,
        ghost_duplicates: bool,
    ) -> None:
        self.author = f"urn:li:organization:{organization_id}"
        self.tokens = Tokens({access_token: "valid"})
        self._upload_base, self._clock = upload_base, clock
        self.posts_per_day, self.processing_polls = posts_per_day, processing_polls
        self.ghost_duplicates = ghost_duplicates  # deleted posts still count as duplicates
        self.posts: dict[str, dict[str, Any]] = {}
        self.rendered: dict[str, Rendered] = {}
        self.deleted: set[str] = set()
        self.images: dict[str, dict[str, Any]] = {}
        self._uploads: dict[str, str] = {}  # upload token → image URN
        self._per_day: Counter[str] = Counter()  # posts made per UTC day
        self.handlers: dict[str, Handler] = {
            "posts.create": self.create_post,
            "posts.get": self.get_post,
            "posts.delete": self.delete_post,
            "images.initializeUpload": self.initialize_upload,
            "images.upload": self.upload_image,
            "images.get": self.get_image,
        }

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    # --- posts --------------------------------------------------------------------------------
    async def create_post(self, call: Call) -> Answer:
        day = datetime.fromtimestamp(self._clock(), UTC).strftime("%Y-%m-%d")
        if self.posts_per_day is not None and self._per_day[day] >= self.posts_per_day:
            raise day_limit()  # the throttle answers before the body is even read
        body = call.json_object()
        check_post(body, self.author, self._image_status)
        commentary = body.get("commentary", "")
        for urn, post in self.posts.items() if commentary else ():
            counts = self.ghost_duplicates or urn not in self.deleted
            if counts and post["author"] == body["author"] and commentary == post.get("commentary"):
                raise duplicate(urn)
        urn = f"urn:li:share:{FIRST_POST_ID + len(self.posts) + 1}"
        now = self._now_ms()
        self.posts[urn] = {
            **body,
            "id": urn,
            "createdAt": now,
            "publishedAt": now,
            "lastModifiedAt": now,
            "lifecycleStateInfo": {"isEditedByAuthor": False},
        }
        self.rendered[urn] = render(commentary)
        self._per_day[day] += 1
        return Answer(201, None, {"x-restli-id": urn, "x-linkedin-id": urn})

    def _live(self, urn: str) -> dict[str, Any]:
        if urn not in self.posts or urn in self.deleted:
            raise not_found(urn)
        return self.posts[urn]

    async def get_post(self, call: Call) -> Answer:
        return Answer(200, self._live(call.key))

    async def delete_post(self, call: Call) -> Answer:
        if call.key not in self.posts:
            raise not_found(call.key)
        if self.posts[call.key]["author"] != self.author:
            raise forbidden(f"Not enough permissions to delete {call.key}")
        self.deleted.add(call.key)
        return Answer(204)

    # --- images -------------------------------------------------------------------------------
    async def initialize_upload(self, call: Call) -> Answer:
        if call.query.get("action") != "initializeUpload":
            raise bad_request(f"Unknown action {call.query.get('action')!r} on images")
        request = call.json_object().get("initializeUploadRequest")
        owner = request.get("owner") if isinstance(request, dict) else None
        if owner != self.author:
            raise forbidden(f"Not enough permissions to upload images for {owner}")
        urn = f"urn:li:image:D4E10AQ{secrets.token_urlsafe(12).replace('-', 'x')}"
        token = secrets.token_urlsafe(16)
        self._uploads[token] = urn
        self.images[urn] = {"id": urn, "owner": owner, "status": "WAITING_UPLOAD", "polls": 0}
        value = {
            "uploadUrlExpiresAt": self._now_ms() + UPLOAD_LIFETIME_MS,
            "uploadUrl": f"{self._upload_base()}/_upload/{token}",
            "image": urn,
        }
        return Answer(200, {"value": value})

    async def upload_image(self, call: Call) -> Answer:
        urn = self._uploads.get(call.key)
        if urn is None:
            raise not_found("upload URL")
        if not call.body:
            raise bad_request("The upload is empty")
        image = self.images[urn]
        mime = _sniff(call.body)
        image.update(size=len(call.body), mediaType=mime or "application/octet-stream")
        if mime is None:
            image["status"] = "PROCESSING_FAILED"
        elif self.processing_polls:
            image.update(status="PROCESSING", polls=self.processing_polls)
        else:
            image["status"] = "AVAILABLE"
        return Answer(201)

    async def get_image(self, call: Call) -> Answer:
        image = self.images.get(call.key)
        if image is None:
            raise not_found(call.key)
        if image["status"] == "PROCESSING":
            if image["polls"]:
                image["polls"] -= 1
            else:
                image["status"] = "AVAILABLE"
        return Answer(200, {k: v for k, v in image.items() if k != "polls"})

    def _image_status(self, urn: str) -> str | None:
        image = self.images.get(urn)
        if image is None or image["owner"] != self.author:
            return None
        return str(image["status"])


def _sniff(data: bytes) -> str | None:
    """LinkedIn takes JPEG, PNG and GIF images; anything else fails processing."""
    kind = image_type(data)
    return kind if kind in ("image/jpeg", "image/png", "image/gif") else None
