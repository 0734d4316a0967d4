"""The ``pledgebot`` command (typer + rich). Data goes to stdout; logs and progress to stderr.

Every error a person can fix is one line (or one line per located problem) and a non-zero exit:
2 for configuration, 1 for everything else. No tracebacks unless ``--debug``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from bot.cli_common import State, err, open_app, out, write_output
from bot.cli_contacts import contacts_cli
from bot.cli_i18n import i18n_cli
from bot.cli_matches import matches_cli
from bot.cli_pledgemakers import pledgemakers_cli
from bot.cli_report import report
from bot.cli_users import users_cli
from bot.errors import UserInputError
from bot.logs import scrub, setup_logging

if TYPE_CHECKING:  # the heavy imports wait for the command that needs them: --help stays fast
    from bot.app import App

cli = typer.Typer(
    help="pledgebot: follow up with pledgemakers, collect their journey, amplify it.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
db_cli = typer.Typer(help="Database maintenance.", no_args_is_help=True)
import_cli = typer.Typer(
    help="Import pledgemakers or journey updates from CSV.", no_args_is_help=True
)
schedules_cli = typer.Typer(help="Campaign schedule files.", no_args_is_help=True)
outbox_cli = typer.Typer(help="The outbox of messages to send.", no_args_is_help=True)
campaign_cli = typer.Typer(help="Campaigns declared in schedules/.", no_args_is_help=True)
runs_cli = typer.Typer(help="Campaign runs (one per firing).", no_args_is_help=True)
export_cli = typer.Typer(help="Export collected data (to stdout).", no_args_is_help=True)
for sub, name in (
    (db_cli, "db"),
    (import_cli, "import"),
    (schedules_cli, "schedules"),
    (outbox_cli, "outbox"),
    (contacts_cli, "contacts"),
    (campaign_cli, "campaign"),
    (runs_cli, "runs"),
    (export_cli, "export"),
    (users_cli, "users"),
    (pledgemakers_cli, "pledgemakers"),
    (matches_cli, "matches"),
    (i18n_cli, "i18n"),
):
    cli.add_typer(sub, name=name)


@cli.callback()
def _global(
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="Config file (default ./config.toml).")
    ] = None,
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True, help="More logs.")] = 0,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False,
    log_format: Annotated[
        str, typer.Option("--log-format", help="Logs as 'text' (default) or 'json' lines.")
    ] = "text",
) -> None:
    if log_format not in ("text", "json"):
        raise typer.BadParameter("must be 'text' or 'json'", param_hint="--log-format")
    State.config_path = config or Path("config.toml")
    State.config_given = config is not None
    State.debug = debug
    State.verbose = verbose
    State.log_format = log_format
    setup_logging(verbose, log_format)


# -- db / import ---------------------------------------------------------------------------------
@db_cli.command("upgrade")
def db_upgrade() -> None:
    """Create the database or apply pending migrations."""
    app = open_app(migrate=False)
    created = app.db.upgrade(create=True)
    done = "database created and up to date" if created else "database is up to date"
    err.print(f"{done}: {app.db.describe()}", markup=False)


@import_cli.command("pledgemakers")
def import_pledgemakers(file: Annotated[Path, typer.Argument(help="CSV file (UTF-8).")]) -> None:
    """Upsert pledgemakers by id. Any bad row: every problem listed, nothing imported."""
    from bot.importer import import_pledgemakers as run_import

    app = open_app()
    with app.db.session() as session:
        result = run_import(session, file)
    out.print(f"pledgemakers created: {result.created}\npledgemakers updated: {result.updated}")
    for warning in result.warnings:
        err.print(f"warning: {warning}", markup=False)


@import_cli.command("updates")
def import_updates(file: Annotated[Path, typer.Argument(help="CSV file (UTF-8).")]) -> None:
    """Upsert journey updates gathered elsewhere (e.g. a web form's export)."""
    from bot.importer import import_updates as run_import

    app = open_app()
    with app.db.session() as session:
        result = run_import(session, file)
    out.print(f"updates created: {result.created}\nupdates updated: {result.updated}")
    for warning in result.warnings:
        err.print(f"warning: {warning}", markup=False)


# -- schedules -----------------------------------------------------------------------------------
@schedules_cli.command("check")
def schedules_check(
    paths: Annotated[list[Path] | None, typer.Argument(help="Files or folders.")] = None,
) -> None:
    """Validate schedule files: every error with file:line; exit 1 on any. Applies nothing."""
    from bot.config import load_config
    from bot.schedules import load_schedules
    from bot.templates import Templates

    config = load_config(State.config_path, required=State.config_given)
    templates = Templates(config.path("templates"))
    problems, warnings = templates.check_phrases()
    if problems:
        raise UserInputError("\n".join(str(p) for p in problems))
    found = load_schedules(
        paths or [config.path("schedules")],
        templates,
        default_timezone=config.timezone,
        base_dir=config.base_dir,
    )
    for warning in [*warnings, *found.warnings, *_audience_warnings(config, found)]:
        err.print(f"warning: {warning}", markup=False)
    out.print(f"{len(found.campaigns)} campaign(s) in {len(found.files)} file(s): OK")


def _audience_warnings(config: Any, found: Any) -> list[str]:
    """Audiences that match nobody, when there is a database to ask (one is never created)."""
    from sqlalchemy.exc import DBAPIError

    from bot.app import build_app
    from bot.errors import DatabaseProblem
    from bot.schedules import audience_warnings

    url = config.database_url
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).is_file():
        return []
    try:
        app = build_app(config)
    except DatabaseProblem as exc:
        return [f"audiences not checked: {exc}"]
    try:
        with app.db.session() as session:
            return audience_warnings(found, session)
    except DBAPIError as exc:
        return [f"audiences not checked: {app.db.explain(exc)}"]
    finally:
        app.close()


@schedules_cli.command("export-ics")
def schedules_export_ics(
    days: Annotated[int, typer.Option(min=1, max=92, help="How far ahead.")] = 30,
    past: Annotated[int, typer.Option(min=0, max=92, help="Days back (what was sent).")] = 0,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="File to write (default: stdout).")
    ] = None,
) -> None:
    """What is planned (and was sent) as an iCalendar file, for a calendar app. Sends nothing."""
    from datetime import timedelta

    from bot import calendar
    from bot.models import utcnow

    app = open_app()
    now = utcnow()
    body = calendar.ics(
        calendar.entries(app, now - timedelta(days=past), now + timedelta(days=days))
    )
    if output is None:
        sys.stdout.buffer.write(body)
        return
    write_output(output, body)


@schedules_cli.command("preview")
def schedules_preview(
    days: Annotated[int, typer.Option(min=1, max=366, help="How far ahead.")] = 7,
    campaign: Annotated[str | None, typer.Option(help="Only this campaign.")] = None,
    fmt: Annotated[str, typer.Option("--format", help="table or json")] = "table",
    include_skipped: Annotated[
        bool, typer.Option("--include-skipped", help="Also list slots that send nothing.")
    ] = False,
) -> None:
    """Who gets what, when (their local time and UTC), rendered in their language. Sends nothing."""
    import json

    from rich.table import Table

    from bot.models import utcnow
    from bot.preview import preview

    if fmt not in ("table", "json"):
        raise UserInputError(f"--format must be table or json (got {fmt!r})")
    app = open_app()
    with app.db.session() as session:
        items = preview(
            session,
            app.schedules(),
            app.templates,
            now=utcnow(),
            days=days,
            campaign_id=campaign,
            destinations=app.destinations(),
        )
    skipped = sum(1 for item in items if item.skipped)
    if not include_skipped:
        items = [item for item in items if not item.skipped]
    if fmt == "json":
        print(json.dumps([item.to_record() for item in items], ensure_ascii=False, indent=2))
        return
    table = Table("campaign", "pledgemaker", "their time", "UTC", "to", "length", "message")
    for item in items:
        table.add_row(
            item.campaign_id,
            item.pledgemaker_id,
            f"{item.send_local:%a %d %b %H:%M} {item.zone}",
            f"{item.send_utc:%Y-%m-%d %H:%M}",
            f"{item.channel} {item.recipient}".strip(),
            str(item.length or ""),
            f"(skipped: {item.skipped})" if item.skipped else item.shown.splitlines()[0][:60],
        )
    out.print(table)
    sending = len(items) - (skipped if include_skipped else 0)
    summary = f"{sending} message(s) in the next {days} day(s)"
    if skipped:
        summary += f"; {skipped} slot(s) send nothing" + (
            " (listed above)" if include_skipped else " (--include-skipped says why)"
        )
    err.print(summary, markup=False)


# -- campaigns -----------------------------------------------------------------------------------
@campaign_cli.command("fire")
def campaign_fire(
    campaign_id: Annotated[str, typer.Argument(help="Campaign id from schedules/.")],
    to: Annotated[str | None, typer.Option("--to", help="Only this pledgemaker.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print, send nothing.")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="No confirmation.")] = False,
) -> None:
    """Plan and enqueue a run now (a new run each call). Opt-outs always apply."""
    from bot import runs
    from bot.campaigns.base import RunContext
    from bot.models import utcnow

    app = open_app()
    spec = app.schedules().get(campaign_id).spec
    now = utcnow()
    confirm = to is None and not yes
    if confirm and not dry_run and not sys.stdin.isatty():
        raise UserInputError("refusing to message a whole audience without --yes")
    if dry_run or confirm:  # planning is pure: the preview writes nothing
        with app.db.session() as session:
            preview = runs.plan(
                spec,
                RunContext(spec.id, now, to, manual=True, destinations=app.destinations()),
                session,
                app.templates,
            )
        if dry_run:
            for message in preview.messages:
                out.print(f"--- {message.channel} {message.recipient} ({message.pledgemaker_id})")
                out.print(message.text, markup=False)
            out.print(f"would send: {len(preview.messages)}")
            return
        if not typer.confirm(f"Send {campaign_id} now to {len(preview.messages)} pledgemaker(s)?"):
            raise typer.Exit(1)
    result = runs.fire(
        app.db,
        app.templates,
        spec,
        now,
        trigger="manual",
        only=to,
        destinations=app.destinations(),
        media_dir=app.config.path("media"),
    )
    skipped = ", ".join(f"{why} {n}" for why, n in sorted(result.skipped.items()))
    out.print(
        f"run {result.run_id}: queued {result.enqueued}"
        + (f" (skipped: {skipped})" if skipped else "")
    )
    if runs.is_paused(app.db, campaign_id):
        err.print(f"note: {campaign_id} is paused; messages wait until `pledgebot resume`")


def _control_id(app: App, campaign_id: str | None, channel: str | None) -> tuple[str, str]:
    """The pause switch to flip, and how to name it."""
    from bot import outbox

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


@cli.command("pause")
def pause(
    campaign_id: Annotated[str | None, typer.Argument(help="Campaign; none = all.")] = None,
    channel: Annotated[str | None, typer.Option(help="Hold one channel instead.")] = None,
) -> None:
    """Stop sending (one campaign, one channel, or everything) until resume."""
    from bot import runs

    app = open_app()
    control, label = _control_id(app, campaign_id, channel)
    runs.set_paused(app.db, control, True)
    out.print(f"paused: {label}")


@cli.command("resume")
def resume(
    campaign_id: Annotated[str | None, typer.Argument(help="Campaign; none = all.")] = None,
    channel: Annotated[
        str | None, typer.Option(help="Resume one channel (e.g. after new credentials).")
    ] = None,
) -> None:
    """Resume sending after pause (or after a channel was paused for bad credentials)."""
    from bot import outage, runs

    app = open_app()
    control, label = _control_id(app, campaign_id, channel)
    runs.set_paused(app.db, control, False)
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

    from bot.models import OutboxMessage, Run

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
                ).all()
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


# -- moderation ----------------------------------------------------------------------------------
@cli.command("review")
def review_command(
    show: Annotated[bool, typer.Option("--list", help="List updates (default: pending).")] = False,
    state: Annotated[str | None, typer.Option(help="pending, approved, rejected or all")] = None,
    approve: Annotated[int | None, typer.Option(help="Approve this update.")] = None,
    reject: Annotated[int | None, typer.Option(help="Reject this update (with --reason).")] = None,
    reason: Annotated[str, typer.Option(help="Why it is rejected; kept.")] = "",
    edit: Annotated[int | None, typer.Option(help="Edit this update's text (with --text).")] = None,
    alt_text: Annotated[
        int | None, typer.Option("--alt-text", help="Describe this update's images (with --text).")
    ] = None,
    text: Annotated[str, typer.Option(help="The new text or alt text.")] = "",
    agreement: Annotated[
        int | None,
        typer.Option(
            "--record-agreement",
            help="They agreed to this update's text outside any chat (with --by, --how).",
        ),
    ] = None,
    agreed_by: Annotated[str, typer.Option("--by", help="Who agreed: name and role.")] = "",
    how: Annotated[str, typer.Option(help="How: 'phone call', 'email of 3 December'…")] = "",
    agreed_on: Annotated[
        str, typer.Option("--on", help="The day they agreed, YYYY-MM-DD (default: today).")
    ] = "",
) -> None:
    """Moderate journey updates; without options, the pending ones interactively."""
    from bot import review

    app = open_app()
    actions = [a for a in (approve, reject, edit, alt_text, agreement) if a is not None]
    if len(actions) > 1:
        raise UserInputError(
            "one of --approve, --reject, --edit, --alt-text or --record-agreement at a time"
        )
    with app.db.session() as session:
        if approve is not None:
            review.approve(session, approve)
            out.print(f"approved: {approve}")
        elif reject is not None:
            review.reject(session, reject, reason)
            out.print(f"rejected: {reject}")
        elif edit is not None:
            outcome = review.edit(session, edit, text, app.templates)
            out.print(f"edited: {edit} ({review.SAID[outcome]})")
            if outcome == review.TO_RECORD:
                out.print(
                    f"once they agree: pledgebot review --record-agreement {edit} "
                    "--by 'name, role' --how 'phone call' [--on YYYY-MM-DD]"
                )
        elif agreement is not None:
            import getpass
            from datetime import date

            from bot.models import utcnow

            try:
                day = date.fromisoformat(agreed_on) if agreed_on else utcnow().date()
            except ValueError:
                raise UserInputError(
                    f"--on must be a date like 2026-12-03 (got {agreed_on!r})"
                ) from None
            review.record_agreement(
                session,
                agreement,
                agreed_by=agreed_by,
                agreed_on=day,
                how=how,
                recorded_by=f"cli:{getpass.getuser()}",
            )
            out.print(f"agreement recorded: {agreement} (it may now be published once approved)")
        elif alt_text is not None:
            out.print(f"alt text set on {review.set_alt_text(session, alt_text, text)} image(s)")
        elif show or not sys.stdin.isatty():
            if not show:
                raise UserInputError("not a terminal: use --list, --approve, --reject or --edit")
            _review_table(review.listing(session, state))
        else:
            _review_interactively(session, review.listing(session, "pending"), app)


def _review_table(updates: list[Any]) -> None:
    from rich.table import Table

    table = Table("id", "pledgemaker", "pillar", "kind", "state", "consent", "images", "text")
    for u in updates:
        consent = {True: "yes", False: "no", None: "not asked"}[u.consent_to_publish]
        images = f"{len(u.media)} ({len(u.media) - _missing_alt(u)} described)" if u.media else ""
        shown = (u.edited_text or u.text).replace("\n", " ")
        table.add_row(
            str(u.id),
            u.pledgemaker_id,
            u.pillar,
            u.kind,
            u.moderation,
            consent,
            images,
            ("✎ " if u.edited_text else "") + shown[:70],
        )
    out.print(table)


def _missing_alt(update: Any) -> int:
    from bot.review import missing_alt_text

    return missing_alt_text(update)


def _review_interactively(session: Any, updates: list[Any], app: App) -> None:
    from rich.prompt import Prompt

    from bot import review

    for update in updates:
        out.rule(f"update {update.id} · {update.pledgemaker_id} · {update.pillar} · {update.kind}")
        out.print(update.text, markup=False)
        choice = Prompt.ask(
            "[a]pprove, [r]eject, [e]dit, [s]kip, [q]uit",
            choices=["a", "r", "e", "s", "q"],
            default="s",
            console=err,
        )
        if choice == "q":
            return
        try:
            if choice == "a":
                review.approve(session, update.id)
            elif choice == "r":
                review.reject(session, update.id, Prompt.ask("reason", console=err))
            elif choice == "e":
                review.edit(session, update.id, Prompt.ask("new text", console=err), app.templates)
        except UserInputError as exc:
            err.print(str(exc), markup=False)


# -- outbox / status -----------------------------------------------------------------------------
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

    from bot.models import OutboxMessage

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
    from bot import outbox
    from bot.models import Run

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
    from bot import resend

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


@cli.command("status")
def status() -> None:
    """Queue depths, channel health, paused campaigns, inbox backlog."""
    from bot.status import collect

    app = open_app()
    for label, value in collect(app).items():
        out.print(f"{label}: {value}", markup=False)


# -- run / demo / export -------------------------------------------------------------------------
def _serve(command: str, port: int | None = None) -> None:
    from bot.runner import run_forever

    setup_logging(max(1, State.verbose), State.log_format)  # a service logs what it does
    app = open_app(migrate=False)
    if port is not None:
        dashboard = app.config.dashboard.model_copy(update={"port": port})
        app.config = app.config.model_copy(update={"dashboard": dashboard})
    # A service does not wait inside a transaction's BEGIN (its roles share one event loop):
    # a role that finds the database locked past the busy timeout fails, is logged and started
    # again after a pause (bot.runner.supervise), and the other roles and the dashboard go on.
    app.db.wait_for_lock(None)
    if command in ("run", "web"):
        app.config.metrics_token()  # a weak scraper token is refused before anything starts
    run_forever(app, command)


PortOption = Annotated[
    int | None,
    typer.Option(
        "--port",
        min=0,
        max=65535,
        help="Serve the dashboard on this port instead of [dashboard] port (0: any free one); "
        "a second process on the same host needs its own.",
    ),
]


@cli.command("run")
def run(port: PortOption = None) -> None:
    """Everything in one process: scheduler, dispatcher, listener, inbox, web (health)."""
    _serve("run", port)


@cli.command("worker")
def worker() -> None:
    """Send the outbox only. On PostgreSQL, start as many as you need."""
    _serve("worker")


@cli.command("scheduler")
def scheduler() -> None:
    """Fire campaigns and sweep cadences. One leads; others stand by and take over."""
    _serve("scheduler")


@cli.command("listener")
def listener() -> None:
    """Receive chat messages and turn them into replies. One per bot token leads."""
    _serve("listener")


@cli.command("web")
def web(port: PortOption = None) -> None:
    """Serve the dashboard (and /healthz, /metrics) on [dashboard] host and port."""
    _serve("web", port)


DEMO_NEEDS_SANDBOXES = "the demo needs the sandboxes: pip install -e ./sandbox (make demo does it)"


@cli.command("demo")
def demo(
    folder: Annotated[Path, typer.Option(help="Where the demo database goes.")] = Path("demo-data"),
    dashboard: Annotated[
        bool,
        typer.Option(
            "--dashboard",
            help="Then serve the dashboard on the demo's data (sandboxes still running) "
            "until Ctrl-C; prints a sign-in made for the demo.",
        ),
    ] = False,
    channels: Annotated[
        str | None,
        typer.Option(
            "--channels",
            metavar="LIST",
            help="The chat channels the simulated pledgemakers use, comma-separated, from "
            "telegram, email, matrix; each runs against a real local server. Default: all "
            "three, skipping (with one line) any that cannot run here; one named here that "
            "cannot run is an error. email needs aiosmtpd and pymap (the sandboxes' requirements); "
            "matrix builds Synapse's own venv once (~30 s, from PyPI). X is always used for posts.",
        ),
    ] = None,
    pledgemakers: Annotated[
        int | None,
        typer.Option(
            "--pledgemakers",
            min=1,
            metavar="N",
            help="Only the first N sample pledgemakers (default: all 40), dealt among the "
            "channels in turn: a smaller, faster demo.",
        ),
    ] = None,
) -> None:
    """The whole loop on SQLite against local servers (the Telegram, X, Bluesky, LinkedIn,
    Facebook/Instagram and Mastodon sandboxes, SMTP/IMAP, Synapse) with simulated
    pledgemakers; no accounts needed."""
    import asyncio

    from bot.config import load_config

    try:  # its own distribution (sandbox/pyproject.toml), never in a plain `pip install pledgebot`
        from pledgebot_sandbox.demo import run_demo, serve_dashboard
        from pledgebot_sandbox.demo_channels import parse_channels
    except ModuleNotFoundError as exc:
        if exc.name != "pledgebot_sandbox":
            raise
        print(DEMO_NEEDS_SANDBOXES, file=sys.stderr)
        raise typer.Exit(2) from None

    chosen = parse_channels(channels) if channels is not None else None
    config = load_config(State.config_path, required=State.config_given)

    def show(summary: dict[str, str]) -> None:
        for label, value in summary.items():
            out.print(f"{label}: {value}", markup=False)

    async def then(app: App, summary: dict[str, str]) -> None:
        show(summary)
        await serve_dashboard(app, err.print)

    summary = asyncio.run(
        run_demo(
            config,
            folder,
            channels=chosen,
            pledgemakers=pledgemakers,
            dashboard=then if dashboard else None,
            say=lambda line: err.print(line, markup=False),
        )
    )
    if not dashboard:
        show(summary)


@export_cli.command("replies")
def export_replies(
    fmt: Annotated[str, typer.Option("--format", help="csv or json")] = "json",
) -> None:
    """Every inbound message stored as a reply, with its text exactly as received."""
    from bot.export import export

    export(open_app(), "replies", fmt, sys.stdout)


@export_cli.command("pledgemakers")
def export_pledgemakers() -> None:
    """Pledgemakers as CSV in the import's own format: export, edit, import again."""
    from bot.importer import export_pledgemakers as write

    with open_app().db.session() as session:
        write(session, sys.stdout)


@export_cli.command("updates")
def export_updates(
    fmt: Annotated[str, typer.Option("--format", help="csv or json")] = "json",
) -> None:
    """Journey updates (from replies and imports) with their moderation state."""
    from bot.export import export

    export(open_app(), "updates", fmt, sys.stdout)


@export_cli.command("feed")
def export_feed(
    fmt: Annotated[str, typer.Option("--format", help="atom or json")] = "atom",
    limit: Annotated[int, typer.Option(help="The newest N updates (1-200).")] = 50,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="File to write (default: stdout).")
    ] = None,
) -> None:
    """The public journey feed (approved, consented updates) as served at /feed.atom and
    /feed.json, for static hosting; links use [dashboard] public_url when set."""
    from bot import feed

    fmt, limit = feed.check_format(fmt), feed.check_limit(limit)  # before opening the database
    built = feed.build(open_app(), fmt, limit)
    if output is None:
        sys.stdout.buffer.write(built.body)
        return
    write_output(output, built.body)


cli.command("report")(report)  # in bot/cli_report.py


def main() -> None:
    try:
        cli(prog_name="pledgebot")  # typer handles usage errors, --help and exit codes itself
    except UserInputError as exc:
        for line in str(exc).splitlines():
            print(scrub(line), file=sys.stderr)
        sys.exit(exc.exit_code)
    except Exception as exc:
        if State.debug:
            raise
        print(f"internal error: {scrub(repr(exc))} (run with --debug for details)", file=sys.stderr)
        sys.exit(1)
