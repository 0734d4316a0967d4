"""The ``[channels.matrix]`` table: the homeserver, the bot's account and its token's variable.
Imports no client library: a config is checked without matrix-nio (the ``matrix`` extra)."""

from __future__ import annotations

import re

from pydantic import Field, model_validator

from bot.channels.settings import ChannelSettings
from bot.core.env import EnvVarName

# The client library the adapter imports (matrix-nio, the matrix extra): whether it is installed
# is asked without importing it (registry.unavailable).
LIBRARY = "nio"

USER_ID = re.compile(r"^@[^:\s]+:\S+$")


class MatrixSettings(ChannelSettings):
    homeserver: str = ""  # the client-server API's base URL, e.g. https://matrix.example.org
    user_id: str | None = Field(default=None, pattern=USER_ID.pattern)  # checked by whoami
    access_token_env: EnvVarName = "MATRIX_ACCESS_TOKEN"
    device_id: str | None = None  # the token's device (nio wants it; whoami tells it otherwise)
    request_timeout: float = Field(default=15, gt=0)
    sync_timeout_ms: int = Field(default=25_000, ge=0, le=60_000)

    @model_validator(mode="after")
    def _homeserver_when_enabled(self) -> MatrixSettings:
        if self.enabled and not self.homeserver.startswith(("https://", "http://")):
            raise ValueError("homeserver: the homeserver's URL is required (https://…)")
        return self
