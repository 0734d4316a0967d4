"""config.toml: read, validate with pydantic, and turn every mistake into one ConfigError line.

Secrets never live in the file: a channel names the environment variable that holds its token
(`token_env`), and the value is read only when the channel is built (a disabled channel needs none).
Relative paths resolve against the folder of the config file.

Types are strict (``enabled = "yes"`` or ``answer_window_minutes = true`` are mistakes, not
``True`` and ``1``), an error names the line of the key when the file has it, and a secret that
signs or authenticates something must be at least ``MIN_SECRET_LENGTH`` characters.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
)

from bot.core.env import EnvVarName
from bot.core.errors import ConfigError
from bot.core.extras import install_hint
from bot.core.logs import register_secret

if TYPE_CHECKING:  # the registry is imported when a channel's settings are read
    from bot.channels.settings import ChannelSettings

# Secrets that sign or authenticate (by the setting naming them): shorter ones are guessable.
MIN_SECRET_LENGTH = 16
MIN_SECRET_LENGTHS = {"signing_key_env": MIN_SECRET_LENGTH, "metrics_token_env": MIN_SECRET_LENGTH}
DATABASES = "sqlite:///pledgebot.db or postgresql+psycopg://user@host/database"


def _database_url(value: str) -> str:
    """A URL SQLAlchemy can open, for a database pledgebot runs on, with its driver installed."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        url = make_url(value)
    except ArgumentError:
        raise ValueError(f"not a database URL; write {DATABASES}") from None
    backend = url.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise ValueError(
            f"pledgebot runs on SQLite or PostgreSQL, not {backend!r}: write {DATABASES}"
        )
    try:
        dialect = url.get_dialect()
    except NoSuchModuleError:
        raise ValueError(f"unknown database driver {url.drivername!r}: write {DATABASES}") from None
    try:
        dialect.import_dbapi()
    except ImportError:
        missing = f"its driver ({dialect.driver}) is not installed"
        if dialect.driver == "psycopg":  # the postgresql extra brings it
            raise ValueError(f"{missing}: {install_hint('postgresql')}") from None
        raise ValueError(f"{missing}: write {DATABASES}") from None
    return value


def _http_url(value: str) -> str:
    """An http(s) URL with a host (a name, an IPv4 address or a bracketed IPv6 one)."""
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname or " " in value:
        raise ValueError("not an http(s) URL like 'https://api.example.org/'")
    return value


class Section(BaseModel):
    # Strict: TOML has real booleans and numbers, so "yes" or true where a number belongs is a
    # mistake to report, not a value to coerce.
    model_config = ConfigDict(extra="forbid", strict=True)


class DatabaseSettings(Section):
    url: Annotated[str, AfterValidator(_database_url)] = "sqlite:///pledgebot.db"
    busy_timeout_ms: int = Field(default=10_000, ge=0)


class AlertSettings(Section):
    telegram_chat_id: int | None = None
    email: str | None = Field(default=None, pattern=r"^[^@\s]+@[^@\s]+$")


class ConversationSettings(Section):
    prompt_ttl_days: float = Field(default=7, gt=0)
    answer_window_minutes: float = Field(default=5, ge=0)


class DispatcherSettings(Section):
    batch_size: int = Field(default=32, ge=1, le=1000)
    poll_interval: float = Field(default=1.0, gt=0)
    lease_seconds: float = Field(default=120, gt=0)
    # Transient failures (5xx, timeouts, connection) are retried with capped, jittered backoff
    # until retry_hours after a message's first try; max_attempts, if set, caps the tries too.
    retry_hours: float = Field(default=24, gt=0)
    max_attempts: int | None = Field(default=None, ge=1)
    backoff_base: float = Field(default=2.0, gt=0)
    backoff_max: float = Field(default=900, gt=0)
    # A channel whose sends fail this many times in a row (across messages) is down: its
    # messages wait, and one probe goes out after probe_seconds, then at doubling intervals
    # (at most backoff_max) until one succeeds.
    down_after_failures: int = Field(default=10, ge=1)
    probe_seconds: float = Field(default=30, gt=0)


class DashboardSettings(Section):
    """Where `pledgebot web` (and `run`) serve the dashboard, health and metrics."""

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)  # 0: any free port (logged at start)
    # /metrics without signing in: "Authorization: Bearer $PLEDGEBOT_METRICS_TOKEN" (if set)
    metrics_token_env: str = "PLEDGEBOT_METRICS_TOKEN"
    # The dashboard's address as pledgemakers reach it (e.g. "https://pledge.example.org"):
    # email invitations then carry a confirmation link (/join/…). Unset: they confirm by reply.
    public_url: str | None = Field(default=None, pattern=r"^https?://[^\s/]+(/\S*)?$")


class RateLimitSettings(Section):
    """Where platform rate limits are counted: per process, or in Redis for every worker."""

    backend: Literal["memory", "redis"] = "memory"
    redis_url_env: EnvVarName = "PLEDGEBOT_REDIS_URL"


class PathSettings(Section):
    schedules: Path = Field(default=Path("schedules"), strict=False)
    templates: Path = Field(default=Path("templates"), strict=False)


class MediaSettings(Section):
    """Where photos pledgemakers send are kept, and which ones are accepted."""

    dir: Path = Field(default=Path("media"), strict=False)
    max_bytes: int = Field(default=5 * 1024 * 1024, gt=0)  # X's image limit
    # Where the dashboard's /media/… route is reached from outside (Instagram fetches images
    # there), e.g. "https://pledge.example.org"; unset: no public media URLs (bot.core.media_urls).
    public_base_url: str | None = Field(default=None, pattern=r"^https?://[^\s/]+(/\S*)?$")


class Config(Section):
    timezone: str = "UTC"
    database: DatabaseSettings = DatabaseSettings()
    alerts: AlertSettings = AlertSettings()
    conversation: ConversationSettings = ConversationSettings()
    dispatcher: DispatcherSettings = DispatcherSettings()
    paths: PathSettings = PathSettings()
    media: MediaSettings = MediaSettings()
    dashboard: DashboardSettings = DashboardSettings()
    ratelimit: RateLimitSettings = RateLimitSettings()
    # Raw per-channel tables, validated against each adapter's own Settings model (see registry).
    channels: dict[str, dict[str, Any]] = Field(default_factory=dict)

    # Where the file was read from; not part of the file.
    source: str = Field(default="config.toml", exclude=True)
    base_dir: Path = Field(default=Path("."), exclude=True)
    _text: str = PrivateAttr(default="")  # the file's text, to name an error's line

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    def path(self, which: str) -> Path:
        """A configured folder, resolved against the config file's folder."""
        value: Path = self.media.dir if which == "media" else getattr(self.paths, which)
        return value if value.is_absolute() else self.base_dir / value

    @property
    def database_url(self) -> str:
        """The database URL with a relative SQLite path resolved against the config folder."""
        url = self.database.url
        prefix = "sqlite:///"
        if url.startswith(prefix) and not url.startswith(prefix + "/") and ":memory:" not in url:
            return prefix + str((self.base_dir / url[len(prefix) :]).resolve())
        return url

    def channel_settings(self, name: str) -> ChannelSettings:
        """The validated settings of one channel (its adapter's Settings model)."""
        from bot.channels.registry import settings_model

        raw = self.channels.get(name, {"enabled": False})
        try:
            settings = settings_model(name).model_validate(raw, strict=True)
        except ValidationError as exc:
            raise _as_config_error(
                self.source, exc, prefix=("channels", name), text=self._text
            ) from None
        for key, value in settings.model_dump().items():
            url_key = key == "base_url" or key.endswith("_base_url")
            # A disabled channel's section may be a stub: its URL is checked once it is enabled.
            if url_key and isinstance(value, str) and (value or settings.enabled):
                try:
                    _http_url(value)
                except ValueError as exc:
                    raise self.error(f"channels.{name}.{key}", f"{exc} (got {value!r})") from None
        return settings

    def enabled_channels(self) -> list[str]:
        return [name for name in self.channels if self.channel_settings(name).enabled]

    def error(self, key: str, message: str) -> ConfigError:
        """A ConfigError about ``key`` (dotted), with its line in the file when found."""
        return ConfigError(self.source, key, message, key_line(self._text, tuple(key.split("."))))

    def metrics_token(self) -> SecretStr | None:
        """The bearer token a scraper may read /metrics with, if its variable is set."""
        name = self.dashboard.metrics_token_env
        if not name or not os.environ.get(name):
            return None
        return read_secret(self.source, "dashboard.metrics_token_env", name)


def read_secret(source: str, key: str, env_name: str) -> SecretStr:
    """Read a secret from the environment variable the config names; never from the file.

    A signing key or access token (``MIN_SECRET_LENGTHS``, by the setting's name) shorter than
    its minimum is refused: it would be guessable."""
    value = os.environ.get(env_name, "")
    if not value:
        raise ConfigError(
            source, key, f"environment variable {env_name} is not set (it holds the secret)"
        )
    register_secret(value)
    least = MIN_SECRET_LENGTHS.get(key.rsplit(".", 1)[-1], 0)
    if len(value) < least:
        raise ConfigError(
            source,
            key,
            f"environment variable {env_name} is too short: use at least {least} random "
            "characters (e.g. from `openssl rand -hex 16`)",
        )
    return SecretStr(value)


def load_config(path: Path | str = "config.toml", *, required: bool = False) -> Config:
    """Read and validate a config file. A missing default file means all defaults."""
    path = Path(path)
    source = str(path)
    if not path.exists():
        if required:
            raise ConfigError(source, "", "file not found")
        return Config(source=source, base_dir=path.resolve().parent)
    try:
        text = path.read_text(encoding="utf-8")
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, "", f"not valid TOML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(source, "", f"cannot read: {exc}") from None
    return config_from_dict(data, source=source, base_dir=path.resolve().parent, text=text)


def config_from_dict(
    data: dict[str, Any], *, source: str, base_dir: Path, text: str = ""
) -> Config:
    try:
        config = Config.model_validate({**data, "source": source, "base_dir": base_dir})
    except ValidationError as exc:
        raise _as_config_error(source, exc, text=text) from None
    config._text = text
    from bot.channels.registry import known_channels

    for name in config.channels:
        if name not in known_channels():
            raise ConfigError(
                source,
                f"channels.{name}",
                f"unknown channel (known: {', '.join(known_channels())})",
                key_line(text, ("channels", name)),
            )
        config.channel_settings(name)
    return config


def _as_config_error(
    source: str, exc: ValidationError, prefix: tuple[str, ...] = (), text: str = ""
) -> ConfigError:
    first = exc.errors()[0]
    loc = tuple(str(part) for part in (*prefix, *first["loc"]))
    line = key_line(text, loc)
    if first["type"] == "extra_forbidden":
        return ConfigError(source, "", _unknown_key(exc, loc, prefix), line)
    message = first["msg"]
    if first["type"] == "value_error":
        message = message.removeprefix("Value error, ")
    got = first.get("input")
    shown = _hide_password(repr(got))
    if not isinstance(got, dict | list) and shown not in message:
        message += f" (got {shown})"
    return ConfigError(source, ".".join(loc), message, line)


def _unknown_key(exc: ValidationError, loc: tuple[str, ...], prefix: tuple[str, ...]) -> str:
    """``unknown key 'urll' in [database] (did you mean 'url'?)``"""
    *table, name = loc
    model: Any = Config
    if prefix[:1] == ("channels",) and len(prefix) == 2:
        from bot.channels.registry import settings_model

        model, inner = settings_model(prefix[1]), table[2:]
    else:
        inner = table
    for part in inner:
        annotation = getattr(model, "model_fields", {}).get(part)
        model = annotation.annotation if annotation is not None else None
    known = list(getattr(model, "model_fields", {}))
    hint = difflib.get_close_matches(name, known, n=1)
    where = f" in [{'.'.join(table)}]" if table else ""
    return f"unknown key {name!r}{where}" + (f" (did you mean {hint[0]!r}?)" if hint else "")


def _hide_password(shown: str) -> str:
    """A database URL's password never reaches an error line, whatever it contains (a '/', an
    '@'): everything between the user's ':' and the URL's last '@' (a URL ends at a space or
    a quote)."""
    return re.sub(r"(://[^:/@\s'\"]*:)[^\s'\"]*@", r"\1***@", shown)


TABLE = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
KEY = re.compile(r"""^\s*("[^"]+"|'[^']+'|[A-Za-z0-9_-]+)\s*=""")


def key_line(text: str, loc: tuple[str, ...]) -> int | None:
    """The line of ``loc`` (e.g. database.urll) in a config file: the key inside its table, or
    the table's own header; None when the file spells it in a way this does not follow."""
    if not text or not loc:
        return None
    *table, name = loc
    wanted, current = ".".join(table), ""
    for number, raw in enumerate(text.splitlines(), start=1):
        if header := TABLE.match(raw):
            current = re.sub(r"\s*\.\s*", ".", header.group(1)).replace('"', "")
            if current == ".".join(loc):
                return number
        elif (key := KEY.match(raw)) and current == wanted and key.group(1).strip("\"'") == name:
            return number
    return None
