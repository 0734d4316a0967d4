"""Buttons pressed (or, on a channel without buttons, their option typed): a prompt's kind of
answer or snooze, a consent answer, an introduction answer."""

from __future__ import annotations

from bot.campaigns.followup import BUTTON_KINDS, BUTTON_PREFIX
from bot.campaigns.reminders import cancel_reminders
from bot.community import consent, introductions
from bot.core import choices
from bot.core.models import JourneyUpdate
from bot.inbound import commands
from bot.inbound.turn import Turn


def button(turn: Turn, data: str | None = None, message_id: str | None = None) -> str:
    """A button pressed (or, on a channel without buttons, its option typed: ``data`` and
    the id of the message it was under)."""
    data = data if data is not None else turn.event.button_data or ""
    message_id = message_id if message_id is not None else turn.event.message_id
    if data.startswith(consent.BUTTON_PREFIX):
        return consent_answer(turn, data.removeprefix(consent.BUTTON_PREFIX))
    if data.startswith(introductions.BUTTON_PREFIX):
        return introduction_answer(turn, data.removeprefix(introductions.BUTTON_PREFIX))
    kind = data.removeprefix(BUTTON_PREFIX)
    if not data.startswith(BUTTON_PREFIX) or kind not in BUTTON_KINDS:
        return f"ignored: unknown button {data!r}"
    if turn.contact is None or turn.contact.status != "active":
        return "ignored: button from an unbound or stopped chat"
    prompt = turn.prompt_for(message_id)
    if prompt is None:
        return "ignored: button on a message that is not a prompt"
    if kind == "snooze":
        prompt.state, prompt.closed_at = "snoozed", turn.now
        cancel_reminders(turn.session, prompt)
        turn.say("snoozed")
        return f"prompt {prompt.id}: snoozed"
    prompt.requested_kind = kind
    if prompt.state == "snoozed":
        prompt.state = "open"
    turn.say(f"ask_{kind}")
    return f"prompt {prompt.id}: {kind} requested"


def choice(turn: Turn) -> str | None:
    """A short text that picks one of the options under the message it answers — the one
    it quotes, else the last one we sent this chat — handled as that button; None if it
    picks none (it is then an ordinary message)."""
    message = turn.answered_message()
    if message is None or not message.buttons:
        return None
    data = choices.match(turn.event.text, message.buttons)
    if data is None:
        return None
    ours = str(message.id) if turn.names_outbox_id else message.external_id
    return "typed " + button(turn, data, ours or "")


def introduction_answer(turn: Turn, data: str) -> str:
    said, _, number = data.partition(":")
    if said not in ("yes", "no") or not number.isdigit():
        return f"ignored: introduction button {data!r}"
    if turn.contact is None or turn.contact.status != "active":
        return "ignored: button from an unbound or stopped chat"
    return introductions.answer(
        turn.session, int(number), turn.contact.pledgemaker_id, said, turn.conv.templates
    )


def consent_answer(turn: Turn, data: str) -> str:
    """``yes:<update>:<version>`` / ``no:…`` under a consent question (``version``: the
    hash of the text it showed; absent on buttons sent before questions carried it), or
    ``withdraw:<update>`` under the confirmation."""
    answer, _, rest = data.partition(":")
    update_id, _, version = rest.partition(":")
    update = (
        # Locked: an edit committed meanwhile is seen, one still running waits for this.
        turn.session.get(
            JourneyUpdate, int(update_id), with_for_update=True, populate_existing=True
        )
        if update_id.isdigit()
        else None
    )
    if answer not in ("yes", "no", "withdraw") or update is None or turn.contact is None:
        return f"ignored: consent button {data!r}"
    if update.pledgemaker_id != turn.contact.pledgemaker_id:
        return "ignored: consent for another pledgemaker's update"
    if answer == "withdraw":  # the button under the confirmation: this update only
        return commands.withdraw(turn, only=update.id)
    if not consent.answers_current_text(update, version):
        # They answered about words that are no longer the ones to publish: nothing is
        # recorded, and the text as it reads now is what they are asked about.
        turn.say("consent_text_changed")
        edited = update.edited_text is not None
        consent.ask(turn.session, update, turn.conv.templates, edited=edited)
        return f"update {update.id}: consent {answer} refused, its text has changed since"
    record = consent.record(turn.session, update, answer, turn.contact)
    if answer == "no":
        turn.say("consent_declined")
        return f"update {update.id}: consent no"
    language = turn.language()
    withdraw_button = {
        "text": turn.conv.templates.phrase("withdraw_button", language),
        "data": f"{consent.BUTTON_PREFIX}withdraw:{update.id}",
    }
    turn.say("consent_given", credit=record.credit, buttons=[[withdraw_button]])
    return f"update {update.id}: consent yes"
