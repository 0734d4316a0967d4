"""Request bodies are limited before anything reads them: the outermost layer of the web app.

A body declared larger than the path's limit (``Content-Length``) is refused with 413 at once,
unread; a body sent without a length (chunked) is counted as the app reads it, and refused as
soon as it passes the limit, so no request makes the server read (or keep) more than the limit.
Routes served without a session (``bot.web.auth.PUBLIC``: the sign-in form, an invitation's
confirmation, one-click unsubscribe) take small forms only; signed-in staff may send up to
``bot.web.auth.MAX_FORM_BYTES`` (a CSV upload).
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.responses import PlainTextResponse

from bot.web import auth
from bot.web.auth import ASGIApp, Message, Receive, Scope, Send

PUBLIC_MAX_BYTES = 64 * 1024


def body_limit(path: str) -> int:
    """The most a request to ``path`` may send, in bytes."""
    return PUBLIC_MAX_BYTES if auth.is_public(path) else auth.MAX_FORM_BYTES


class _TooLarge(Exception):
    """Raised into the app from ``receive`` when the body passes the limit."""


class BodyLimit:
    def __init__(self, inner: ASGIApp) -> None:
        self.inner = inner

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.inner(scope, receive, send)
            return
        limit = body_limit(scope["path"])
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            await _refuse(scope, send, limit)  # before a byte of the body is read
            return
        received, refused, started = 0, False, False

        async def counted() -> Message:
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    refused = True
                    raise _TooLarge
            return message

        async def watched(message: Message) -> None:
            nonlocal started
            if refused:  # whatever the app answers once its body was cut off is not sent
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.inner(scope, counted, watched)
        except Exception:
            if not refused:
                raise
        if refused and not started:
            await _refuse(scope, send, limit)


async def _refuse(scope: Scope, send: Send, limit: int) -> None:
    response = PlainTextResponse(
        f"Too large: at most {limit:,} bytes here.", 413, headers={"connection": "close"}
    )

    async def nothing() -> Message:
        return {"type": "http.disconnect"}

    await response(scope, nothing, send)
