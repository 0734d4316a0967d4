"""Signing in under attack: the time taken tells nothing, and nobody locks a colleague out.

Failures are limited per (address, client); failures for one address from many clients only
slow its sign-ins down. Driven through Starlette's TestClient with the client's address set,
as uvicorn sets it (tests/test_web_limits.py shows it behind a proxy on the same host).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from sqlalchemy import select
from starlette.testclient import TestClient

from bot import staff
from bot.app import App
from bot.models import LoginAttempt, utcnow
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
            with users.db.session() as session:
                started = time.perf_counter()
                result = staff.sign_in(session, email, "wrong-password-here", f"10.0.0.{n}")
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
