"""Run in the copy by tests/test_add_a_channel.py: plans a post for the board with the real
planner, sends it with the real dispatcher against the board's sandbox, prints what happened."""

import asyncio
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select

from bot.campaigns import posts
from bot.campaigns.base import RunContext
from bot.channels import registry
from bot.community.closing import post_link
from bot.core.models import OutboxMessage
from bot.delivery import outbox
from bot.delivery.dispatcher import Dispatcher
from bot.service.app import build_app
from bot.settings.config import load_config
from pledgebot_sandbox.board import Board


async def main() -> None:
    board = Board()
    await board.start()
    os.environ["BOARD_TOKEN"] = board.token
    Path("config.toml").write_text(
        f'[database]\nurl = "sqlite:///run.db"\n[paths]\ntemplates = "templates"\n'
        f'[channels.board]\nenabled = true\nbase_url = "{board.url}"\n'
    )
    app = build_app(load_config("config.toml", required=True))
    app.db.upgrade()
    destinations = app.destinations()
    fired = datetime(2026, 12, 10, 9, tzinfo=UTC)
    plan = posts.plan_post(
        kind="amplify",
        campaign_id="journeys",
        channels=["board"],
        template="amplify",
        language="en",
        run=RunContext("journeys", fired, destinations=destinations),
        context={"credit": "ILO & partners", "text": sys.argv[1]},
        templates=app.templates,
        media=(),
        post={"pillar": "act"},
    )
    with app.db.session() as session:
        outbox.enqueue(session, plan.messages)
    dispatcher = Dispatcher(app.db, app.enabled_channels(), app.config.dispatcher)
    for _ in range(len(plan.messages)):  # a thread's part waits for the one it follows
        await dispatcher.dispatch_once()
    with app.db.session() as session:
        rows = session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)).all()
        found = [(row.state, row.external_id, row.recipient, row.text) for row in rows]
    first = found[0][1] or ""
    print(
        json.dumps(
            {
                "destinations": dict(destinations),
                "skipped": plan.skipped,
                "outbox": found,
                "board": list(board.notes.values()),
                "link": post_link("board", "timeline", first),
                "known": registry.known_channels(),
            }
        )
    )
    await app.aclose()
    await board.stop()


asyncio.run(main())
