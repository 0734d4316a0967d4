"""Public, unguessable URLs of approved media: what Instagram fetches an image from.

Instagram's API takes no upload: it downloads the image from a public URL while it prepares
the post. The dashboard serves such files at ``/media/<token>/<name>`` (``bot.web.media``),
under ``[media] public_base_url``; this module makes and checks those URLs, and imports
nothing of the web app (the Instagram adapter uses it).

The token is stateless: an HMAC-SHA256 of the file's path *as stored* in the journey update's
``media`` (and so in the outbox message), keyed with the secret in ``PLEDGEBOT_MEDIA_URL_KEY``,
cut to 32 base64url characters (192 bits). Nothing is stored per file, any web worker checks
it, and it cannot be guessed or moved to another file. A token is no licence on its own: the
route also serves a file only while it belongs to an approved, consented journey update
(a withdrawal closes the URL at once), and only under ``[media] dir``.

Without the key (``PLEDGEBOT_MEDIA_URL_KEY`` unset or under 16 characters) there are no
public media URLs at all: the route answers 404 to every request, and the Instagram channel
cannot be built (``from_settings`` raises a ``ConfigError`` naming the variable). Rotating the
key breaks the URLs already handed out, which only matters for a container Instagram has not
fetched yet (a retry signs again).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from dataclasses import dataclass, field
from pathlib import PurePath
from urllib.parse import quote

from pydantic import SecretStr

from bot.core.errors import ConfigError
from bot.core.logs import register_secret

KEY_ENV = "PLEDGEBOT_MEDIA_URL_KEY"
MIN_KEY_LENGTH = 16
TOKEN_LENGTH = 32  # base64url characters of the HMAC kept: 192 bits
ROUTE = "/media/{token}/{name}"

__all__ = ["KEY_ENV", "ROUTE", "TOKEN_LENGTH", "MediaUrls", "from_settings", "read_key", "token"]


def token(key: SecretStr, stored_path: str) -> str:
    """The URL token of the file stored at ``stored_path`` (the string as the update has it)."""
    digest = hmac.new(
        key.get_secret_value().encode(), b"media:" + stored_path.encode(), hashlib.sha256
    ).digest()
    return base64.urlsafe_b64encode(digest).decode()[:TOKEN_LENGTH]


def file_name(stored_path: str) -> str:
    """The last part of the URL: the file's own name (its folder never shows)."""
    return PurePath(stored_path).name


@dataclass(frozen=True)
class MediaUrls:
    """Makes the public URL of a stored media file: ``<base_url>/media/<token>/<name>``."""

    base_url: str
    key: SecretStr = field(repr=False)

    def url_for(self, stored_path: str) -> str:
        name = quote(file_name(stored_path), safe="")
        return f"{self.base_url.rstrip('/')}/media/{token(self.key, stored_path)}/{name}"

    def matches(self, given: str, stored_path: str) -> bool:
        """Whether ``given`` is this file's token (compared in constant time)."""
        return hmac.compare_digest(given.encode(), token(self.key, stored_path).encode())


def read_key() -> SecretStr | None:
    """The signing key from ``PLEDGEBOT_MEDIA_URL_KEY`` (registered with the log scrubber), or
    None when it is unset or too short to be a secret."""
    value = os.environ.get(KEY_ENV, "")
    if len(value) < MIN_KEY_LENGTH:
        return None
    register_secret(value)
    return SecretStr(value)


def from_settings(base_url: str | None, source: str) -> MediaUrls:
    """The URL maker for a channel that needs public media (Instagram): ``[media]
    public_base_url`` (``base_url``, from the file ``source``) and the key must both be set,
    else a ConfigError says which."""
    if not base_url:
        raise ConfigError(
            source,
            "media.public_base_url",
            "Instagram fetches images from a public URL: set the dashboard's public address, "
            'e.g. "https://pledge.example.org"',
        )
    key = read_key()
    if key is None:
        raise ConfigError(
            source,
            "media.public_base_url",
            f"environment variable {KEY_ENV} is not set (at least {MIN_KEY_LENGTH} random "
            "characters: it signs the public media URLs)",
        )
    return MediaUrls(base_url, key)
