"""``pledgebot outbox``, ``pledgebot runs``, and the top-level ``pause``, ``resume`` and
``status`` (registered by ``bot.cli.main``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from bot.cli.common import open_app, out
from bot.core.errors import UserInputError

if TYPE_CHECKING:  # the heavy imports wait for the command that needs them: --help stays fast
    from bot.service.app import App

outbox_cli = typer.Typer(help="The outbox of messages to send.", no_args_is_help=True)
runs_cli = typer.Typer(help="Campaign runs (one per firing).", no_args_is_help=True)


def _control_id(app: App, campaign_id: str | None, channel: str | None) -> tuple[str, str]:
    """The pause switch to flip, and how to name it."""
    from bot.delivery import outbox

    if channel is not None:
        from bot.channels.registry import known_channels

        if channel not in known_channels():
            raise UserInputError(
                f"unknown channel {channel!r} (known: {', '.join(known_channels())})"
            )
        if channel not in app.config.channels:
            raise UserInputError(f"no channel {channel!r} in {app.config.source}")
        return outbox.CHANNEL_PAUSE + channel, f"channel {channel}"
    if campaign_id:
        app.schedules().get(campaign_id)  # a typo must not pause nothing while saying it did
        return campaign_id, campaign_id
    return "*", "all sending"


def pause(
    campaign_id: Annotated[str | None, typer.Argument(help="Campaign; none = all.")] = None,
    channel: Annotated[str | None, typer.Option(help="Hold one channel instead.")] = None,
) -> None:
    """Stop sending (one campaign, one channel, or everything) until resume."""
    from bot.delivery import pauses  # here: `pledgebot --help` loads no database code

    app = open_app()
    control, label = _control_id(app, campaign_id, channel)
    pauses.set_paused(app.db, control, True)
    out.print(f"paused: {label}")


def resume(
    campaign_id: Annotated[str | None, typer.Argument(help="Campaign; none = all.")] = None,
    channel: Annotated[
        str | None, typer.Option(help="Resume one channel (e.g. after new credentials).")
    ] = None,
) -> None:
    """Resume sending after pause (or after a channel was paused for bad credentials)."""
    from bot.delivery import outage, pauses

    app = open_app()
    control, label = _control_id(app, campaign_id, channel)
    pauses.set_paused(app.db, control, False)
    if channel is not None:
        with app.db.session() as session:
            if outage.lift_hold(session, channel):
                label += " (its outage hold is lifted: its messages go now)"
    out.print(f"resumed: {label}")


@runs_cli.command("list")
def runs_list(limit: Annotated[int, typer.Option(min=1)] = 50) -> None:
    """Recent runs with what became of their messages."""
    from rich.table import Table
    from sqlalchemy import func, select

    from bot.core.models import OutboxMessage, Run

    app = open_app()
    table = Table(
        "run", "campaign", "fire time (UTC)", "trigger", "queued", "sent", "failed", "note"
    )
    with app.db.session() as session:
        for run in session.scalars(select(Run).order_by(Run.id.desc()).limit(limit)):
            counts = dict(
                session.execute(
                    select(OutboxMessage.state, func.count())
                    .where(OutboxMessage.run_id == run.id)
                    .group_by(OutboxMessage.state)
                )
                .tuples()
                .all()
            )
            table.add_row(
                str(run.id),
                run.campaign_id,
                f"{run.fire_time:%Y-%m-%d %H:%M:%S}",
                run.trigger,
                str(run.planned),
                str(counts.get("sent", 0)),
                str(counts.get("failed", 0)),
                run.note or "",
            )
    out.print(table)


OUTBOX_STATES = ("pending", "sending", "retry_wait", "sent", "failed", "cancelled")


@outbox_cli.command("list")
def outbox_list(
    state: Annotated[
        str | None, typer.Option(help="pending, sending, retry_wait, sent, failed, cancelled")
    ] = None,
    limit: Annotated[int, typer.Option(min=1)] = 50,
    duplicates: Annotated[
        bool,
        typer.Option(
            "--possible-duplicates",
            help="Only messages resent after a crash caught them on the wire (may have "
            "reached their recipient twice).",
        ),
    ] = False,
) -> None:
    """Messages in the outbox, newest first; 'dup?' marks a possible duplicate."""
    from rich.table import Table
    from sqlalchemy import select

    from bot.core.models import OutboxMessage

    if state is not None and state not in OUTBOX_STATES:
        raise UserInputError(f"--state must be one of {', '.join(OUTBOX_STATES)} (got {state!r})")
    app = open_app()
    query = select(OutboxMessage).order_by(OutboxMessage.id.desc()).limit(limit)
    if state:
        query = query.where(OutboxMessage.state == state)
    if duplicates:
        query = query.where(OutboxMessage.possible_duplicate)
    columns = ("id", "state", "channel", "to", "campaign", "tries", "dup?")
    table = Table(*columns, "next try (UTC)", "error", "text")
    with app.db.session() as session:
        for m in session.scalars(query):
            table.add_row(
                str(m.id),
                m.state,
                m.channel,
                m.recipient,
                m.campaign_id or "",
                str(m.attempts),
                "yes" if m.possible_duplicate else "",
                f"{m.next_attempt_at:%m-%d %H:%M:%S}",
                (m.last_error or "")[:60],
                m.text.splitlines()[0][:40] if m.text else "",
            )
    out.print(table)


@outbox_cli.command("cancel")
def outbox_cancel(
    run: Annotated[int, typer.Option("--run", help="Run id (see runs list).")],
) -> None:
    """Cancel a run's messages that are not sent yet."""
    from bot.core.models import Run
    from bot.delivery import outbox

    app = open_app()
    with app.db.session() as session:
        if session.get(Run, run) is None:
            raise UserInputError(f"no run {run} (see `pledgebot runs list`)")
        cancelled = outbox.cancel_run(session, run)
    out.print(f"cancelled: {cancelled}")


@outbox_cli.command("retry")
def outbox_retry(
    failed: Annotated[
        bool, typer.Option("--failed", help="Resend messages that failed (required).")
    ] = False,
    run: Annotated[int | None, typer.Option("--run", help="Only this run's.")] = None,
    campaign: Annotated[
        str | None, typer.Option("--campaign", help="Only this campaign's.")
    ] = None,
    channel: Annotated[str | None, typer.Option("--channel", help="Only this channel's.")] = None,
) -> None:
    """Resend failed messages that failed for a passing reason (the platform kept failing);
    never those stopped by an opt-out, unsubscribe, erasure or withdrawal."""
    from bot.delivery import resend

    if not failed:
        raise UserInputError("outbox retry: say what to resend: --failed")
    app = open_app()
    try:
        campaigns: list[str] = list(app.schedules().campaigns)
    except UserInputError:  # a broken schedule file does not stop a resend of one that ran
        campaigns = []
    with app.db.session() as session:
        done = resend.retry_failed(
            session,
            run_id=run,
            campaign_id=campaign,
            channel=channel,
            known_channels=list(app.config.channels),
            known_campaigns=campaigns,
        )
    out.print(f"to be sent again: {done.retried}", markup=False)
    for why, count in done.refused.most_common():
        out.print(f"not resent: {count} ({why})", markup=False)


def status() -> None:
    """Queue depths, channel health, paused campaigns, inbox backlog."""
    from bot.service.status import collect

    app = open_app()
    for label, value in collect(app).items():
        out.print(f"{label}: {value}", markup=False)
