"""``BaseSandboxThread``: any platform sandbox on its own event loop in a background thread.

For tests that run pledgebot as a subprocess, or any synchronous code: every call is marshalled
onto the sandbox's loop, so the sandbox is only ever touched from one thread. Each platform's
runner (``SandboxThread`` for Telegram, ``XSandboxThread``, ...) names its sandbox in
``sandbox_class`` (a ``SandboxServer``) and adds its own proxies; this module knows no platform.
"""

from __future__ import annotations

import asyncio
import copy
import inspect
import threading
from collections import Counter
from collections.abc import Coroutine
from typing import Any, Generic, Self, TypeVar

from pledgebot_sandbox._control import SandboxServer

T = TypeVar("T")
S = TypeVar("S", bound=SandboxServer)
CALL_TIMEOUT_SECONDS = 60


class BaseSandboxThread(Generic[S]):
    """``with <Platform>SandboxThread(**<Platform>Sandbox kwargs) as s:`` then ``s.call(...)``."""

    sandbox_class: type[S]  # the sandbox it builds

    def __init__(self, **sandbox_kwargs: Any) -> None:
        self._kwargs = sandbox_kwargs
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._sandbox: S | None = None

    @property
    def sandbox(self) -> S:
        if self._sandbox is None:
            raise RuntimeError("the sandbox thread is not running")
        return self._sandbox

    def start(self) -> Self:
        if self._loop is not None:
            raise RuntimeError("the sandbox thread is already running")
        loop = asyncio.new_event_loop()
        name = f"{self.sandbox_class.__name__} loop"
        thread = threading.Thread(target=loop.run_forever, name=name, daemon=True)
        thread.start()
        self._loop, self._thread = loop, thread
        try:
            self._sandbox = self._submit(self._create())
        except BaseException:
            self._shutdown_loop()
            raise
        return self

    async def _create(self) -> S:
        sandbox = self.sandbox_class(**self._kwargs)
        await sandbox.start()
        return sandbox

    def stop(self) -> None:
        if self._loop is None:
            return
        try:
            if self._sandbox is not None:
                self._submit(self._sandbox.stop())
        finally:
            self._shutdown_loop()

    def _shutdown_loop(self) -> None:
        assert self._loop is not None and self._thread is not None
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()
        self._loop, self._thread, self._sandbox = None, None, None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _submit(self, coro: Coroutine[Any, Any, T]) -> T:
        if self._loop is None:
            coro.close()
            raise RuntimeError("the sandbox thread is not running")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(CALL_TIMEOUT_SECONDS)

    def call(self, fn_name: str, *args: Any, **kwargs: Any) -> Any:
        """Run ``sandbox.<fn_name>(*args, **kwargs)`` on the sandbox loop; attributes are read."""

        async def invoke() -> Any:
            attribute = getattr(self.sandbox, fn_name)
            if not callable(attribute):
                return copy.deepcopy(attribute)  # a snapshot: the live value keeps changing
            result = attribute(*args, **kwargs)
            return await result if inspect.isawaitable(result) else result

        return self._submit(invoke())

    # --- proxies every sandbox answers ---------------------------------------------------------
    @property
    def base_url(self) -> str:
        return self.sandbox.base_url

    @property
    def port(self) -> int:
        return self.sandbox.port

    @property
    def rate_limited(self) -> int:
        return int(self.call("rate_limited"))

    @property
    def method_calls(self) -> Counter[str]:
        return Counter(self.call("method_calls"))

    def inject_fault(self, method: str, **kwargs: Any) -> None:
        self.call("inject_fault", method, **kwargs)
