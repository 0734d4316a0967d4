"""Local stand-ins for the outside services pledgebot talks to, for tests and the demo."""

from bot.sandbox.telegram import SandboxThread, TelegramSandbox

__all__ = ["SandboxThread", "TelegramSandbox"]
