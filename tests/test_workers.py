"""Several processes, one database: SQLite refuses a second long-running process; on PostgreSQL
exactly one process leads each single role and another takes over when it dies, and workers
share the outbox without sending one message twice."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from bot.core.coordination import Leadership, lock_key
from bot.core.models import utcnow
from bot.delivery import claiming, outbox
from bot.delivery.messages import PlannedMessage
from bot.service.app import App
from pledgebot_sandbox import SandboxThread
from tests.auxil.cli import PLEDGEBOT, pledgebot
from tests.conftest import TOKEN_ENV, cli_env, write_config

LEASE = timedelta(seconds=60)


# -- SQLite: one long-running process ------------------------------------------------------------
def test_sqlite_refuses_a_second_long_running_process_but_not_one_shot_commands(
    tmp_path: Path,
) -> None:
    with SandboxThread() as sandbox:
        token = sandbox.token
        write_config(tmp_path, base_url=sandbox.base_url)
        env = cli_env(**{TOKEN_ENV: sandbox.token})
        first = subprocess.Popen(
            [PLEDGEBOT, "--log-format", "json", "run"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            lock = tmp_path / "pledgebot.db.run.lock"
            deadline = time.monotonic() + 30
            while "pid" not in (lock.read_text() if lock.exists() else ""):
                assert time.monotonic() < deadline, "`pledgebot run` did not start"
                time.sleep(0.1)
            for command in ("worker", "run", "scheduler", "listener"):
                second = pledgebot(tmp_path, command, token=sandbox.token)
                assert second.returncode == 1, second.stderr
                assert f"`pledgebot run`, pid {first.pid}" in second.stderr
                assert "use PostgreSQL" in second.stderr
            status = pledgebot(tmp_path, "status", token=sandbox.token)
            assert status.returncode == 0 and "outbox pending: 0" in status.stdout
        finally:
            first.terminate()
            _, logs = first.communicate(timeout=30)
    assert first.returncode == 0
    lines = [json.loads(line) for line in logs.splitlines() if line.strip()]  # JSON lines only
    assert any("pledgebot running" in line["message"] for line in lines)
    assert all({"time", "level", "logger", "message"} <= line.keys() for line in lines)
    assert token not in logs


@pytest.mark.parametrize("app", ["sqlite"], indirect=True)
def test_on_sqlite_this_process_always_leads(app: App) -> None:
    leadership = Leadership(app.db.engine, "scheduler")
    assert asyncio.run(leadership.acquire(asyncio.Event()))


# -- PostgreSQL: leaders ---------------------------------------------------------------------------
async def test_one_leader_at_a_time_and_a_stand_by_takes_over(postgres_database: str) -> None:
    engines = [create_engine(postgres_database) for _ in range(2)]
    first, second = (Leadership(engine, "scheduler", poll=0.1) for engine in engines)
    stop = asyncio.Event()
    try:
        assert await first.acquire(stop)
        standing_by = asyncio.create_task(second.acquire(stop))
        await asyncio.sleep(0.5)
        assert not standing_by.done(), "two leaders at once"
        first.release()  # the leader's connection closes, as when its process dies
        assert await asyncio.wait_for(standing_by, 5)
        other_role = Leadership(engines[0], "listener:telegram:abc", poll=0.1)
        assert await asyncio.wait_for(other_role.acquire(stop), 5)  # locks are per role
        other_role.release()
    finally:
        first.release()
        second.release()
        for engine in engines:
            engine.dispose()


async def test_a_leader_whose_connection_breaks_steps_down(postgres_database: str) -> None:
    engine = create_engine(postgres_database)
    leadership = Leadership(engine, "scheduler", poll=0.1)
    stop = asyncio.Event()
    assert await leadership.acquire(stop)
    with engine.connect() as admin:  # an operator (or a network cut) ends its session
        admin.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_locks "
                "WHERE locktype = 'advisory' AND granted AND "
                "((classid::bigint << 32) | objid::bigint) = (:key & x'ffffffffffffffff'::bigint)"
            ),
            {"key": lock_key("scheduler")},
        )
        admin.commit()
    await asyncio.wait_for(leadership.hold(stop), 5)  # returns: the lead is lost
    leadership.release()
    engine.dispose()


# -- the outbox shared by workers ------------------------------------------------------------------
def _enqueue(app: App, recipients: list[str]) -> None:
    with app.db.session() as session:
        outbox.enqueue(
            session,
            [
                PlannedMessage(f"w:{i}:{r}", "telegram", r, f"hello {i}")
                for i, r in enumerate(recipients)
            ],
        )


@pytest.mark.parametrize("app", ["postgresql"], indirect=True)  # SQLite has one process
def test_workers_claiming_at_once_take_disjoint_messages(app: App) -> None:
    _enqueue(app, [str(9000 + i) for i in range(10)])
    with app.db.session() as first:
        taken = claiming.claim(first, channels=["telegram"], limit=4, lease=LEASE)
        # The first worker's transaction is still open: its rows are locked, not yet 'sending'.
        with app.db.session() as second:
            others = claiming.claim(second, channels=["telegram"], limit=10, lease=LEASE)
    assert len(taken) == 4 and len(others) == 6
    assert not {c.message.id for c in taken} & {c.message.id for c in others}


def test_a_chat_with_a_message_on_the_wire_waits_for_it_in_every_worker(app: App) -> None:
    _enqueue(app, ["9100", "9100", "9101"])
    with app.db.session() as session:
        first = claiming.claim(session, channels=["telegram"], limit=10, lease=LEASE)
    assert sorted(c.message.recipient for c in first) == ["9100", "9101"]
    with app.db.session() as session:  # another worker, moments later
        assert claiming.claim(session, channels=["telegram"], limit=10, lease=LEASE) == []
    with app.db.session() as session:
        sent = next(c for c in first if c.message.recipient == "9100").message.id
        outbox.mark_sent_many(session, [(sent, "1")], utcnow())
    with app.db.session() as session:
        second = claiming.claim(session, channels=["telegram"], limit=10, lease=LEASE)
    assert [c.message.recipient for c in second] == ["9100"]


@pytest.mark.parametrize("app", ["postgresql"], indirect=True)
async def test_status_names_the_process_that_leads(app: App) -> None:
    from bot.service.status import collect

    before = collect(app)
    assert before["scheduler led by"].startswith("nobody (no `pledgebot scheduler`")
    assert before["inbox led by"].startswith("nobody (no `pledgebot listener`"), "not 'scheduler'"
    assert before["listener (telegram) led by"].startswith("nobody")
    listener_key = app.channel("telegram").listener_key
    leaderships = [
        Leadership(app.db.engine, "scheduler"),
        Leadership(app.db.engine, f"listener:{listener_key}"),
    ]
    for leadership in leaderships:
        assert await leadership.acquire(asyncio.Event())
    try:
        figures = collect(app)
        assert figures["scheduler led by"].startswith(f"pledgebot pid {os.getpid()}")
        assert figures["listener (telegram) led by"].startswith(f"pledgebot pid {os.getpid()}")
        assert figures["inbox led by"].startswith("nobody")
        assert figures["rate limits"].startswith("memory (per process")
    finally:
        for leadership in leaderships:
            leadership.release()


def test_one_chats_backlog_does_not_fill_a_claim(app: App) -> None:
    """40 messages for one chat queued ahead of one each for 5 others: a claim of 6 takes one
    for the busy chat and one for each of the others, not a page of the busy chat's backlog."""
    _enqueue(app, ["9200"] * 40 + [str(9300 + i) for i in range(5)])
    with app.db.session() as session:
        claimed = claiming.claim(session, channels=["telegram"], limit=6, lease=LEASE)
    assert sorted(c.message.recipient for c in claimed) == ["9200"] + [
        str(9300 + i) for i in range(5)
    ]


def test_a_broken_schedule_stops_pledgebot_run_with_its_error(tmp_path: Path) -> None:
    """A role that cannot start must not leave a process running without it."""
    with SandboxThread() as sandbox:
        write_config(tmp_path, base_url=sandbox.base_url)
        (tmp_path / "schedules" / "broken.toml").write_text(
            '[[campaign]]\nid = "oops"\nkind = "followup"\npillar = "nowhere"\n',
            encoding="utf-8",
        )
        result = pledgebot(tmp_path, "run", token=sandbox.token, timeout=60)
    assert result.returncode != 0
    assert "broken.toml:" in result.stderr and "pillar" in result.stderr
