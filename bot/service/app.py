"""Composition root: the one place config, database, templates, schedules and channels meet."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from pydantic import SecretStr

from bot.campaigns.base import Destinations
from bot.channels import registry
from bot.channels.base import Channel
from bot.channels.ratelimit import Limits
from bot.core import media_urls
from bot.core.db import Database
from bot.core.errors import ConfigError
from bot.delivery.alerts import Alerts
from bot.inbound.conversation import Conversation
from bot.scheduling.schedules import ScheduleSet, load_schedules
from bot.settings.config import Config, read_secret
from bot.text.templates import Templates

log = logging.getLogger(__name__)


@dataclass
class App:
    config: Config
    db: Database
    templates: Templates
    channels: dict[str, Channel] = field(default_factory=dict)
    _limits: Limits | None = None

    @property
    def limits(self) -> Limits:
        """The rate-limit buckets every channel of this process counts in (see
        bot.channels.ratelimit)."""
        if self._limits is None:
            settings = self.config.ratelimit
            url = None
            if settings.backend == "redis":
                url = read_secret(
                    self.config.source, "ratelimit.redis_url_env", settings.redis_url_env
                ).get_secret_value()
            self._limits = Limits(url)
        return self._limits

    def schedules(self) -> ScheduleSet:
        return load_schedules(
            [self.config.path("schedules")],
            self.templates,
            default_timezone=self.config.timezone,
            base_dir=self.config.base_dir,
        )

    def conversation(self) -> Conversation:
        deletable = frozenset(
            name
            for name in self.config.enabled_channels()
            if getattr(self.config.channel_settings(name), "delete_on_withdraw", False)
        )
        return Conversation(
            self.templates, self.config.conversation, Alerts(self.db, self.config.alerts), deletable
        )

    def channel(self, name: str) -> Channel:
        """Build (once) an enabled channel's adapter; its secret comes from the environment."""
        if name not in self.channels:
            settings = self.config.channel_settings(name)
            if not getattr(settings, "enabled", False):
                raise ConfigError(
                    self.config.source, f"channels.{name}.enabled", "the channel is not enabled"
                )
            if (off := registry.unavailable(name)) is not None:  # its pip extra is missing
                raise off
            secrets = self.channel_secrets(name)
            extra: dict[str, Any] = {"limits": self.limits}
            if registry.spec(name).public_media:  # it fetches images from signed public URLs
                extra["media_urls"] = media_urls.from_settings(
                    self.config.media.public_base_url, self.config.source
                )
            channel: Channel = registry.adapter_class(name)(settings, secrets, **extra)
            self.channels[name] = channel
        return self.channels[name]

    def channel_secrets(self, name: str) -> dict[str, SecretStr]:
        """A channel's secrets from the environment: every ``<secret>_env`` setting names the
        variable holding that secret (ConfigError naming the setting when it is not set)."""
        settings = self.config.channel_settings(name)
        return {
            key.removesuffix("_env"): read_secret(
                self.config.source, f"channels.{name}.{key}", value
            )
            for key, value in settings.model_dump().items()
            if key.endswith("_env") and value
        }

    def destinations(self) -> Destinations:
        """Where amplify posts go on each enabled channel, and any configured post length."""
        found: dict[str, str] = {}
        limits: dict[str, int] = {}
        for name in self.config.enabled_channels():
            settings = self.config.channel_settings(name)
            if isinstance(chars := getattr(settings, "max_characters", None), int):
                limits[name] = chars
            destination = registry.spec(name).destination
            if destination == "timeline":  # the account's (or page's) own timeline
                found[name] = "timeline"
            elif destination == "receiver":  # one receiver, in its settings: named by the channel
                found[name] = name
            elif post_chat_id := getattr(settings, "post_chat_id", None):  # a chat or room
                found[name] = str(post_chat_id)
        return Destinations(found, limits)

    def enabled_channels(self) -> dict[str, Channel]:
        """The enabled channels' adapters, but for one whose library (its pip extra) is not
        installed: left out, said in one line; its messages wait in the outbox, unclaimed."""
        found: dict[str, Channel] = {}
        for name in self.config.enabled_channels():
            if (off := registry.unavailable(name)) is not None:
                log.warning("%s", off)
                continue
            found[name] = self.channel(name)
        return found

    async def aclose(self) -> None:
        for channel in self.channels.values():
            await channel.aclose()
        self.channels.clear()
        if self._limits is not None:
            await self._limits.aclose()
            self._limits = None

    def close(self) -> None:
        self.db.dispose()


def build_app(config: Config) -> App:
    return App(
        config=config,
        db=Database(config.database_url, busy_timeout_ms=config.database.busy_timeout_ms),
        templates=Templates(config.path("templates"), plain_text=registry.plain_text_channels()),
    )
