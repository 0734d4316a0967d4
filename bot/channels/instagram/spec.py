"""Instagram: image posts with a caption on the campaign's professional account."""

from bot.channels.spec import ChannelSpec

SPEC = ChannelSpec(
    name="instagram",
    adapter="bot.channels.instagram.adapter:InstagramChannel",
    destination="timeline",
    text_limit=2_200,  # a caption: a post is never text alone
    caption_limit=2_200,
    markup="plain",
    image_required=True,
    can_delete=False,  # the Graph API cannot delete a published media object
    public_media=True,  # Instagram downloads the image from a public URL
    # A post's address needs a permalink look-up: the id alone makes none.
)
