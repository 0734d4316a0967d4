"""Local stand-ins for the outside services pledgebot talks to, for tests and the demo."""

from bot.sandbox._telegram_thread import SandboxThread
from bot.sandbox.telegram import TelegramSandbox

__all__ = ["SandboxThread", "TelegramSandbox"]
