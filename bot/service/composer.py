"""A post written by the comms team (news, an event, a thank-you), scheduled on the campaign's
channels like an amplify post: split to each network's limit into a thread, with an image and
its alt text, through the outbox. Cancelled from the outbox page; shown on the calendar."""

from __future__ import annotations

import html
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import update
from sqlalchemy.orm import Session

from bot.campaigns import posts
from bot.campaigns.base import post_limit
from bot.channels import registry
from bot.channels.base import Media
from bot.core.models import OutboxMessage, utcnow
from bot.delivery import outbox
from bot.delivery.messages import PlannedMessage
from bot.inbound.inbox import image_suffix

CAMPAIGN = "manual"  # the campaign id of posts written on the dashboard
LONGEST_AHEAD = timedelta(days=366)
LATE_BY = timedelta(minutes=5)  # a time a little in the past (the form took a while): now


@dataclass(frozen=True)
class Draft:
    text: str
    channels: tuple[str, ...]
    at: datetime  # aware; when it goes out
    image: bytes | None = None
    alt_text: str = ""


def check(draft: Draft, destinations: dict[str, str], max_image_bytes: int) -> list[str]:
    """Every problem with the draft, in words; empty when it can be scheduled."""
    problems = []
    if not draft.text.strip():
        problems.append("Write the post's text.")
    if not draft.channels:
        problems.append("Choose at least one channel.")
    problems += [
        f"{channel} has no destination for posts (set it in the config)."
        for channel in draft.channels
        if channel not in destinations
    ]
    now = utcnow()
    if draft.at < now - LATE_BY:
        problems.append("That time has passed; choose a time to come (or leave it empty: now).")
    elif draft.at > now + LONGEST_AHEAD:
        problems.append("That is more than a year ahead.")
    if draft.image is not None:
        if image_suffix(draft.image) is None:
            problems.append("The image must be a JPEG, PNG, GIF or WebP file.")
        elif len(draft.image) > max_image_bytes:
            problems.append(f"The image is over {max_image_bytes // 1_000_000} MB.")
        if not draft.alt_text.strip():
            problems.append("Describe the image (alt text) for people who cannot see it.")
    return problems


def parts(
    draft: Draft,
    destinations: dict[str, str],
    key_prefix: str = "",
    media: tuple[Media, ...] | None = None,
) -> dict[str, list[PlannedMessage]]:
    """What each channel would publish: the thread's parts, as the planners split them."""
    found = {}
    if media is None:  # a preview: no file yet, but a caption's limit applies
        media = (Media("", draft.alt_text.strip()),) if draft.image else ()
    for channel in draft.channels:
        if channel not in destinations:
            continue
        # HTML posts (Telegram's): the comms team's words are shown as written, not as markup.
        text = (
            html.escape(draft.text.strip(), quote=False)
            if registry.spec(channel).markup == "html"
            else (draft.text.strip())
        )
        found[channel] = posts.thread(
            key_prefix=key_prefix or f"{CAMPAIGN}:{secrets.token_hex(8)}",
            channel=channel,
            destination=destinations[channel],
            text=text,
            media=media,
            post={"pillar": None},
            limit=post_limit(destinations, channel),
        )
    return found


def schedule(
    session: Session,
    draft: Draft,
    destinations: dict[str, str],
    media_dir: Path,
    nonce: str,
) -> list[int]:
    """Queue the post on each channel for ``draft.at``; returns the first parts' outbox ids.
    ``nonce`` (the form's) makes a double submit queue it once."""
    media: tuple[Media, ...] = ()
    if draft.image is not None:
        suffix = image_suffix(draft.image) or ".bin"
        path = media_dir / "posts" / f"{secrets.token_urlsafe(16)}{suffix}"
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(path.suffix + ".part")
        temporary.write_bytes(draft.image)
        temporary.replace(path)
        media = (Media(str(path), draft.alt_text.strip()),)
    firsts = []
    for planned in parts(draft, destinations, f"{CAMPAIGN}:{nonce}", media).values():
        if outbox.enqueue(session, planned, campaign_id=CAMPAIGN):
            firsts.append(planned[0].idempotency_key)
    if not firsts:
        return []
    ids = outbox.ids_by_key(session, firsts)
    at = max(draft.at, utcnow())
    session.execute(  # the first part waits for its time; the others follow it
        update(OutboxMessage).where(OutboxMessage.id.in_(ids.values())).values(next_attempt_at=at)
    )
    return sorted(ids.values())
