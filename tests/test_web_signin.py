"""Signing in under attack: the time taken tells nothing, and nobody locks a colleague out.

Failures are limited per (address, client) — an IPv6 client is its /64 — even for parallel
requests; failures for one address from many clients only slow its sign-ins down. Driven
through Starlette's TestClient with the client's address set, as uvicorn sets it
(tests/test_web_limits.py shows it behind a proxy on the same host).
"""

from __future__ import annotations

import re
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from sqlalchemy import func, select, text
from starlette.testclient import TestClient

from bot.community import staff
from bot.core.models import utcnow
from bot.core.staff_models import LoginAttempt, StaffSession
from bot.service.app import App
from bot.web.app import build
from tests.test_web_auth import PASSWORD, sign_in

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
OWNER = "editor@example.org"


@pytest.fixture
def users(app: App) -> App:
    with app.db.session() as session:
        staff.add_user(session, OWNER, PASSWORD, "editor", actor="test")
        staff.add_user(session, "gone@example.org", PASSWORD, "viewer", actor="test")
        staff.disable(session, "gone@example.org", actor="test")
    return app


def client_at(app: App, address: str) -> TestClient:
    return TestClient(build(app), client=(address, 50000))


def record_failures(app: App, email: str, clients: list[str]) -> None:
    """Failed sign-ins for ``email``, one from each client, as ``staff.sign_in`` records them."""
    with app.db.session() as session:
        for client in clients:
            session.add(LoginAttempt(email=email, client=client, at=utcnow(), succeeded=False))


@pytest.mark.parametrize("app", ["sqlite"], indirect=True)
def test_an_unknown_or_disabled_address_takes_as_long_as_a_wrong_password(users: App) -> None:
    def slowest_case(email: str) -> float:
        """The quickest of two refusals (the least disturbed by other work on the machine)."""
        taken = []
        for n in range(2):
            started = time.perf_counter()
            result = staff.sign_in(users.db, email, "wrong-password-here", f"10.0.0.{n}")
            taken.append(time.perf_counter() - started)
            assert result.user is None and not result.retry_after
            assert result.refused == "That email and password do not match an active account."
        return min(taken)

    real = slowest_case(OWNER)
    assert slowest_case("nobody@example.org") > real / 2, "an unknown address answered at once"
    assert slowest_case("gone@example.org") > real / 2, "a disabled account answered at once"


@time_machine.travel(NOW, tick=True)
@pytest.mark.parametrize("app", ["sqlite", "postgresql"], indirect=True)
def test_failures_from_one_client_do_not_lock_the_owner_out(users: App) -> None:
    attacker = client_at(users, "203.0.113.9")
    for _ in range(staff.FAILURES_ALLOWED):
        assert sign_in(attacker, OWNER, "guess-guess-guess") == 401
    assert sign_in(attacker, OWNER) == 429, "that client is stopped, even with the password"
    owner = client_at(users, "198.51.100.7")
    assert sign_in(owner, OWNER) == 303, "the owner, elsewhere, signs in at once"
    assert owner.get("/outbox", follow_redirects=False).status_code == 200


@time_machine.travel(NOW, tick=True)
@pytest.mark.parametrize("app", ["sqlite"], indirect=True)
def test_one_client_guessing_over_many_addresses_is_stopped(users: App) -> None:
    addresses = [f"staff{n}@example.org" for n in range(staff.CLIENT_FAILURES_ALLOWED)]
    with users.db.session() as session:
        for address in addresses:
            session.add(
                LoginAttempt(email=address, client="203.0.113.9", at=utcnow(), succeeded=False)
            )
    sprayer = client_at(users, "203.0.113.9")
    assert sign_in(sprayer, OWNER) == 429
    assert sign_in(client_at(users, "198.51.100.7"), OWNER) == 303


@pytest.mark.parametrize("app", ["sqlite"], indirect=True)
def test_failures_from_many_clients_slow_the_address_down_up_to_a_cap(users: App) -> None:
    with time_machine.travel(NOW, tick=True) as traveller:
        with users.db.session() as session:
            assert staff.backoff(session, OWNER) == 0.0
        clients = [f"203.0.113.{n}" for n in range(staff.BACKOFF_AFTER + 3)]
        record_failures(users, OWNER, clients)
        with users.db.session() as session:
            assert staff.backoff(session, OWNER) == 4 * staff.BACKOFF_STEP
            assert staff.backoff(session, "Editor@Example.org ") == 4 * staff.BACKOFF_STEP
            assert staff.backoff(session, "viewer@example.org") == 0.0, "per address"
        record_failures(users, OWNER, [f"198.18.{n // 250}.{n % 250}" for n in range(500)])
        with users.db.session() as session:
            assert staff.backoff(session, OWNER) == staff.BACKOFF_MAX
        traveller.shift(staff.FAILURE_WINDOW + timedelta(seconds=1))
        with users.db.session() as session:
            assert staff.backoff(session, OWNER) == 0.0, "the window has passed"


@time_machine.travel(NOW, tick=True)
@pytest.mark.parametrize("app", ["sqlite"], indirect=True)
def test_the_owner_signs_in_after_the_back_off_not_after_a_lock_out(
    users: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(staff, "BACKOFF_MAX", 0.6)  # a short cap keeps the test short
    record_failures(users, OWNER, [f"203.0.113.{n}" for n in range(staff.BACKOFF_AFTER * 3)])
    owner = client_at(users, "198.51.100.7")
    form = owner.get("/login")  # the form's token, outside the timing
    assert form.status_code == 200
    started = time.monotonic()
    assert sign_in(owner, OWNER) == 303, "slowed down, not locked out"
    assert time.monotonic() - started >= 0.6
    with users.db.session() as session:
        latest = session.scalars(select(LoginAttempt).order_by(LoginAttempt.id.desc())).first()
    assert latest is not None and latest.succeeded and latest.client == "198.51.100.7"


def login_token(client: TestClient) -> str:
    """The sign-in form's CSRF token (its cookie stays with the client)."""
    found = re.search(r'name="csrf" value="([^"]+)"', client.get("/login").text)
    assert found is not None
    return found.group(1)


@time_machine.travel(NOW, tick=True)
@pytest.mark.parametrize("app", ["sqlite", "postgresql"], indirect=True)
def test_parallel_guesses_from_one_client_are_checked_five_times_at_most(users: App) -> None:
    """A burst of guesses sent at once, as a thread pool's worth of connections would: each
    attempt counts the ones before it, so five are checked and the rest refused unread."""
    guesses = 20
    dashboard = build(users)
    attackers = [TestClient(dashboard, client=("203.0.113.9", 50000 + n)) for n in range(guesses)]
    tokens = [login_token(attacker) for attacker in attackers]
    together = threading.Barrier(guesses)

    def guess(n: int) -> int:
        together.wait()
        form = {"csrf": tokens[n], "email": OWNER, "password": "guess-guess-guess", "next": "/"}
        return attackers[n].post("/login", data=form, follow_redirects=False).status_code

    with ThreadPoolExecutor(guesses) as pool:
        statuses = list(pool.map(guess, range(guesses)))
    assert statuses.count(401) == staff.FAILURES_ALLOWED, f"passwords checked: {statuses}"
    assert statuses.count(429) == guesses - staff.FAILURES_ALLOWED, statuses
    with users.db.session() as session:
        counted = session.scalar(select(func.count()).where(LoginAttempt.client == "203.0.113.9"))
    assert counted == staff.FAILURES_ALLOWED
    assert sign_in(attackers[0], OWNER) == 429, "that client is stopped, even with the password"
    assert sign_in(client_at(users, "198.51.100.7"), OWNER) == 303, "the owner is not"


def test_an_ipv6_client_is_its_64_prefix() -> None:
    group = staff.client_group
    assert group("2001:db8:1:2::a") == "2001:db8:1:2::/64"
    assert group("2001:db8:1:2:ffff:ffff:ffff:ffff") == "2001:db8:1:2::/64"
    assert group("[2001:DB8:1:2:0:0:0:b]") == "2001:db8:1:2::/64"
    assert group("fe80::1%eth0") == "fe80::/64"
    assert group("2001:db8:1:3::a") == "2001:db8:1:3::/64", "the next /64 is another client"
    assert group("203.0.113.9") == "203.0.113.9", "IPv4: the address itself"
    assert group("203.0.113.10") == "203.0.113.10"
    assert group("::ffff:203.0.113.9") == "203.0.113.9", "an IPv4-mapped address is IPv4"
    assert group("testclient") == "testclient", "a name is taken as it is"
    assert group("x" * 100) == "x" * 64


@time_machine.travel(NOW, tick=True)
@pytest.mark.parametrize("app", ["sqlite"], indirect=True)
def test_rotating_addresses_within_one_ipv6_64_is_one_client(users: App) -> None:
    for n in range(staff.FAILURES_ALLOWED):
        rotated = client_at(users, f"2001:db8:1:2::{n + 1:x}")
        assert sign_in(rotated, OWNER, "guess-guess-guess") == 401
    assert sign_in(client_at(users, "2001:db8:1:2:abcd::99"), OWNER) == 429, "same /64"
    assert sign_in(client_at(users, "2001:db8:1:3::1"), OWNER) == 303, "another /64 is not"


@time_machine.travel(NOW, tick=True)
@pytest.mark.parametrize("app", ["sqlite", "postgresql"], indirect=True)
def test_no_transaction_is_open_while_the_password_is_checked(
    users: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    """argon2 takes most of a second: meanwhile other work writes (SQLite has one writer at a
    time) and the connection is back in the pool (PostgreSQL)."""
    seen: list[str] = []
    verify: Callable[[str, str], bool] = staff._verify

    def observed(password_hash: str, password: str) -> bool:
        seen.append(_open_transactions(users))
        return verify(password_hash, password)

    monkeypatch.setattr(staff, "_verify", observed)
    assert staff.sign_in(users.db, OWNER, "guess-guess-guess", "203.0.113.9").user is None
    assert staff.sign_in(users.db, "nobody@example.org", PASSWORD, "203.0.113.9").user is None
    assert staff.sign_in(users.db, OWNER, PASSWORD, "203.0.113.9").user is not None
    assert seen == ["none", "none", "none"]


def _open_transactions(app: App) -> str:
    """What another connection sees of open transactions, without waiting for any."""
    url = app.db.engine.url
    if url.get_backend_name() == "sqlite":
        other = sqlite3.connect(str(url.database), timeout=0, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")
            other.execute("ROLLBACK")
            return "none"
        except sqlite3.OperationalError as exc:
            return str(exc)  # "database is locked"
        finally:
            other.close()
    with app.db.engine.connect() as connection:
        states = connection.scalars(
            text(
                "SELECT state FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid() AND state LIKE 'idle in transaction%'"
            )
        ).all()
    return ", ".join(states) or "none"


@time_machine.travel(NOW, tick=True)
@pytest.mark.parametrize("app", ["sqlite"], indirect=True)
def test_an_account_disabled_while_its_password_is_checked_gets_no_session(
    users: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    verify: Callable[[str, str], bool] = staff._verify

    def disabled_meanwhile(password_hash: str, password: str) -> bool:
        with users.db.session() as session:
            staff.disable(session, OWNER, actor="admin@example.org")
        return verify(password_hash, password)

    monkeypatch.setattr(staff, "_verify", disabled_meanwhile)
    result = staff.sign_in(users.db, OWNER, PASSWORD, "198.51.100.7")
    assert result.user is None and result.refused == staff.NO_MATCH
    with users.db.session() as session:
        assert session.scalar(select(func.count()).select_from(StaffSession)) == 0
        attempt = session.scalars(select(LoginAttempt)).one()
    assert not attempt.succeeded, "counted as a failure"
