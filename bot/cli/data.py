"""``pledgebot db``, ``pledgebot import`` and ``pledgebot export``: the database and the data in
and out of it."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from bot.cli.common import err, open_app, out, write_output

db_cli = typer.Typer(help="Database maintenance.", no_args_is_help=True)
import_cli = typer.Typer(
    help="Import pledgemakers or journey updates from CSV.", no_args_is_help=True
)
export_cli = typer.Typer(help="Export collected data (to stdout).", no_args_is_help=True)


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
    _import("pledgemakers", file)


@import_cli.command("updates")
def import_updates(file: Annotated[Path, typer.Argument(help="CSV file (UTF-8).")]) -> None:
    """Upsert journey updates gathered elsewhere (e.g. a web form's export)."""
    _import("updates", file)


def _import(what: str, file: Path) -> None:
    """One import, all or nothing: the counts on stdout, each warning on stderr."""
    from bot.community import importer

    run_import = importer.import_pledgemakers if what == "pledgemakers" else importer.import_updates
    app = open_app()
    with app.db.session() as session:
        result = run_import(session, file)
    out.print(f"{what} created: {result.created}\n{what} updated: {result.updated}")
    for warning in result.warnings:
        err.print(f"warning: {warning}", markup=False)


@export_cli.command("replies")
def export_replies(
    fmt: Annotated[str, typer.Option("--format", help="csv or json")] = "json",
) -> None:
    """Every inbound message stored as a reply, with its text exactly as received."""
    from bot.service.export import export

    export(open_app(), "replies", fmt, sys.stdout)


@export_cli.command("pledgemakers")
def export_pledgemakers() -> None:
    """Pledgemakers as CSV in the import's own format: export, edit, import again."""
    from bot.community.importer import export_pledgemakers as write

    with open_app().db.session() as session:
        write(session, sys.stdout)


@export_cli.command("updates")
def export_updates(
    fmt: Annotated[str, typer.Option("--format", help="csv or json")] = "json",
) -> None:
    """Journey updates (from replies and imports) with their moderation state."""
    from bot.service.export import export

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
    from bot.service import feed

    fmt, limit = feed.check_format(fmt), feed.check_limit(limit)  # before opening the database
    built = feed.build(open_app(), fmt, limit)
    if output is None:
        sys.stdout.buffer.write(built.body)
        return
    write_output(output, built.body)
