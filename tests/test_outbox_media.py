"""Media in the outbox: a message's images travel as ``Media`` and are stored as JSON that rows
queued before ``Media`` existed share — such a row (the journey update's photo dicts as they
were, file ids and all; an image without alt text) is still sent, with its images."""

from __future__ import annotations

from sqlalchemy import select, update

from bot.channels.base import Media, OutboundMessage, Receipt
from bot.core.models import OutboxMessage
from bot.delivery import outbox
from bot.delivery.dispatcher import Dispatcher
from bot.delivery.messages import PlannedMessage
from bot.service.app import App


class RecordingChannel:
    name = "telegram"

    def __init__(self) -> None:
        self.sent: list[OutboundMessage] = []

    async def start(self) -> None: ...

    async def aclose(self) -> None: ...

    async def send(self, message: OutboundMessage) -> Receipt:
        self.sent.append(message)
        return Receipt(external_id=f"m{message.id}")


async def send_all(app: App) -> list[OutboundMessage]:
    channel = RecordingChannel()
    dispatcher = Dispatcher(app.db, {"telegram": channel}, app.config.dispatcher)  # type: ignore[dict-item]
    assert await dispatcher.dispatch_once() == 1
    return channel.sent


async def test_a_row_queued_with_media_dicts_before_media_was_typed_is_sent(app: App) -> None:
    old_shape = [
        {
            "type": "photo",
            "file_id": "AgACAgQAAxkBAAIB",
            "file_unique_id": "AQADu7Ex",
            "path": "/srv/media/telegram/AQADu7Ex.jpg",
            "alt_text": "Children back in class",
        },
        {"path": "/srv/media/posts/chart.png"},  # no alt text key at all
    ]
    with app.db.session() as session:
        outbox.enqueue(session, [PlannedMessage("old:1", "telegram", "@news", "Back to school.")])
        session.execute(update(OutboxMessage).values(media=old_shape))
    [sent] = await send_all(app)
    assert sent.media == (
        Media("/srv/media/telegram/AQADu7Ex.jpg", "Children back in class"),
        Media("/srv/media/posts/chart.png", ""),
    )
    with app.db.session() as session:
        assert session.scalar(select(OutboxMessage.state)) == "sent"


async def test_media_is_stored_as_path_and_alt_text_and_comes_back_as_it_went(app: App) -> None:
    image = Media("/srv/media/posts/class.png", "Twenty children in a classroom")
    with app.db.session() as session:
        outbox.enqueue(
            session, [PlannedMessage("new:1", "telegram", "@news", "Hello.", media=(image,))]
        )
    with app.db.session() as session:
        stored = session.scalar(select(OutboxMessage.media))
    assert stored == [{"path": image.path, "alt_text": image.alt_text}]
    [sent] = await send_all(app)
    assert sent.media == (image,)
