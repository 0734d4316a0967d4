"""Resending what failed: `pledgebot outbox retry --failed` and the dashboard's "Retry now"
share one rule — only what failed for a passing reason goes out again in bulk, and nothing
stopped by an opt-out, an unsubscribe, an erasure or a withdrawal is ever resent."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select, update

from bot.core.models import OutboxMessage, Run, utcnow
from bot.delivery import outbox
from bot.delivery.messages import PlannedMessage
from bot.service.app import App
from tests.auxil.cli import pledgebot
from tests.test_web_auth import csrf_of, signed_in

GAVE_UP = "gave up after 8 attempts in 4 min: Telegram: Bad Gateway"


def failed(app: App, key: str, error: str, **values: object) -> int:
    """A message queued and failed (or cancelled) as the code that stopped it records it."""
    with app.db.session() as session:
        outbox.enqueue(
            session,
            [PlannedMessage(key, "telegram", key.split(":")[-1], f"text {key}")],
            run_id=values.pop("run_id", None),  # type: ignore[arg-type]
            campaign_id="act-checkin",
        )
        message_id = outbox.ids_by_key(session, [key])[key]
        outbox.mark_failed(session, message_id, error, values.pop("failure", None))  # type: ignore[arg-type]
        if values:
            session.execute(
                update(OutboxMessage).where(OutboxMessage.id == message_id).values(**values)
            )
    return message_id


def states(app: App) -> dict[str, str]:
    with app.db.session() as session:
        rows = session.execute(select(OutboxMessage.idempotency_key, OutboxMessage.state))
        return dict(rows.tuples().all())


def test_retry_failed_resends_only_transient_failures_and_says_why_not_the_others(
    app: App, config_path: Path
) -> None:
    with app.db.session() as session:
        run = Run(campaign_id="act-checkin", fire_time=utcnow(), trigger="manual")
        session.add(run)
        session.flush()
        run_id = run.id
    first = failed(app, "r:1", GAVE_UP, run_id=run_id)
    failed(app, "r:2", GAVE_UP, run_id=run_id)
    part = failed(app, "r:3", "thread broken: an earlier part was not sent", run_id=run_id)
    failed(app, "r:4", "contact_stopped", run_id=run_id, failure="opted_out")
    failed(app, "r:5", "rejected: Telegram: Bad Request: message is too long", run_id=run_id)
    failed(app, "r:6", "cancelled: the address unsubscribed", run_id=run_id, state="cancelled")
    failed(app, "other:7", GAVE_UP)  # another run's: not asked for
    with app.db.session() as session:
        session.execute(
            update(OutboxMessage).where(OutboxMessage.id == part).values(thread_parent_id=first)
        )

    done = pledgebot(config_path.parent, "outbox", "retry", "--failed", "--run", str(run_id))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "to be sent again: 3",
        "not resent: 1 (the recipient opted out)",
        "not resent: 1 (the platform rejected it (it would be refused again))",
    ]
    assert states(app) == {
        "r:1": "pending",
        "r:2": "pending",
        "r:3": "pending",  # the part after a resent one follows it
        "r:4": "failed",
        "r:5": "failed",
        "r:6": "cancelled",
        "other:7": "failed",
    }
    with app.db.session() as session:
        row = session.scalar(select(OutboxMessage).where(OutboxMessage.id == first))
        assert row is not None
        assert (row.attempts, row.failure_class, row.first_attempt_at) == (0, None, None)


@pytest.mark.parametrize("app", ["sqlite"], indirect=True)  # the CLI's words: one backend
def test_retry_failed_refuses_unknown_filters_in_one_line(app: App, config_path: Path) -> None:
    failed(app, "f:1", GAVE_UP)
    for args, said in (
        (["--run", "999"], "no run with id 999 (see: pledgebot runs list)"),
        (["--campaign", "nope"], "no campaign 'nope' in schedules/ or in the outbox"),
        (["--channel", "fax"], "no channel 'fax' in the config (channels: telegram)"),
        ([], "outbox retry: say what to resend: --failed"),
    ):
        flags = ["--failed", *args] if args else []
        done = pledgebot(config_path.parent, "outbox", "retry", *flags)
        assert (done.returncode, done.stderr.strip(), done.stdout) == (1, said, ""), args
    assert states(app) == {"f:1": "failed"}, "nothing resent"


def test_the_dashboard_never_resends_an_unsubscribed_opted_out_erased_or_withdrawn_message(
    app: App,
) -> None:
    refused = {
        failed(app, "d:1", "cancelled: the address unsubscribed", state="cancelled"): (
            "the address unsubscribed"
        ),
        failed(app, "d:2", "contact_stopped", failure="opted_out"): "the recipient opted out",
        failed(
            app, "d:3", "cancelled by staff: pledgemaker erased", state="cancelled"
        ): "the pledgemaker was erased",
        failed(app, "d:4", "consent withdrawn", state="cancelled"): "consent was withdrawn",
    }
    allowed = failed(app, "d:5", GAVE_UP)
    web = signed_in(app, "editor2@example.org", "editor")
    token = csrf_of(web)
    for message_id, why in refused.items():
        response = web.post(f"/outbox/{message_id}/retry", data={"csrf": token})
        assert response.status_code == 404
        assert f"Message {message_id} cannot be retried: {why}." in response.text
    assert (
        "will be sent again now" in web.post(f"/outbox/{allowed}/retry", data={"csrf": token}).text
    )
    assert states(app) == {
        "d:1": "cancelled",
        "d:2": "failed",
        "d:3": "cancelled",
        "d:4": "cancelled",
        "d:5": "pending",
    }
