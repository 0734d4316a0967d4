"""LinkedIn's rules as the LinkedIn sandbox enforces them: error bodies, the headers every REST
call needs, access tokens, the "little" text format of a post's commentary and the post schema.

Error bodies take LinkedIn's shape: ``{"status": 401, "serviceErrorCode": 65602, "code":
"EXPIRED_ACCESS_TOKEN", "message": "The token used in the request has expired"}``; validation
and duplicate refusals also carry ``errorDetailType`` and ``errorDetails.inputErrors`` (the
duplicate one as LinkedIn words it: 422 "Content is a duplicate of urn:li:share:…",
``DUPLICATE_POST``). Versions: a missing ``LinkedIn-Version`` is a 400, one no longer (or not
yet) served a 426 ``NONEXISTENT_VERSION``. Commentary is parsed as little text: ``\\`` escapes a
reserved character, ``@[Name](urn:li:organization:1)`` is a mention, ``#Word`` and
``{hashtag|\\#|Word}`` are hashtags, and an unescaped reserved character that starts no element
cuts the post short there, silently, as LinkedIn does. Nothing here knows about aiohttp.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

RESERVED = frozenset("|{}@[]()<>#\\*_~")
MAX_COMMENTARY = 3000  # characters, counted here in UTF-16 code units (the strictest reading)
MAX_ALT_TEXT = 4086
MAX_MULTI_IMAGES = 20
# fmt: off
POST_FIELDS = frozenset({
    "author", "commentary", "visibility", "distribution", "lifecycleState",
    "isReshareDisabledByAuthor", "content", "contentLandingPage", "adContext",
    "contentCallToActionLabel", "reshareContext", "container",
})
# fmt: on
VISIBILITIES = frozenset({"PUBLIC", "CONNECTIONS", "LOGGED_IN", "CONTAINER"})
ORGANIZATION = re.compile(r"^urn:li:organization:(\d+)$")
POST_URN = re.compile(r"^urn:li:(?:share|ugcPost):\d+$")
IMAGE_URN = re.compile(r"^urn:li:image:[A-Za-z0-9_-]+$")
VERSION = re.compile(r"^(\d{6})(?:\.\d{2})?$")
MENTION = re.compile(
    r"@\[((?:\\.|[^\\\]\n])+)\]\((urn:li:(?:organization|person):[A-Za-z0-9_-]+)\)"
)
HASHTAG = re.compile(r"#((?=[^\W_]*[^\W\d_])[^\W_]+)")
HASHTAG_TEMPLATE = re.compile(r"\{hashtag\|\\#\|([^\W_]+)\}")


class LinkedInError(Exception):
    """An error answer: HTTP status, LinkedIn's body, extra headers."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        service_code: int | None = None,
        input_errors: list[dict[str, Any]] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message = status, code, message
        self.service_code, self.input_errors = service_code, input_errors
        self.headers = {"x-restli-error-response": "true", **dict(headers or {})}

    @property
    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"status": self.status, "code": self.code, "message": self.message}
        if self.service_code is not None:
            body["serviceErrorCode"] = self.service_code
        if self.input_errors is not None:
            body["errorDetailType"] = "com.linkedin.common.error.BadRequest"
            body["errorDetails"] = {"inputErrors": self.input_errors}
        return body


def bad_request(message: str, code: str = "BAD_REQUEST") -> LinkedInError:
    return LinkedInError(400, code, message, service_code=100)


def field_error(path: str, problem: str, status: int = 422) -> LinkedInError:
    """A request body LinkedIn's schema refuses, naming the field."""
    detail = {
        "description": problem,
        "input": {"inputPath": {"fieldPath": path}},
        "code": "INVALID",
    }
    return LinkedInError(
        status,
        "UNPROCESSABLE_ENTITY" if status == 422 else "BAD_REQUEST",
        f"Field Value validation failed in REQUEST_BODY: {path}: {problem}",
        input_errors=[detail],
    )


def duplicate(urn: str) -> LinkedInError:
    detail = {"description": "Duplicate post is detected", "input": {}, "code": "DUPLICATE_POST"}
    return LinkedInError(
        422, "DUPLICATE_POST", f"Content is a duplicate of {urn}", input_errors=[detail]
    )


def not_found(what: str) -> LinkedInError:
    return LinkedInError(404, "NOT_FOUND", f"Not Found: {what}")


def forbidden(message: str) -> LinkedInError:
    return LinkedInError(403, "ACCESS_DENIED", message, service_code=100)


def rate_limited(message: str, headers: Mapping[str, str] | None = None) -> LinkedInError:
    return LinkedInError(429, "TOO_MANY_REQUESTS", message, service_code=101, headers=headers)


def day_limit() -> LinkedInError:
    return rate_limited(
        "Resource level throttle MEMBER DAY limit for calls to this resource is reached."
    )


def internal_error() -> LinkedInError:
    return LinkedInError(500, "INTERNAL_SERVER_ERROR", "Internal Server Error")


# --- headers and versions ---------------------------------------------------------------------
def recent_versions(clock: Callable[[], float] = time.time) -> tuple[str, str]:
    """The versions LinkedIn serves: about a year of monthly ones, up to this month."""
    now = datetime.fromtimestamp(clock(), UTC)
    months = now.year * 12 + now.month - 1 - 12
    return f"{months // 12}{months % 12 + 1:02d}", f"{now.year}{now.month:02d}"


def check_headers(headers: Mapping[str, str], versions: tuple[str, str]) -> None:
    """Every ``/rest`` call names a served ``LinkedIn-Version`` and Rest.li protocol 2.0.0."""
    version = headers.get("LinkedIn-Version")
    if not version:
        raise LinkedInError(
            400,
            "VERSION_MISSING",
            "A version must be present. Please specify a version by adding the "
            "LinkedIn-Version header.",
        )
    matched = VERSION.match(version)
    if matched is None or not versions[0] <= matched.group(1) <= versions[1]:
        raise LinkedInError(
            426, "NONEXISTENT_VERSION", f"Requested version {version} is not active"
        )
    if headers.get("X-Restli-Protocol-Version") != "2.0.0":
        raise bad_request("This API requires the header X-Restli-Protocol-Version: 2.0.0")


# --- access tokens ----------------------------------------------------------------------------
TOKEN_ERRORS: dict[str, tuple[int, str, str]] = {
    "invalid": (65600, "INVALID_ACCESS_TOKEN", "Invalid access token"),
    "revoked": (
        65601,
        "REVOKED_ACCESS_TOKEN",
        "The token used in the request has been revoked by the user",
    ),
    "expired": (65602, "EXPIRED_ACCESS_TOKEN", "The token used in the request has expired"),
}


def token_error(kind: str) -> LinkedInError:
    service_code, code, message = TOKEN_ERRORS[kind]
    return LinkedInError(401, code, message, service_code=service_code)


@dataclass
class Tokens:
    """The page's access tokens: each one valid, expired (60 days on) or revoked."""

    states: dict[str, str] = field(default_factory=dict)  # token → valid | expired | revoked

    def verify(self, authorization: str | None) -> None:
        if not authorization or not authorization.startswith("Bearer "):
            raise token_error("invalid")
        state = self.states.get(authorization.removeprefix("Bearer ").strip(), "invalid")
        if state != "valid":
            raise token_error(state)


# --- little text ------------------------------------------------------------------------------
@dataclass
class Rendered:
    """What readers see of a commentary: its text, its mentions and hashtags, and whether an
    unescaped reserved character cut it short."""

    text: str
    mentions: list[dict[str, str]]
    hashtags: list[str]
    cut: bool


def utf16_length(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text, flags=re.DOTALL)


def render(commentary: str) -> Rendered:
    out: list[str] = []
    mentions: list[dict[str, str]] = []
    hashtags: list[str] = []
    i, n = 0, len(commentary)
    while i < n:
        char = commentary[i]
        if char == "\\":
            if i + 1 == n:  # a lone backslash at the end escapes nothing
                return Rendered("".join(out), mentions, hashtags, True)
            out.append(commentary[i + 1])
            i += 2
            continue
        if char not in RESERVED:
            out.append(char)
            i += 1
            continue
        mention = MENTION.match(commentary, i) if char == "@" else None
        tag = HASHTAG.match(commentary, i) if char == "#" else None
        template = HASHTAG_TEMPLATE.match(commentary, i) if char == "{" else None
        if mention is not None:
            name = unescape(mention.group(1))
            mentions.append({"name": name, "urn": mention.group(2)})
            out.append(name)
            i = mention.end()
        elif tag is not None and not (
            i and (commentary[i - 1].isalnum() or commentary[i - 1] == "_")
        ):
            hashtags.append(tag.group(1))
            out.append(tag.group(0))
            i = tag.end()
        elif template is not None:
            hashtags.append(template.group(1))
            out.append("#" + template.group(1))
            i = template.end()
        else:  # LinkedIn keeps the post but drops everything from here on
            return Rendered("".join(out), mentions, hashtags, True)
    return Rendered("".join(out), mentions, hashtags, False)


# --- the post ---------------------------------------------------------------------------------
def check_post(body: Any, author: str, image_status: Callable[[str], str | None]) -> None:
    """Refuse a post LinkedIn would refuse: unknown fields, another author, too long a
    commentary, bad visibility or distribution, an image that is not (yet) available."""
    if not isinstance(body, dict):
        raise bad_request("The request body must be a JSON object")
    unknown = sorted(set(body) - POST_FIELDS)
    if unknown:
        fields = ", ".join(f"/{name}" for name in unknown)
        raise LinkedInError(
            422, "UNPROCESSABLE_ENTITY", f"Unpermitted fields present in REQUEST_BODY: [{fields}]"
        )
    given = body.get("author")
    if not isinstance(given, str) or not ORGANIZATION.match(given):
        raise field_error("/author", "must be an organization or person URN")
    if given != author:
        raise forbidden(f"Member is not an administrator of {given}: cannot post as it")
    commentary = body.get("commentary", "")
    if not isinstance(commentary, str):
        raise field_error("/commentary", "must be a string")
    if utf16_length(commentary) > MAX_COMMENTARY:
        length = utf16_length(commentary)
        raise field_error("/commentary", f"length {length} exceeds the maximum of {MAX_COMMENTARY}")
    if body.get("visibility") not in VISIBILITIES:
        raise field_error("/visibility", f"must be one of {', '.join(sorted(VISIBILITIES))}")
    _check_distribution(body.get("distribution"))
    if body.get("lifecycleState") not in ("PUBLISHED", "DRAFT"):
        raise field_error("/lifecycleState", "must be PUBLISHED or DRAFT")
    if not isinstance(body.get("isReshareDisabledByAuthor", False), bool):
        raise field_error("/isReshareDisabledByAuthor", "must be a boolean")
    if "content" in body:
        _check_content(body["content"], image_status)
    elif not commentary:
        raise field_error("/commentary", "a post without content needs commentary")


def _check_distribution(distribution: Any) -> None:
    if not isinstance(distribution, dict):
        raise field_error("/distribution", "is required")
    if distribution.get("feedDistribution") not in ("MAIN_FEED", "NONE"):
        raise field_error("/distribution/feedDistribution", "must be MAIN_FEED or NONE")
    for name in ("targetEntities", "thirdPartyDistributionChannels"):
        if not isinstance(distribution.get(name, []), list):
            raise field_error(f"/distribution/{name}", "must be an array")


def _check_content(content: Any, image_status: Callable[[str], str | None]) -> None:
    if not isinstance(content, dict) or len(content) != 1:
        raise field_error("/content", "must hold exactly one of media, multiImage, article, poll")
    if "media" in content:
        _check_image("/content/media", content["media"], image_status)
    elif "multiImage" in content:
        images = (
            content["multiImage"].get("images") if isinstance(content["multiImage"], dict) else None
        )
        if not isinstance(images, list) or not 2 <= len(images) <= MAX_MULTI_IMAGES:
            raise field_error(
                "/content/multiImage/images", f"must hold 2 to {MAX_MULTI_IMAGES} images"
            )
        for n, image in enumerate(images):
            _check_image(f"/content/multiImage/images/{n}", image, image_status)
    else:
        raise field_error("/content", f"the sandbox serves images only, not {next(iter(content))}")


def _check_image(path: str, media: Any, image_status: Callable[[str], str | None]) -> None:
    urn = media.get("id") if isinstance(media, dict) else None
    if not isinstance(urn, str) or not IMAGE_URN.match(urn):
        raise field_error(f"{path}/id", "must be an image URN")
    alt = media.get("altText", "")
    if not isinstance(alt, str) or len(alt) > MAX_ALT_TEXT:
        raise field_error(
            f"{path}/altText", f"must be a string of at most {MAX_ALT_TEXT} characters"
        )
    status = image_status(urn)
    if status != "AVAILABLE":
        raise field_error(
            f"{path}/id", f"image {urn} is not available ({status or 'unknown image'})", 400
        )
