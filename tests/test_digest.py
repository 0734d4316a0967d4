"""The comms team's digest: its figures, one message per destination with the chart attached,
once per slot, its schedule checks, and the digest arriving in a Telegram chat."""

from __future__ import annotations

import itertools
import struct
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.campaigns import digest
from bot.campaigns.base import RunContext
from bot.campaigns.digest import DigestCampaign
from bot.channels.base import Media, OutboundMessage
from bot.channels.email.adapter import EmailChannel
from bot.channels.email.settings import EmailSettings
from bot.channels.registry import plain_text_channels
from bot.community import digest_chart
from bot.core.errors import ScheduleError
from bot.core.models import (
    Contact,
    InboundEvent,
    JourneyUpdate,
    MatchSuggestion,
    OutboxMessage,
    Post,
    Prompt,
    Reply,
    Run,
)
from bot.delivery import outbox
from bot.scheduling import runs
from bot.scheduling.preview import preview
from bot.scheduling.scheduler import CampaignScheduler
from bot.scheduling.schedules import LoadedCampaign, ScheduleSet, load_schedules
from bot.service.app import App
from bot.text.templates import Templates
from tests.auxil.cli import pledgebot
from tests.auxil.live import Live, start_live
from tests.conftest import ROOT

FIRE = datetime(2026, 3, 9, 7, tzinfo=UTC)  # Monday 08:00 in Zurich
DAY = timedelta(days=1)
CHAT = "-1009876543"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_numbers = itertools.count(1)


def spec(**fields: object) -> DigestCampaign:
    return DigestCampaign.model_validate(
        {
            "id": "weekly-digest",
            "kind": "digest",
            "cron": "0 8 * * mon",
            "timezone": "Europe/Zurich",
            "to": {"telegram": CHAT, "email": ["comms@example.org", "lead@example.org"]},
            **fields,
        }
    )


# -- seeding ----------------------------------------------------------------------------------
def update(who: str, pillar: str, kind: str, at: datetime, **extra: object) -> JourneyUpdate:
    fields = {"moderation": "approved", "text": f"{kind} on {pillar}", **extra}
    return JourneyUpdate(
        pledgemaker_id=who,
        pillar=pillar,
        kind=kind,
        created_at=at,
        source="import",
        source_ref=f"u{next(_numbers)}",
        **fields,
    )


def message(state: str, at: datetime, **extra: object) -> OutboxMessage:
    return OutboxMessage(
        idempotency_key=f"seed:{next(_numbers)}",
        channel=extra.pop("channel", "telegram"),
        recipient=extra.pop("recipient", "1"),
        text="t",
        state=state,
        next_attempt_at=at,
        sent_at=at if state == "sent" else None,
        **extra,
    )


def contact(session: Session, who: str, bound: datetime, status: str = "active") -> Contact:
    row = Contact(
        pledgemaker_id=who,
        channel="telegram",
        address=str(next(_numbers)),
        status=status,
        bound_at=bound,
    )
    session.add(row)
    session.flush()
    return row


def reply(session: Session, who: str, at: datetime, **links: object) -> Reply:
    number = next(_numbers)
    event = InboundEvent(
        channel="telegram", event_key=f"msg:{number}", kind="message", chat_id="1", payload={}
    )
    session.add(event)
    session.flush()
    row = Reply(
        inbound_event_id=event.id,
        channel="telegram",
        chat_id="1",
        external_id=str(number),
        pledgemaker_id=who,
        received_at=at,
        **links,
    )
    session.add(row)
    return row


def seed(app: App) -> None:
    """A week of campaign life: what the figures must count, and what they must leave out."""
    with app.db.session() as s:
        s.add(Run(campaign_id="weekly-digest", fire_time=FIRE - 7 * DAY, trigger="cron"))
        s.add(Run(campaign_id="weekly-digest", fire_time=FIRE - DAY, trigger="missed"))
        in_period = [
            update("ilo", "act", "progress", FIRE - 2 * DAY),
            update("gh-min-labour", "act", "progress", FIRE - 3 * DAY),
            update("ng-agri-union", "act", "challenge", FIRE - 3 * DAY, moderation="pending"),
            update("ke-tea-growers", "inspire", "solution", FIRE - DAY),
            update("ilo", "scale_up", "progress", FIRE - 6 * DAY),
        ]
        s.add_all(in_period)
        s.add(update("ilo", "act", "progress", FIRE - 9 * DAY, moderation="pending"))  # before
        s.add(update("ilo", "inspire", "progress", FIRE + DAY))  # after the fire time
        s.flush()
        failed = [("rejected: Bad Request: chat not found", 2), ("contact_stopped", 1)]
        for reason, count in failed:
            s.add_all(message("failed", FIRE - 2 * DAY, last_error=reason) for _ in range(count))
        s.add(message("failed", FIRE - 8 * DAY, last_error="rejected: old"))
        s.add(message("sent", FIRE - DAY))
        # Silence: last reply 70 days ago; never replied since binding 100 days ago (silent
        # longest); replied lately; bound lately; opted out (not reachable, so not listed).
        for who, bound, replied in [
            ("ilo", 100, 70),
            ("gh-min-labour", 100, None),
            ("ng-agri-union", 100, 10),
            ("ke-tea-growers", 5, None),
        ]:
            contact(s, who, FIRE - bound * DAY)
            if replied:
                reply(s, who, FIRE - replied * DAY)
        contact(s, "ug-child-rights", FIRE - 100 * DAY, status="stopped")
        # Posts: two on X and one on Telegram went out this week; one earlier, one still queued.
        for channel, recipient, at, state in [
            ("x", "timeline", FIRE - 2 * DAY, "sent"),
            ("x", "timeline", FIRE - DAY, "sent"),
            ("telegram", "-1001234567", FIRE - DAY, "sent"),
            ("x", "timeline", FIRE - 8 * DAY, "sent"),
            ("x", "timeline", FIRE - DAY, "pending"),
        ]:
            first = message(state, at, channel=channel, recipient=recipient)
            first.external_id = str(next(_numbers)) if state == "sent" else None
            s.add(first)
            s.flush()
            s.add(Post(campaign_id="journeys", channel=channel, first_outbox_id=first.id))
        for score, state in [(0.4, "suggested"), (0.9, "suggested"), (0.95, "declined")]:
            s.add(
                MatchSuggestion(
                    pair_key=f"p{next(_numbers)}",
                    challenge_update_id=in_period[2].id,
                    offer_update_id=in_period[3].id,
                    seeker_id="ng-agri-union",
                    helper_id="ke-tea-growers",
                    score=score,
                    reason=f"reason {score}",
                    state=state,
                    created_at=FIRE - 30 * DAY,
                )
            )


def test_the_figures_count_what_happened_in_the_period(app: App) -> None:
    seed(app)
    with app.db.session() as session:
        found = digest.figures(session, spec(), FIRE)
        links = {
            channel: [
                f"https://x.com/i/web/status/{external}"
                if channel == "x"
                else f"https://t.me/c/1234567/{external}"
                for external in session.scalars(
                    select(OutboxMessage.external_id)
                    .join(Post, Post.first_outbox_id == OutboxMessage.id)
                    .where(
                        Post.channel == channel,
                        OutboxMessage.sent_at >= FIRE - 7 * DAY,
                        OutboxMessage.state == "sent",
                    )
                    .order_by(OutboxMessage.sent_at)
                )
            ]
            for channel in ("telegram", "x")
        }
    assert found.since == FIRE - 7 * DAY, "since the previous run that fired (not a missed one)"
    assert [(p.name, p.kinds, p.total) for p in found.updates] == [
        ("Act", {"progress": 2, "challenge": 1, "solution": 0}, 3),
        ("Inspire", {"progress": 0, "challenge": 0, "solution": 1}, 1),
        ("Scale up", {"progress": 1, "challenge": 0, "solution": 0}, 1),
    ]
    assert found.updates_total == 5
    assert (found.pending, found.oldest_pending) == (2, "9 days")
    assert found.failed == 3
    assert found.failed_reasons == [
        ("rejected: Bad Request: chat not found", 2),
        ("contact_stopped", 1),
    ]
    assert found.silent == 2 and found.silent_after == "60 days"
    assert found.silent_names == [
        "Ministry of Employment and Labour Relations, Ghana",  # silent since binding, 100 days
        "International Labour Organization",  # last reply 70 days ago
    ]
    assert [(s.score, s.reason, s.new) for s in found.suggestions] == [
        (0.9, "reason 0.9", False),
        (0.4, "reason 0.4", False),
    ], "open suggestions only, best first"
    assert [(p.channel, p.count, p.links) for p in found.posts] == [
        ("telegram", 1, links["telegram"]),
        ("x", 2, links["x"]),
    ]
    assert found.period == "2 Mar 2026 08:00 – 9 Mar 2026 08:00 (Europe/Zurich)"


def test_without_a_previous_run_the_period_is_the_week_before(app: App) -> None:
    with app.db.session() as session:
        found = digest.figures(session, spec(), FIRE)
    assert (found.since, found.until) == (FIRE - 7 * DAY, FIRE)
    assert found.updates_total == found.pending == found.failed == found.silent == 0


# -- the messages -----------------------------------------------------------------------------
def queued(app: App) -> list[OutboxMessage]:
    with app.db.session() as session:
        return list(session.scalars(select(OutboxMessage).where(OutboxMessage.run_id.is_not(None))))


def test_one_message_per_destination_with_the_chart_attached(app: App, tmp_path: Path) -> None:
    seed(app)
    with app.db.session() as session:  # replies to draw: three on Act this week, one on Inspire
        act = session.scalars(select(JourneyUpdate).where(JourneyUpdate.pillar == "act")).first()
        inspire = session.scalars(select(JourneyUpdate).where(JourneyUpdate.pillar == "inspire"))
        for days in (1, 2, 3):
            reply(session, "ng-agri-union", FIRE - days * DAY, journey_update_id=act.id)
        reply(session, "ng-agri-union", FIRE - 20 * DAY, journey_update_id=inspire.first().id)
        reply(session, "ng-agri-union", FIRE - DAY, acknowledgement=True, journey_update_id=act.id)
    media = tmp_path / "media"
    fired = runs.fire(app.db, app.templates, spec(), FIRE, trigger="cron", media_dir=media)
    assert fired.enqueued == 4 and fired.skipped == {}
    found = queued(app)
    by_channel = {
        (m.channel, m.recipient): [n for n in found if n.recipient == m.recipient] for m in found
    }
    assert sorted(by_channel) == [
        ("email", "comms@example.org"),
        ("email", "lead@example.org"),
        ("telegram", CHAT),
    ]
    text, photo = by_channel["telegram", CHAT]
    assert "<b>Journey updates: 5 new</b>" in text.text and not text.media
    assert photo.thread_parent_id == text.id, "the chart replies to the figures"
    assert "Silent for over 60 days: 2 pledgemakers" in text.text
    chart = tmp_path / "media" / "digest" / "weekly-digest-20260309T070000Z.png"
    [item] = photo.media
    assert item["path"] == str(chart)
    assert item["alt_text"].startswith("Stacked bar chart of replies per pillar per week, 12")
    assert "4 replies in all (Act 3, Inspire 1, Scale up 0)" in item["alt_text"]
    assert "Last week: Act 3, Inspire 0, Scale up 0" in item["alt_text"]
    assert photo.text == item["alt_text"] and len(photo.text) <= 1024
    for mail in (by_channel["email", "comms@example.org"], by_channel["email", "lead@example.org"]):
        [one] = mail
        assert one.media == [item] and one.parse_mode == "HTML"
        assert one.text.startswith("Pledgebot digest, 2 Mar 2026 – 9 Mar 2026\n")
        assert "Chart attached:</b> Stacked bar chart" in one.text
    data = chart.read_bytes()
    assert data.startswith(PNG_SIGNATURE) and data[12:16] == b"IHDR"
    assert struct.unpack(">II", data[16:24]) == (960, 504)
    assert not list(chart.parent.glob("*.part"))
    import matplotlib.image

    pixels = matplotlib.image.imread(chart)
    red, green, blue = (pixels[..., n] for n in range(3))
    act_blue = (red < 0.02) & (abs(green - 114 / 255) < 0.02) & (abs(blue - 178 / 255) < 0.02)
    assert act_blue.sum() > 500, "the Act bars were drawn"


def test_the_email_carries_html_text_and_the_png(app: App, tmp_path: Path) -> None:
    runs.fire(app.db, app.templates, spec(), FIRE, trigger="cron", media_dir=tmp_path)
    [row] = [m for m in queued(app) if m.recipient == "comms@example.org"]
    channel = EmailChannel(EmailSettings(enabled=True), {"signing_key": SecretStr("k" * 32)})
    mail = channel.compose(
        OutboundMessage(
            id=row.id,
            recipient=row.recipient,
            text=row.text,
            parse_mode="HTML",
            media=tuple(Media.from_json(item) for item in row.media),
        )
    )
    assert mail["Subject"] == "Pledgebot digest, 2 Mar 2026 – 9 Mar 2026"
    plain = mail.get_body(preferencelist=("plain",)).get_content()
    assert "Journey updates: 0 new" in plain and "<b>" not in plain
    [attachment] = list(mail.iter_attachments())
    assert attachment.get_content_type() == "image/png"
    assert attachment.get_content().startswith(PNG_SIGNATURE)


def test_firing_the_same_slot_twice_queues_nothing_new(app: App, tmp_path: Path) -> None:
    first = runs.fire(app.db, app.templates, spec(), FIRE, trigger="cron", media_dir=tmp_path)
    again = runs.fire(app.db, app.templates, spec(), FIRE, trigger="catch-up", media_dir=tmp_path)
    assert first.enqueued == 4 and again.already_fired and again.enqueued == 0
    with app.db.session() as session:  # and a plan of the same firing has the same keys
        plan = runs.plan(spec(), RunContext("weekly-digest", FIRE), session, app.templates)
        assert outbox.enqueue(session, plan.messages) == 0
        assert session.scalar(select(func.count()).select_from(OutboxMessage)) == 4


@pytest.mark.parametrize(
    ("to", "expected"),
    [
        ({"email": "comms@example.org"}, [("email", "comms@example.org")]),
        ({"telegram": "@pledge_comms"}, [("telegram", "@pledge_comms")] * 2),
    ],
    ids=["email-only", "telegram-only"],
)
def test_a_digest_goes_only_where_to_says(
    app: App, tmp_path: Path, to: dict[str, str], expected: list[tuple[str, str]]
) -> None:
    runs.fire(app.db, app.templates, spec(to=to), FIRE, trigger="cron", media_dir=tmp_path)
    assert sorted((m.channel, m.recipient) for m in queued(app)) == expected


def test_a_long_digest_splits_between_lines_never_inside_them() -> None:
    lines = [
        f"<b>Section {n}</b>\n" + "\n".join(f"line {n}.{i} · <i>x</i>" for i in range(9))
        for n in range(30)
    ]
    text = "\n\n".join(lines)
    for limit in (400, 120):  # whole sections per part; then a section longer than a part
        parts = digest.split_sections(text, limit)
        assert len(parts) > 1 and all(len(part) <= limit for part in parts)
        assert "\n".join(parts).replace("\n", "") == text.replace("\n", "")
        assert all(part.count("<i>") == part.count("</i>") for part in parts)
    assert digest.split_sections("short", 400) == ["short"]


# -- previews write nothing ---------------------------------------------------------------------
def test_a_preview_shows_the_digest_without_drawing_or_storing(app: App) -> None:
    with app.db.session() as session:  # a challenge and a solution matchmaking would pair
        session.add(update("gh-min-labour", "act", "challenge", FIRE - DAY, text=CHALLENGE))
        session.add(update("ke-tea-growers", "act", "solution", FIRE - DAY, text=SOLUTION))
    schedules = ScheduleSet({"weekly-digest": LoadedCampaign(spec(), "d.toml", 1)})
    with app.db.session() as session:
        items = preview(session, schedules, app.templates, now=FIRE - DAY, days=7)
    assert [(i.send_utc, i.channel, i.recipient) for i in items] == [
        (FIRE, "telegram", CHAT),  # the text alone: no chart part
        (FIRE, "email", "comms@example.org"),
        (FIRE, "email", "lead@example.org"),
    ]
    assert "<b>Suggested introductions</b>\nNone open." in items[0].text, "none looked for"
    assert not (app.config.path("media") / "digest").exists()
    with app.db.session() as session:
        assert session.scalar(select(func.count()).select_from(MatchSuggestion)) == 0
        assert session.scalar(select(func.count()).select_from(OutboxMessage)) == 0


CHALLENGE = "Children leave school to help with the cocoa harvest and we cannot keep them in class."
SOLUTION = "School meals during the cocoa harvest kept children in class in every village school."


def test_a_recorded_run_looks_for_new_introductions_first(app: App) -> None:
    with app.db.session() as session:
        session.add(update("gh-min-labour", "act", "challenge", FIRE - DAY, text=CHALLENGE))
        session.add(update("ke-tea-growers", "act", "solution", FIRE - DAY, text=SOLUTION))
    runs.fire(app.db, app.templates, spec(to={"telegram": CHAT}), FIRE, trigger="cron")
    with app.db.session() as session:
        [suggestion] = session.scalars(select(MatchSuggestion)).all()
    [text] = [m.text for m in queued(app)]  # no media_dir: the text alone
    assert f"#{suggestion.id} Ministry of Employment and Labour Relations, Ghana ← " in text
    assert ", new): " in text


def test_the_digest_goes_out_even_if_matchmaking_fails(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bot.community import introductions

    def broken(session: Session) -> None:
        raise RuntimeError("no stemmer")

    monkeypatch.setattr(introductions, "refresh", broken)
    fired = runs.fire(app.db, app.templates, spec(to={"telegram": CHAT}), FIRE, trigger="cron")
    assert fired.enqueued == 1 and "None open." in queued(app)[0].text


# -- through the CLI and the scheduler: the media folder from config ----------------------------
DIGEST_FILE = """[[campaign]]
id = "weekly-digest"
kind = "digest"
cron = "* * * * *"
to = { telegram = "-1009876543", email = "comms@example.org" }
"""


@pytest.mark.parametrize("app", ["sqlite"], indirect=True)
def test_campaign_fire_draws_into_the_media_folder_and_a_dry_run_does_not(app: App) -> None:
    folder = app.config.base_dir
    (folder / "schedules" / "digest.toml").write_text(DIGEST_FILE, encoding="utf-8")
    dry = pledgebot(folder, "campaign", "fire", "weekly-digest", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "would send: 2" in dry.stdout and not (folder / "media").exists()
    fired = pledgebot(folder, "campaign", "fire", "weekly-digest", "--yes")
    assert fired.returncode == 0, fired.stderr
    [chart] = (folder / "media" / "digest").glob("weekly-digest-*.png")
    assert chart.read_bytes().startswith(PNG_SIGNATURE)
    assert {str(chart)} == {m.media[0]["path"] for m in queued(app) if m.media}


@pytest.mark.parametrize("app", ["sqlite"], indirect=True)
async def test_the_scheduler_fires_a_digest_with_its_chart(app: App, tmp_path: Path) -> None:
    every_minute = spec(cron="* * * * *", grace="5m", to={"email": "comms@example.org"})
    scheduler = CampaignScheduler(
        app.db,
        app.templates,
        ScheduleSet({"weekly-digest": LoadedCampaign(every_minute, "d.toml", 1)}),
        lambda: None,
        media_dir=tmp_path,
    )
    await scheduler.fire_due("weekly-digest")
    [mail] = queued(app)
    assert Path(mail.media[0]["path"]).parent == tmp_path / "digest"


# -- schedules check --------------------------------------------------------------------------
def test_a_bad_digest_is_reported_with_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "d.toml").write_text(
        '[[campaign]]\nid = "weekly-digest"\nkind = "digest"\ncron = "0 8 * * mon"\n'
        'to = { telegram = "general", email = ["comms@", "ok@example.org"] }\n'
        'silent_after = "2 months"\nchannels = ["telegram"]\n\n'
        '[[campaign]]\nid = "other-digest"\nkind = "digest"\nto = { telgram = "-100123" }\n\n'
        '[[campaign]]\nid = "third-digest"\nkind = "digest"\nto = {}\n\n'
        '[[campaign]]\nid = "fourth-digest"\nkind = "digest"\nto = "comms@example.org"\n',
        encoding="utf-8",
    )
    with pytest.raises(ScheduleError) as caught:
        load_schedules([tmp_path], Templates(ROOT / "templates", plain_text=plain_text_channels()))
    where = f"{tmp_path / 'd.toml'}:"
    assert [str(p).removeprefix(where) for p in caught.value.problems] == [
        "7: channels: a digest goes to the chat and addresses in 'to'; remove this key",
        "5: to.telegram: not a Telegram chat id like '-1001234567890' or '@channelname' "
        "(got 'general')",
        "5: to.email: not an email address like 'comms@example.org' (got 'comms@')",
        "6: silent_after: not a duration like '30d', '6h', '15m' or '45s' (got '2 months')",
        "12: unknown field 'telgram' (did you mean 'telegram'?)",
        "17: to: name a telegram chat, email addresses, or both",
        '22: to: write it as to = { telegram = "-100…", email = ["comms@example.org"] } '
        "(got 'comms@example.org')",
    ]


def test_the_shipped_example_passes_the_check() -> None:
    found = load_schedules(
        [ROOT / "schedules" / "digest.toml.example"],
        Templates(ROOT / "templates", plain_text=plain_text_channels()),
    )
    [loaded] = found.campaigns.values()
    assert isinstance(loaded.spec, DigestCampaign) and found.warnings == []
    assert loaded.spec.destinations() == [
        ("telegram", "-1001234567890"),
        ("email", "comms@example.org"),
    ]


def test_the_chart_says_when_there_were_no_replies(app: App) -> None:
    with app.db.session() as session:
        replies = digest_chart.weekly_replies(session, FIRE, "Europe/Zurich")
    assert digest_chart.describe(replies) == (
        "Stacked bar chart of replies per pillar per week, 12 weeks from 15 Dec 2025 to "
        "9 Mar 2026: no replies in these weeks."
    )
    assert digest_chart.png(replies).startswith(PNG_SIGNATURE)


# -- end to end: the Telegram Bot API sandbox -------------------------------------------------
@pytest.fixture
async def comms_chat(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Live]:
    live = await start_live(
        tmp_path,
        monkeypatch,
        before_start=lambda tg: tg.add_chat(int(CHAT), chat_type="group", title="Comms team"),
    )
    yield live
    await live.close()
    live.app.close()
    await live.sandbox.stop()


@pytest.mark.e2e
async def test_the_digest_arrives_in_the_comms_chat_with_its_chart(comms_chat: Live) -> None:
    live = comms_chat
    with live.app.db.session() as session:
        session.add(update("ilo", "inspire", "progress", datetime.now(UTC) - DAY))
    fired = runs.fire(
        live.app.db,
        live.app.templates,
        spec(to={"telegram": CHAT}),
        datetime.now(UTC),
        trigger="manual",
        media_dir=live.app.config.path("media"),
    )
    assert fired.enqueued == 2
    await live.settle()
    text, photo = live.sandbox.sent_messages(int(CHAT))
    assert text["plain_text"].startswith("Digest · ")
    assert "Journey updates: 1 new\nAct: 0\nInspire: 1 (1 progress" in text["plain_text"]
    [chart] = (live.app.config.path("media") / "digest").glob("weekly-digest-*.png")
    assert photo["photo"]["size"] == chart.stat().st_size
    assert photo["plain_text"].startswith("Stacked bar chart of replies per pillar per week")
    assert live.count(OutboxMessage, OutboxMessage.state == "sent") == 2
    assert live.count(Prompt) == 0, "a digest asks no pledgemaker anything"
