"""``python -m pledgebot_sandbox``: run the Telegram sandbox in the foreground for manual use.

Prints ``key=value`` lines (base_url, base_file_url, token, control_url) once it listens, so a
script can read them from stdout; stops cleanly on Ctrl-C or SIGTERM. ``--fault-5xx 0.1
--fault-429 0.05 --fault-timeout 0.02`` make a share of the ``--fault-method`` calls fail at
random (seeded: ``--fault-seed``); ``GET <control_url>/stats`` counts calls, faults and
messages per chat.
"""

from __future__ import annotations

import argparse
import asyncio
import signal

from pledgebot_sandbox.telegram import TelegramSandbox


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pledgebot_sandbox", description="Run a local Telegram Bot API sandbox."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081, help="0 picks a free port")
    parser.add_argument("--token", default="123456:SANDBOX-TOKEN")
    parser.add_argument("--bot-username", default="pledgebot_sandbox_bot")
    parser.add_argument("--overall-rate", type=float, default=30.0, help="messages/s, all chats")
    parser.add_argument("--chat-rate", type=float, default=1.0, help="messages/s per chat")
    parser.add_argument("--chat-burst", type=int, default=3, help="messages in a burst per chat")
    faults = parser.add_argument_group("random faults (see TelegramSandbox.set_fault_rates)")
    faults.add_argument("--fault-method", default="sendMessage", help="the method to fault")
    faults.add_argument(
        "--fault-5xx", type=float, default=0.0, metavar="P", help="share of 500/502/503 answers"
    )
    faults.add_argument(
        "--fault-429", type=float, default=0.0, metavar="P", help="share of 429 answers"
    )
    faults.add_argument(
        "--fault-timeout", type=float, default=0.0, metavar="P", help="share of timeouts"
    )
    faults.add_argument(
        "--fault-retry-after", type=int, default=1, metavar="S", help="retry_after of a 429"
    )
    faults.add_argument(
        "--fault-timeout-delay",
        type=float,
        default=5.0,
        metavar="S",
        help="how long a timeout holds the answer (more than the client's read timeout)",
    )
    faults.add_argument(
        "--fault-timeout-delivered",
        type=float,
        default=0.5,
        metavar="P",
        help="share of timeouts whose message is delivered all the same",
    )
    faults.add_argument("--fault-seed", type=int, default=None, help="seed of the fault draws")
    return parser


def apply_fault_rates(sandbox: TelegramSandbox, args: argparse.Namespace) -> None:
    if not (args.fault_5xx or args.fault_429 or args.fault_timeout):
        return
    sandbox.set_fault_rates(
        args.fault_method,
        server_error=args.fault_5xx,
        rate_limit=args.fault_429,
        timeout=args.fault_timeout,
        retry_after=args.fault_retry_after,
        timeout_delay=args.fault_timeout_delay,
        timeout_delivered=args.fault_timeout_delivered,
        seed=args.fault_seed,
    )


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
    apply_fault_rates(sandbox, args)  # before start: bad rates exit without listening
    await sandbox.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"base_url={sandbox.base_url}", flush=True)
    print(f"base_file_url={sandbox.base_file_url}", flush=True)
    print(f"token={sandbox.token}", flush=True)
    print(f"control_url={sandbox.control_url}", flush=True)
    try:
        await stop.wait()
    finally:
        await sandbox.stop()


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        asyncio.run(serve(args))
    except ValueError as exc:  # bad sandbox settings: argparse's one-line error, exit 2
        parser.error(str(exc))


if __name__ == "__main__":
    main()
