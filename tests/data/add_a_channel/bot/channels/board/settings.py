"""The ``[channels.board]`` table: the board's address and its token's variable."""

from __future__ import annotations

from bot.channels.settings import ChannelSettings
from bot.core.env import EnvVarName


class BoardSettings(ChannelSettings):
    base_url: str = "https://board.example"
    token_env: EnvVarName = "BOARD_TOKEN"
