"""The dashboard's routes: signing in and out, the outbox, alerts.

Handlers are plain functions (Starlette runs them in its thread pool), so database work never
blocks the event loop that `pledgebot run` shares with the dispatcher.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import func, select, update
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from bot.community import staff
from bot.core.db import rows_changed
from bot.core.models import OutboxMessage
from bot.delivery import alerts, failures, resend
from bot.service.app import App
from bot.web.auth import COOKIE, hold_sign_in
from bot.web.pages import back, new_token, not_found, page, safe_next

LOGIN_COOKIE = "pledgebot_login"  # the sign-in form's own CSRF token (double submit)
PAGE_SIZE = 100
STATES = ("pending", "sending", "retry_wait", "sent", "failed", "cancelled")


def routes(app: App) -> list[Route]:
    def bind(handler: Callable[..., Response]) -> Callable[[Request], Response]:
        def endpoint(request: Request) -> Response:
            return handler(request, app)

        endpoint.__name__ = handler.__name__
        return endpoint

    return [
        Route("/", bind(home)),
        Route("/login", bind(login_form), methods=["GET"]),
        Route("/login", bind_async(app, login), methods=["POST"]),
        Route("/logout", bind(logout), methods=["POST"]),
        Route("/outbox", bind(outbox_page)),
        Route("/outbox/{id:int}/retry", bind(retry_message), methods=["POST"]),
        Route("/outbox/{id:int}/cancel", bind(cancel_message), methods=["POST"]),
        Route("/alerts", bind(alerts_page)),
        Route("/alerts/{id:int}/acknowledge", bind(acknowledge_alert), methods=["POST"]),
    ]


def bind_async(
    app: App, handler: Callable[[Request, App], Awaitable[Response]]
) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        return await handler(request, app)

    endpoint.__name__ = handler.__name__
    return endpoint


# -- signing in ---------------------------------------------------------------------------------
def home(request: Request, app: App) -> Response:
    return RedirectResponse("/updates", status_code=303)


def login_form(
    request: Request, app: App, *, refused: str = "", status: int = 200, email: str = ""
) -> Response:
    # The form's token is kept while the cookie lives: a second tab, or the browser's own
    # request for a favicon, must not make the form on screen stale.
    kept = request.cookies.get(LOGIN_COOKIE, "")
    token = (
        kept
        if 20 <= len(kept) <= 64 and kept.replace("-", "").replace("_", "").isalnum()
        else new_token()
    )
    response = page(
        request,
        app,
        "login.html",
        status,
        title="Sign in",
        login_csrf=token,
        next=safe_next(request.query_params.get("next", "/")),
        refused=refused,
        email=email,
    )
    _cookie(request, response, LOGIN_COOKIE, token, max_age=3600)
    return response


async def login(request: Request, app: App) -> Response:
    form = await request.form()
    email, password = str(form.get("email", "")), str(form.get("password", ""))
    given, expected = str(form.get("csrf", "")), request.cookies.get(LOGIN_COOKIE, "")
    if not expected or not hmac.compare_digest(given.encode(), expected.encode()):
        return login_form(request, app, refused="The form expired; try again.", status=403)
    client = request.client.host if request.client else "unknown"
    from anyio import to_thread

    def attempt() -> staff.SignIn:  # its own transactions: none is open while argon2 runs
        return staff.sign_in(app.db, email, password, client)

    await hold_sign_in(app, email)  # many failures for this address: slower, never locked
    result = await to_thread.run_sync(attempt)
    if result.user is None:
        if result.retry_after:
            minutes = -(-result.retry_after // 60)
            response = login_form(
                request,
                app,
                refused=f"{result.refused} Try again in {minutes} minute(s).",
                status=429,
                email=email,
            )
            response.headers["retry-after"] = str(result.retry_after)
            return response
        return login_form(request, app, refused=result.refused, status=401, email=email)
    response = RedirectResponse(safe_next(str(form.get("next", "/"))), status_code=303)
    _cookie(
        request, response, COOKIE, result.token, max_age=int(staff.SESSION_LONGEST.total_seconds())
    )
    response.delete_cookie(LOGIN_COOKIE)
    return response


def logout(request: Request, app: App) -> Response:
    with app.db.session() as session:
        staff.sign_out(session, request.cookies.get(COOKIE, ""))
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE)
    return response


def _cookie(request: Request, response: Response, name: str, value: str, *, max_age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )


# -- outbox -------------------------------------------------------------------------------------
REASONS = (  # (how the dispatcher words it, what it means for the comms team)
    ("recipient_gone", "The pledgemaker blocked the bot or left the chat; they are marked gone."),
    ("rejected", "The platform refused this message"),
    ("gave up after", "The platform kept failing; we stopped retrying"),
    ("cancelled by staff", "Cancelled by staff."),
    ("prompt answered", "Not needed any more: the prompt was answered."),
)


def reason(message: OutboxMessage) -> str:
    error = message.last_error or ""
    if not error or message.state == "sent":
        return ""
    for marker, words in REASONS:
        if error.startswith(marker):
            detail = error.removeprefix(marker).lstrip(": ")
            return words if words.endswith(".") else f"{words}: {detail}"
    if message.state == "retry_wait":
        return f"Will try again: {error}"
    return error


def outbox_page(request: Request, app: App) -> Response:
    params = request.query_params
    chosen = {k: params.get(k, "") for k in ("state", "channel", "campaign")}
    before = params.get("before", "")
    query = select(OutboxMessage).order_by(OutboxMessage.id.desc()).limit(PAGE_SIZE + 1)
    if chosen["state"]:
        query = query.where(OutboxMessage.state == chosen["state"])
    if chosen["channel"]:
        query = query.where(OutboxMessage.channel == chosen["channel"])
    if chosen["campaign"]:
        query = query.where(OutboxMessage.campaign_id == chosen["campaign"])
    if before.isdigit():
        query = query.where(OutboxMessage.id < int(before))
    with app.db.session() as session:
        messages = list(session.scalars(query))
        counts = session.execute(
            select(OutboxMessage.state, func.count()).group_by(OutboxMessage.state)
        ).all()
        channels = session.scalars(select(OutboxMessage.channel).distinct()).all()
        campaigns = session.scalars(
            select(OutboxMessage.campaign_id)
            .where(OutboxMessage.campaign_id.is_not(None))
            .distinct()
        ).all()
    more = ""
    if len(messages) > PAGE_SIZE:
        messages = messages[:PAGE_SIZE]
        following = {"before": str(messages[-1].id), **{k: v for k, v in chosen.items() if v}}
        more = f"/outbox?{urlencode(following)}"
    return page(
        request,
        app,
        "outbox.html",
        title="Outbox",
        messages=messages,
        counts=sorted(counts),
        states=STATES,
        channels=sorted(channels),
        campaigns=sorted(c for c in campaigns if c),
        chosen=chosen,
        reason=reason,
        more=more,
    )


def retry_message(request: Request, app: App) -> Response:
    """Failed, cancelled or waiting: due now, with its attempts counted afresh — never one
    stopped by an opt-out, an unsubscribe, an erasure or a withdrawal (``resend.retry_one``,
    the rule `pledgebot outbox retry` follows too)."""
    message_id = int(request.path_params["id"])
    with app.db.session() as session:
        refusal = resend.retry_one(session, message_id)
        if refusal is None:
            who = request.scope["state"]["user"]
            staff.audit(session, who, "outbox.retry", str(message_id), "")
    if refusal is not None:
        return not_found(request, app, f"Message {message_id} cannot be retried: {refusal}.")
    return back("/outbox", f"Message {message_id} will be sent again now.")


def cancel_message(request: Request, app: App) -> Response:
    return _transition(
        request,
        app,
        ("pending", "retry_wait"),
        {"state": "cancelled", "last_error": "cancelled by staff", "failure_class": failures.STAFF},
        "outbox.cancel",
        done="Message {id} cancelled.",
        refused="Message {id} is not waiting to be sent.",
    )


def _transition(
    request: Request,
    app: App,
    from_states: tuple[str, ...],
    values: dict[str, Any],
    action: str,
    *,
    done: str,
    refused: str,
) -> Response:
    """Move one message out of ``from_states`` (only from those: a message the dispatcher has
    meanwhile sent stays sent), record who did it, and say so."""
    message_id = int(request.path_params["id"])
    with app.db.session() as session:
        changed = rows_changed(
            session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id == message_id, OutboxMessage.state.in_(from_states))
                .values(**values)
            )
        )
        if changed:
            staff.audit(session, request.scope["state"]["user"], action, str(message_id), "")
    if not changed:
        return not_found(request, app, refused.format(id=message_id))
    return back("/outbox", done.format(id=message_id))


# -- alerts -------------------------------------------------------------------------------------
def alerts_page(request: Request, app: App) -> Response:
    with app.db.session() as session:
        listed = alerts.open_alerts(session)
    return page(request, app, "alerts.html", title="Alerts", alerts=listed)


def acknowledge_alert(request: Request, app: App) -> Response:
    alert_id = int(request.path_params["id"])
    who = request.scope["state"]["user"]
    with app.db.session() as session:
        done = alerts.acknowledge(session, alert_id, who)
        if done:
            staff.audit(session, who, "alert.acknowledge", str(alert_id), "")
    if not done:
        return not_found(request, app, f"Alert {alert_id} is not open.")
    return back("/alerts", f"Alert {alert_id} acknowledged.")
