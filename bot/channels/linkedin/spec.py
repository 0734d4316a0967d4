"""LinkedIn: posts on the campaign's organization page."""

from bot.channels.spec import ChannelSpec, HandleShape


def link(destination: str, external_id: str) -> str | None:
    if not external_id.startswith("urn:li:"):
        return None
    return f"https://www.linkedin.com/feed/update/{external_id}/"


SPEC = ChannelSpec(
    name="linkedin",
    adapter="bot.channels.linkedin.adapter:LinkedInChannel",
    destination="timeline",
    text_limit=3000,  # commentary, its little-text escapes counted
    caption_limit=3000,
    markup="plain",
    measure="bot.channels.linkedin.text:linkedin_length",
    handle="linkedin_organization_id",  # mentioned as @[Name](urn:li:organization:N)
    handle_shape=HandleShape(
        r"[1-9][0-9]{0,19}", "must be the number of their LinkedIn page (urn:li:organization:N)"
    ),
    link=link,
)
