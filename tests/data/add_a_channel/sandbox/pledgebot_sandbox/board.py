"""A local board for the tests: notes in memory, a bearer token, injected faults."""

from __future__ import annotations

from typing import Any

from aiohttp import web


class Board:
    def __init__(self, token: str = "board-sandbox-token") -> None:
        self.token = token
        self.notes: dict[str, str] = {}  # id → text, in the order pinned
        self.removed: list[str] = []
        self.faults: list[int] = []
        self._keys: dict[str, str] = {}
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/me", self._me)
        app.router.add_post("/notes", self._pin)
        app.router.add_delete("/notes/{id}", self._remove)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def _refused(self, request: web.Request) -> web.Response | None:
        if self.faults:
            status = self.faults.pop(0)
            headers = {"Retry-After": "2"} if status == 429 else {}
            return web.json_response({"error": "injected"}, status=status, headers=headers)
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return web.json_response({"error": "bad token"}, status=401)
        return None

    async def _me(self, request: web.Request) -> web.Response:
        return self._refused(request) or web.json_response({"board": "news"})

    async def _pin(self, request: web.Request) -> web.Response:
        refused = self._refused(request)
        if refused is not None:
            return refused
        body: dict[str, Any] = await request.json()
        if len(body["text"]) > 200:
            return web.json_response({"error": "a note has at most 200 characters"}, status=400)
        if body["key"] not in self._keys:
            self._keys[body["key"]] = f"n{len(self._keys) + 1}"
            self.notes[self._keys[body["key"]]] = body["text"]
        return web.json_response({"id": self._keys[body["key"]]}, status=201)

    async def _remove(self, request: web.Request) -> web.Response:
        refused = self._refused(request)
        if refused is not None:
            return refused
        note = request.match_info["id"]
        if self.notes.pop(note, None) is None:
            return web.json_response({"error": "no such note"}, status=404)
        self.removed.append(note)
        return web.Response(status=204)
