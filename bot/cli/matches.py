"""``pledgebot matches``: matchmaking's suggested introductions, for the comms team."""

from __future__ import annotations

import getpass
import json
from typing import Annotated

import typer

from bot.cli.common import err, open_app, out

matches_cli = typer.Typer(
    help="Suggested introductions between pledgemakers who could help each other.",
    no_args_is_help=True,
)


def _actor() -> str:
    return f"cli:{getpass.getuser()}"


@matches_cli.command("list")
def list_matches(
    state: Annotated[
        str,
        typer.Option(help="suggested, asking, introduced, ended, declined, or all."),
    ] = "suggested",
    refresh: Annotated[
        bool, typer.Option(help="Look for new suggestions first (the default).")
    ] = True,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """Suggestions, best first: who has a challenge, who may help, and why."""
    from rich.table import Table

    from bot.community import introductions
    from bot.core.errors import UserInputError

    states = ("suggested", "asking", "introduced", "ended", "declined")
    if state != "all" and state not in states:
        raise UserInputError(f"--state must be one of {', '.join(states)}, all (got {state!r})")
    app = open_app()
    with app.db.session() as session:
        new = len(introductions.refresh(session)) if refresh else 0
        found = introductions.listing(session, states if state == "all" else (state,))
        rows = [
            {
                "id": item.suggestion.id,
                "state": item.suggestion.state,
                "score": item.suggestion.score,
                "seeker": item.seeker.id,
                "challenge_update": item.challenge.id,
                "helper": item.helper.id,
                "offer_update": item.offer.id,
                "reason": item.suggestion.reason,
                "challenge_text": item.challenge.edited_text or item.challenge.text,
                "offer_text": item.offer.edited_text or item.offer.text,
            }
            for item in found
        ]
    if as_json:
        for row in rows:
            print(json.dumps(row, ensure_ascii=False))
    else:
        table = Table("id", "score", "challenge of", "may be helped by", "why", "state")
        for row in rows:
            table.add_row(
                str(row["id"]),
                f"{row['score']:.2f}",
                str(row["seeker"]),
                str(row["helper"]),
                str(row["reason"]),
                str(row["state"]),
            )
        out.print(table)
    err.print(f"{len(rows)} suggestion(s) ({new} new)", markup=False)


@matches_cli.command("accept")
def accept(suggestion_id: Annotated[int, typer.Argument(help="The suggestion's id.")]) -> None:
    """Ask both pledgemakers, in their own chats, whether they want the introduction."""
    from bot.community import introductions, staff

    app = open_app()
    with app.db.session() as session:
        row = introductions.accept(session, suggestion_id, _actor(), app.templates)
        staff.audit(session, _actor(), "match.accept", str(row.id), row.pair_key)
        pair = (row.seeker_id, row.helper_id)
    err.print(f"asked {pair[0]} and {pair[1]}; `pledgebot run` sends the questions", markup=False)


@matches_cli.command("decline")
def decline(suggestion_id: Annotated[int, typer.Argument(help="The suggestion's id.")]) -> None:
    """Not this pair: it is remembered and never suggested again."""
    from bot.community import introductions, staff

    app = open_app()
    with app.db.session() as session:
        row = introductions.decline(session, suggestion_id, _actor())
        staff.audit(session, _actor(), "match.decline", str(row.id), row.pair_key)
    err.print(f"declined suggestion {suggestion_id}", markup=False)
