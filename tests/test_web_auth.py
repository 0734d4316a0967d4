"""The dashboard's doors: which routes are public, sessions, CSRF, roles, sign-in limits.

Driven through Starlette's TestClient (the real app and middleware, in process). Browser
behaviour is covered by tests/browser/.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from starlette.routing import Mount, Route
from starlette.testclient import TestClient

from bot.community import calendar_feeds, staff
from bot.core.models import OutboxMessage
from bot.core.staff_models import AuditEntry, StaffSession, StaffUser
from bot.delivery import outbox
from bot.delivery.messages import PlannedMessage
from bot.service.app import App
from bot.web.app import build
from bot.web.auth import COOKIE, PUBLIC, SCRAPER_PATHS, VIEWERS_MAY_POST

PASSWORD = "correct-horse-battery-staple"
# The whole list of routes served without a session; a change here is a security decision.
EXPECTED_PUBLIC = (
    "/login",
    "/static/{path}",
    "/healthz",
    "/calendar/{token}.ics",
    "/join/{token}",
    "/unsubscribe/{token}",
    "/feed.atom",
    "/feed.json",
    "/media/{token}/{name}",
)


@pytest.fixture
def web(app: App) -> Iterator[TestClient]:
    with app.db.session() as session:
        for email, role in (
            ("admin@example.org", "admin"),
            ("editor@example.org", "editor"),
            ("viewer@example.org", "viewer"),
        ):
            staff.add_user(session, email, PASSWORD, role, actor="test")
    yield TestClient(build(app))


def sign_in(client: TestClient, email: str, password: str = PASSWORD, next_: str = "/") -> int:
    form = client.get("/login")
    token = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert token is not None
    response = client.post(
        "/login",
        data={"csrf": token.group(1), "email": email, "password": password, "next": next_},
        follow_redirects=False,
    )
    return response.status_code


def post_login(client: TestClient, email: str, **extra: str) -> Any:
    """The sign-in form as a browser submits it (with the form's own token)."""
    form = client.get("/login")
    token = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert token is not None
    data = {"csrf": token.group(1), "email": email, "password": PASSWORD, **extra}
    return client.post("/login", data=data, follow_redirects=False)


def signed_in(app: App, email: str, role: str) -> TestClient:
    """A client signed in as a new user with ``role``."""
    with app.db.session() as session:
        staff.add_user(session, email, PASSWORD, role, actor="test")
    client = TestClient(build(app))
    assert sign_in(client, email) == 303
    return client


def csrf_of(client: TestClient) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', client.get("/alerts").text)
    assert found is not None
    return found.group(1)


def concrete(path: str) -> str:
    """A route's path with its parameters filled in."""
    return (
        path.replace("{id:int}", "1")
        .replace("{id}", "gh-min-labour")
        .replace("{path}", "app.css")
        .replace("{path:path}", "app.css")
        .replace("{token}", "not-a-token")
    )


def every_route(client: TestClient) -> list[tuple[str, str]]:
    """(method, path) for every route in the app's route table."""
    found: list[tuple[str, str]] = []
    auth = client.app.inner  # type: ignore[attr-defined]  # BodyLimit → StaffAuth → Starlette
    for route in auth.inner.routes:
        if isinstance(route, Mount):
            found.append(("GET", route.path + "/{path}"))
        elif isinstance(route, Route):
            for method in sorted(route.methods or {"GET"}):
                if method != "HEAD":
                    found.append((method, route.path))
    return found


def test_the_public_routes_are_exactly_the_documented_list() -> None:
    assert PUBLIC == EXPECTED_PUBLIC


def test_without_a_session_every_route_not_public_redirects_to_login_or_says_401(
    web: TestClient,
) -> None:
    checked = 0
    for method, path in every_route(web):
        if path in PUBLIC or (method == "GET" and path.startswith("/static")):
            continue
        response = web.request(
            method, concrete(path), headers={"accept": "text/html"}, follow_redirects=False
        )
        checked += 1
        if method == "GET" and path not in SCRAPER_PATHS:  # a page: to the sign-in form
            assert response.status_code == 303, (method, path, response.status_code)
            assert response.headers["location"].startswith("/login?next=")
        else:
            assert response.status_code == 401, (method, path, response.status_code)
    assert checked >= 8  # the walk really walked


def test_every_post_without_the_csrf_token_is_refused(web: TestClient) -> None:
    assert sign_in(web, "admin@example.org") == 303
    posts = [path for method, path in every_route(web) if method == "POST" and path not in PUBLIC]
    assert "/logout" in posts and "/outbox/{id:int}/retry" in posts
    for path in posts:
        for data in ({}, {"csrf": "forged"}):
            response = web.post(concrete(path), data=data, follow_redirects=False)
            assert response.status_code == 403, (path, data, response.status_code)
    assert web.get("/outbox").status_code == 200, "still signed in: nothing was done"


def test_a_viewer_changes_nothing(web: TestClient, app: App) -> None:
    with app.db.session() as session:
        outbox.enqueue(session, [PlannedMessage("v:1", "telegram", "101", "hello")])
    assert sign_in(web, "viewer@example.org") == 303
    token = csrf_of(web)
    page = web.get("/outbox").text
    assert "Cancel" not in page and "Retry now" not in page
    for method, path in every_route(web):
        if method == "POST" and path not in (*PUBLIC, *VIEWERS_MAY_POST):
            response = web.post(concrete(path), data={"csrf": token}, follow_redirects=False)
            assert response.status_code == 403, (path, response.status_code)
    with app.db.session() as session:
        assert session.scalar(select(OutboxMessage.state)) == "pending"
    assert web.get("/users").status_code == 403, "only admins manage users"
    assert web.post("/logout", data={"csrf": token}, follow_redirects=False).status_code == 303


def test_sign_in_sets_a_hardened_cookie_and_sign_out_ends_the_session(
    web: TestClient, app: App
) -> None:
    response = post_login(web, "Editor@Example.org ")
    assert response.status_code == 303
    cookie = next(v for k, v in response.headers.multi_items() if k == "set-cookie" and COOKIE in v)
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Secure" not in cookie
    with app.db.session() as session:
        stored = session.scalars(select(StaffSession.token_hash)).all()
    value = web.cookies[COOKIE]
    assert value not in stored and staff.token_hash(value) in stored, "only a hash is kept"
    assert web.post("/logout", data={"csrf": csrf_of(web)}, follow_redirects=False).status_code
    assert web.get("/outbox", follow_redirects=False).status_code == 303
    with app.db.session() as session:
        assert session.scalars(select(StaffSession)).all() == []


def test_over_https_the_cookie_is_secure(app: App) -> None:
    with app.db.session() as session:
        staff.add_user(session, "ssl@example.org", PASSWORD, "viewer", actor="test")
    client = TestClient(build(app), base_url="https://dashboard.example.org")
    response = post_login(client, "ssl@example.org")
    cookie = next(v for k, v in response.headers.multi_items() if k == "set-cookie" and COOKIE in v)
    assert "Secure" in cookie


def test_wrong_passwords_are_limited_even_when_the_right_one_follows(web: TestClient) -> None:
    for _ in range(staff.FAILURES_ALLOWED):
        assert sign_in(web, "editor@example.org", "not-the-password") == 401
    assert sign_in(web, "editor@example.org") == 429
    page = web.get("/login")
    assert "Sign in" in page.text
    assert web.get("/outbox", follow_redirects=False).status_code == 303, "not signed in"


def test_a_sign_in_form_without_its_token_is_refused(web: TestClient) -> None:
    response = web.post(
        "/login",
        data={"email": "admin@example.org", "password": PASSWORD},
        follow_redirects=False,
    )
    assert response.status_code == 403
    assert COOKIE not in web.cookies


def test_after_sign_in_only_local_paths_are_followed(web: TestClient) -> None:
    response = post_login(web, "admin@example.org", next="//evil.example/steal")
    assert response.headers["location"] == "/"


def test_metrics_need_a_session_or_the_scrapers_token(
    web: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert web.get("/metrics").status_code == 401
    monkeypatch.setenv("PLEDGEBOT_METRICS_TOKEN", "s3cret-scrape-token")
    assert web.get("/metrics", headers={"authorization": "Bearer wrong"}).status_code == 401
    scraped = web.get("/metrics", headers={"authorization": "Bearer s3cret-scrape-token"})
    assert scraped.status_code == 200 and "pledgebot_outbox_oldest_due_seconds" in scraped.text
    assert web.get("/healthz").status_code == 200, "health stays public"


def test_pages_carry_security_headers(web: TestClient) -> None:
    response = web.get("/login")
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert response.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize("app", ["sqlite"], indirect=True)
def test_secret_bearing_responses_are_never_cached(web: TestClient, app: App) -> None:
    with app.db.session() as session:
        feed_token = calendar_feeds.new_feed(
            session, staff.find_user(session, "viewer@example.org")
        )
    ics = TestClient(build(app)).get(f"/calendar/{feed_token}.ics")  # no session: the token
    assert ics.status_code == 200 and ics.headers["content-type"].startswith("text/calendar")
    assert ics.headers["cache-control"] == "no-store"
    assert sign_in(web, "editor@example.org") == 303
    for path in ("/reports.csv", "/pledgemakers.csv", "/pledgemakers/ilo/data.json", "/outbox"):
        response = web.get(path)
        assert response.status_code == 200, path
        assert response.headers["cache-control"] == "no-store", path
    assert "no-store" not in web.get("/static/app.css").headers.get("cache-control", "")
    assert "public" in web.get("/feed.json").headers["cache-control"], "the public feed caches"


def test_an_editor_retries_a_failed_message_and_cancels_a_pending_one(
    web: TestClient, app: App
) -> None:
    with app.db.session() as session:
        outbox.enqueue(
            session,
            [
                PlannedMessage("e:1", "telegram", "101", "first"),
                PlannedMessage("e:2", "telegram", "102", "second"),
            ],
        )
        outbox.mark_failed(session, 1, "rejected: Telegram: Bad Request: message is too long")
    assert sign_in(web, "editor@example.org") == 303
    page = web.get("/outbox?state=failed").text
    assert "The platform refused this message: Telegram: Bad Request: message is too long" in page
    token = csrf_of(web)
    retried = web.post("/outbox/1/retry", data={"csrf": token})
    assert "will be sent again" in retried.text
    assert "will be sent again" not in web.get("/outbox").text, "said once"
    assert "Pay here" not in web.get("/outbox?done=Pay+here").text, "a link cannot add words"
    cancelled = web.post("/outbox/2/cancel", data={"csrf": token})
    assert "Message 2 cancelled" in cancelled.text
    with app.db.session() as session:
        states = {m.id: m.state for m in session.scalars(select(OutboxMessage))}
        actions = session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)).all()
    assert states == {1: "pending", 2: "cancelled"}
    assert actions[-2:] == ["outbox.retry", "outbox.cancel"]
    again = web.post("/outbox/2/cancel", data={"csrf": token})
    assert again.status_code == 404 and "not waiting to be sent" in again.text


def test_message_text_is_shown_inert(web: TestClient, app: App) -> None:
    hostile = '<script>alert(1)</script> "><img src=x onerror=alert(2)> نحن ندرب المفتشين'
    with app.db.session() as session:
        outbox.enqueue(session, [PlannedMessage("x:1", "telegram", "101", hostile)])
    assert sign_in(web, "viewer@example.org") == 303
    page = web.get("/outbox").text
    assert "<script>alert(1)</script>" not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "نحن ندرب المفتشين" in page


def test_an_admin_adds_a_user_and_changes_a_role_but_not_their_own(
    web: TestClient, app: App
) -> None:
    assert sign_in(web, "admin@example.org") == 303
    token = csrf_of(web)
    short = web.post(
        "/users",
        data={"csrf": token, "email": "new@example.org", "password": "x", "role": "editor"},
    )
    assert short.status_code == 400 and "at least 12 characters" in short.text
    for email, password, why in (
        ("a@b", PASSWORD, "It should have a period."),
        ("new@example.org", "a" * 16, "one character repeated"),
        ("new@example.org", "new-example-org-1", "must not contain the address"),
    ):
        refused = web.post(
            "/users", data={"csrf": token, "email": email, "password": password, "role": "admin"}
        )
        assert refused.status_code == 400 and why in refused.text, (email, password)
    added = web.post(
        "/users",
        data={"csrf": token, "email": "new@example.org", "password": PASSWORD, "role": "editor"},
    )
    assert "new@example.org added" in added.text
    with app.db.session() as session:
        ids = {u.email: u.id for u in session.scalars(select(StaffUser))}
    web.post(f"/users/{ids['new@example.org']}/role", data={"csrf": token, "role": "viewer"})
    own = web.post(
        f"/users/{ids['admin@example.org']}/role", data={"csrf": token, "role": "viewer"}
    )
    assert own.status_code == 400 and "your own account" in own.text
    with app.db.session() as session:
        roles = {u.email: u.role for u in session.scalars(select(StaffUser))}
    assert roles["new@example.org"] == "viewer" and roles["admin@example.org"] == "admin"
    other = TestClient(build(app))
    assert sign_in(other, "new@example.org") == 303
    assert other.get("/users").status_code == 403


def test_an_oversized_post_is_refused_whole(
    web: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bot.web import auth

    monkeypatch.setattr(auth, "MAX_FORM_BYTES", 1000)
    assert sign_in(web, "admin@example.org") == 303
    token = csrf_of(web)
    response = web.post("/alerts/1/acknowledge", data={"csrf": token, "pad": "x" * 5000})
    assert response.status_code == 413


@pytest.mark.parametrize("app", ["sqlite"], indirect=True)
def test_a_page_without_its_database_says_503_not_a_traceback(app: App, tmp_path: Path) -> None:
    client = TestClient(build(app), raise_server_exceptions=False)
    client.cookies.set(COOKIE, "some-session-token")
    app.db.dispose()
    (tmp_path / "pledgebot.db").unlink()
    (tmp_path / "pledgebot.db").mkdir()  # not a database any more
    response = client.get("/outbox", follow_redirects=False)
    assert response.status_code == 503 and "database is unreachable" in response.text


@pytest.mark.parametrize("app", ["sqlite"], indirect=True)
def test_the_outbox_pages_back_through_older_messages_keeping_its_filter(app: App) -> None:
    with app.db.session() as session:
        outbox.enqueue(
            session,
            [PlannedMessage(f"p:{i}", "telegram", str(1000 + i), f"m{i}") for i in range(105)],
            campaign_id="act-checkin",
        )
    viewer = signed_in(app, "viewer@example.org", "viewer")
    first = viewer.get("/outbox?campaign=act-checkin").text
    assert first.count('<tr id="message-') == 100
    older = re.search(r'<a href="([^"]+)">Older messages</a>', first)
    assert older is not None and "campaign=act-checkin" in older.group(1)
    rest = viewer.get(older.group(1).replace("&amp;", "&")).text
    assert rest.count('<tr id="message-') == 5 and "Older messages" not in rest
