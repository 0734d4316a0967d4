"""The ``[channels.x]`` table: the API's address and the four OAuth 1.0a secrets' variables.
Imports no client library: a config is checked without tweepy (the ``x`` extra)."""

from __future__ import annotations

from pydantic import Field

from bot.channels.settings import ChannelSettings
from bot.core.env import EnvVarName

# The client library the adapter imports (tweepy, the x extra): whether it is installed
# is asked without importing it (registry.unavailable).
LIBRARY = "tweepy"

X_API = "https://api.twitter.com"


class XSettings(ChannelSettings):
    api_base_url: str = X_API  # e.g. the sandbox; requests are still signed for X_API
    consumer_key_env: EnvVarName = "X_CONSUMER_KEY"
    consumer_secret_env: EnvVarName = "X_CONSUMER_SECRET"
    access_token_env: EnvVarName = "X_ACCESS_TOKEN"
    access_token_secret_env: EnvVarName = "X_ACCESS_TOKEN_SECRET"
    request_timeout: float = Field(default=15, gt=0)
    delete_on_withdraw: bool = False  # take posts down when a pledgemaker withdraws consent
