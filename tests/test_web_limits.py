"""Request bodies are limited before routing, against the real server (uvicorn on loopback).

A 60 MB POST to a public route is refused with 413 while most of it is still on the client's
side: by its Content-Length at once, or, sent chunked, as soon as it passes the limit. Also:
the client address a proxy on the same host names is the one sign-in limits count.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import uvicorn

from bot.community import staff
from bot.service.app import App
from bot.web.app import build
from bot.web.limits import PUBLIC_MAX_BYTES
from tests.test_web_auth import PASSWORD

SIXTY_MB = 60 * 1024 * 1024
PUBLIC_POSTS = ("/login", "/join/some-token", "/unsubscribe/some-token")


@pytest.fixture
def server(app: App) -> Iterator[tuple[str, int]]:
    """The whole web app served by uvicorn as `pledgebot web` serves it; (host, port)."""
    config = uvicorn.Config(
        build(app), host="127.0.0.1", port=0, log_level="warning", lifespan="off", loop="asyncio"
    )
    running = uvicorn.Server(config)
    thread = threading.Thread(target=running.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not running.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    yield "127.0.0.1", running.servers[0].sockets[0].getsockname()[1]
    running.should_exit = True
    thread.join(timeout=10)


def head(path: str, *lines: str) -> bytes:
    fields = "".join(f"{line}\r\n" for line in lines)
    return (
        f"POST {path} HTTP/1.1\r\nHost: dashboard\r\n"
        f"Content-Type: application/x-www-form-urlencoded\r\n{fields}\r\n"
    ).encode()


def status_of(sock: socket.socket) -> int:
    """The status of the answer, read within the socket's timeout."""
    answer = b""
    while b"\r\n" not in answer:
        chunk = sock.recv(4096)
        assert chunk, f"closed without an answer: {answer!r}"
        answer += chunk
    return int(answer.split(b" ", 2)[1])


@pytest.mark.parametrize("app", ["sqlite"], indirect=True)
@pytest.mark.parametrize("path", PUBLIC_POSTS)
def test_a_60_mb_post_is_refused_by_its_length_before_its_body_is_sent(
    server: tuple[str, int], path: str
) -> None:
    with socket.create_connection(server, timeout=5) as sock:
        started = time.monotonic()
        sock.sendall(head(path, f"Content-Length: {SIXTY_MB}") + b"email=" + b"x" * 1000)
        assert status_of(sock) == 413  # with 60 MB still unsent: the server did not wait for it
        assert time.monotonic() - started < 3


@pytest.mark.parametrize("app", ["sqlite"], indirect=True)
def test_a_chunked_60_mb_post_is_cut_off_at_the_limit(server: tuple[str, int]) -> None:
    sent = 0
    piece = b"x" * 65536
    chunk = f"{len(piece):x}\r\n".encode() + piece + b"\r\n"

    def stream(sock: socket.socket) -> None:
        nonlocal sent
        try:
            while sent < SIXTY_MB:
                sock.sendall(chunk)
                sent += len(piece)
            sock.sendall(b"0\r\n\r\n")
        except OSError:  # the server closed the connection: it will read no more
            pass

    with socket.create_connection(server, timeout=10) as sock:
        sock.sendall(head("/login", "Transfer-Encoding: chunked"))
        sender = threading.Thread(target=stream, args=(sock,), daemon=True)
        started = time.monotonic()
        sender.start()
        assert status_of(sock) == 413
        assert time.monotonic() - started < 5
        sender.join(timeout=10)
    assert PUBLIC_MAX_BYTES < sent < SIXTY_MB / 4, f"{sent:,} bytes went out"


@pytest.mark.parametrize("app", ["sqlite"], indirect=True)
def test_a_form_within_the_limit_still_signs_in(server: tuple[str, int], app: App) -> None:
    with app.db.session() as session:
        staff.add_user(session, "lead@example.org", PASSWORD, "admin", actor="test")
    with httpx.Client(base_url=f"http://{server[0]}:{server[1]}", timeout=10) as client:
        token = re.search(r'name="csrf" value="([^"]+)"', client.get("/login").text)
        assert token is not None
        form = {"csrf": token.group(1), "email": "lead@example.org", "password": PASSWORD}
        form["pad"] = "x" * (PUBLIC_MAX_BYTES // 2)
        assert client.post("/login", data=form).status_code == 303


@pytest.mark.parametrize("app", ["sqlite"], indirect=True)
def test_behind_a_proxy_on_the_same_host_each_client_is_counted_apart(
    server: tuple[str, int], app: App
) -> None:
    """uvicorn believes X-Forwarded-For from loopback only (FORWARDED_ALLOW_IPS): a proxy there
    names the real client, so one client's failures stop that client alone."""
    with app.db.session() as session:
        staff.add_user(session, "lead@example.org", PASSWORD, "admin", actor="test")

    def attempt(forwarded_for: str, password: str) -> int:
        with httpx.Client(
            base_url=f"http://{server[0]}:{server[1]}",
            headers={"x-forwarded-for": forwarded_for},
            timeout=10,
        ) as client:
            token = re.search(r'name="csrf" value="([^"]+)"', client.get("/login").text)
            assert token is not None
            form = {"csrf": token.group(1), "email": "lead@example.org", "password": password}
            return client.post("/login", data=form).status_code

    for _ in range(staff.FAILURES_ALLOWED):
        assert attempt("203.0.113.9", "guess-guess-guess") == 401
    assert attempt("203.0.113.9", PASSWORD) == 429
    assert attempt("198.51.100.7", PASSWORD) == 303
