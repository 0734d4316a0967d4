"""Local stand-ins for the outside services pledgebot talks to, for tests and the demo."""

from pledgebot_sandbox._telegram_thread import SandboxThread
from pledgebot_sandbox.telegram import TelegramSandbox

__all__ = ["SandboxThread", "TelegramSandbox"]
