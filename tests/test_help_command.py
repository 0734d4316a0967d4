"""/help in a pledgemaker's chat, end to end (python-telegram-bot over HTTP to the sandbox): the
help phrase in their language, listing the commands — and nothing else: not an answer."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from bot.core.models import InboundEvent, JourneyUpdate, OutboxMessage, Prompt, Reply
from tests.auxil.live import Live

COMMANDS = ["/withdraw", "/stop", "/start", "/language"]  # one a line, after the intro


@pytest.mark.parametrize(
    ("pledgemaker_id", "opening"),
    [
        ("gh-min-labour", "This bot follows up on your action pledge against child labour"),
        ("ci-min-emploi", "Ce bot suit votre engagement contre le travail des enfants"),
        ("pe-cacao-coop", "Este bot da seguimiento a su compromiso contra el trabajo infantil"),
    ],
)
async def test_help_lists_the_commands_in_their_language_and_answers_no_prompt(
    live: Live, pledgemaker_id: str, opening: str
) -> None:
    await live.bind(pledgemaker_id, 901)
    await live.fire("act-checkin", to=pledgemaker_id)
    before = live.sandbox.sent_messages(901)
    sent_before = live.count(OutboxMessage)

    live.sandbox.push_message(901, "/help")
    await live.settle()

    after = live.sandbox.sent_messages(901)
    assert len(after) == len(before) + 1, "one message back: the help"
    help_message = after[-1]
    assert help_message["text"].startswith(opening)
    lines = help_message["text"].splitlines()
    assert [line.split()[0].rstrip(":") for line in lines[1:]] == COMMANDS
    assert "/language en|fr|es" in help_message["text"]
    assert help_message.get("reply_markup") is None
    assert live.count(OutboxMessage) == sent_before + 1
    assert live.all(select(InboundEvent.outcome).order_by(InboundEvent.id))[-1] == "help (help)"
    assert live.count(Reply) == 0, "a command is not a reply"
    assert live.count(JourneyUpdate) == 0
    assert live.scalar(select(Prompt.state)) == "open", "the prompt still awaits its answer"

    live.sandbox.push_message(901, "We opened two more inspection offices.")
    await live.settle()
    assert live.scalar(select(Prompt.state)) == "answered", "the next message answers it"
    assert live.scalar(select(JourneyUpdate.text)) == "We opened two more inspection offices."
