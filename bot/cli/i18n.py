"""``pledgebot i18n check``: the translations are complete and consistent (see
``bot.text.i18n``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bot.cli.common import State, out

i18n_cli = typer.Typer(help="Translations of the templates.", no_args_is_help=True)


@i18n_cli.command("check")
def check(
    templates: Annotated[
        Path | None,
        typer.Option(help="The templates folder (default: paths.templates of the config)."),
    ] = None,
) -> None:
    """Every pledgemaker-facing template and phrase in en, fr and es, with the same variables;
    each problem as file: message, exit 1 on any."""
    from bot.core.errors import UserInputError
    from bot.settings.config import load_config
    from bot.text import i18n

    if templates is None:
        config = load_config(State.config_path, required=State.config_given)
        templates = config.path("templates")
    if not templates.is_dir():
        raise UserInputError(f"{templates}: not a folder of templates")
    problems = i18n.check(templates)
    if problems:
        raise UserInputError("\n".join(str(p) for p in problems))
    out.print(f"{templates}: every template and phrase in en, fr, es, with the same variables")
