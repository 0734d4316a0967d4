"""``pledgebot pledgemakers``: one pledgemaker's data on request — all of it as JSON, or erased."""

from __future__ import annotations

import getpass
import json
import sys
from typing import Annotated

import typer

from bot.cli.common import err, open_app, out
from bot.core.errors import UserInputError

pledgemakers_cli = typer.Typer(
    help="A pledgemaker's data on request: export it (JSON) or erase it.", no_args_is_help=True
)


@pledgemakers_cli.command("export")
def export(
    pledgemaker_id: Annotated[str, typer.Argument(help="The pledgemaker's id.")],
) -> None:
    """Everything held about one pledgemaker, as JSON on stdout (a subject access request)."""
    from bot.community import erasure, staff

    with open_app().db.session() as session:
        data = erasure.export_data(session, pledgemaker_id)
        staff.audit(session, f"cli:{getpass.getuser()}", "pledgemaker.export", pledgemaker_id, "")
    json.dump(data, sys.stdout, ensure_ascii=False, indent=2)
    sys.stdout.write("\n")


@pledgemakers_cli.command("erase")
def erase(
    pledgemaker_id: Annotated[str, typer.Argument(help="The pledgemaker's id.")],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Erase one pledgemaker's personal data for good; anonymous counts stay in the reports.

    Their words, addresses and media files are deleted, queued messages cancelled, published
    posts taken down where the channel allows it (else listed), and an import cannot bring
    them back."""
    from bot.community import erasure, staff

    app = open_app()
    with app.db.session() as session:
        name = erasure.find(session, pledgemaker_id).name
    if not yes:
        if not sys.stdin.isatty():
            raise UserInputError("no terminal to confirm on: add --yes")
        typer.confirm(f"Erase {name} ({pledgemaker_id}) for good?", abort=True)
    with app.db.session() as session:
        conversation = app.conversation()
        done = erasure.erase(session, pledgemaker_id, conversation.deletable, conversation.alerts)
        staff.audit(
            session,
            f"cli:{getpass.getuser()}",
            "pledgemaker.erase",
            done.new_id,
            f"{done.replies} replies, {done.updates} updates blanked",
        )
    files = erasure.delete_files(done)
    out.print(
        f"erased {pledgemaker_id}: {done.replies} replies and {done.updates} updates blanked, "
        f"{done.messages_cancelled} queued messages cancelled, {files} files deleted, "
        f"{done.posts_taken_down} post parts being taken down; counts remain as {done.new_id}",
        markup=False,
    )
    for channel, where, post in done.posts_left_online:
        err.print(f"still online, remove by hand: {channel} {where} post {post}", markup=False)
