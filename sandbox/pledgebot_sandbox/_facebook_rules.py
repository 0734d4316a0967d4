"""The Graph API's rules as the Graph sandbox enforces them: error bodies, limits, usage windows.

Error bodies have the Graph API's shape, ``{"error": {"message", "type": "OAuthException",
"code", "error_subcode", "is_transient", "fbtrace_id"}}``, with the HTTP status Graph uses
(400 for most, 403 for permissions, 5xx for its own failures). Codes and subcodes are the
documented ones (190/463 an expired token, 4 the app's limit, 32 a Page's, 80002 an Instagram
account's, 9/2207042 Instagram's posts a day, 9004/2207052 an image Instagram could not fetch,
36001/2207005 an image format, 36003/2207009 an aspect ratio, 9007/2207027 a container not
ready, 100/33 no such object, 506 a duplicate post); the wording of caption refusals is the
sandbox's own. Nothing here knows about aiohttp or the sandbox's state.
"""

from __future__ import annotations

import io
import json
import re
import secrets
from dataclasses import dataclass, field
from typing import Any

from pledgebot_sandbox._images import image_type
from pledgebot_sandbox._window import Window

MAX_MESSAGE = 63_206  # a Page post's message
MAX_CAPTION = 2_200  # an Instagram caption
MAX_HASHTAGS = 30
MAX_MENTIONS = 20
MAX_IG_IMAGE_BYTES = 8 * 1024 * 1024
MAX_PAGE_IMAGE_BYTES = 10 * 1024 * 1024
MIN_RATIO, MAX_RATIO = 4 / 5, 1.91
HASHTAG = re.compile(r"(?<![\w&])#\w+")
MENTION = re.compile(r"(?<![\w.@])@[A-Za-z0-9_.]+")
VERSION = re.compile(r"^v([0-9]+)\.([0-9]+)$")


class GraphError(Exception):
    """A Graph API error answer: HTTP status, the ``error`` object and extra headers."""

    def __init__(
        self,
        status: int,
        message: str,
        code: int,
        subcode: int | None = None,
        *,
        transient: bool = False,
        user_message: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status} code {code}: {message}")
        self.status, self.message, self.code, self.subcode = status, message, code, subcode
        self.transient, self.user_message = transient, user_message
        self.headers = dict(headers or {})

    @property
    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"message": self.message, "type": "OAuthException"}
        error["code"] = self.code
        if self.subcode is not None:
            error["error_subcode"] = self.subcode
        error["is_transient"] = self.transient
        if self.user_message:
            error["error_user_title"] = self.message
            error["error_user_msg"] = self.user_message
        error["fbtrace_id"] = secrets.token_urlsafe(9)
        return {"error": error}


def invalid_parameter(message: str, subcode: int | None = None) -> GraphError:
    return GraphError(400, f"(#100) {message}", 100, subcode)


def no_such_object(method: str, object_id: str) -> GraphError:
    return invalid_parameter(
        f"Unsupported {method.lower()} request. Object with ID '{object_id}' does not exist, "
        "cannot be loaded due to missing permissions, or does not support this operation.",
        33,
    )


def token_error(message: str, subcode: int | None = None) -> GraphError:
    header = f'OAuth "Facebook Platform" "invalid_token" "{message}"'
    return GraphError(400, message, 190, subcode, headers={"www-authenticate": header})


def expired_token() -> GraphError:
    return token_error("Error validating access token: Session has expired.", 463)


def invalid_token() -> GraphError:
    return token_error("Invalid OAuth access token - Cannot parse access token")


def missing_token() -> GraphError:
    return GraphError(400, "An access token is required to request this resource.", 104)


# What a test can ask the next request to do: (status, code, subcode, message, transient).
FAULTS: dict[str, tuple[int, int, int | None, str, bool]] = {
    "server_error": (500, 1, None, "An unknown error has occurred.", True),
    "unavailable": (503, 2, None, "Service temporarily unavailable", True),
    "temporary": (400, 2, None, "An unexpected error has occurred. Please retry later.", True),
    "unknown_error": (400, 1, None, "An unknown error has occurred.", False),
    "rate_limited": (400, 4, None, "(#4) Application request limit reached", True),
    "user_rate_limited": (400, 17, None, "(#17) User request limit reached", True),
    "page_rate_limited": (400, 32, None, "(#32) Page request limit reached", True),
    "too_many_calls": (
        400,
        613,
        None,
        "(#613) Calls to this api have exceeded the rate limit.",
        True,
    ),
    "http_429": (429, 80001, None, "There have been too many calls to this Page account.", True),
    "publish_limit": (400, 9, 2207042, "Application request limit reached", False),
    "permission": (403, 200, None, "(#200) Requires pages_manage_posts permission", False),
    "no_capability": (403, 10, None, "(#10) Application does not have permission", False),
    "invalid_parameter": (400, 100, None, "(#100) Invalid parameter", False),
    "duplicate": (400, 506, None, "(#506) Duplicate status message", False),
}


def fault_error(how: str, page_id: str, regain_minutes: int) -> GraphError:
    """The error a fault answers; a Page's rate limit says when access comes back (a usage
    header naming the Page, as Graph's does)."""
    if how == "expired_token":
        return expired_token()
    if how == "invalid_token":
        return invalid_token()
    status, code, subcode, message, transient = FAULTS[how]
    headers: dict[str, str] = {}
    if code in (32, 80001):
        headers["x-business-use-case-usage"] = buc_header(page_id, "pages", 100.0, regain_minutes)
    if status == 429:
        headers["retry-after"] = str(regain_minutes * 60)
    return GraphError(status, message, code, subcode, transient=transient, headers=headers)


# --- usage windows --------------------------------------------------------------------------
class UsageWindow(Window):
    """Calls allowed per fixed window, as a share Graph reports in its usage headers."""

    def percent(self) -> float:
        used, _ = self.standing()
        return round(100.0 * used / self.limit, 1)

    def regain_minutes(self) -> int:
        """Minutes until the window rolls over (0 while calls are left)."""
        used, ends_at = self.standing()
        if used < self.limit:
            return 0
        return max(1, int((ends_at - self.clock()) // 60) + 1)


def buc_header(object_id: str, kind: str, percent: float, regain_minutes: int) -> str:
    entry = {
        "type": kind,
        "call_count": percent,
        "total_cputime": round(percent / 4, 1),
        "total_time": round(percent / 4, 1),
        "estimated_time_to_regain_access": regain_minutes,
    }
    return json.dumps({object_id: [entry]})


def app_usage_header(percent: float) -> str:
    return json.dumps({"call_count": percent, "total_cputime": 1, "total_time": 1})


# --- content --------------------------------------------------------------------------------
def check_message(message: str) -> None:
    if len(message) > MAX_MESSAGE:
        raise invalid_parameter(
            f"The message is too long: {len(message)} characters; at most {MAX_MESSAGE}"
        )


def check_caption(caption: str) -> None:
    if len(caption) > MAX_CAPTION:
        raise invalid_parameter(
            f"The caption is too long: {len(caption)} characters; at most {MAX_CAPTION}"
        )
    if len(HASHTAG.findall(caption)) > MAX_HASHTAGS:
        raise invalid_parameter(f"The caption has more than {MAX_HASHTAGS} hashtags")
    if len(MENTION.findall(caption)) > MAX_MENTIONS:
        raise invalid_parameter(f"The caption has more than {MAX_MENTIONS} @mentions")


def check_page_photo(data: bytes) -> str:
    mime = image_type(data)
    if mime is None or len(data) > MAX_PAGE_IMAGE_BYTES:
        raise GraphError(400, "(#324) Missing or invalid image file", 324)
    return mime


def check_instagram_image(data: bytes) -> None:
    """What Instagram refuses once it has the image: not a JPEG, too big, a bad aspect ratio."""
    if len(data) > MAX_IG_IMAGE_BYTES:
        raise GraphError(400, "The image is too large", 36000, 2207004)
    if image_type(data) != "image/jpeg":
        raise GraphError(
            400,
            "Invalid image format",
            36001,
            2207005,
            user_message="The image format is not supported. Supported formats are: JPEG",
        )
    try:
        from PIL import Image

        with Image.open(io.BytesIO(data)) as opened:
            width, height = opened.size
    except Exception:
        raise GraphError(400, "Invalid image", 36001, 2207005) from None
    ratio = width / height if height else 0.0
    if not MIN_RATIO - 0.005 <= ratio <= MAX_RATIO + 0.005:
        raise GraphError(
            400,
            "The aspect ratio is not supported.",
            36003,
            2207009,
            user_message=f"The submitted image with aspect ratio ('{width}/{height}') cannot "
            "be published. Please submit an image with a valid aspect ratio.",
        )


def fetch_failed(url: str, why: str, *, slow: bool = False) -> GraphError:
    return GraphError(
        400,
        "Only photo or video can be accepted as media type.",
        9004,
        2207003 if slow else 2207052,
        user_message=f"The media could not be fetched from this uri: {url} ({why})",
    )


def not_ready(detail: str) -> GraphError:
    return GraphError(400, "Media ID is not available", 9007, 2207027, user_message=detail)


def posts_a_day_reached() -> GraphError:
    return GraphError(
        400,
        "Application request limit reached",
        9,
        2207042,
        user_message="You have reached the maximum number of posts allowed in 24 hours.",
    )


@dataclass
class Ids:
    """Graph-looking ids: Page posts ``<page>_<n>``, photos and Instagram objects numeric."""

    next_number: int = 100
    issued: list[str] = field(default_factory=list)

    def number(self, prefix: str) -> str:
        self.next_number += 1
        made = f"{prefix}{self.next_number:06d}"
        self.issued.append(made)
        return made
