"""The ``[channels.linkedin]`` table: the organization page, the API version and the token's
variable."""

from __future__ import annotations

from pydantic import Field

from bot.channels.settings import ChannelSettings
from bot.core.env import EnvVarName

LINKEDIN_API = "https://api.linkedin.com/rest"


class LinkedInSettings(ChannelSettings):
    required = ("organization_id", "the page's number is required, e.g. 2414183")

    api_base_url: str = Field(default=LINKEDIN_API, pattern=r"^https?://[^\s/]+\S*$")
    organization_id: str = Field(default="", pattern=r"^\d*$")  # the page: urn:li:organization:<id>
    api_version: str = Field(default="202609", pattern=r"^\d{6}(\.\d{2})?$")  # LinkedIn-Version
    access_token_env: EnvVarName = "LINKEDIN_ACCESS_TOKEN"
    request_timeout: float = Field(default=15, gt=0)
    image_processing_timeout: float = Field(default=30, gt=0)  # until an upload is AVAILABLE
    require_alt_text: bool = True  # an image without alt text is refused
    delete_on_withdraw: bool = False  # take posts down when a pledgemaker withdraws consent
