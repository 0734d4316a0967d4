"""Amplification: fair rotation, caps, and an approved update posted as a thread, loop closed."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.campaigns.amplify import AmplifyCampaign
from bot.community import review
from bot.community.closing import close_loop
from bot.core.models import InboundEvent, JourneyUpdate, Pledgemaker, Post
from bot.scheduling import runs
from bot.service.app import App
from pledgebot_sandbox.x import XSandbox
from tests.auxil.live import Live, start_live

X_ENV = {
    "consumer_key": "PB_TEST_X_CK",
    "consumer_secret": "PB_TEST_X_CS",
    "access_token": "PB_TEST_X_AT",
    "access_token_secret": "PB_TEST_X_ATS",
}
CHANNEL_POSTS = "-1001234567"


def amplify(**fields: object) -> AmplifyCampaign:
    return AmplifyCampaign.model_validate(
        {
            "id": "journeys",
            "kind": "amplify",
            "cron": "0 9 * * *",
            "channels": ["x"],
            "hashtags": ["#EndChildLabour2021"],
            **fields,
        }
    )


def approved(pledgemaker_id: str, text: str, ref: str, **extra: object) -> JourneyUpdate:
    """An update the comms team approved and its pledgemaker agreed to publish."""
    fields = {"pillar": "act", "kind": "progress", **extra}
    return JourneyUpdate(
        pledgemaker_id=pledgemaker_id,
        text=text,
        moderation="approved",
        consent_to_publish=True,
        source="import",
        source_ref=ref,
        **fields,
    )


async def post_now(live: Live) -> None:
    """One amplify slot, now, to X and the Telegram channel; waits until it is out."""
    runs.fire(
        live.app.db,
        live.app.templates,
        amplify(channels=["x", "telegram"]),
        datetime.now(UTC),
        trigger="manual",
        destinations=live.app.destinations(),
    )
    await live.settle()


def approved_updates(app: App, per_pledgemaker: int) -> None:
    with app.db.session() as session:
        ids = list(session.scalars(select(Pledgemaker.id)))
        for n in range(per_pledgemaker):
            for pledgemaker_id in ids:
                session.add(
                    JourneyUpdate(
                        pledgemaker_id=pledgemaker_id,
                        pillar=("act", "inspire", "scale_up")[n % 3],
                        kind="progress",
                        text=f"Update {n} from {pledgemaker_id}.",
                        moderation="approved",
                        consent_to_publish=True,
                        source="import",
                        source_ref=f"{pledgemaker_id}:{n}",
                        created_at=datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=n),
                    )
                )


def test_nobody_twice_before_everybody_once_and_the_monthly_cap_holds(app: App) -> None:
    approved_updates(app, per_pledgemaker=3)  # 40 pledgemakers × 3 = 120 updates
    spec = amplify(max_per_org_per_month=2)
    start = datetime(2026, 3, 1, 9, tzinfo=UTC)
    for slot in range(120):
        runs.fire(
            app.db,
            app.templates,
            spec,
            start + timedelta(hours=slot),
            trigger="cron",
            destinations={"x": "timeline"},
        )
    with app.db.session() as session:
        featured = [p.pledgemaker_id for p in session.scalars(select(Post).order_by(Post.id))]
    assert len(set(featured[:40])) == 40, "everyone once before anyone twice"
    assert len(set(featured[40:80])) == 40
    assert len(featured) == 80, "then the cap of 2 a month: nothing more in March"
    assert max(Counter(featured).values()) == 2
    runs.fire(
        app.db,
        app.templates,
        spec,
        datetime(2026, 4, 1, 9, tzinfo=UTC),
        trigger="cron",
        destinations={"x": "timeline"},
    )
    with app.db.session() as session:
        assert len(list(session.scalars(select(Post)))) == 81, "a new month, a new allowance"


def test_only_approved_and_consented_updates_are_posted(app: App) -> None:
    approved_updates(app, per_pledgemaker=1)
    with app.db.session() as session:
        for update in session.scalars(select(JourneyUpdate)):
            update.consent_to_publish = update.pledgemaker_id == "ilo"
            update.moderation = (
                "approved" if update.pledgemaker_id in ("ilo", "gh-min-labour") else "pending"
            )
    for hour in range(3):
        runs.fire(
            app.db,
            app.templates,
            amplify(),
            datetime(2026, 3, 1, 9 + hour, tzinfo=UTC),
            trigger="cron",
            destinations={"x": "timeline"},
        )
    with app.db.session() as session:
        assert [p.pledgemaker_id for p in session.scalars(select(Post))] == ["ilo"]


@pytest.fixture
async def world(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[Live, XSandbox]]:
    """pledgebot running against both sandboxes: Telegram (chats and the channel) and X."""
    x = XSandbox()
    await x.start()
    for name, env in X_ENV.items():
        monkeypatch.setenv(env, x.credentials[name])
    extra = (
        f'post_chat_id = "{CHANNEL_POSTS}"\ndelete_on_withdraw = true\n'
        "[channels.x]\nenabled = true\n"
        f'api_base_url = "{x.base_url}"\ndelete_on_withdraw = true\n'
        + "".join(f'{name}_env = "{env}"\n' for name, env in X_ENV.items())
    )
    live = await start_live(
        tmp_path,
        monkeypatch,
        extra=extra,
        before_start=lambda tg: tg.add_chat(int(CHANNEL_POSTS), chat_type="channel", title="J"),
    )
    yield live, x
    await live.close()
    live.app.close()
    await live.sandbox.stop()
    await x.stop()


async def test_an_approved_answer_is_posted_as_a_thread_and_the_loop_closes(
    world: tuple[Live, XSandbox],
) -> None:
    live, x = world
    app = live.app
    await live.bind("gh-min-labour", 901)
    await live.fire("act-checkin", to="gh-min-labour")
    long_answer = (
        "Community child protection committees are now active in 212 cocoa-growing "
        "communities, and 87 children were referred to school this quarter. "
    ) * 3
    live.sandbox.push_message(901, long_answer.strip())
    await live.settle()
    update = live.scalar(select(JourneyUpdate))
    question = live.sandbox.sent_messages(901)[-1]
    [[yes, _]] = question["reply_markup"]["inline_keyboard"]  # pc:yes:<id>:<text version>
    live.sandbox.press_button(901, question["message_id"], yes["callback_data"])
    await live.settle()
    with app.db.session() as session:
        review.approve(session, update.id)

    spec = amplify(channels=["x", "telegram"])
    runs.fire(
        app.db,
        app.templates,
        spec,
        datetime.now(UTC),
        trigger="manual",
        destinations=app.destinations(),
    )
    await live.settle()
    posts = x.posts()
    assert len(posts) > 1, "too long for one post: a thread"
    assert posts[0]["text"].startswith("Ministry of Employment and Labour Relations, Ghana on Act:")
    assert all(p["text"].endswith(f"({i}/{len(posts)})") for i, p in enumerate(posts, 1))
    assert "#EndChildLabour2021" in posts[-1]["text"]
    assert [p["in_reply_to_tweet_id"] for p in posts] == [None, *[p["id"] for p in posts[:-1]]]
    [channel_post] = live.sandbox.sent_messages(int(CHANNEL_POSTS))
    assert "<b>Ministry of Employment" in channel_post["text"]

    assert close_loop(app.db, app.templates) == 1  # one per update, not one per network
    await live.settle()
    thanks = [t for t in live.texts(901) if t.startswith("Your update is now live")]
    assert f"https://x.com/i/web/status/{posts[0]['id']}" in thanks[0]
    assert close_loop(app.db, app.templates) == 0, "thanked once"


async def test_an_update_with_a_photo_posts_it_with_its_alt_text(
    world: tuple[Live, XSandbox], tmp_path: Path
) -> None:
    live, x = world
    photo = tmp_path / "classroom.jpg"
    photo.write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 64)
    with live.app.db.session() as session:
        session.add(
            approved(
                "ilo",
                "Back to school.",
                "p",
                pillar="inspire",
                media=[
                    {"type": "photo", "path": str(photo), "alt_text": "Children in a classroom"}
                ],
            )
        )
    await post_now(live)
    [post] = x.posts()
    [media_id] = post["media_ids"]
    assert x.media()[media_id]["alt_text"] == "Children in a classroom"
    [channel_post] = live.sandbox.sent_messages(int(CHANNEL_POSTS))
    assert channel_post["photo"]["size"] == 68 and "Back to school." in channel_post["text"]


async def test_withdrawal_takes_live_posts_down_where_turned_on(
    world: tuple[Live, XSandbox],
) -> None:
    live, x = world
    await live.bind("ilo", 902)
    with live.app.db.session() as session:
        session.add(approved("ilo", "We did it. " * 40, "w"))
    await post_now(live)
    assert len(x.posts()) > 1, "a thread is out"
    live.sandbox.push_message(902, "/withdraw")
    await live.settle()
    assert x.posts() == [], "every part of the thread was taken down"
    assert all(p["deleted"] for p in x.posts(include_deleted=True))
    [channel_post] = live.sandbox.sent_messages(int(CHANNEL_POSTS))
    assert channel_post.get("deleted") is True
    outcome = live.scalar(
        select(InboundEvent.outcome)
        .where(InboundEvent.chat_id == "902")
        .order_by(InboundEvent.id.desc())
    )
    assert "part(s) being deleted, 0 live" in outcome


def test_withdrawal_cancels_queued_posts_and_lists_live_ones(app: App) -> None:
    from bot.community import consent
    from bot.core.models import OutboxMessage
    from bot.delivery import claiming

    with app.db.session() as session:
        for n in range(2):
            session.add(
                JourneyUpdate(
                    pledgemaker_id="ilo",
                    pillar="act",
                    kind="progress",
                    text=f"Long update {n}. " + "We support constituents at national level. " * 9,
                    moderation="approved",
                    consent_to_publish=True,
                    source="import",
                    source_ref=str(n),
                )
            )
    for hour in range(2):
        runs.fire(
            app.db,
            app.templates,
            amplify(max_per_org_per_month=5),
            datetime(2026, 3, 1, 9 + hour, tzinfo=UTC),
            trigger="cron",
            destinations={"x": "timeline"},
        )
    with app.db.session() as session:
        first, _ = session.scalars(select(Post).order_by(Post.id))
        sent = session.get(OutboxMessage, first.first_outbox_id)
        sent.state, sent.external_id = "sent", "1799"
        result = consent.withdraw(session, "ilo", None)
    assert (result.updates, result.cancelled, result.live) == (2, 1, [("x", "timeline", "1799")])
    with app.db.session() as session:
        claiming.claim(session, channels=["x"], limit=50, lease=timedelta(minutes=1))
        rest = list(
            session.scalars(
                select(OutboxMessage.last_error)
                .where(OutboxMessage.idempotency_key.contains("T10:00:00"))
                .order_by(OutboxMessage.id)
            )
        )
    assert rest[0] == "consent withdrawn"
    assert set(rest[1:]) == {"thread broken: an earlier part was not sent"}
