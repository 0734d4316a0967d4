"""An image of an outbound message, read and checked before any request: the adapters that
upload an image's bytes (Bluesky, Facebook, Instagram) refuse it the same way."""

from __future__ import annotations

import io
import logging
import mimetypes
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bot.channels.base import Media
from bot.core.errors import Rejected

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LocalImage:
    """One image of a message, read and checked: ``stored`` is the path as the message has it."""

    stored: str
    data: bytes
    mime: str
    alt: str

    @property
    def name(self) -> str:
        return Path(self.stored).name


def read_image(platform: str, item: Media, *, require_alt: bool, max_bytes: int) -> LocalImage:
    """An image of the message, refused (``Rejected``) before any request if unfit."""
    stored = item.path
    path = Path(stored)
    alt = item.alt_text.strip()
    if not stored or not path.is_file():
        raise Rejected(f"{platform}: the media file is missing: {path.name or '(none)'}")
    if not alt and require_alt:
        raise Rejected(f"{platform}: image {path.name} has no alt text")
    size = path.stat().st_size
    if size > max_bytes:
        raise Rejected(f"{platform}: image {path.name} is {size:,} bytes; at most {max_bytes:,}")
    data = path.read_bytes()
    mime = image_type(data) or mimetypes.guess_type(path.name)[0] or "unknown"
    if not mime.startswith("image/"):
        raise Rejected(f"{platform}: {path.name} is not an image ({mime})")
    return LocalImage(stored, data, mime, alt)


def read_images(
    platform: str,
    message_id: int,
    media: Sequence[Media],
    *,
    limit: int,
    require_alt: bool,
    max_bytes: int,
) -> list[LocalImage]:
    """The first ``limit`` images of a message, each read and checked (``read_image``); the
    rest are left out, with a warning."""
    images = [
        read_image(platform, item, require_alt=require_alt, max_bytes=max_bytes)
        for item in media[:limit]
    ]
    if len(media) > limit:
        log.warning("%s: message %s: only the first %d images", platform.lower(), message_id, limit)
    return images


def image_type(data: bytes) -> str | None:
    """The type of an image from its first bytes (what the platform itself will find)."""
    for magic, mime in (
        (b"\xff\xd8\xff", "image/jpeg"),
        (b"\x89PNG\r\n\x1a\n", "image/png"),
        (b"GIF8", "image/gif"),
    ):
        if data.startswith(magic):
            return mime
    return "image/webp" if data[:4] == b"RIFF" and data[8:12] == b"WEBP" else None


def image_size(data: bytes) -> tuple[int, int] | None:
    """Width and height, read with Pillow (it comes with matplotlib); None if unreadable."""
    try:
        from PIL import Image

        with Image.open(io.BytesIO(data)) as opened:
            width, height = opened.size
    except Exception:  # unreadable here, or no Pillow: the platform's own check decides
        return None
    return width, height
