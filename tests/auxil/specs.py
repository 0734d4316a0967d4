"""Campaign specs for tests, validated exactly as a schedule file's entry would be."""

from __future__ import annotations

from bot.campaigns.followup import FollowupCampaign


def followup(campaign_id: str, **fields: object) -> FollowupCampaign:
    return FollowupCampaign.model_validate(
        {"id": campaign_id, "kind": "followup", "pillar": "act", **fields}
    )
