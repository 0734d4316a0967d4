"""Public posts, shared by the kinds that publish (amplify, knowledge): one text per channel,
split to the channel's limit into a numbered thread whose parts reply to one another."""

from __future__ import annotations

from typing import Any

from bot.campaigns.base import Plan, RunContext, post_limit
from bot.channels.text_split import Measure, split_thread, weighted_length
from bot.delivery.messages import PlannedMessage
from bot.text.templates import Templates

# How long one post may be on each channel: (text alone, text as a caption under media).
LIMITS: dict[str, tuple[int, int]] = {
    "x": (280, 280),
    "telegram": (4096, 1024),
    "mastodon": (500, 500),  # the default of an instance; a content warning counts too
    "facebook": (63_206, 63_206),  # a Page post's message, with or without photos: never split
    "instagram": (2_200, 2_200),  # a caption: an Instagram post is never text alone
    "linkedin": (3000, 3000),  # commentary, escapes counted (linkedin_length)
    "bluesky": (300, 300),  # 300 graphemes and 3,000 UTF-8 bytes (bluesky_length counts both)
    "webhook": (1_000_000, 1_000_000),  # a JSON document: never split
}


NEEDS_IMAGE = frozenset({"instagram"})  # no text-only posts there: skipped, with the reason


def measure_for(channel: str) -> Measure:
    """How a channel counts a post: X weighs characters, Mastodon counts URLs as 23, others
    count characters."""
    if channel == "mastodon":  # imported here: only planning a Mastodon post loads its client
        from bot.channels.mastodon.adapter import mastodon_length

        return mastodon_length
    if channel == "linkedin":  # little text: its escapes count
        from bot.channels.linkedin.adapter import linkedin_length

        return linkedin_length
    if channel == "bluesky":  # imported here: loads regex, never the atproto library
        from bot.channels.bluesky.adapter import bluesky_length

        return bluesky_length
    return weighted_length if channel == "x" else len


def thread(
    *,
    key_prefix: str,
    channel: str,
    destination: str,
    text: str,
    media: tuple[dict[str, Any], ...],
    post: dict[str, Any],
    pledgemaker_id: str | None = None,
    limit: int | None = None,
) -> list[PlannedMessage]:
    """The messages of one post on one channel: media and the post record on the first part.
    ``limit``: the channel's configured length, if not the default (``LIMITS``)."""
    alone, with_media = LIMITS.get(channel, (4096, 1024))
    if limit is not None:  # a caption's own, shorter limit still applies
        alone, with_media = limit, (limit if with_media == alone else min(with_media, limit))
    parts = split_thread(text, limit=with_media if media else alone, measure=measure_for(channel))
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
                parse_mode="HTML" if channel == "telegram" else None,
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
    media: tuple[dict[str, Any], ...],
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
        if channel in NEEDS_IMAGE and not media:
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
        if channel in NEEDS_IMAGE and len(parts) > 1:  # later parts would have no image
            skipped[f"{channel}: too long for one caption"] = 1
            continue
        messages += parts
    return Plan(messages, skipped)
