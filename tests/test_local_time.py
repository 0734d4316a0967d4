"""Recipient-local slots across DST changes, quiet hours and blackout dates (time frozen)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from sqlalchemy import select

from bot.campaigns.followup import FollowupCampaign
from bot.core.localtime import QuietHours, SendWindow, to_utc
from bot.core.models import Contact, OutboxMessage, Pledgemaker, utcnow
from bot.scheduling import sweeper
from bot.service.app import App
from tests.auxil.specs import followup

ZONES = {  # DST changes inside 2026-03-05 … 2026-04-08, Lima as the control
    "Pacific/Auckland": date(2026, 4, 5),  # clocks go back 03:00 → 02:00
    "Europe/London": date(2026, 3, 29),  # forward 01:00 → 02:00
    "America/Santiago": date(2026, 4, 5),  # back at midnight
    "America/Havana": date(2026, 3, 8),  # forward at midnight: 00:00 does not exist
    "America/Lima": None,
}
BLACKOUT = date(2026, 3, 20)


def daily(**extra: object) -> FollowupCampaign:
    return followup(
        "daily",
        relative_to="pledge_date",
        every="1d",
        first_after="1d",
        at="10:00",
        quiet_hours="20:00-08:00",
        blackout=[BLACKOUT],
        **extra,
    )


def add_people(app: App, zones: list[str]) -> None:
    with app.db.session() as session:
        template = session.get(Pledgemaker, "gh-min-labour")
        assert template is not None
        fields = {c.key: getattr(template, c.key) for c in Pledgemaker.__table__.columns}
        for index, zone in enumerate(zones):
            session.add(
                Pledgemaker(
                    **{
                        **fields,
                        "id": f"tz-{index}",
                        "timezone": zone,
                        "sector": "academia",
                        "pledge_date": date(2026, 3, 1),
                    }
                )
            )
        session.flush()
        for index, _ in enumerate(zones):
            session.add(
                Contact(
                    pledgemaker_id=f"tz-{index}",
                    channel="telegram",
                    address=str(900 + index),
                    bound_at=utcnow(),
                )
            )


def test_ten_oclock_local_across_dst_never_quiet_never_blackout(app: App) -> None:
    zones = list(ZONES)
    add_people(app, zones)
    spec = daily(audience={"sector": ["academia"]})
    start, end = datetime(2026, 3, 5, tzinfo=UTC), datetime(2026, 4, 8, tzinfo=UTC)
    moment = start
    with app.db.session() as session:
        sweeper.ensure_cadences(session, spec, moment)
    while moment < end:
        with time_machine.travel(moment, tick=False):
            sweeper.sweep(app.db, app.templates, spec, moment)
        moment += timedelta(minutes=30)
    with app.db.session() as session:
        rows = session.execute(select(OutboxMessage.recipient, OutboxMessage.next_attempt_at))
        planned: dict[str, list[datetime]] = {}
        for recipient, at in rows:
            planned.setdefault(zones[int(recipient) - 900], []).append(at)
    for zone, change in ZONES.items():
        local = [at.astimezone(ZoneInfo(zone)) for at in sorted(planned[zone])]
        assert all(t.time() == time(10, 0) for t in local), (zone, local)
        days = [t.date() for t in local]
        assert BLACKOUT not in days
        assert len(days) == len(set(days)), f"{zone}: two prompts on one day"
        candidates = (date(2026, 3, 3) + timedelta(days=n) for n in range(40))
        expected = {d for d in candidates if start < to_utc(d, time(10), zone) < end} - {BLACKOUT}
        assert set(days) == expected, zone
        if change is not None:
            assert change in days and change - timedelta(days=1) in days
            offsets = {t.utcoffset() for t in local}
            assert len(offsets) == 2, f"{zone}: the slots span its DST change"


@pytest.mark.parametrize(
    ("zone", "day", "at", "expected_utc"),
    [
        ("America/Havana", date(2026, 3, 8), time(0, 0), datetime(2026, 3, 8, 5, 0, tzinfo=UTC)),
        ("America/Santiago", date(2026, 9, 6), time(0, 0), datetime(2026, 9, 6, 4, tzinfo=UTC)),
        ("Europe/London", date(2026, 3, 29), time(1, 30), datetime(2026, 3, 29, 1, tzinfo=UTC)),
        # A repeated hour takes its first occurrence (still summer time).
        (
            "Europe/London",
            date(2026, 10, 25),
            time(1, 30),
            datetime(2026, 10, 25, 0, 30, tzinfo=UTC),
        ),
        (
            "Pacific/Auckland",
            date(2026, 4, 5),
            time(2, 30),
            datetime(2026, 4, 4, 13, 30, tzinfo=UTC),
        ),
    ],
)
def test_missing_times_move_forward_repeated_times_take_the_first(
    zone: str, day: date, at: time, expected_utc: datetime
) -> None:
    assert to_utc(day, at, zone) == expected_utc


def test_send_window_pushes_to_the_next_allowed_minute() -> None:
    window = SendWindow(
        "Europe/London", (QuietHours.parse("20:00-08:00"),), frozenset({date(2026, 12, 25)})
    )
    evening = datetime(2026, 12, 24, 21, 0, tzinfo=UTC)
    assert window.next_allowed(evening) == datetime(2026, 12, 26, 8, 0, tzinfo=UTC)
    noon = datetime(2026, 12, 23, 12, 0, tzinfo=UTC)
    assert window.next_allowed(noon) == noon
    assert QuietHours.parse("22:00-06:00").overlaps(QuietHours.parse("05:00-07:00"))
    assert not QuietHours.parse("22:00-06:00").overlaps(QuietHours.parse("12:00-13:00"))


def test_an_every_year_blackout_day_holds_in_any_year_and_survives_the_outbox_record() -> None:
    window = SendWindow("Pacific/Auckland", (), frozenset({"12-25", date(2027, 4, 2)}))
    stored = SendWindow.from_record(window.to_record())  # as the outbox row keeps it
    for year in (2026, 2028, 2031):
        christmas_morning = datetime(year, 12, 24, 20, 0, tzinfo=UTC)  # 25th, 09:00 in Auckland
        assert not stored.allows(christmas_morning)
        assert stored.next_allowed(christmas_morning) == datetime(year, 12, 25, 11, 0, tzinfo=UTC)
    assert not stored.allows(datetime(2027, 4, 2, 0, 0, tzinfo=UTC))
    assert stored.allows(datetime(2028, 4, 2, 0, 0, tzinfo=UTC)), "a dated blackout is one day"


@pytest.mark.parametrize("bad", ["02-30", "13-01", "2026-12-25"])
def test_a_blackout_day_that_is_not_a_day_is_refused_with_its_form(bad: str) -> None:
    with pytest.raises(ValueError, match='write 2026-12-25 \\(unquoted\\) for one day or "12-25"'):
        followup("yearly", relative_to="pledge_date", every="1d", blackout=[bad])
