"""``SandboxThread``: a Telegram sandbox on its own event loop in a background thread.

For tests that run pledgebot as a subprocess, or any synchronous code: every call is marshalled
onto the sandbox's loop, so the sandbox is only ever touched from one thread.
"""

from __future__ import annotations

import asyncio
import copy
import inspect
import threading
from collections import Counter
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, ClassVar, Self, TypeVar

if TYPE_CHECKING:
    from bot.sandbox.telegram import TelegramSandbox

T = TypeVar("T")
CALL_TIMEOUT_SECONDS = 60


class SandboxThread:
    """``with SandboxThread(**TelegramSandbox kwargs) as tg:`` then ``tg.push_message(...)``.
    Another platform's sandbox runs the same way: a subclass names it in ``sandbox_class``."""

    sandbox_class: ClassVar[type[Any] | None] = None  # None: the Telegram sandbox

    def __init__(self, **sandbox_kwargs: Any) -> None:
        self._kwargs = sandbox_kwargs
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._sandbox: TelegramSandbox | None = None

    @property
    def sandbox(self) -> TelegramSandbox:
        if self._sandbox is None:
            raise RuntimeError("the sandbox thread is not running")
        return self._sandbox

    def start(self) -> Self:
        if self._loop is not None:
            raise RuntimeError("the sandbox thread is already running")
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="telegram-sandbox", daemon=True)
        thread.start()
        self._loop, self._thread = loop, thread
        try:
            self._sandbox = self._submit(self._create())
        except BaseException:
            self._shutdown_loop()
            raise
        return self

    async def _create(self) -> Any:
        made = self.sandbox_class
        if made is None:
            from bot.sandbox.telegram import TelegramSandbox  # telegram.py re-exports this module

            made = TelegramSandbox
        sandbox = made(**self._kwargs)
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

    # --- convenience proxies ------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        return self.sandbox.base_url

    @property
    def base_file_url(self) -> str:
        return self.sandbox.base_file_url

    @property
    def token(self) -> str:
        return self.sandbox.token

    @property
    def bot_username(self) -> str:
        return self.sandbox.bot_username

    @property
    def port(self) -> int:
        return self.sandbox.port

    @property
    def pending_updates(self) -> int:
        return int(self.call("pending_updates"))

    @property
    def rate_limited(self) -> int:
        return int(self.call("rate_limited"))

    @property
    def answered_callbacks(self) -> list[dict[str, Any]]:
        return list(self.call("answered_callbacks"))

    @property
    def method_calls(self) -> Counter[str]:
        return Counter(self.call("method_calls"))

    def add_chat(self, chat_id: int, **kwargs: Any) -> None:
        self.call("add_chat", chat_id, **kwargs)

    def push_message(self, chat_id: int, text: str | None = None, **kwargs: Any) -> int:
        return int(self.call("push_message", chat_id, text, **kwargs))

    def push_edit(self, chat_id: int, message_id: int, text: str) -> None:
        self.call("push_edit", chat_id, message_id, text)

    def press_button(self, chat_id: int, message_id: int, data: str, **kwargs: Any) -> str:
        return str(self.call("press_button", chat_id, message_id, data, **kwargs))

    def block(self, chat_id: int) -> None:
        self.call("block", chat_id)

    def unblock(self, chat_id: int) -> None:
        self.call("unblock", chat_id)

    def sent_messages(self, chat_id: int | None = None) -> list[dict[str, Any]]:
        return list(self.call("sent_messages", chat_id))

    def inject_fault(self, method: str, **kwargs: Any) -> None:
        self.call("inject_fault", method, **kwargs)

    def set_fault_rates(self, method: str = "sendMessage", **kwargs: Any) -> None:
        self.call("set_fault_rates", method, **kwargs)

    def fault_counts(self, method: str | None = None) -> Counter[str]:
        return Counter(self.call("fault_counts", method))

    def sent_counts(self) -> Counter[int]:
        return Counter(self.call("sent_counts"))

    def stats(self) -> dict[str, Any]:
        return dict(self.call("stats"))

    def reset_update_ids(self, start: int) -> None:
        self.call("reset_update_ids", start)
