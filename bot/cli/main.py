"""The ``pledgebot`` command (typer + rich). Data goes to stdout; logs and progress to stderr.

Every error a person can fix is one line (or one line per located problem) and a non-zero exit:
2 for configuration, 1 for everything else. No tracebacks unless ``--debug``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from bot.cli.common import State
from bot.cli.contacts import contacts_cli
from bot.cli.data import db_cli, export_cli, import_cli
from bot.cli.i18n import i18n_cli
from bot.cli.matches import matches_cli
from bot.cli.outbox import outbox_cli, pause, resume, runs_cli, status
from bot.cli.pledgemakers import pledgemakers_cli
from bot.cli.report import report
from bot.cli.review import review_command
from bot.cli.schedules import campaign_cli, schedules_cli
from bot.cli.serve import demo, listener, run, scheduler, web, worker
from bot.cli.users import users_cli
from bot.core.errors import UserInputError
from bot.core.logs import scrub, setup_logging

cli = typer.Typer(
    help="pledgebot: follow up with pledgemakers, collect their journey, amplify it.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
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


# The commands, in the order `pledgebot --help` lists them (then the groups above).
cli.command("pause")(pause)  # in bot/cli/outbox.py
cli.command("resume")(resume)
cli.command("review")(review_command)  # in bot/cli/review.py
cli.command("status")(status)  # in bot/cli/outbox.py
cli.command("run")(run)  # in bot/cli/serve.py
cli.command("worker")(worker)
cli.command("scheduler")(scheduler)
cli.command("listener")(listener)
cli.command("web")(web)
cli.command("demo")(demo)
cli.command("report")(report)  # in bot/cli/report.py


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
