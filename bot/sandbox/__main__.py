"""``python -m bot.sandbox``: run the Telegram sandbox in the foreground for manual use.

Prints ``key=value`` lines (base_url, base_file_url, token, control_url) once it listens, so a
script can read them from stdout; stops cleanly on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import signal

from bot.sandbox.telegram import TelegramSandbox


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bot.sandbox", description="Run a local Telegram Bot API sandbox."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081, help="0 picks a free port")
    parser.add_argument("--token", default="123456:SANDBOX-TOKEN")
    parser.add_argument("--bot-username", default="pledgebot_sandbox_bot")
    parser.add_argument("--overall-rate", type=float, default=30.0, help="messages/s, all chats")
    parser.add_argument("--chat-rate", type=float, default=1.0, help="messages/s per chat")
    parser.add_argument("--chat-burst", type=int, default=3, help="messages in a burst per chat")
    return parser


async def serve(args: argparse.Namespace) -> None:
    sandbox = TelegramSandbox(
        token=args.token,
        bot_username=args.bot_username,
        overall_rate=args.overall_rate,
        chat_rate=args.chat_rate,
        chat_burst=args.chat_burst,
        host=args.host,
        port=args.port,
    )
    await sandbox.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"base_url={sandbox.base_url}", flush=True)
    print(f"base_file_url={sandbox.base_file_url}", flush=True)
    print(f"token={sandbox.token}", flush=True)
    print(f"control_url=http://{sandbox.host}:{sandbox.port}/_sandbox", flush=True)
    try:
        await stop.wait()
    finally:
        await sandbox.stop()


def main(argv: list[str] | None = None) -> None:
    asyncio.run(serve(build_parser().parse_args(argv)))


if __name__ == "__main__":
    main()
