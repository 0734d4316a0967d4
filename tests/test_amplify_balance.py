"""The amplify planner's fair rotation on a skewed backlog: after "everyone once before anyone
twice", the pillar and then the region least seen in recent posts, then the oldest update; and
``max_per_org_per_month`` holds. Posting to X and the Telegram channel, as the sample does."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import time_machine
from sqlalchemy import select

from bot.campaigns.amplify import AmplifyCampaign
from bot.core.models import JourneyUpdate, Pledgemaker, Post
from bot.scheduling import runs
from bot.service.app import App

DESTINATIONS = {"x": "timeline", "telegram": "-1001234567"}
MARCH = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # slots: every day at 09:00
WAITING = datetime(2026, 2, 1, tzinfo=UTC)  # when the oldest update arrived


def campaign() -> AmplifyCampaign:
    return AmplifyCampaign.model_validate(
        {
            "id": "journeys",
            "kind": "amplify",
            "cron": "0 9 * * *",
            "channels": ["x", "telegram"],
            "max_per_org_per_month": 2,
        }
    )


def backlog(app: App, updates: list[tuple[str, str]]) -> None:
    """Approved, consented updates (pledgemaker, pillar), the first one the oldest."""
    with app.db.session() as session:
        for age, (pledgemaker_id, pillar) in enumerate(updates):
            session.add(
                JourneyUpdate(
                    pledgemaker_id=pledgemaker_id,
                    pillar=pillar,
                    kind="progress",
                    text=f"Update {age} from {pledgemaker_id}.",
                    moderation="approved",
                    consent_to_publish=True,
                    source="import",
                    source_ref=f"balance:{age}",
                    created_at=WAITING + timedelta(days=age),
                )
            )


def post_slots(app: App, first: datetime, count: int) -> None:
    for day in range(count):
        runs.fire(
            app.db,
            app.templates,
            campaign(),
            first + timedelta(days=day),
            trigger="cron",
            destinations=DESTINATIONS,
        )


def featured(app: App) -> list[tuple[str, str, str, datetime]]:
    """Each update posted, in order: (pledgemaker, pillar, region, slot) — one per update,
    though it was posted on two channels."""
    with app.db.session() as session:
        rows = session.execute(
            select(
                Post.journey_update_id, Post.pledgemaker_id, Post.pillar, Post.created_at
            ).order_by(Post.id)
        ).all()
        regions = dict(session.execute(select(Pledgemaker.id, Pledgemaker.region)).all())
    seen: dict[int, tuple[str, str, str, datetime]] = {}
    for update_id, pledgemaker_id, pillar, slot in rows:
        seen.setdefault(update_id, (pledgemaker_id, pillar, regions[pledgemaker_id], slot))
    return list(seen.values())


@time_machine.travel(MARCH, tick=False)
def test_a_backlog_skewed_to_act_and_africa_alternates_pillars_and_regions(app: App) -> None:
    backlog(
        app,
        [  # ten Act updates from Africa, the oldest; four organisations, two with three each
            ("gh-min-labour", "act"),
            ("ng-agri-union", "act"),
            ("ke-tea-growers", "act"),
            ("ug-child-rights", "act"),
            ("gh-min-labour", "act"),
            ("ng-agri-union", "act"),
            ("ke-tea-growers", "act"),
            ("ug-child-rights", "act"),
            ("gh-min-labour", "act"),
            ("ng-agri-union", "act"),
            # then two Inspire from Europe and two Scale up from the Americas
            ("ilo", "inspire"),
            ("fr-choc-coop", "inspire"),
            ("us-dol-ilab", "scale_up"),
            ("mx-stps", "scale_up"),
        ],
    )
    post_slots(app, MARCH, 14)
    posted = featured(app)
    assert [(who, pillar, region) for who, pillar, region, _ in posted] == [
        ("gh-min-labour", "act", "africa"),
        ("ilo", "inspire", "europe_central_asia"),
        ("us-dol-ilab", "scale_up", "americas"),
        ("ng-agri-union", "act", "africa"),
        ("fr-choc-coop", "inspire", "europe_central_asia"),
        ("mx-stps", "scale_up", "americas"),
        # Only Act is left: the two organisations not featured yet, then everyone's second.
        ("ke-tea-growers", "act", "africa"),
        ("ug-child-rights", "act", "africa"),
        ("gh-min-labour", "act", "africa"),
        ("ng-agri-union", "act", "africa"),
        ("ke-tea-growers", "act", "africa"),
        ("ug-child-rights", "act", "africa"),
    ], "slots 13 and 14 post nothing: Ghana's and Nigeria's third would pass the cap of 2"
    assert [slot for *_, slot in posted] == [MARCH + timedelta(days=d) for d in range(12)]

    post_slots(app, datetime(2026, 4, 1, 9, 0, tzinfo=UTC), 3)  # a new month, a new allowance
    april = [(who, slot.month) for who, _, _, slot in featured(app)[12:]]
    assert april == [("gh-min-labour", 4), ("ng-agri-union", 4)], "then nothing is left"


@time_machine.travel(MARCH, tick=False)
def test_within_one_pillar_the_region_least_seen_goes_first(app: App) -> None:
    backlog(
        app,
        [
            ("gh-min-labour", "act"),  # africa, the oldest four
            ("ng-agri-union", "act"),
            ("ke-tea-growers", "act"),
            ("ug-child-rights", "act"),
            ("in-min-labour", "act"),  # asia_pacific
            ("in-mica-forum", "act"),
            ("us-dol-ilab", "act"),  # americas, the newest
        ],
    )
    post_slots(app, MARCH, 8)
    assert [region for _, _, region, _ in featured(app)] == [
        "africa",
        "asia_pacific",
        "americas",
        "africa",
        "asia_pacific",
        "africa",
        "africa",
    ]
