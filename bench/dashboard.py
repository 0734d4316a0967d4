"""Dashboard pages: does a page's cost follow what it shows, not the size of the campaign?

Two SQLite databases with the same shape — every pledgemaker bound on Telegram, three prompts
sent (two answered, with a reply each), one journey update (half pending), a post for one in
ten — one with ``--small`` pledgemakers (default 200), one with 50× as many (default 10,000:
about 140,000 rows). Each page is fetched through the real app and its middleware (Starlette's
TestClient, signed in) from both, alternately, and the median times compared.

Ratio: the worst large ÷ small time over the pages that show one page of rows (Pledgemakers,
one pledgemaker, Inbox, Updates, Outbox), target ≤ 3 (lower is better; ideal 1 — the campaign's
size should not matter). Reports aggregate the whole campaign and the Calendar plans a week for
everyone, so they grow with it by nature: their ratios are printed as figures, with their
large-database times.

    .venv/bin/python bench/dashboard.py [--large 10000] [--small 200] [--runs 9] [--quick]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from _common import NOW, ROOT, TEMPLATES, insert_audience, log, report

TARGET = 3.0
PASSWORD = "orchard-lantern-47-quiet"  # not guessable (bot.community.staff.check_password)
PAGED = ("/pledgemakers", "/pledgemakers/p000007", "/inbox", "/updates", "/outbox")
WHOLE = ("/reports", "/reports?by=country", "/calendar")
TOKEN_ENV = "PLEDGEBOT_BENCH_TELEGRAM_TOKEN"


def populate(path: Path, size: int) -> None:
    """``size`` bound pledgemakers and their story (bulk inserts, no ORM objects)."""
    from sqlalchemy import insert

    from bot.core.db import Database
    from bot.core.models import InboundEvent, JourneyUpdate, OutboxMessage, Post, Prompt, Reply

    db = Database(f"sqlite:///{path}")
    db.upgrade()
    with db.session() as session:
        chats = insert_audience(session, size)
        outbox, prompts, events, replies, updates, posts = [], [], [], [], [], []
        for i, chat in enumerate(chats):
            person, contact = f"p{i:06d}", i + 1
            for n, pillar in enumerate(("act", "inspire", "scale_up")):
                message = len(outbox) + 1
                sent = NOW - timedelta(days=30 - n, hours=i % 24)
                outbox.append(
                    {
                        "id": message,
                        "idempotency_key": f"prompt:{person}:{pillar}",
                        "campaign_id": f"{pillar}-checkin",
                        "channel": "telegram",
                        "recipient": str(chat),
                        "contact_id": contact,
                        "pledgemaker_id": person,
                        "text": f"How is {pillar} going?",
                        "state": "sent",
                        "next_attempt_at": sent,
                        "sent_at": sent,
                        "external_id": str(n + 1),
                        "created_at": sent,
                        "media": [],
                    }
                )
                prompts.append(
                    {
                        "id": message,
                        "outbox_id": message,
                        "contact_id": contact,
                        "pledgemaker_id": person,
                        "campaign_id": f"{pillar}-checkin",
                        "pillar": pillar,
                        "state": "answered" if n < 2 else "open",
                        "created_at": sent,
                    }
                )
                if n < 2:
                    event = len(events) + 1
                    at = sent + timedelta(hours=3 + i % 40)
                    events.append(
                        {
                            "id": event,
                            "channel": "telegram",
                            "event_key": f"msg:{chat}:{10 + n}",
                            "kind": "message",
                            "chat_id": str(chat),
                            "payload": {},
                            "received_at": at,
                            "processed_at": at,
                        }
                    )
                    replies.append(
                        {
                            "inbound_event_id": event,
                            "channel": "telegram",
                            "chat_id": str(chat),
                            "external_id": str(10 + n),
                            "contact_id": contact,
                            "pledgemaker_id": person,
                            "prompt_id": message,
                            "journey_update_id": i + 1 if n == 0 else None,
                            "text": f"Progress on {pillar}: we trained {i % 90} inspectors & more.",
                            "media": [],
                            "received_at": at,
                        }
                    )
            updates.append(
                {
                    "id": i + 1,
                    "pledgemaker_id": person,
                    "prompt_id": len(outbox) - 2,
                    "contact_id": contact,
                    "pillar": "act",
                    "kind": "progress",
                    "text": f"We trained {i % 90} inspectors.",
                    "media": [],
                    "moderation": "pending" if i % 2 else "approved",
                    "moderated_at": None if i % 2 else NOW - timedelta(days=20),
                    "consent_to_publish": True,
                    "source": "reply",
                    "source_ref": f"reply:{person}",
                    "created_at": NOW - timedelta(days=29),
                }
            )
            if i % 10 == 0:
                posts.append(
                    {
                        "journey_update_id": i + 1,
                        "pledgemaker_id": person,
                        "campaign_id": "journeys",
                        "channel": "telegram",
                        "first_outbox_id": len(outbox) - 2,
                        "parts": 1,
                        "pillar": "act",
                        "created_at": NOW - timedelta(days=19),
                    }
                )
        for model, rows in (
            (OutboxMessage, outbox),
            (Prompt, prompts),
            (InboundEvent, events),
            (JourneyUpdate, updates),
            (Reply, replies),
            (Post, posts),
        ):
            for start in range(0, len(rows), 5000):
                session.execute(insert(model), rows[start : start + 5000])
    db.dispose()


def write_config(folder: Path, database: Path) -> Path:
    """Beside the knowledge campaign's facts, which the schedules name relative to it."""
    if not (folder / "data" / "knowledge").exists():
        shutil.copytree(ROOT / "data" / "knowledge", folder / "data" / "knowledge")
    path = folder / f"{database.stem}.toml"
    path.write_text(
        f"""
timezone = "UTC"
[database]
url = "sqlite:///{database}"
[paths]
templates = "{TEMPLATES}"
schedules = "{ROOT / "schedules"}"
[channels.telegram]
enabled = true
token_env = "{TOKEN_ENV}"
base_url = "http://127.0.0.1:9/bot"
post_chat_id = "@pledge_news"
""",
        encoding="utf-8",
    )
    return path


def client(config: Path) -> Any:
    """A signed-in TestClient on the real app."""
    import re

    from starlette.testclient import TestClient

    from bot.community import staff
    from bot.service.app import build_app
    from bot.settings.config import load_config
    from bot.web.app import build

    app = build_app(load_config(config, required=True))
    with app.db.session() as session:
        staff.add_user(session, "bench@example.org", PASSWORD, "viewer", actor="bench")
    web = TestClient(build(app))
    form = web.get("/login").text
    token = re.search(r'name="csrf" value="([^"]+)"', form)
    assert token is not None
    answer = web.post(
        "/login",
        data={"csrf": token.group(1), "email": "bench@example.org", "password": PASSWORD},
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text
    return web


def timed(web: Any, path: str) -> float:
    started = time.perf_counter()
    answer = web.get(path)
    elapsed = time.perf_counter() - started
    if answer.status_code != 200:
        raise SystemExit(f"{path}: HTTP {answer.status_code}")
    return elapsed


def main(large: int, small: int, runs: int) -> bool:
    os.environ.setdefault(TOKEN_ENV, "1:BENCH")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        clients = {}
        for label, size in (("small", small), ("large", large)):
            database = folder / f"{label}.db"
            log(f"dashboard: {size:,} pledgemakers ({label})")
            populate(database, size)
            clients[label] = client(write_config(folder, database))
        times: dict[str, dict[str, list[float]]] = {p: {"small": [], "large": []} for p in PAGED}
        times.update({p: {"small": [], "large": []} for p in WHOLE})
        for path in times:  # one warm-up each: templates compiled, caches filled
            for label in clients:
                timed(clients[label], path)
        for run in range(runs):
            log(f"dashboard: round {run + 1} of {runs}")
            for path in times:
                for label in ("small", "large") if run % 2 else ("large", "small"):
                    times[path][label].append(timed(clients[label], path))
    medians = {
        path: {label: statistics.median(values) for label, values in sides.items()}
        for path, sides in times.items()
    }
    ratios = {path: m["large"] / m["small"] for path, m in medians.items()}
    worst = max(PAGED, key=lambda path: ratios[path])
    return report(
        "dashboard",
        ratio=ratios[worst],
        target=TARGET,
        higher_is_better=False,
        summary=(
            f"worst paged page {worst}: {medians[worst]['large'] * 1000:.0f} ms at "
            f"{large:,} pledgemakers vs {medians[worst]['small'] * 1000:.0f} ms at {small:,}; "
            f"reports {medians['/reports']['large'] * 1000:.0f} ms, "
            f"calendar {medians['/calendar']['large'] * 1000:.0f} ms at {large:,}"
        ),
        large=large,
        small=small,
        worst_page=worst,
        ratios={path: round(value, 2) for path, value in ratios.items()},
        large_ms={path: round(m["large"] * 1000, 1) for path, m in medians.items()},
    )


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--large", type=int, default=10_000, help="pledgemakers, large side")
    parser.add_argument("--small", type=int, default=200, help="pledgemakers, small side")
    parser.add_argument("--runs", type=int, default=9, help="timed rounds per page and side")
    parser.add_argument("--quick", action="store_true", help="2,000 vs 200, 5 rounds")
    parser.add_argument("--strict", action="store_true", help="exit 1 if the target is missed")
    args = parser.parse_args(argv)
    if args.quick:
        args.large, args.runs = 2_000, 5
    return args


if __name__ == "__main__":
    arguments = parse()
    met = main(arguments.large, arguments.small, arguments.runs)
    raise SystemExit(1 if arguments.strict and not met else 0)
