"""``pledgebot contacts invite``: connect pledgemakers' chats to their pledges.

On Telegram (and any channel where a bot cannot write first) it prints single-use links for the
campaign team to hand out. By email and on Matrix the bot writes first: it queues an invitation
to the address on record (``email`` / ``matrix_id`` columns of the pledgemakers CSV), and their
reply — or joining the room — connects them.
"""

from __future__ import annotations

import sys
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Annotated, cast

import typer

from bot.cli.common import err, open_app
from bot.core import csv_safety
from bot.core.errors import UserInputError

if TYPE_CHECKING:
    from bot.channels.base import InvitesByLink
    from bot.service.app import App

contacts_cli = typer.Typer(help="Pledgemakers' chat contacts.", no_args_is_help=True)


@contacts_cli.command("invite")
def contacts_invite(
    pledgemaker_id: Annotated[
        str | None, typer.Argument(help="The pledgemaker's id (CSV column id).")
    ] = None,
    channel: Annotated[str, typer.Option(help="Channel to invite on.")] = "telegram",
    everyone: Annotated[
        bool,
        typer.Option(
            "--all",
            help="Everyone not yet connected on the channel (email/matrix: everyone with an "
            "address on record who has not opted out; others: a CSV of links).",
        ),
    ] = False,
    valid_days: Annotated[int, typer.Option(min=1, max=365, help="Days the link works.")] = 30,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="No confirmation for --all.")] = False,
) -> None:
    """Invite a pledgemaker (or --all) to connect a chat to their pledge.

    Telegram: prints a single-use link to send them. Email and Matrix: the bot sends the
    invitation itself, through the outbox (`pledgebot run` delivers it)."""
    from bot.community import invitations

    if (pledgemaker_id is None) == (not everyone):
        raise UserInputError("name one pledgemaker id, or --all (not both)")
    from bot.channels.registry import known_channels

    if channel not in known_channels():
        raise UserInputError(f"unknown channel {channel!r} (known: {', '.join(known_channels())})")
    app = open_app()
    if channel not in app.config.enabled_channels():
        raise UserInputError(f"channel {channel!r} is not enabled in {app.config.source}")
    import asyncio  # here: `pledgebot --help` must not pay for it

    if invitations.sends_invitations(channel):
        _send(app, channel, pledgemaker_id, valid_days, confirm=everyone and not yes)
    elif everyone:
        _links_csv(app, channel, valid_days, confirm=not yes)
    else:
        assert pledgemaker_id is not None
        url, expires = asyncio.run(_links(app, channel, [pledgemaker_id], valid_days))[0][1:]
        print(url)  # plain print: the link must never be wrapped
        _err(f"single use, valid until {expires:%Y-%m-%d %H:%M} UTC")


def _err(text: str) -> None:

    err.print(text, markup=False)


def _confirm(question: str) -> None:
    if not sys.stdin.isatty():
        raise UserInputError("refusing to invite everyone without --yes")
    if not typer.confirm(question):
        raise typer.Exit(1)


def _send(app: App, channel: str, one: str | None, days: int, *, confirm: bool) -> None:
    from bot.community import invitations

    with app.db.session() as session:
        ids = [one] if one is not None else invitations.everyone(session, channel)
        if not ids:
            _err(f"nobody to invite on {channel}: everyone with an address is connected")
            return
        if confirm:
            _confirm(f"Send an invitation on {channel} to up to {len(ids)} pledgemaker(s)?")
        result = invitations.send(
            session,
            app.templates,
            ids,
            channel,
            valid_for=timedelta(days=days),
            public_url=app.config.dashboard.public_url,
        )
    for pledgemaker, address in result.queued:
        print(f"{pledgemaker}\t{address}")
    for reason, who in sorted(result.skipped.items()):
        _err(f"skipped ({reason}): {', '.join(who[:10])}{' …' if len(who) > 10 else ''}")
    _err(f"{len(result.queued)} invitation(s) queued on {channel}; `pledgebot run` sends them")
    if one is not None and not result.queued:
        raise typer.Exit(1)


def _links_csv(app: App, channel: str, days: int, *, confirm: bool) -> None:
    from bot.community import pledgemakers

    with app.db.session() as session:
        ids = pledgemakers.uninvited(session, channel)
    if not ids:
        _err(f"nobody to invite on {channel}: everyone is connected or has an open link")
        return
    if confirm:
        _confirm(f"Make {len(ids)} invitation link(s) on {channel}?")
    import asyncio

    rows = asyncio.run(_links(app, channel, ids, days))
    out = csv_safety.writer(sys.stdout)
    out.writerow(["pledgemaker_id", "link", "expires_at"])
    for pledgemaker, url, expires in rows:
        out.writerow([pledgemaker, url, f"{expires:%Y-%m-%dT%H:%M:%SZ}"])
    _err(f"{len(rows)} single-use link(s) on {channel}")


async def _links(
    app: App, channel: str, ids: list[str], days: int
) -> list[tuple[str, str, datetime]]:
    """A fresh single-use link per pledgemaker (the adapter shapes it: a t.me deep link…)."""
    from bot.community import pledgemakers

    adapter = cast("InvitesByLink", app.channel(channel))  # one that sends no invitations itself
    try:
        try:  # the bot's username first: if it cannot be learnt, no token is created
            await adapter.username()
        except Exception as exc:
            raise UserInputError(
                f"cannot reach {channel} to learn the bot's username ({exc}); "
                f"set channels.{channel}.bot_username in the config"
            ) from None
        with app.db.session() as session:
            made = pledgemakers.invite_many(session, ids, channel, timedelta(days=days))
            tokens = [(i.pledgemaker_id, i.token, i.expires_at) for i in made]
        return [(p, str(await adapter.invite_link(t)), e) for p, t, e in tokens]
    finally:
        await adapter.aclose()
