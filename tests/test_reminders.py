"""Reminders end to end, on a frozen clock: sent ``after`` a while without an answer, at most
``times`` times, each saying which one it is in the pledgemaker's language; an answer stops them."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import time_machine
from sqlalchemy import select

from bot.campaigns.followup import FollowupCampaign
from bot.campaigns.reminders import remind
from bot.channels.registry import plain_text_channels
from bot.core.errors import ScheduleError
from bot.core.models import OutboxMessage, Prompt, utcnow
from bot.delivery import pauses
from bot.scheduling import runs
from bot.scheduling.schedules import load_schedules
from bot.text.templates import Templates
from tests.auxil.clocked import live_at
from tests.auxil.live import Live
from tests.conftest import ROOT

GH = "gh-min-labour"  # English, Africa/Accra (UTC+0)
CI = "ci-min-emploi"  # French, Africa/Abidjan (UTC+0)
PE = "pe-cacao-coop"  # Spanish, America/Lima (UTC-5)
# A Tuesday, 09:00 UTC: within act-cadence's send hours (08:00-20:00) in Accra, Abidjan and
# Lima (04:00 there: reminders to Lima wait for 08:00, so the Spanish test starts later).
NOW = datetime(2026, 6, 2, 9, 0, tzinfo=UTC)
TTL = timedelta(days=7)  # the default conversation.prompt_ttl_days
STEP = timedelta(hours=1)


@pytest.fixture
async def clock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[Live, time_machine.Coordinates]]:
    async with live_at(NOW, tmp_path, monkeypatch) as running:
        yield running


def act_cadence(live: Live, **reminders: object) -> FollowupCampaign:
    """The sample act-cadence campaign (quiet hours, blackout dates and all), its reminders
    changed as given."""
    spec = live.app.schedules().get("act-cadence").spec
    assert isinstance(spec, FollowupCampaign) and spec.reminders is not None
    changed = spec.reminders.model_copy(update=reminders)
    return spec.model_copy(update={"reminders": changed})


async def prompt(live: Live, spec: FollowupCampaign, pledgemaker_id: str) -> datetime:
    """The campaign's prompt to one pledgemaker, sent now; returns when it went out."""
    runs.fire(
        live.app.db, live.app.templates, spec, utcnow(), trigger="manual", only=pledgemaker_id
    )
    await live.settle()
    sent = live.scalar(
        select(OutboxMessage.sent_at).where(OutboxMessage.idempotency_key.startswith("followup:"))
    )
    assert sent is not None
    return sent


async def sweep_until(
    live: Live, spec: FollowupCampaign, traveller: time_machine.Coordinates, until: datetime
) -> list[int]:
    """The scheduler's reminder pass, hour by hour up to ``until``; what each pass queued.
    Back to back, the loop left alone unless a pass queued one (``tests.auxil.clocked``)."""
    queued = []
    while utcnow() < until:
        traveller.shift(STEP)
        queued.append(remind(live.app.db, live.app.templates, spec, utcnow(), TTL))
        if queued[-1]:
            await live.settle()
    return queued


def reminders(live: Live, chat: int) -> list[str]:
    """What the chat received after the prompt (the link confirmation and the prompt skipped)."""
    return live.texts(chat)[2:]


async def test_reminders_escalate_in_french_and_the_last_says_it_is_the_last(
    clock: tuple[Live, time_machine.Coordinates],
) -> None:
    live, traveller = clock
    spec = act_cadence(live, after="2d", times=3)  # at 2, 4 and 6 days: within the 7-day TTL
    await live.bind(CI, 811)
    sent = await prompt(live, spec, CI)
    assert live.texts(811)[1].startswith("<b>Agir</b>"), "the prompt, in French"

    queued = await sweep_until(live, spec, traveller, sent + timedelta(days=8))
    # One reminder in the hour after each 2-day mark, none before, none after the third.
    assert sum(queued) == 3 and set(queued) <= {0, 1}
    first, second, third = reminders(live, 811)
    assert first.startswith("Petit rappel, Ministère de l&#39;Emploi")
    assert second.startswith("Deuxième rappel, Ministère de l&#39;Emploi")
    assert "pas encore eu de vos nouvelles" in second
    assert third.startswith("Troisième et dernier rappel, Ministère de l&#39;Emploi")
    assert "nous attendrons le prochain point d'étape" in third
    assert "dernier rappel" not in first + second and "prochain point" not in first + second
    keys = live.all(
        select(OutboxMessage.idempotency_key)
        .where(OutboxMessage.idempotency_key.startswith("reminder:"))
        .order_by(OutboxMessage.sent_at)
    )
    prompt_id = live.scalar(select(Prompt.id))
    assert keys == [f"reminder:{prompt_id}:{n}" for n in (1, 2, 3)], "keys as before"
    at = live.all(
        select(OutboxMessage.sent_at)
        .where(OutboxMessage.idempotency_key.startswith("reminder:"))
        .order_by(OutboxMessage.sent_at)
    )
    for number, when in enumerate(at, start=1):
        assert timedelta(0) <= when - (sent + number * timedelta(days=2)) <= STEP


async def test_two_reminders_in_spanish_the_second_is_the_last(
    clock: tuple[Live, time_machine.Coordinates],
) -> None:
    live, traveller = clock
    traveller.move_to(NOW + timedelta(hours=6))  # 10:00 in Lima
    spec = act_cadence(live, after="3d", times=2)
    await live.bind(PE, 812)
    sent = await prompt(live, spec, PE)
    queued = await sweep_until(live, spec, traveller, sent + timedelta(days=7))
    assert sum(queued) == 2
    first, second = reminders(live, 812)
    assert first.startswith("Un breve recordatorio, Unión de Cooperativas Cacaoteras")
    assert "último" not in first.split(":")[0]
    assert second.startswith("Un segundo y último recordatorio, Unión de Cooperativas")
    assert second.endswith("no volveremos a escribirle hasta el próximo seguimiento.")


async def test_english_reminders_once_per_step_twice_at_most(
    clock: tuple[Live, time_machine.Coordinates],
) -> None:
    live, traveller = clock
    spec = act_cadence(live)  # the sample: after 3d, twice
    await live.bind(GH, 801)
    sent = await prompt(live, spec, GH)
    traveller.move_to(sent + timedelta(days=2))
    assert remind(live.app.db, live.app.templates, spec, utcnow(), TTL) == 0, "not yet"
    traveller.move_to(sent + timedelta(days=3, minutes=1))
    assert remind(live.app.db, live.app.templates, spec, utcnow(), TTL) == 1
    assert remind(live.app.db, live.app.templates, spec, utcnow(), TTL) == 0, "once per step"
    await live.settle()
    traveller.move_to(sent + timedelta(days=6, minutes=1))
    assert remind(live.app.db, live.app.templates, spec, utcnow(), TTL) == 1
    await live.settle()
    traveller.move_to(sent + timedelta(days=6, hours=20))
    assert remind(live.app.db, live.app.templates, spec, utcnow(), TTL) == 0, "then stop"
    first, second = reminders(live, 801)
    assert first.startswith("A gentle reminder, Ministry of Employment")
    assert "last reminder" not in first and "next check-in" not in first
    assert second.startswith("A second and last reminder, Ministry of Employment")
    assert "we will wait for the next check-in" in second


async def test_an_answer_cancels_queued_reminders_and_stops_new_ones(
    clock: tuple[Live, time_machine.Coordinates],
) -> None:
    live, traveller = clock
    spec = act_cadence(live)
    await live.bind(GH, 802)
    sent = await prompt(live, spec, GH)
    pauses.set_paused(live.app.db, "act-cadence", True)  # the reminder waits in the outbox
    traveller.move_to(sent + timedelta(days=3, minutes=1))
    assert remind(live.app.db, live.app.templates, spec, utcnow(), TTL) == 1
    live.sandbox.push_message(802, "We trained 40 inspectors this month.")
    await live.settle()
    pauses.set_paused(live.app.db, "act-cadence", False)
    await live.settle()
    assert reminders(live, 802)[0].startswith("Thank you"), "no reminder, only the thanks"
    assert not any("reminder" in text for text in live.texts(802))
    assert live.scalar(select(Prompt.state)) == "answered"
    reminder = live.scalar(
        select(OutboxMessage).where(OutboxMessage.idempotency_key.startswith("reminder:"))
    )
    assert (reminder.state, reminder.last_error) == ("cancelled", "prompt answered")
    traveller.move_to(sent + timedelta(days=6, minutes=1))
    assert remind(live.app.db, live.app.templates, spec, utcnow(), TTL) == 0


@pytest.mark.parametrize(
    ("wrote", "instead_of"),
    [
        ("y {{ reminder.ultimo }}", "y último"),  # only the last reminder says it
        ("Responda {{ reminder.ultimo }}", "Responda"),  # every reminder says it
    ],
)
def test_schedules_check_renders_the_first_and_the_last_reminder(
    tmp_path: Path, wrote: str, instead_of: str
) -> None:
    """A mistake in any reminder is caught by ``schedules check``, and reported once."""
    templates = tmp_path / "templates"
    shutil.copytree(ROOT / "templates", templates)
    spanish = templates / "followup" / "reminder.es.j2"
    source = spanish.read_text(encoding="utf-8")
    assert source.count(instead_of) == 1
    spanish.write_text(source.replace(instead_of, wrote), encoding="utf-8")
    folder = tmp_path / "schedules"
    folder.mkdir()
    (folder / "act.toml").write_text(
        '[[campaign]]\nid = "act-cadence"\nkind = "followup"\npillar = "act"\n'
        'cron = "0 10 1 * *"\nreminders = { after = "3d", times = 2 }\n',
        encoding="utf-8",
    )
    with pytest.raises(ScheduleError) as caught:
        load_schedules([folder], Templates(templates, plain_text=plain_text_channels()))
    [problem] = [str(p) for p in caught.value.problems]
    assert problem.startswith(f"{folder / 'act.toml'}:6: template 'followup/reminder' (es): ")
    assert problem.endswith("undefined variable reminder.ultimo")
