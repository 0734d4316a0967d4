"""`kill -9` at scale (issue 5, part 4): real `pledgebot` processes killed at seeded-random
moments and restarted, with the sandbox's limits scaled up so each case takes a minute or two.

- 5,000 prompts on SQLite, one `pledgebot run`, 20 kills: every prompt delivered; duplicates
  (counted by the sandbox) only for messages in flight at a kill — at most kills × batch_size —
  and each one flagged ``possible_duplicate``.
- The same on PostgreSQL with 4 `pledgebot worker` processes, a random one killed each time: the
  dead worker's leases expire and the others resend; no message sent twice unless it was in
  flight at a kill (no double claims by live workers).
- 10,000 inbound messages ingested by `pledgebot run` on SQLite, killed 4 times: none lost, none
  stored twice (InboundEvent and Reply rows by chat and message id).
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.community.importer import import_pledgemakers
from bot.core.models import InboundEvent, OutboxMessage, Reply, utcnow
from bot.delivery.outbox import OPEN_STATES
from bot.scheduling import runs
from bot.service.app import App, build_app
from bot.settings.config import load_config
from pledgebot_sandbox import SandboxThread
from tests.conftest import SAMPLE_CSV, TOKEN_ENV, only_on_demand_campaign, write_config
from tests.reliability._procs import Proc, bind_chats, count, tune_config, use_database, wait_for

pytestmark = [pytest.mark.reliability, pytest.mark.crash]

SEED = 20_210_612  # the World Day Against Child Labour
MESSAGES = 5_000  # one prompt per chat
FIRST_CHAT = 300_001
KILLS = 20
BATCH_SIZE = 32  # [dispatcher] batch_size: the most sends one process has in flight
LEASE_SECONDS = 5.0  # [dispatcher] lease_seconds: above the request timeout
REQUEST_TIMEOUT = 2.0
WORKERS = 4
UPDATES = 10_000  # inbound messages for the ingest case
INGEST_CHATS = 100
INGEST_KILLS = 4
STEP_TIMEOUT = 90  # seconds any one step may take on a loaded 2-core machine


@dataclass
class World:
    sandbox: SandboxThread
    app: App
    folder: Path
    procs: list[Proc] = field(default_factory=list)

    def proc(self, command: str, name: str | None = None) -> Proc:
        proc = Proc(self.folder, command, self.sandbox.token, name)
        self.procs.append(proc)
        return proc

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.tail()}" for p in self.procs)


def build_world(
    folder: Path, monkeypatch: pytest.MonkeyPatch, sandbox: SandboxThread, url: str | None
) -> World:
    monkeypatch.setenv(TOKEN_ENV, sandbox.token)
    only_on_demand_campaign(folder)
    path = write_config(folder, base_url=sandbox.base_url)
    if url is not None:
        use_database(path, url)
    tune_config(
        path,
        {
            "dispatcher": {
                "batch_size": BATCH_SIZE,
                "lease_seconds": LEASE_SECONDS,
                "poll_interval": 0.1,
                "max_attempts": 8,
            },
            "channels.telegram": {
                "request_timeout": REQUEST_TIMEOUT,
                "max_messages_per_second": 5000,
                "max_messages_per_chat_per_second": 100,
            },
        },
    )
    app = build_app(load_config(path, required=True))
    app.db.upgrade()
    with app.db.session() as session:
        import_pledgemakers(session, SAMPLE_CSV)
    return World(sandbox, app, folder)


@pytest.fixture
def sandbox() -> Iterator[SandboxThread]:
    # Far above the traffic: the platform never throttles, so every duplicate is a crash's.
    with SandboxThread(overall_rate=100_000.0, chat_rate=1000.0, chat_burst=1000) as sandbox:
        yield sandbox


@pytest.fixture
def sqlite_world(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sandbox: SandboxThread
) -> Iterator[World]:
    world = build_world(tmp_path, monkeypatch, sandbox, None)
    yield world
    for proc in world.procs:
        proc.cleanup()
    world.app.close()


@pytest.fixture
def postgres_world(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    sandbox: SandboxThread,
    postgres_database: str,
) -> Iterator[World]:
    world = build_world(tmp_path, monkeypatch, sandbox, postgres_database)
    yield world
    for proc in world.procs:
        proc.cleanup()
    world.app.close()


def fire_prompts(world: World, chats: list[int]) -> None:
    for chat_id in chats:
        world.sandbox.add_chat(chat_id)
    bind_chats(world.app, chats)
    spec = world.app.schedules().get("act-checkin").spec
    fired = runs.fire(world.app.db, world.app.templates, spec, utcnow(), trigger="manual")
    assert fired.enqueued == len(chats)


def send_requests(sandbox: SandboxThread) -> int:
    return sandbox.method_calls["sendMessage"]


def drained(world: World) -> bool:
    return count(world.app, OutboxMessage, OutboxMessage.state.in_(OPEN_STATES)) == 0


def check_delivery(world: World, chats: list[int]) -> tuple[int, set[int]]:
    """Every chat got its prompt, and each one sent twice is flagged possible_duplicate;
    returns (duplicates, the flagged chats)."""
    per_chat = world.sandbox.sent_counts()
    assert set(per_chat) == set(chats), "every prompt delivered, to its chat only"
    duplicates = sum(n - 1 for n in per_chat.values())
    twice = {chat for chat, n in per_chat.items() if n > 1}
    with world.app.db.session() as session:
        states = Counter(session.scalars(select(OutboxMessage.state)))
        flagged = {
            int(recipient)
            for recipient in session.scalars(
                select(OutboxMessage.recipient).where(OutboxMessage.possible_duplicate)
            )
        }
    assert states == {"sent": len(chats)}, f"outbox states at the end: {dict(states)}"
    unflagged = twice - flagged
    assert not unflagged, (
        f"{len(unflagged)} message(s) sent twice but not flagged possible_duplicate, "
        f"e.g. chats {sorted(unflagged)[:5]}"
    )
    return duplicates, flagged


@pytest.mark.timeout(300)
def test_20_kills_while_sending_5000_prompts_on_sqlite(sqlite_world: World) -> None:
    world = sqlite_world
    chats = list(range(FIRST_CHAT, FIRST_CHAT + MESSAGES))
    fire_prompts(world, chats)
    rng = random.Random(SEED)
    # Kill points: seeded-random numbers of send requests, so every kill lands mid-dispatch.
    targets = sorted(rng.sample(range(100, MESSAGES - 200), KILLS))
    bot = world.proc("run")
    in_flight: list[int] = []
    started = time.monotonic()
    bot.start()
    for target in targets:
        wait_for(
            lambda target=target: send_requests(world.sandbox) >= target,
            f"{target} send requests (kill {len(in_flight) + 1})\n{world.logs()}",
            timeout=STEP_TIMEOUT,
            every=0.02,
        )
        time.sleep(rng.uniform(0, 0.05))
        bot.kill9()
        # One process on SQLite: whatever is 'sending' was on the wire or about to be.
        in_flight.append(count(world.app, OutboxMessage, OutboxMessage.state == "sending"))
        bot.start()
    wait_for(lambda: drained(world), f"the outbox to drain\n{world.logs()}", STEP_TIMEOUT)
    elapsed = time.monotonic() - started
    assert bot.terminate() == 0, bot.tail()

    duplicates, flagged = check_delivery(world, chats)
    print(
        f"\nSQLite, 1 process, {KILLS} kills, {MESSAGES} prompts in {elapsed:.1f} s: "
        f"in flight at the kills {sum(in_flight)} ({in_flight}), duplicates {duplicates} "
        f"(bound {KILLS * BATCH_SIZE}), flagged {len(flagged)}"
    )
    assert len(world.sandbox.sent_messages()) == MESSAGES + duplicates
    assert max(in_flight) <= BATCH_SIZE, "never more than batch_size in flight"
    assert duplicates <= sum(in_flight) <= KILLS * BATCH_SIZE
    assert len(flagged) <= sum(in_flight), "only messages in flight at a kill are flagged"
    assert "Traceback" not in bot.log.read_text(encoding="utf-8")


@pytest.mark.timeout(300)
def test_20_kills_of_4_workers_sending_5000_prompts_on_postgresql(postgres_world: World) -> None:
    world = postgres_world
    chats = list(range(FIRST_CHAT, FIRST_CHAT + MESSAGES))
    fire_prompts(world, chats)
    rng = random.Random(SEED + 1)
    targets = sorted(rng.sample(range(100, MESSAGES - 400), KILLS))
    workers = [world.proc("worker", f"worker-{n}") for n in range(WORKERS)]
    in_flight_at_kills: set[int] = set()  # every worker's, a superset of the dead ones'
    killed: list[str] = []
    kill_log: list[tuple[str, float]] = []
    started = time.monotonic()
    for worker in workers:
        worker.start()
    for target in targets:
        wait_for(
            lambda target=target: send_requests(world.sandbox) >= target,
            f"{target} send requests (kill {len(killed) + 1})\n{world.logs()}",
            timeout=STEP_TIMEOUT,
            every=0.02,
        )
        time.sleep(rng.uniform(0, 0.05))
        victim = rng.choice(workers)
        kill_log.append((victim.name, victim.kill9()))
        killed.append(victim.name)
        # The dead worker's last COMMIT may still be in PostgreSQL's socket buffer: let the
        # server finish with that connection (its leases run for seconds more) before looking.
        time.sleep(0.5)
        with world.app.db.session() as session:
            in_flight_at_kills.update(
                session.scalars(select(OutboxMessage.id).where(OutboxMessage.state == "sending"))
            )
        victim.start()
    wait_for(lambda: drained(world), f"the outbox to drain\n{world.logs()}", STEP_TIMEOUT)
    elapsed = time.monotonic() - started
    for worker in workers:
        assert worker.terminate() == 0, worker.tail()

    duplicates, flagged = check_delivery(world, chats)
    with world.app.db.session() as session:
        flagged_ids = set(
            session.scalars(select(OutboxMessage.id).where(OutboxMessage.possible_duplicate))
        )
    print(
        f"\nPostgreSQL, {WORKERS} workers, {KILLS} kills ({Counter(killed)}), {MESSAGES} prompts "
        f"in {elapsed:.1f} s: duplicates {duplicates} (bound {KILLS * BATCH_SIZE}), "
        f"flagged {len(flagged)}"
    )
    assert duplicates <= len(flagged) <= KILLS * BATCH_SIZE
    reclaimed_live = flagged_ids - in_flight_at_kills
    if reclaimed_live:
        with world.app.db.session() as session:
            rows = session.scalars(
                select(OutboxMessage).where(OutboxMessage.id.in_(sorted(reclaimed_live)[:5]))
            ).all()
            detail = [
                (r.id, r.recipient, r.attempts, r.last_error, r.sent_at and r.sent_at.time())
                for r in rows
            ]
        sends = {d[1]: [m["date"] for m in world.sandbox.sent_messages(int(d[1]))] for d in detail}
        kills = [(name, time.strftime("%H:%M:%S", time.gmtime(at))) for name, at in kill_log]
        raise AssertionError(
            f"{len(reclaimed_live)} message(s) re-claimed although no worker holding them had "
            f"died (a live worker's lease expired, or a double claim): {detail}; sent at "
            f"{sends}; kills {kills}"
        )
    for worker in workers:
        assert "Traceback" not in worker.log.read_text(encoding="utf-8"), worker.tail()


@pytest.mark.timeout(300)
def test_kills_while_ingesting_10000_messages_lose_and_duplicate_none(sqlite_world: World) -> None:
    world, sandbox, app = sqlite_world, sqlite_world.sandbox, sqlite_world.app
    chats = list(range(FIRST_CHAT, FIRST_CHAT + INGEST_CHATS))
    fire_prompts(world, chats)  # an open prompt each: the answers do real work
    texts = [f"update {i}: progress ✓" for i in range(UPDATES)]
    pushed = threading.Event()

    def user_traffic() -> None:
        for i, text in enumerate(texts):
            sandbox.push_message(chats[i % len(chats)], text)
            # At most ~1,000 a second, over ~10 s: slower than pledgebot stores them, so every
            # kill lands while messages still arrive.
            if i % 100 == 0:
                time.sleep(0.1)
        pushed.set()

    rng = random.Random(SEED + 2)
    targets = sorted(rng.sample(range(500, UPDATES - 2000), INGEST_KILLS))
    bot = world.proc("run")
    stored_at_kills: list[int] = []
    pusher = threading.Thread(target=user_traffic, daemon=True)
    started = time.monotonic()
    bot.start()
    pusher.start()
    for target in targets:
        wait_for(
            lambda target=target: count(app, InboundEvent) >= target,
            f"{target} stored messages\n{world.logs()}",
            timeout=STEP_TIMEOUT,
            every=0.02,
        )
        time.sleep(rng.uniform(0, 0.05))
        bot.kill9()
        stored_at_kills.append(count(app, InboundEvent))
        bot.start()
    pusher.join(STEP_TIMEOUT)
    assert pushed.is_set()
    assert max(stored_at_kills) < UPDATES, "each kill lands while messages are being ingested"
    wait_for(
        lambda: (
            count(app, InboundEvent) >= UPDATES
            and count(app, InboundEvent, InboundEvent.processed_at.is_(None)) == 0
        ),
        f"every message stored and processed\n{world.logs()}",
        timeout=150,
        every=0.5,
    )
    elapsed = time.monotonic() - started
    assert bot.terminate() == 0, bot.tail()

    with app.db.session() as session:
        keys = Counter(session.scalars(select(InboundEvent.event_key)))
        replies = session.execute(select(Reply.chat_id, Reply.external_id, Reply.text)).all()
        errors = session.scalar(
            select(InboundEvent.outcome).where(InboundEvent.outcome.like("error%")).limit(1)
        )
    by_message = Counter((chat, message_id) for chat, message_id, _ in replies)
    print(
        f"\n{UPDATES} inbound messages, {INGEST_KILLS} kills at {stored_at_kills} stored: "
        f"stored {len(keys)} events, {len(replies)} replies in {elapsed:.1f} s"
    )
    assert len(keys) == UPDATES and max(keys.values()) == 1, "each event stored exactly once"
    assert len(by_message) == UPDATES and max(by_message.values()) == 1, "one reply per message"
    assert Counter(text for _, _, text in replies) == Counter(texts), "nothing lost or altered"
    assert errors is None, f"an event failed: {errors}"
    assert sandbox.pending_updates == 0, "every update acknowledged"
