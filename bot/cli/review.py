"""``pledgebot review``: moderate journey updates (registered by ``bot.cli.main``)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from bot.cli.common import err, open_app, out
from bot.core.errors import UserInputError

if TYPE_CHECKING:  # the heavy imports wait for the command that needs them: --help stays fast
    from bot.service.app import App


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
    from bot.community import review

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

            from bot.core.models import utcnow

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
    from bot.community.review import missing_alt_text

    return missing_alt_text(update)


def _review_interactively(session: Any, updates: list[Any], app: App) -> None:
    from rich.prompt import Prompt

    from bot.community import review

    for update in updates:
        out.rule(f"update {update.id} · {update.pledgemaker_id} · {update.pillar} · {update.kind}")
        out.print(update.text, markup=False)
        choice = Prompt.ask(
            "[a]pprove, [r]eject, [e]dit, [s]kip, [q]uit",
            choices=["a", "r", "e", "s", "q"],
            default="s",
            console=err.rich,
        )
        if choice == "q":
            return
        try:
            if choice == "a":
                review.approve(session, update.id)
            elif choice == "r":
                review.reject(session, update.id, Prompt.ask("reason", console=err.rich))
            elif choice == "e":
                review.edit(
                    session, update.id, Prompt.ask("new text", console=err.rich), app.templates
                )
        except UserInputError as exc:
            err.print(str(exc), markup=False)
