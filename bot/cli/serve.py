"""The long-running commands (``run``, ``worker``, ``scheduler``, ``listener``, ``web``) and
``demo``, registered by ``bot.cli.main``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from bot.cli.common import State, err, open_app, out
from bot.core.logs import setup_logging

if TYPE_CHECKING:  # the heavy imports wait for the command that needs them: --help stays fast
    from bot.service.app import App


def _serve(command: str, port: int | None = None) -> None:
    from bot.cli.runner import run_forever

    setup_logging(max(1, State.verbose), State.log_format)  # a service logs what it does
    app = open_app(migrate=False)
    if port is not None:
        dashboard = app.config.dashboard.model_copy(update={"port": port})
        app.config = app.config.model_copy(update={"dashboard": dashboard})
    # A service does not wait inside a transaction's BEGIN (its roles share one event loop):
    # a role that finds the database locked past the busy timeout fails, is logged and started
    # again after a pause (bot.cli.runner.supervise), and the other roles and the dashboard go on.
    app.db.wait_for_lock(None)
    if command in ("run", "web"):
        app.config.metrics_token()  # a weak scraper token is refused before anything starts
    run_forever(app, command)


PortOption = Annotated[
    int | None,
    typer.Option(
        "--port",
        min=0,
        max=65535,
        help="Serve the dashboard on this port instead of [dashboard] port (0: any free one); "
        "a second process on the same host needs its own.",
    ),
]


def run(port: PortOption = None) -> None:
    """Everything in one process: scheduler, dispatcher, listener, inbox, web (health)."""
    _serve("run", port)


def worker() -> None:
    """Send the outbox only. On PostgreSQL, start as many as you need."""
    _serve("worker")


def scheduler() -> None:
    """Fire campaigns and sweep cadences. One leads; others stand by and take over."""
    _serve("scheduler")


def listener() -> None:
    """Receive chat messages and turn them into replies. One per bot token leads."""
    _serve("listener")


def web(port: PortOption = None) -> None:
    """Serve the dashboard (and /healthz, /metrics) on [dashboard] host and port."""
    _serve("web", port)


DEMO_NEEDS_SANDBOXES = "the demo needs the sandboxes: pip install -e ./sandbox (make demo does it)"


def demo(
    folder: Annotated[Path, typer.Option(help="Where the demo database goes.")] = Path("demo-data"),
    dashboard: Annotated[
        bool,
        typer.Option(
            "--dashboard",
            help="Then serve the dashboard on the demo's data (sandboxes still running) "
            "until Ctrl-C; prints a sign-in made for the demo.",
        ),
    ] = False,
    channels: Annotated[
        str | None,
        typer.Option(
            "--channels",
            metavar="LIST",
            help="The chat channels the simulated pledgemakers use, comma-separated, from "
            "telegram, email, matrix; each runs against a real local server. Default: all "
            "three, skipping (with one line) any that cannot run here; one named here that "
            "cannot run is an error. email needs aiosmtpd and pymap (the sandboxes' requirements); "
            "matrix builds Synapse's own venv once (~30 s, from PyPI). X is always used for posts.",
        ),
    ] = None,
    pledgemakers: Annotated[
        int | None,
        typer.Option(
            "--pledgemakers",
            min=1,
            metavar="N",
            help="Only the first N sample pledgemakers (default: all 40), dealt among the "
            "channels in turn: a smaller, faster demo.",
        ),
    ] = None,
) -> None:
    """The whole loop on SQLite against local servers (the Telegram, X, Bluesky, LinkedIn,
    Facebook/Instagram and Mastodon sandboxes, SMTP/IMAP, Synapse) with simulated
    pledgemakers; no accounts needed."""
    import asyncio

    from bot.settings.config import load_config

    try:  # its own distribution (sandbox/pyproject.toml), never in a plain `pip install pledgebot`
        from pledgebot_sandbox.demo import run_demo, serve_dashboard
        from pledgebot_sandbox.demo_channels import parse_channels
    except ModuleNotFoundError as exc:
        if exc.name != "pledgebot_sandbox":
            raise
        print(DEMO_NEEDS_SANDBOXES, file=sys.stderr)
        raise typer.Exit(2) from None

    chosen = parse_channels(channels) if channels is not None else None
    config = load_config(State.config_path, required=State.config_given)

    def show(summary: dict[str, str]) -> None:
        for label, value in summary.items():
            out.print(f"{label}: {value}", markup=False)

    async def then(app: App, summary: dict[str, str]) -> None:
        show(summary)
        await serve_dashboard(app, err.print)

    summary = asyncio.run(
        run_demo(
            config,
            folder,
            channels=chosen,
            pledgemakers=pledgemakers,
            dashboard=then if dashboard else None,
            say=lambda line: err.print(line, markup=False),
        )
    )
    if not dashboard:
        show(summary)
