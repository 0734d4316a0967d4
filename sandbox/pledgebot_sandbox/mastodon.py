"""A real Mastodon REST API for the tests and ``pledgebot demo``: PyPI's ``mastodon-mock`` (a dev
extra; FastAPI on SQLite in memory).

``MockServer`` (the package's own handle) runs uvicorn in a thread on a free loopback port (the
OS picks it: port 0). Its mock-only control plane, ``/api/v1/_mock/*``, is what tests drive:

- ``POST /api/v1/_mock/reset`` — back to the seed (our account ``pledgebot`` and its token);
- ``POST /api/v1/_mock/faults`` — a rule ``{"match": {"methods", "path"}, "effect": {"type":
  "status"|"ratelimit"|"timeout"|"malformed", "status", "headers", "delay_ms"}, "count": n}``:
  the next ``n`` matching requests get that answer instead (``ratelimit``: a 429 with
  ``X-RateLimit-*`` headers); ``DELETE /api/v1/_mock/faults`` clears them.

The package's own helpers for these (``MockServer.reset``/``fault``) need ``httpx2``, an extra
we do not install; the few calls are made here with httpx.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

import httpx
from mastodon_mock.config import (
    DatabaseConfig,
    MastodonMockConfig,
    SeedAccount,
    SeedConfig,
    StreamingConfig,
)
from mastodon_mock.testing.server import MockServer

STATUSES = "/api/v1/statuses"
MEDIA = "/api/v2/media"
REMOTE_HANDLE = "@ilo@mastodon.social"  # a pledgemaker's account on another instance


class MastodonServer:
    """One mastodon-mock instance with our posting account; start once, ``reset`` per test."""

    def __init__(self) -> None:
        self.token = f"mock-{secrets.token_urlsafe(24)}"
        seed = SeedConfig(
            accounts=[
                SeedAccount(
                    username="pledgebot",
                    display_name="Pledgebot",
                    bot=True,
                    access_token=self.token,
                ),
                SeedAccount(username="ilo", display_name="ILO", domain="mastodon.social"),
            ]
        )
        config = MastodonMockConfig(
            database=DatabaseConfig(path=":memory:"),
            seed=seed,
            streaming=StreamingConfig(enabled=False),  # nothing here listens
        )
        self._server = MockServer(config=config)
        self._http: httpx.Client | None = None
        self.account_id = ""

    @property
    def base_url(self) -> str:
        return self._server.base_url

    @property
    def http(self) -> httpx.Client:
        assert self._http is not None, "start() first"
        return self._http

    def start(self) -> MastodonServer:
        self._server.start()
        self._http = httpx.Client(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=10,
        )
        self.account_id = self._get("/api/v1/accounts/verify_credentials")["id"]
        return self

    def stop(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None
        self._server.stop()

    def reset(self) -> None:
        """Seed state again (no statuses, no media, no fault rules); ids stay valid."""
        self.http.post("/api/v1/_mock/reset").raise_for_status()
        self.account_id = self._get("/api/v1/accounts/verify_credentials")["id"]

    # -- fault injection -----------------------------------------------------------------------
    def fault(
        self,
        *,
        path: str = STATUSES,
        methods: tuple[str, ...] = ("POST",),
        kind: str = "status",
        status: int | None = None,
        headers: dict[str, str] | None = None,
        body: Any = None,
        count: int | None = 1,
        delay_ms: int = 0,
    ) -> str:
        """The next ``count`` requests matching ``methods path`` get this answer; the rule id."""
        effect: dict[str, Any] = {"type": kind, "delay_ms": delay_ms}
        if status is not None:
            effect["status"] = status
        if headers is not None:
            effect["headers"] = headers
        if body is not None:
            effect["body"] = body
        rule = {"match": {"methods": list(methods), "path": path}, "effect": effect, "count": count}
        response = self.http.post("/api/v1/_mock/faults", json=rule)
        response.raise_for_status()
        return str(response.json()["id"])

    def rate_limit_next(self, seconds: int = 2, *, path: str = STATUSES) -> None:
        """A 429 whose ``X-RateLimit-Reset`` is ``seconds`` away (Unix time, as the mock says)."""
        reset = str(int(time.time()) + seconds)
        self.fault(path=path, kind="ratelimit", headers={"X-RateLimit-Reset": reset})

    def clear_faults(self) -> None:
        self.http.delete("/api/v1/_mock/faults").raise_for_status()

    # -- what the server holds -----------------------------------------------------------------
    def statuses(self) -> list[dict[str, Any]]:
        """Our account's statuses, oldest first, each with its source ``text`` (as posted)."""
        found: list[dict[str, Any]] = []
        max_id = None
        while True:
            params = {"limit": 40, **({"max_id": max_id} if max_id else {})}
            page = self._get(f"/api/v1/accounts/{self.account_id}/statuses", params=params)
            if not page:
                break
            found += page
            max_id = page[-1]["id"]
        for status in found:
            status["text"] = self._get(f"{STATUSES}/{status['id']}/source")["text"]
        return sorted(found, key=lambda s: int(s["id"]))

    def status(self, status_id: str) -> dict[str, Any] | None:
        response = self.http.get(f"{STATUSES}/{status_id}")
        if response.status_code == 404:
            return None
        response.raise_for_status()
        return dict(response.json())

    def texts(self) -> list[str]:
        return [status["text"] for status in self.statuses()]

    def _get(self, path: str, **kwargs: Any) -> Any:
        response = self.http.get(path, **kwargs)
        response.raise_for_status()
        return response.json()
