"""The demo's public networks beyond X and Telegram: Bluesky, LinkedIn, Facebook, Instagram and
Mastodon, each against its local server, and the public media route Instagram fetches from.

``pledgebot_sandbox`` serves Bluesky (a PDS), LinkedIn (its REST API) and the Graph API (one server
for the Facebook Page and the Instagram business account); Mastodon is PyPI's ``mastodon-mock`` (a
requirement of the sandboxes: when it is missing, the demo goes on without Mastodon and says so in
one line). Instagram takes no upload: it downloads each image from a public URL, so the dashboard's
web app runs on a free loopback port with ``[media] public_base_url`` pointing at it and a fresh
``PLEDGEBOT_MEDIA_URL_KEY`` signing the URLs (``bot.core.media_urls``, ``bot.web.media``).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import secrets
import socket
from typing import TYPE_CHECKING, Any

import uvicorn
from sqlalchemy import select

from bot.channels import registry
from bot.core import media_urls
from bot.core.models import OutboxMessage, Post
from bot.service.app import App
from bot.web import QuietServer
from pledgebot_sandbox.bluesky import BlueskySandbox
from pledgebot_sandbox.demo_channels import Say, first_line
from pledgebot_sandbox.facebook import GraphSandbox
from pledgebot_sandbox.linkedin import LinkedInSandbox

if TYPE_CHECKING:
    from pledgebot_sandbox.mastodon import MastodonServer

# The order of the networks in the amplify campaign and in the links line.
NETWORKS = ("x", "telegram", "bluesky", "linkedin", "facebook", "instagram", "mastodon")
ENV = {
    "bluesky": "PLEDGEBOT_DEMO_BLUESKY_PASSWORD",
    "linkedin": "PLEDGEBOT_DEMO_LINKEDIN_TOKEN",
    "facebook": "PLEDGEBOT_DEMO_FACEBOOK_TOKEN",
    "instagram": "PLEDGEBOT_DEMO_INSTAGRAM_TOKEN",
    "mastodon": "PLEDGEBOT_DEMO_MASTODON_TOKEN",
}
MASTODON_PACKAGE = "mastodon_mock"  # pledgebot_sandbox.mastodon's import


class Reach:
    """The servers of the other public networks; ``networks`` are those running."""

    def __init__(self) -> None:
        self.bluesky = BlueskySandbox()
        self.linkedin = LinkedInSandbox()
        self.graph = GraphSandbox()
        self.mastodon: MastodonServer | None = None
        self.networks: list[str] = []
        # Bound now, so the config can name the URL before the web app is built on it.
        self._socket = socket.create_server(("127.0.0.1", 0))
        self.public_base_url = f"http://127.0.0.1:{self._socket.getsockname()[1]}"
        self._web: QuietServer | None = None
        self._serving: asyncio.Task[None] | None = None

    async def start(self, stack: contextlib.AsyncExitStack, say: Say) -> None:
        """Every server, each stopped by ``stack``; Mastodon skipped (one line) without its
        package."""
        stack.callback(self._socket.close)
        for sandbox in (self.bluesky, self.linkedin, self.graph):
            stack.push_async_callback(sandbox.stop)
        await asyncio.gather(self.bluesky.start(), self.linkedin.start(), self.graph.start())
        self.networks = ["bluesky", "linkedin", "facebook", "instagram"]
        if importlib.util.find_spec(MASTODON_PACKAGE) is None:
            say(
                "demo: continuing without mastodon: mastodon-mock not installed (the "
                "sandboxes' requirements): pip install -e ./sandbox"
            )
        else:
            from pledgebot_sandbox.mastodon import MastodonServer

            server = MastodonServer()
            try:
                await asyncio.to_thread(server.start)
            except (RuntimeError, OSError) as exc:
                say(f"demo: continuing without mastodon: it did not start: {first_line(exc)}")
            else:
                stack.push_async_callback(asyncio.to_thread, server.stop)
                self.mastodon = server
                self.networks.append("mastodon")
        tokens = {
            "bluesky": self.bluesky.app_password,
            "linkedin": self.linkedin.access_token,
            "facebook": self.graph.page_token,
            "instagram": self.graph.ig_token,
            "mastodon": self.mastodon.token if self.mastodon else "",
        }
        for name, env in ENV.items():
            os.environ[env] = tokens[name]
        os.environ[media_urls.KEY_ENV] = secrets.token_urlsafe(32)

    def settings(self) -> dict[str, dict[str, Any]]:
        """The ``[channels.<name>]`` sections of the networks running."""
        sections: dict[str, dict[str, Any]] = {
            "bluesky": {
                "enabled": True,
                "service_url": self.bluesky.base_url,
                "handle": self.bluesky.handle,
                "app_password_env": ENV["bluesky"],
                "request_timeout": 5,
            },
            "linkedin": {
                "enabled": True,
                "api_base_url": self.linkedin.api_base_url,
                "organization_id": self.linkedin.organization_id,
                "api_version": self.linkedin.latest_version,
                "access_token_env": ENV["linkedin"],
                "request_timeout": 5,
            },
            "facebook": {
                "enabled": True,
                "page_id": self.graph.page_id,
                "graph_url": self.graph.base_url,
                "page_token_env": ENV["facebook"],
                "request_timeout": 5,
            },
            "instagram": {
                "enabled": True,
                "ig_user_id": self.graph.ig_user_id,
                "graph_url": self.graph.base_url,
                "access_token_env": ENV["instagram"],
                "request_timeout": 5,
                "poll_interval": 0.05,
                "publish_timeout": 10,
            },
        }
        if self.mastodon is not None:
            sections["mastodon"] = {
                "enabled": True,
                "api_base_url": self.mastodon.base_url,
                "access_token_env": ENV["mastodon"],
                "request_timeout": 5,
            }
        return sections

    async def serve_media(self, app: App, stack: contextlib.AsyncExitStack) -> None:
        """The dashboard's web app (its public ``/media/…`` route) on the bound port."""
        from bot.web.app import build

        config = uvicorn.Config(build(app), log_level="warning", access_log=False, lifespan="off")
        self._web = QuietServer(config)
        self._serving = asyncio.create_task(self._web.serve(sockets=[self._socket]))
        stack.push_async_callback(self._stop_media)
        while not self._web.started and not self._serving.done():  # noqa: ASYNC110
            await asyncio.sleep(0.02)

    async def _stop_media(self) -> None:
        if self._web is not None and self._serving is not None:
            self._web.should_exit = True
            await asyncio.gather(self._serving, return_exceptions=True)
        self._socket.close()

    def links(self, app: App) -> tuple[int, list[str]] | None:
        """The update posted on the most networks, and ``<network> <link>`` for each: its
        public link, or the sandbox's own URL or id where there is none."""
        with app.db.session() as session:
            rows = session.execute(
                select(
                    Post.journey_update_id,
                    Post.channel,
                    OutboxMessage.recipient,
                    OutboxMessage.external_id,
                )
                .join(OutboxMessage, Post.first_outbox_id == OutboxMessage.id)
                .where(OutboxMessage.state == "sent", Post.journey_update_id.is_not(None))
            ).all()
        by_update: dict[int, dict[str, tuple[str, str]]] = {}
        for update_id, channel, recipient, external_id in rows:
            by_update.setdefault(update_id, {})[channel] = (recipient, external_id or "")
        if not by_update:
            return None
        update_id = min(by_update, key=lambda u: (-len(by_update[u]), u))
        posted = by_update[update_id]
        order = [n for n in NETWORKS if n in posted] + sorted(set(posted) - set(NETWORKS))
        return update_id, [f"{n} {self._link(n, *posted[n])}" for n in order]

    def _link(self, channel: str, recipient: str, external_id: str) -> str:
        link = registry.spec(channel).public_link(recipient, external_id)
        if link is not None:
            return link
        if channel == "mastodon" and self.mastodon is not None:
            status = self.mastodon.status(external_id)
            if status is not None and status.get("url"):
                return str(status["url"])
        return external_id  # Instagram: the media id (its permalink needs a look-up)
