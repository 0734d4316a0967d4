"""Does a cadence sweep cost follow the number due, not the audience size?

The same 100 due slots are swept in an audience of 1,000 and of 100,000 pledgemakers (SQLite,
one process). Printed: the sweep times and their ratio — near 1.0 means the audience size does
not matter. For scale, also the time to give 100,000 pledgemakers their first slot once.

    .venv/bin/python bench/sweep.py [--due 100]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert

from bot import sweeper
from bot.db import Database
from bot.models import Cadence, Contact, Pledgemaker
from bot.schedules import FollowupCampaign
from bot.templates import Templates

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
SPEC = FollowupCampaign.model_validate(
    {
        "id": "monthly",
        "kind": "followup",
        "pillar": "act",
        "relative_to": "pledge_date",
        "every": "30d",
        "grace": "1d",
    }
)


def populate(db: Database, size: int, due: int, *, with_cadences: bool = True) -> None:
    people = [
        {
            "id": f"p{i:06d}",
            "name": f"Org {i}",
            "country": "GH",
            "region": "africa",
            "sector": "ngo",
            "language": "en",
            "timezone": "Africa/Accra",
            "pledge_title": "T",
            "pledge_text": "P",
            "pledge_date": date(2021, 5, 1),
            "created_at": NOW,
            "updated_at": NOW,
        }
        for i in range(size)
    ]
    with db.session() as session:
        session.execute(insert(Pledgemaker), people)
        session.execute(
            insert(Contact),
            [
                {
                    "pledgemaker_id": p["id"],
                    "channel": "telegram",
                    "address": str(i),
                    "status": "active",
                    "bound_at": NOW,
                }
                for i, p in enumerate(people)
            ],
        )
        if with_cadences:
            session.execute(
                insert(Cadence),
                [
                    {
                        "campaign_id": "monthly",
                        "pledgemaker_id": p["id"],
                        "next_due_at": NOW - timedelta(hours=1)
                        if i < due
                        else NOW + timedelta(days=9),
                    }
                    for i, p in enumerate(people)
                ],
            )


def timed_sweep(folder: Path, size: int, due: int) -> float:
    db = Database(f"sqlite:///{folder / f'sweep-{size}.db'}")
    db.upgrade()
    populate(db, size, due)
    started = time.perf_counter()
    result = sweeper.sweep(db, Templates(ROOT / "templates"), SPEC, NOW)
    elapsed = time.perf_counter() - started
    assert result.enqueued == due, result
    db.dispose()
    return elapsed


def main(due: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        small = timed_sweep(Path(folder), 1_000, due)
        large = timed_sweep(Path(folder), 100_000, due)
        db = Database(f"sqlite:///{Path(folder) / 'ensure.db'}")
        db.upgrade()
        populate(db, 100_000, 0, with_cadences=False)
        started = time.perf_counter()
        with db.session() as session:
            sweeper.ensure_cadences(session, SPEC, NOW)
        ensure = time.perf_counter() - started
        db.dispose()
    print(f"sweep of {due} due among 1,000: {small * 1000:.0f} ms")
    print(f"sweep of {due} due among 100,000: {large * 1000:.0f} ms")
    print(f"100,000 / 1,000 audience: {large / small:.2f}x")
    print(f"first slots for 100,000 (once, then every 15 min only for newcomers): {ensure:.1f} s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--due", type=int, default=100)
    main(parser.parse_args().due)
