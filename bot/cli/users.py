"""``pledgebot users``: the dashboard's accounts (admin, editor, viewer)."""

from __future__ import annotations

import getpass
import os
from typing import Annotated

import typer

from bot.cli.common import open_app, out
from bot.core.errors import UserInputError

users_cli = typer.Typer(
    help="Dashboard users: admin (everything), editor (no user management), viewer (read only).",
    no_args_is_help=True,
)
PASSWORD_ENV_HELP = "Read the password from this environment variable instead of a prompt."


def _actor() -> str:
    return f"cli:{getpass.getuser()}"


def _password(env: str | None) -> str:
    if env:
        value = os.environ.get(env)
        if value is None:
            raise UserInputError(f"environment variable {env} is not set")
        if not value:
            raise UserInputError(f"environment variable {env} is empty")
        return value
    if not os.isatty(0):
        raise UserInputError("no terminal to ask for a password: use --password-env VAR")
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise UserInputError("the two passwords differ; nothing changed")
    return first


@users_cli.command("add")
def add(
    email: Annotated[str, typer.Argument(help="Their email address (the sign-in name).")],
    role: Annotated[str, typer.Option(help="admin, editor or viewer.")] = "viewer",
    password_env: Annotated[str | None, typer.Option(help=PASSWORD_ENV_HELP)] = None,
) -> None:
    """Add a user; the password is asked twice (hashed with argon2id). It needs 12 characters
    and must not be easy to guess: common, one character repeated, or containing the address."""
    from bot.community import staff

    if role not in staff.ROLES:
        raise UserInputError(f"unknown role {role!r}; one of {', '.join(staff.ROLES)}")
    staff.normal_email(email)  # a mistyped address is said before the password is asked for
    password = _password(password_env)
    with open_app().db.session() as session:
        user = staff.add_user(session, email, password, role, actor=_actor())
        out.print(f"added {user.email} ({user.role})", markup=False)


@users_cli.command("list")
def list_users() -> None:
    """Every user, their role, and when they last used the dashboard."""
    from rich.table import Table

    from bot.community import staff

    table = Table("email", "role", "state", "created (UTC)", "last seen (UTC)")
    with open_app().db.session() as session:
        for user, seen in staff.users(session):
            table.add_row(
                user.email,
                user.role,
                "disabled" if user.disabled_at else "active",
                f"{user.created_at:%Y-%m-%d %H:%M}",
                f"{seen:%Y-%m-%d %H:%M}" if seen else "never",
            )
    out.print(table)


@users_cli.command("role")
def role(
    email: Annotated[str, typer.Argument()],
    new_role: Annotated[str, typer.Argument(metavar="ROLE", help="admin, editor or viewer.")],
) -> None:
    """Change a user's role."""
    from bot.community import staff

    with open_app().db.session() as session:
        staff.set_role(session, email, new_role, actor=_actor())
    out.print(f"{email}: {new_role}", markup=False)


@users_cli.command("password")
def password(
    email: Annotated[str, typer.Argument()],
    password_env: Annotated[str | None, typer.Option(help=PASSWORD_ENV_HELP)] = None,
) -> None:
    """Set a new password (signs the user out everywhere)."""
    from bot.community import staff

    new = _password(password_env)
    with open_app().db.session() as session:
        staff.set_password(session, email, new, actor=_actor())
    out.print(f"{email}: password changed", markup=False)


@users_cli.command("disable")
def disable(email: Annotated[str, typer.Argument()]) -> None:
    """Stop a user from signing in, and sign them out everywhere."""
    from bot.community import staff

    with open_app().db.session() as session:
        staff.disable(session, email, actor=_actor())
    out.print(f"{email}: disabled", markup=False)
