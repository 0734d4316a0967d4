"""Public posts, shared by the kinds that publish (amplify, knowledge): one text per channel,
split to the channel's limit into a numbered thread whose parts reply to one another."""

from __future__ import annotations

from typing import Any

from bot.campaigns.base import Plan, RunContext, post_limit
from bot.channels import registry
from bot.channels.base import Media
from bot.channels.text_split import split_thread
from bot.delivery.messages import PlannedMessage
from bot.text.templates import Templates


def thread(
    *,
    key_prefix: str,
    channel: str,
    destination: str,
    text: str,
    media: tuple[Media, ...],
    post: dict[str, Any],
    pledgemaker_id: str | None = None,
    limit: int | None = None,
) -> list[PlannedMessage]:
    """The messages of one post on one channel: media and the post record on the first part.
    ``limit``: the channel's configured length, if not its spec's."""
    spec = registry.spec(channel)
    alone, with_media = spec.text_limit, spec.caption_limit
    if limit is not None:  # a caption's own, shorter limit still applies
        alone, with_media = limit, (limit if with_media == alone else min(with_media, limit))
    parts = split_thread(text, limit=with_media if media else alone, measure=spec.length())
    messages: list[PlannedMessage] = []
    previous = None
    for number, part in enumerate(parts, start=1):
        key = f"{key_prefix}:{channel}:{number}"
        first = number == 1
        messages.append(
            PlannedMessage(
                idempotency_key=key,
                channel=channel,
                recipient=destination,
                text=part,
                pledgemaker_id=pledgemaker_id,
                parse_mode="HTML" if spec.markup == "html" else None,
                media=media if first else (),
                follows=previous,
                post={**post, "parts": len(parts)} if first else None,
            )
        )
        previous = key
    return messages


def plan_post(
    *,
    kind: str,
    campaign_id: str,
    channels: list[str],
    template: str,
    language: str,
    context: dict[str, Any],
    run: RunContext,
    templates: Templates,
    media: tuple[Media, ...],
    post: dict[str, Any],
    pledgemaker_id: str | None = None,
) -> Plan:
    """One item published on every channel of the campaign that has a destination."""
    slot = run.fire_time.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    messages: list[PlannedMessage] = []
    skipped: dict[str, int] = {}
    for channel in channels:
        destination = run.destinations.get(channel)
        if destination is None:
            skipped[f"{channel}: no destination configured"] = 1
            continue
        needs_image = registry.spec(channel).image_required
        if needs_image and not media:
            skipped[f"{channel}: an image is required, and this post has none"] = 1
            continue
        parts = thread(
            key_prefix=f"{kind}:{campaign_id}:{slot}",
            channel=channel,
            destination=destination,
            text=templates.render(f"{template}/{channel}", language, **context),
            media=media,
            post=post,
            pledgemaker_id=pledgemaker_id,
            limit=post_limit(run.destinations, channel),
        )
        if needs_image and len(parts) > 1:  # later parts would have no image
            skipped[f"{channel}: too long for one caption"] = 1
            continue
        messages += parts
    return Plan(messages, skipped)
