"""``SandboxThread``: the Telegram sandbox on its own event loop in a background thread.

For tests that run pledgebot as a subprocess, or any synchronous code (the runner itself is
``pledgebot_sandbox._thread``). Above ``pledgebot_sandbox.telegram``, which does not import it;
``pledgebot_sandbox`` exports both.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from pledgebot_sandbox._thread import BaseSandboxThread
from pledgebot_sandbox.telegram import TelegramSandbox


class SandboxThread(BaseSandboxThread[TelegramSandbox]):
    """``with SandboxThread(**TelegramSandbox kwargs) as tg:`` then ``tg.push_message(...)``."""

    sandbox_class = TelegramSandbox

    # --- convenience proxies ------------------------------------------------------------------
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
    def pending_updates(self) -> int:
        return int(self.call("pending_updates"))

    @property
    def answered_callbacks(self) -> list[dict[str, Any]]:
        return list(self.call("answered_callbacks"))

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
