"""What every HTTP platform sandbox shares: its server's life, scripted faults, the count of
its rate-limit answers and the ``/_sandbox/<action>`` control routes.

A platform's sandbox subclasses ``SandboxServer``: it adds its own routes (``_add_routes``),
names its control actions (``_control_actions``) and hands each call of its API to
``_answer_call``, which serves the call's next fault, if one is queued, the same way for every
platform:

- ``deliver``: the call is carried out first ("accepted, but the client never heard");
- ``delay``: the answer is held that long (``stop()`` cuts the hold short);
- ``error``: that error is then the answer. Without one, a held call that was not delivered is
  carried out only if its client is still there: one that gave up gets nothing, and the call
  never happens.

The control routes answer ``GET`` actions from the query string and ``POST`` ones from a JSON
object body, with the action's JSON or ``{"ok": true}``; an unknown action is 404, a bad
argument 400 ``{"error": "<type>: <message>"}``. What an error looks like on the wire (body,
headers, which status counts as a rate limit) is each platform's, cited in
``docs/platforms/<name>.md``; this module knows no platform.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from aiohttp import web

from pledgebot_sandbox._server import serve

CONTROL_PATH = "/_sandbox"
TIMEOUT_HOLD_SECONDS = 10.0  # how long a named "timeout" fault holds its answer unless told


class ErrorAnswer(Protocol):
    """A platform's error as it goes out: HTTP status, JSON body, extra headers."""

    @property
    def status(self) -> int: ...

    @property
    def body(self) -> Any: ...

    @property
    def headers(self) -> Mapping[str, str]: ...


class Refusal(Exception):
    """An error answer with nothing more to it than status, body and headers."""

    def __init__(self, status: int, body: Any, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(f"{status} {body}")
        self.status, self.body, self.headers = status, body, dict(headers or {})


@dataclass(frozen=True)
class Fault:
    """How one call misbehaves. ``error`` builds the answer when the fault is served (so a 429
    tells how the window stands then), or is None: only the hold. ``kind`` names the fault in
    a platform's counters."""

    error: Callable[[], ErrorAnswer] | None
    delay: float | None = None
    deliver: bool = False
    kind: str = "scripted"


def ready(error: ErrorAnswer) -> Callable[[], ErrorAnswer]:
    """A fault's error built once: the same answer each time it is served."""
    return lambda: error


# A control action: its arguments (the query of a GET, the JSON body of a POST) → its JSON
# answer, None for {"ok": true}; KeyError, TypeError and ValueError answer 400.
ControlAction = Callable[[dict[str, Any]], Any]


def check_error_status(status: int) -> None:
    if not 400 <= status <= 599:
        raise ValueError("status must be an HTTP error status")


def json_object(
    raw: bytes, refuse: Callable[[str], Exception], *, not_json: str, not_object: str
) -> dict[str, Any]:
    """A request body that must be one JSON object; ``refuse(message)`` is the platform's 400."""
    try:
        body = json.loads(raw)
    except ValueError:
        raise refuse(not_json) from None
    if not isinstance(body, dict):
        raise refuse(not_object)
    return body


class SandboxServer:
    """One platform's local server. Call it only from the thread of its event loop.

    ``method_calls`` counts the calls of each endpoint (answered or not: where a platform
    counts is its own), ``rate_limited`` the rate-limit answers it gave.
    """

    client_max_size: ClassVar[int] = 1024**2  # aiohttp's default; a larger body gets 413

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.method_calls: Counter[str] = Counter()
        self.rate_limited = 0
        self._faults: dict[str | None, deque[Fault]] = {}  # None: the next call of any endpoint
        self._control: dict[str, ControlAction] = {}
        self._closing = asyncio.Event()
        self._runner: web.AppRunner | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def control_url(self) -> str:
        return f"http://{self.host}:{self.port}{CONTROL_PATH}"

    async def start(self) -> None:
        if self._runner is not None:
            raise RuntimeError("the sandbox is already running")
        self._closing = asyncio.Event()
        await self._open()
        app = web.Application(client_max_size=self.client_max_size)
        # Before the platform's routes: some of those take every path.
        app.router.add_route("*", CONTROL_PATH + "/{action}", self._handle_control)
        self._add_routes(app.router)
        self._control = self._control_actions()
        self._runner, self.port = await serve(app, self.host, self.port)

    async def stop(self) -> None:
        if self._runner is None:
            return
        self._closing.set()  # cuts held answers short
        await self._runner.cleanup()
        self._runner = None
        await self._close()

    # --- what a platform adds -----------------------------------------------------------------
    def _add_routes(self, router: web.UrlDispatcher) -> None:
        raise NotImplementedError

    def _control_actions(self) -> dict[str, ControlAction]:
        """The platform's control actions by ``"<METHOD> <action>"``, e.g. ``"GET posts"``."""
        return {}

    async def _open(self) -> None:
        """Before the server listens."""

    async def _close(self) -> None:
        """Once it has stopped."""

    def _is_rate_limit(self, error: ErrorAnswer) -> bool:
        return error.status == 429

    def _fault_served(self, key: str, fault: Fault, delivered: web.StreamResponse | None) -> None:
        """After a fault was taken for a call of ``key`` (and a delivered call carried out)."""

    # --- faults -------------------------------------------------------------------------------
    def _queue_fault(self, key: str | None, fault: Fault, times: int) -> None:
        """The next ``times`` calls of ``key`` (None: of any endpoint) get ``fault``."""
        if times < 1:
            raise ValueError("times must be at least 1")
        self._faults.setdefault(key, deque()).extend([fault] * times)

    def _fail_next(
        self,
        key: str | None,
        how: str,
        named: Callable[[str], Callable[[], ErrorAnswer]],
        *,
        times: int = 1,
        delay: float | None = None,
        deliver: bool = False,
    ) -> None:
        """A fault by name: ``"timeout"`` holds the answer ``delay`` seconds (default 10);
        any other ``how`` answers the error ``named(how)`` builds (it refuses unknown names),
        after ``delay`` if given."""
        if how == "timeout":
            fault = Fault(None, TIMEOUT_HOLD_SECONDS if delay is None else delay, deliver)
        else:
            fault = Fault(named(how), delay, deliver)
        self._queue_fault(key, fault, times)

    def _next_fault(self, key: str) -> Fault | None:
        for queued in (key, None):
            faults = self._faults.get(queued)
            if faults:
                return faults.popleft()
        return None

    async def _answer_call(
        self,
        key: str,
        request: web.Request,
        carry_out: Callable[[], Awaitable[web.StreamResponse]],
    ) -> web.StreamResponse:
        """The answer to one call of ``key``: ``carry_out()``'s, unless a fault is queued."""
        fault = self._next_fault(key)
        if fault is None:
            return await carry_out()
        delivered = await carry_out() if fault.deliver else None
        self._fault_served(key, fault, delivered)
        if fault.delay:
            with contextlib.suppress(TimeoutError):  # stop() cuts the hold short
                await asyncio.wait_for(self._closing.wait(), fault.delay)
        if fault.error is not None:
            return self._error(fault.error())
        if delivered is not None:
            return delivered
        if request.transport is None or request.transport.is_closing():
            return web.Response(status=499)  # the client gave up: the call is never carried out
        return await carry_out()

    def _error(self, error: ErrorAnswer) -> web.Response:
        if self._is_rate_limit(error):
            self.rate_limited += 1
        return web.json_response(error.body, status=error.status, headers=error.headers)

    # --- the control routes -------------------------------------------------------------------
    async def _handle_control(self, request: web.Request) -> web.Response:
        action = self._control.get(f"{request.method} {request.match_info['action']}")
        if action is None:
            return web.json_response({"error": "unknown control action"}, status=404)
        try:
            arguments: Any = dict(request.query)
            if request.method == "POST":
                arguments = await request.json() if request.body_exists else {}
                if not isinstance(arguments, dict):
                    raise TypeError("the body is one JSON object")
            answer = action(arguments)
        except (KeyError, TypeError, ValueError) as exc:
            return web.json_response({"error": f"{type(exc).__name__}: {exc}"}, status=400)
        return web.json_response({"ok": True} if answer is None else answer)
