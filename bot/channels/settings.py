"""What every ``[channels.<name>]`` table shares: an unknown key is an error (it names the key),
the channel is off until ``enabled``, and an enabled channel may need one setting it cannot do
without (its account, page or receiver), named with what it is."""

from __future__ import annotations

from typing import ClassVar, Self

from pydantic import BaseModel, ConfigDict, model_validator


class ChannelSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # The setting an enabled channel needs, and what it is ("the account is required, e.g. …").
    required: ClassVar[tuple[str, str] | None] = None

    enabled: bool = False

    @model_validator(mode="after")
    def _required_when_enabled(self) -> Self:
        if self.enabled and self.required is not None:
            name, what = self.required
            if not getattr(self, name):
                raise ValueError(f"{name}: {what}")
        return self
