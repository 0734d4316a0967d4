"""config.toml: read, validate with pydantic, and turn every mistake into one ConfigError line.

Secrets never live in the file: a channel names the environment variable that holds its token
(`token_env`), and the value is read only when the channel is built (a disabled channel needs none).
Relative paths resolve against the folder of the config file.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
)

from bot.errors import ConfigError
from bot.logs import register_secret

ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _env_name(value: str) -> str:
    if not ENV_NAME.fullmatch(value):
        raise ValueError(
            "must be the name of an environment variable (letters, digits, _), "
            "not the secret itself"
        )
    return value


# A setting that names the environment variable holding a secret (e.g. token_env).
EnvVarName = Annotated[str, AfterValidator(_env_name)]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DatabaseSettings(Section):
    url: str = "sqlite:///pledgebot.db"
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
    max_attempts: int = Field(default=8, ge=1)
    backoff_base: float = Field(default=2.0, gt=0)
    backoff_max: float = Field(default=3600, gt=0)


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
    schedules: Path = Path("schedules")
    templates: Path = Path("templates")


class MediaSettings(Section):
    """Where photos pledgemakers send are kept, and which ones are accepted."""

    dir: Path = Path("media")
    max_bytes: int = Field(default=5 * 1024 * 1024, gt=0)  # X's image limit
    # Where the dashboard's /media/… route is reached from outside (Instagram fetches images
    # there), e.g. "https://pledge.example.org"; unset: no public media URLs (bot.media_urls).
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

    def channel_settings(self, name: str) -> BaseModel:
        """The validated settings of one channel (its adapter's Settings model)."""
        from bot.channels.registry import settings_model

        raw = self.channels.get(name, {"enabled": False})
        try:
            return settings_model(name).model_validate(raw)
        except ValidationError as exc:
            raise _as_config_error(self.source, exc, prefix=("channels", name)) from None

    def enabled_channels(self) -> list[str]:
        return [name for name in self.channels if self.channel_settings(name).enabled]


def read_secret(source: str, key: str, env_name: str) -> SecretStr:
    """Read a secret from the environment variable the config names; never from the file."""
    value = os.environ.get(env_name, "")
    if not value:
        raise ConfigError(
            source, key, f"environment variable {env_name} is not set (it holds the secret)"
        )
    register_secret(value)
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
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, "", f"not valid TOML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(source, "", f"cannot read: {exc}") from None
    return config_from_dict(data, source=source, base_dir=path.resolve().parent)


def config_from_dict(data: dict[str, Any], *, source: str, base_dir: Path) -> Config:
    try:
        config = Config.model_validate({**data, "source": source, "base_dir": base_dir})
    except ValidationError as exc:
        raise _as_config_error(source, exc) from None
    from bot.channels.registry import known_channels

    for name in config.channels:
        if name not in known_channels():
            raise ConfigError(
                source,
                f"channels.{name}",
                f"unknown channel (known: {', '.join(known_channels())})",
            )
        config.channel_settings(name)
    return config


def _as_config_error(
    source: str, exc: ValidationError, prefix: tuple[str, ...] = ()
) -> ConfigError:
    first = exc.errors()[0]
    key = ".".join(str(part) for part in (*prefix, *first["loc"]))
    message = first["msg"]
    if first["type"] == "extra_forbidden":
        message = "unknown key"
    elif first["type"] == "value_error":
        message = message.removeprefix("Value error, ")
    got = first.get("input")
    shown = repr(got)
    if (
        first["type"] != "extra_forbidden"
        and not isinstance(got, dict | list)
        and shown not in message
    ):
        message += f" (got {shown})"
    return ConfigError(source, key, message)
