"""Takeover on PostgreSQL (issue 5, part 4): the roles that must run exactly once move to a
standby process within seconds of the leader's `kill -9`.

- 3 `pledgebot scheduler` processes, a campaign firing every 2 s: only the leader fires; after
  each kill another leads within a few seconds and runs resume; no run fired twice (one per
  campaign and fire time, one prompt per run and recipient); no fire time lost (each one in the
  window has a run, fired or recorded as missed).
- 2 `pledgebot listener` processes: after the leader's kill, messages sent before and after are
  each stored exactly once, and Telegram never saw two live getUpdates consumers (409 Conflict).
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bot.community.importer import import_pledgemakers
from bot.core.models import InboundEvent, OutboxMessage, Reply, Run
from bot.service.app import App, build_app
from bot.settings.config import load_config
from pledgebot_sandbox import SandboxThread, TelegramSandbox
from tests.conftest import SAMPLE_CSV, TOKEN_ENV, write_config
from tests.reliability._procs import Proc, bind_chats, count, use_database, wait_for

pytestmark = [pytest.mark.reliability, pytest.mark.crash, pytest.mark.timeout(240)]

INTERVAL = 2  # seconds between the campaign's fire times
SCHEDULERS = 3
TAKEOVER_LIMIT = 5.0  # seconds from the kill to a standby leading (it polls every second)
CHATS = [910_001, 910_002, 910_003]
LEADS = "this process leads"
SEED = 20_210_612
BIG_AUDIENCE = 4_000  # its run takes longer than INTERVAL to plan


@dataclass
class World:
    sandbox: SandboxThread
    app: App
    folder: Path
    procs: list[Proc] = field(default_factory=list)
    conflicts: list[bool] = field(default_factory=list)  # per 409: was its client still alive

    def proc(self, command: str, name: str) -> Proc:
        proc = Proc(self.folder, command, self.sandbox.token, name)
        self.procs.append(proc)
        return proc

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.tail()}" for p in self.procs)


@pytest.fixture
def world(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, postgres_database: str
) -> Iterator[World]:
    conflicts: list[bool] = []
    original = TelegramSandbox._handle_api

    async def counting(self: TelegramSandbox, request: Any) -> Any:
        response = await original(self, request)
        if response.status == 409:  # a dead poller's leftover long poll may get one: harmless
            transport = request.transport
            conflicts.append(transport is not None and not transport.is_closing())
        return response

    monkeypatch.setattr(TelegramSandbox, "_handle_api", counting)  # before the routes exist
    with SandboxThread(overall_rate=10_000.0, chat_rate=1000.0, chat_burst=1000) as sandbox:
        monkeypatch.setenv(TOKEN_ENV, sandbox.token)
        (tmp_path / "schedules").mkdir()
        (tmp_path / "schedules" / "takeover.toml").write_text(
            '[[campaign]]\nid = "tick"\nkind = "followup"\npillar = "act"\n'
            f'interval = "{INTERVAL}s"\naudience = {{ country = ["GH"] }}\n',
            encoding="utf-8",
        )
        path = write_config(tmp_path, base_url=sandbox.base_url)
        use_database(path, postgres_database)
        app = build_app(load_config(path, required=True))
        app.db.upgrade()
        with app.db.session() as session:
            import_pledgemakers(session, SAMPLE_CSV)
        for chat_id in CHATS:
            sandbox.add_chat(chat_id)
        bind_chats(app, CHATS, prefix="takeover")
        world = World(sandbox, app, tmp_path, conflicts=conflicts)
        try:
            yield world
        finally:
            for proc in world.procs:
                proc.cleanup()
            app.close()


def leads(proc: Proc, role: str) -> list[dict[str, Any]]:
    """The current run's log records saying it leads ``role`` (a role name's beginning)."""
    return [
        r
        for r in proc.logged(LEADS, pid=proc.pid)
        if r["message"].startswith(role) and r["message"].endswith(LEADS)
    ]


def leader(procs: list[Proc], role: str) -> Proc | None:
    """The live process whose current run logged that it leads ``role``."""
    leading = [p for p in procs if p.alive and leads(p, role)]
    assert len(leading) <= 1, f"two live processes lead {role}: {[p.name for p in leading]}"
    return leading[0] if leading else None


def lead_time(proc: Proc, role: str, after: float) -> float | None:
    times = [r["at"] for r in leads(proc, role) if r["at"] > after]
    return min(times) if times else None


def tick_runs(app: App) -> list[Run]:
    with app.db.session() as session:
        return list(
            session.scalars(select(Run).where(Run.campaign_id == "tick").order_by(Run.fire_time))
        )


def runs_created_after(app: App, moment: float) -> int:
    instant = datetime.fromtimestamp(moment, UTC)
    return sum(1 for run in tick_runs(app) if run.created_at > instant)


def check_runs(app: App) -> list[Run]:
    """No fire time fired twice or lost; one prompt per fired run and recipient."""
    runs = tick_runs(app)
    fire_times = [run.fire_time for run in runs]
    twice = [t for t, n in Counter(fire_times).items() if n > 1]
    assert not twice, f"runs fired twice: {twice}"
    expected, moment = [], fire_times[0]
    while moment <= fire_times[-1]:
        expected.append(moment)
        moment += timedelta(seconds=INTERVAL)
    missing = sorted(set(expected) - set(fire_times))
    assert not missing, (
        f"fire times with no run (neither fired nor recorded as missed): "
        f"{[t.time().isoformat() for t in missing]}; runs: "
        f"{[(r.fire_time.time().isoformat(), r.trigger) for r in runs]}"
    )
    with app.db.session() as session:
        prompts = Counter(
            session.execute(
                select(OutboxMessage.run_id, OutboxMessage.recipient).where(
                    OutboxMessage.campaign_id == "tick"
                )
            ).all()
        )
    assert max(prompts.values()) == 1, "one prompt per run and recipient"
    per_run = Counter(run_id for run_id, _ in prompts)
    fired = [run for run in runs if run.trigger != "missed"]
    assert all(per_run[run.id] == len(CHATS) for run in fired), "every fired run prompted all"
    assert sum(per_run.values()) == len(fired) * len(CHATS), "no prompts from runs not fired"
    return runs


def test_scheduler_leader_killed_twice_a_standby_takes_over(world: World) -> None:
    app = world.app
    schedulers = [world.proc("scheduler", f"scheduler-{n}") for n in range(SCHEDULERS)]
    for proc in schedulers:
        proc.start()
    current = wait_for(lambda: leader(schedulers, "scheduler"), "a scheduler to lead", 60)
    wait_for(lambda: len(tick_runs(app)) >= 3, f"three runs\n{world.logs()}", 60)
    for proc in schedulers:
        if proc is not current:
            assert proc.logged("scheduler: another process leads; standing by", pid=proc.pid)

    takeovers: list[tuple[float, float]] = []  # (seconds to lead, seconds to the next new run)
    tenures: list[tuple[int, float, float]] = []  # (pid, led from, until)
    rng = random.Random(SEED)
    for _ in range(2):
        # Just before a fire time, so the dead leader misses it and the new one catches it up.
        seen = len(tick_runs(app))
        wait_for(lambda seen=seen: len(tick_runs(app)) > seen, "the next run", 30, every=0.02)
        time.sleep(INTERVAL - rng.uniform(0.1, 0.6))
        pid = current.pid
        led_at = lead_time(current, "scheduler", 0.0)
        assert led_at is not None
        killed_at = current.kill9()
        tenures.append((pid, led_at, killed_at))
        successor = wait_for(
            lambda: leader(schedulers, "scheduler"),
            f"a standby to take over the scheduler\n{world.logs()}",
            30,
        )
        took = lead_time(successor, "scheduler", killed_at)
        assert took is not None
        wait_for(
            lambda killed_at=killed_at: runs_created_after(app, killed_at) >= 1,
            f"runs to resume after the kill\n{world.logs()}",
            30,
        )
        resumed = time.time() - killed_at
        takeovers.append((took - killed_at, resumed))
        current.start()  # restarted by its supervisor: it must stand by, not lead
        wait_for(
            lambda proc=current: proc.logged("another process leads; standing by", pid=proc.pid),
            f"the restarted {current.name} to stand by\n{world.logs()}",
            30,
        )
        current = successor
        wait_for(
            lambda killed_at=killed_at: runs_created_after(app, killed_at) >= 3,
            f"runs to go on under {current.name}",
            30,
        )
    last_pid, last_led = current.pid, lead_time(current, "scheduler", 0.0) or 0.0
    for proc in schedulers:  # standbys first: none takes over while the leader stops
        if proc is not current:
            assert proc.terminate() == 0, proc.tail()
    assert current.terminate() == 0, current.tail()
    # The last leader leads until it has stopped (stopping the standbys first can take seconds).
    tenures.append((last_pid, last_led, time.time()))

    runs = check_runs(app)
    print(
        f"\n{len(runs)} runs over {(runs[-1].fire_time - runs[0].fire_time).total_seconds():.0f} s "
        f"({dict(Counter(run.trigger for run in runs))}); takeovers (lead s, first new run s): "
        + ", ".join(f"({a:.2f}, {b:.2f})" for a, b in takeovers)
    )
    for lead_seconds, _ in takeovers:
        assert lead_seconds <= TAKEOVER_LIMIT, f"takeover took {lead_seconds:.1f} s"
    # Only the leader of the moment fired: every "fired" line is within its process's tenure.
    for proc in schedulers:
        for record in proc.logged("campaign tick"):
            spans = [(a, b) for pid, a, b in tenures if pid == record["pid"]]
            assert any(a <= record["at"] <= b for a, b in spans), (
                f"{proc.name} (pid {record['pid']}) fired while not leading: {record['message']}"
            )
    for proc in schedulers:
        text = proc.log.read_text(encoding="utf-8")
        assert "Traceback" not in text, text[text.index("Traceback") - 2000 :][:6000]


def test_all_schedulers_killed_each_fire_time_while_down_is_fired_or_recorded(
    world: World,
) -> None:
    """The whole tier down for a few fire times (within grace), then one restarted: the
    latest fires once (catch-up), the older ones are recorded as missed — none vanish."""
    app = world.app
    schedulers = [world.proc("scheduler", f"scheduler-{n}") for n in range(2)]
    for proc in schedulers:
        proc.start()
    wait_for(lambda: leader(schedulers, "scheduler"), "a scheduler to lead", 60)
    wait_for(lambda: len(tick_runs(app)) >= 2, f"two runs\n{world.logs()}", 60)
    for proc in schedulers:
        proc.kill9()
    down_at = time.time()
    time.sleep(3.5 * INTERVAL)
    schedulers[0].start()
    wait_for(lambda: runs_created_after(app, down_at) >= 3, f"runs to resume\n{world.logs()}", 60)
    assert schedulers[0].terminate() == 0, schedulers[0].tail()

    runs = check_runs(app)
    down = [r for r in runs if r.created_at.timestamp() > down_at]
    print(f"\nafter {3.5 * INTERVAL:.0f} s down: {[(r.fire_time.time(), r.trigger) for r in down]}")
    assert Counter(r.trigger for r in down)["catch-up"] == 1, "the latest missed run fires once"


def test_a_slow_catch_up_at_the_start_of_a_lead_skips_no_fire_time(world: World) -> None:
    """A new leader first catches up what its predecessor missed; while that takes a while
    (here a big audience's run), the fire times passing meanwhile still get their runs."""
    app = world.app
    bind_chats(app, list(range(920_001, 920_001 + BIG_AUDIENCE)), "big", country="BR")
    (world.folder / "schedules" / "big.toml").write_text(
        '[[campaign]]\nid = "big"\nkind = "followup"\npillar = "inspire"\ninterval = "1h"\n'
        'audience = { country = ["BR"] }\n',
        encoding="utf-8",
    )
    scheduler = world.proc("scheduler", "scheduler-0")
    scheduler.start()
    wait_for(lambda: leader([scheduler], "scheduler"), "the scheduler to lead", 60)
    wait_for(lambda: len(tick_runs(app)) >= 4, f"four runs\n{world.logs()}", 60)
    assert scheduler.terminate() == 0, scheduler.tail()
    fired = [r for r in scheduler.records() if "fired" in r["message"]]
    print("\n" + "\n".join(f"{r['time'][11:23]} {r['message']}" for r in fired))
    check_runs(app)


def test_listener_leader_killed_messages_stored_once_no_concurrent_polling(world: World) -> None:
    sandbox, app = world.sandbox, world.app
    listeners = [world.proc("listener", f"listener-{n}") for n in range(2)]
    for proc in listeners:
        proc.start()
    role = "listener:telegram:"
    current = wait_for(lambda: leader(listeners, role), f"a listener to lead\n{world.logs()}", 60)
    texts = [f"before {i}" for i in range(100)]
    for i, text in enumerate(texts):
        sandbox.push_message(CHATS[i % len(CHATS)], text)
    wait_for(lambda: count(app, Reply) >= 100, f"the first messages stored\n{world.logs()}", 60)

    stream = [f"around the kill {i}" for i in range(300)]
    texts += stream

    def user_traffic() -> None:
        for i, text in enumerate(stream):
            sandbox.push_message(CHATS[i % len(CHATS)], text)
            time.sleep(0.01)

    pusher = threading.Thread(target=user_traffic, daemon=True)
    pusher.start()
    wait_for(lambda: count(app, InboundEvent) >= 150, "part of the stream stored", 60)
    killed_at = current.kill9()
    pusher.join(60)
    successor = wait_for(
        lambda: leader(listeners, role), f"the standby to take over\n{world.logs()}", 30
    )
    took = lead_time(successor, role, killed_at)
    assert took is not None
    after = [f"after {i}" for i in range(100)]
    texts += after
    for i, text in enumerate(after):
        sandbox.push_message(CHATS[i % len(CHATS)], text)
    wait_for(
        lambda: (
            count(app, Reply) >= len(texts)
            and count(app, InboundEvent, InboundEvent.processed_at.is_(None)) == 0
        ),
        f"every message stored and processed\n{world.logs()}",
        60,
    )
    wait_for(lambda: sandbox.pending_updates == 0, "every update acknowledged", 30)
    assert successor.terminate() == 0, successor.tail()

    with app.db.session() as session:
        keys = Counter(session.scalars(select(InboundEvent.event_key)))
        stored = Counter(session.scalars(select(Reply.text)))
    print(
        f"\nlistener takeover in {took - killed_at:.2f} s; {len(texts)} messages, "
        f"{sum(keys.values())} events stored; 409s to dead pollers: "
        f"{world.conflicts.count(False)}"
    )
    assert stored == Counter(texts), "every message stored exactly once"
    assert len(keys) == len(texts) and max(keys.values()) == 1
    assert took - killed_at <= TAKEOVER_LIMIT
    assert not any(world.conflicts), "a live poller got 409 Conflict: two getUpdates consumers"
    for proc in listeners:
        log = proc.log.read_text(encoding="utf-8")
        assert "Conflict" not in log and "Traceback" not in log, proc.tail()
