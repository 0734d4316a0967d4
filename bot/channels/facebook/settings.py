"""The ``[channels.facebook]`` table, and what it shares with ``[channels.instagram]``: the
Graph API they call and when to hold."""

from __future__ import annotations

from pydantic import Field

from bot.channels.settings import ChannelSettings
from bot.core.env import EnvVarName

GRAPH_URL = "https://graph.facebook.com"
API_VERSION = "v24.0"


class GraphSettings(ChannelSettings):
    """What the Facebook and Instagram tables share: the Graph API they call, and when to hold."""

    api_version: str = Field(default=API_VERSION, pattern=r"^v[0-9]+\.[0-9]+$")
    graph_url: str = Field(default=GRAPH_URL, pattern=r"^https?://[^\s/]+\S*$")  # the sandbox
    request_timeout: float = Field(default=30, gt=0)
    usage_threshold: float = Field(default=95, gt=0, le=100)  # % of a usage header: hold


class FacebookSettings(GraphSettings):
    required = ("page_id", "the Page's numeric id is required")

    page_id: str = Field(default="", pattern=r"^[0-9]*$")  # the campaign's Page
    page_token_env: EnvVarName = "FACEBOOK_PAGE_TOKEN"  # a Page access token (long-lived)
    max_image_bytes: int = Field(default=4 * 1024 * 1024, gt=0)
    require_alt_text: bool = True  # an image without alt text is refused
    delete_on_withdraw: bool = False  # take posts down when a pledgemaker withdraws consent
