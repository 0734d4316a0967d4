"""``/users``: admins add users, change roles, disable accounts (``StaffAuth`` keeps others out)."""

from __future__ import annotations

from anyio import to_thread
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bot.community import staff
from bot.core.errors import UserInputError
from bot.core.staff_models import StaffUser
from bot.service.app import App
from bot.web.pages import back, not_found, page


def routes(app: App) -> list[Route]:
    async def listing(request: Request) -> Response:
        return await to_thread.run_sync(lambda: users_page(request, app))

    async def add(request: Request) -> Response:
        form = await request.form()
        return await to_thread.run_sync(lambda: add_user(request, app, form))

    async def role(request: Request) -> Response:
        form = await request.form()
        value = str(form.get("role", ""))
        return await to_thread.run_sync(lambda: change(request, app, "role", value))

    async def disable(request: Request) -> Response:
        return await to_thread.run_sync(lambda: change(request, app, "disable", ""))

    return [
        Route("/users", listing, methods=["GET"]),
        Route("/users", add, methods=["POST"]),
        Route("/users/{id:int}/role", role, methods=["POST"]),
        Route("/users/{id:int}/disable", disable, methods=["POST"]),
    ]


def add_user(request: Request, app: App, form: FormData) -> Response:
    try:
        with app.db.session() as session:
            added = staff.add_user(
                session,
                str(form.get("email", "")),
                str(form.get("password", "")),
                str(form.get("role", "")),
                actor=request.scope["state"]["user"],
            )
            email = added.email
    except UserInputError as exc:
        return users_page(request, app, problem=str(exc), status=400)
    return back("/users", f"{email} added.")


def users_page(request: Request, app: App, *, problem: str = "", status: int = 200) -> Response:
    with app.db.session() as session:
        people = staff.users(session)
    return page(
        request,
        app,
        "users.html",
        status,
        title="Users",
        people=people,
        roles=staff.ROLES,
        min_password=staff.MIN_PASSWORD,
        problem=problem,
    )


def change(request: Request, app: App, what: str, value: str) -> Response:
    actor = request.scope["state"]["user"]
    try:
        with app.db.session() as session:
            person = session.get(StaffUser, int(request.path_params["id"]))
            if person is None:
                return not_found(request, app, "No such user.")
            if person.email == actor:
                raise UserInputError("You cannot change your own account here.")
            if what == "role":
                staff.set_role(session, person.email, value, actor=actor)
                done = f"{person.email} is now {value}."
            else:
                staff.disable(session, person.email, actor=actor)
                done = f"{person.email} is disabled."
    except UserInputError as exc:
        return users_page(request, app, problem=str(exc), status=400)
    return back("/users", done)
