"""`schedules check` on the timing fields: cadences, quiet hours, blackout dates, active window."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.test_schedules_check import campaign, problems_of


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param(
            'pillar = "act"\ncron = "0 10 * * *"\nrelative_to = "pledge_date"\nevery = "30d"\n',
            "x.toml:8: every: use one of cron, interval, once or every + relative_to "
            "(found cron and every)",
            id="cron-and-cadence",
        ),
        pytest.param(
            'pillar = "act"\nevery = "30d"\n',
            "x.toml:2: relative_to: a cadence needs both every and relative_to",
            id="every-alone",
        ),
        pytest.param(
            'pillar = "act"\nrelative_to = "last_replies"\nevery = "30d"\n',
            "x.toml:6: relative_to must be one of pledge_date or last_reply (got 'last_replies')",
            id="relative-to-typo",
        ),
        pytest.param(
            'pillar = "act"\nrelative_to = "pledge_date"\nevery = "36h"\n',
            "x.toml:7: every: use whole days, like '30d' (got '36h')",
            id="every-not-days",
        ),
        pytest.param(
            'pillar = "act"\nat = "25:00"\n',
            "x.toml:6: at: not a time of day like '10:00' (got '25:00')",
            id="bad-at",
        ),
        pytest.param(
            'pillar = "act"\nquiet_hours = ["20:00-08:00", "07:00-09:00"]\n',
            "x.toml:6: quiet_hours: quiet hours '20:00-08:00' and the next overlap; merge them",
            id="overlapping-quiet-hours",
        ),
        pytest.param(
            'pillar = "act"\nquiet_hours = "09:00-11:00"\n',
            "x.toml:2: at: 10:00 falls inside the quiet hours",
            id="at-inside-quiet-hours",
        ),
        pytest.param(
            'pillar = "act"\nactive = { from = 2027-01-01, until = 2026-01-01 }\n',
            "x.toml:6: active: 'from' is after 'until'",
            id="active-backwards",
        ),
        pytest.param(
            'pillar = "act"\nactive = { from = 2026-01-01, untill = 2027-01-01 }\n',
            "x.toml:6: unknown field 'untill' (did you mean 'until'?)",
            id="active-key-typo",
        ),
        pytest.param(
            'pillar = "act"\nblackout = [2026-12-25, "boxing day"]\n',
            "x.toml:6: blackout: 'boxing day' is not a date; write 2026-12-25 (unquoted) for one day"
            ' or "12-25" for that day every year',
            id="blackout-not-a-date",
        ),
    ],
)
def test_timing_errors_name_file_and_line(tmp_path: Path, body: str, expected: str) -> None:
    assert problems_of(tmp_path, x=campaign(body)) == [expected]


def test_a_complete_cadence_campaign_is_valid(tmp_path: Path) -> None:
    from bot.scheduling.schedules import load_schedules
    from tests.test_schedules_check import TEMPLATES

    (tmp_path / "ok.toml").write_text(
        campaign(
            'pillar = "act"\nrelative_to = "last_reply"\nfirst_after = "14d"\nevery = "30d"\n'
            'at = "10:00"\nquiet_hours = "20:00-08:00"\nblackout = [2026-12-25]\n'
            "active = { from = 2026-01-01, until = 2027-06-30 }\n"
            'skip_if_updated_within = "21d"\ngrace = "6h"\n'
        ),
        encoding="utf-8",
    )
    spec = load_schedules([tmp_path], TEMPLATES).get("c-one").spec
    assert spec.every == "30d" and spec.relative_to == "last_reply"
    assert spec.send_window("Asia/Kathmandu").zone == "Asia/Kathmandu"


def test_one_date_and_interval_forms_fire_when_written(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from bot.scheduling import runs
    from bot.scheduling.schedules import load_schedules
    from tests.test_schedules_check import TEMPLATES

    (tmp_path / "ok.toml").write_text(
        campaign('pillar = "act"\nonce = 2026-06-12T10:00:00\ntimezone = "Asia/Kathmandu"\n')
        + '\n[[campaign]]\nid = "weekly"\nkind = "followup"\npillar = "act"\ninterval = "7d"\n'
        'timezone = "Europe/Paris"\nactive = { from = 2026-06-01 }\n',
        encoding="utf-8",
    )
    found = load_schedules([tmp_path], TEMPLATES)
    once = found.get("c-one").spec.trigger()
    assert once is not None
    assert runs.fire_times(
        once, after=datetime(2026, 1, 1, tzinfo=UTC), until=datetime(2027, 1, 1, tzinfo=UTC)
    ) == [
        datetime(2026, 6, 12, 4, 15, tzinfo=UTC)  # 10:00 in Kathmandu (UTC+05:45)
    ]
    weekly = found.get("weekly").spec.trigger()
    assert weekly is not None
    assert runs.fire_times(
        weekly, after=datetime(2026, 6, 2, tzinfo=UTC), until=datetime(2026, 6, 20, tzinfo=UTC)
    ) == [
        datetime(2026, 6, 7, 22, 0, tzinfo=UTC),  # midnight in Paris, every 7 days from June 1
        datetime(2026, 6, 14, 22, 0, tzinfo=UTC),
    ]


def test_only_one_way_of_saying_when(tmp_path: Path) -> None:
    assert problems_of(
        tmp_path, x=campaign('pillar = "act"\ncron = "0 10 * * *"\ninterval = "7d"\n')
    ) == [
        "x.toml:7: interval: use one of cron, interval, once or every + relative_to "
        "(found cron and interval)"
    ]
