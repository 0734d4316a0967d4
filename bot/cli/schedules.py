"""``pledgebot schedules`` (check, export-ics, preview) and ``pledgebot campaign fire``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from bot.cli.common import State, err, open_app, out, write_output
from bot.core.errors import UserInputError

schedules_cli = typer.Typer(help="Campaign schedule files.", no_args_is_help=True)
campaign_cli = typer.Typer(help="Campaigns declared in schedules/.", no_args_is_help=True)


@schedules_cli.command("check")
def schedules_check(
    paths: Annotated[list[Path] | None, typer.Argument(help="Files or folders.")] = None,
) -> None:
    """Validate schedule files: every error with file:line; exit 1 on any. Applies nothing."""
    from bot.channels.registry import plain_text_channels, unavailable
    from bot.scheduling.schedules import load_schedules
    from bot.settings.config import load_config
    from bot.text.templates import Templates

    config = load_config(State.config_path, required=State.config_given)
    templates = Templates(config.path("templates"), plain_text=plain_text_channels())
    problems, warnings = templates.check_phrases()
    if problems:
        raise UserInputError("\n".join(str(p) for p in problems))
    found = load_schedules(
        paths or [config.path("schedules")],
        templates,
        default_timezone=config.timezone,
        base_dir=config.base_dir,
    )
    # An enabled channel whose library is not installed: `run` goes without it (its messages wait).
    off = [str(why) for name in config.enabled_channels() if (why := unavailable(name))]
    for warning in [*off, *warnings, *found.warnings, *_audience_warnings(config, found)]:
        err.print(f"warning: {warning}", markup=False)
    out.print(f"{len(found.campaigns)} campaign(s) in {len(found.files)} file(s): OK")


def _audience_warnings(config: Any, found: Any) -> list[str]:
    """Audiences that match nobody, when there is a database to ask (one is never created)."""
    from sqlalchemy.exc import DBAPIError

    from bot.core.errors import DatabaseProblem
    from bot.scheduling.schedules import audience_warnings
    from bot.service.app import build_app

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

    from bot.core.models import utcnow
    from bot.service import calendar

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

    from bot.core.models import utcnow
    from bot.scheduling.preview import preview

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


@campaign_cli.command("fire")
def campaign_fire(
    campaign_id: Annotated[str, typer.Argument(help="Campaign id from schedules/.")],
    to: Annotated[str | None, typer.Option("--to", help="Only this pledgemaker.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print, send nothing.")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="No confirmation.")] = False,
) -> None:
    """Plan and enqueue a run now (a new run each call). Opt-outs always apply."""
    from bot.campaigns.base import RunContext
    from bot.core.models import utcnow
    from bot.scheduling import runs

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
    from bot.delivery import pauses

    if pauses.is_paused(app.db, campaign_id):
        err.print(f"note: {campaign_id} is paused; messages wait until `pledgebot resume`")
