"""The contract harness for Instagram: the adapter against the in-package Graph sandbox
(sandbox/pledgebot_sandbox/facebook.py), which really downloads each image from the dashboard's public media
route (bot/web/media.py), served by uvicorn on a loopback port over a fresh SQLite database.

Instagram has no text-only post and the adapter refuses one (test_instagram.py shows it), while
the contract's cases send text. So the harness's adapter attaches its test image — a JPEG of an
approved, consented journey update — to a message that has none: every case then runs the whole
flow (signed URL, fetch, container, publish) and the contract checks the caption, as a reader
sees it under the image. ``PublicMedia`` is shared with test_instagram.py.
"""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, ClassVar

import uvicorn
from pydantic import SecretStr
from starlette.applications import Starlette

from bot.channels.base import Media, OutboundMessage, Receipt
from bot.channels.instagram.adapter import InstagramChannel
from bot.channels.instagram.settings import InstagramSettings
from bot.community.importer import import_pledgemakers
from bot.core.media_urls import MediaUrls
from bot.core.models import JourneyUpdate
from bot.service.app import App, build_app
from bot.settings.config import config_from_dict
from bot.web import media
from bot.web.auth import StaffAuth
from pledgebot_sandbox.facebook import GraphSandbox
from tests.conftest import ROOT, SAMPLE_CSV

MEDIA_KEY = "harness-media-url-key-0123456789abcdef"
REFUSED_TOKEN = "EAArevoked-instagram-token-000000"
ALT = "Inspectors in a training room"


def write_jpeg(path: Path, size: tuple[int, int] = (480, 400)) -> Path:
    """A real JPEG (Pillow comes with matplotlib), ``size`` = width, height."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (30, 120, 200)).save(path, "JPEG")
    return path


class PublicMedia:
    """The public media route (behind the dashboard's ``StaffAuth``) on a loopback port, over a
    fresh database with the sample pledgemakers. ``full``: the whole dashboard
    (``bot.web.app.build``, which reads the key from ``PLEDGEBOT_MEDIA_URL_KEY``)."""

    def __init__(self, folder: Path | None = None, *, key: str = MEDIA_KEY) -> None:
        self.folder = folder or Path(tempfile.mkdtemp(prefix="pledgebot-ig-"))
        self._own_folder = folder is None
        self.key = SecretStr(key)
        self.server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def media_dir(self) -> Path:
        return self.folder / "media"

    async def start(self, *, full: bool = False) -> None:
        data = {
            "database": {"url": f"sqlite:///{self.folder / 'public-media.db'}"},
            "media": {"dir": "media"},
            "paths": {"templates": str(ROOT / "templates")},
        }
        config = config_from_dict(
            data, source=str(self.folder / "config.toml"), base_dir=self.folder
        )
        self.app: App = build_app(config)
        await asyncio.to_thread(self._prepare)
        if full:
            from bot.web.app import build

            asgi: Any = build(self.app)
        else:
            asgi = StaffAuth(Starlette(routes=media.routes(self.app, key=self.key)), self.app)
        settings = uvicorn.Config(
            asgi, host="127.0.0.1", port=0, log_level="warning", lifespan="off", loop="asyncio"
        )
        self.server = uvicorn.Server(settings)
        self._thread = threading.Thread(target=self.server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the public media server did not start")
            await asyncio.sleep(0.02)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.base_url = f"http://127.0.0.1:{port}"
        self.urls = MediaUrls(self.base_url, self.key)

    def _prepare(self) -> None:
        self.app.db.upgrade()
        with self.app.db.session() as session:
            import_pledgemakers(session, SAMPLE_CSV)

    def add_update(
        self,
        image: Path | None,
        *,
        moderation: str = "approved",
        consent: bool | None = True,
        alt: str = ALT,
        text: str = "We trained 40 labour inspectors.",
    ) -> int:
        """A journey update of the sample pledgemaker "ilo" holding ``image`` (or none); its
        id."""
        media = [{"path": str(image), "alt_text": alt}] if image is not None else []
        with self.app.db.session() as session:
            update = JourneyUpdate(
                pledgemaker_id="ilo", pillar="act", kind="progress", text=text, media=media,
                moderation=moderation, consent_to_publish=consent, source="import",
                source_ref=f"ig:{image.name if image else text}",
            )  # fmt: skip
            session.add(update)
            session.flush()
            return update.id

    async def stop(self) -> None:
        if self.server is not None and self._thread is not None:
            self.server.should_exit = True
            await asyncio.to_thread(self._thread.join, 10)
        self.app.close()
        if self._own_folder:
            shutil.rmtree(self.folder, ignore_errors=True)


class WithTestImage:
    """The Instagram adapter, attaching the harness's image to a message without one."""

    def __init__(self, adapter: InstagramChannel, image: Path) -> None:
        self.adapter, self.image = adapter, image

    async def start(self) -> None:
        await self.adapter.start()

    async def send(self, message: OutboundMessage) -> Receipt:
        if not message.media:
            message = dataclasses.replace(message, media=(Media(str(self.image), ALT),))
        return await self.adapter.send(message)

    async def aclose(self) -> None:
        await self.adapter.aclose()


class InstagramHarness:
    name = "instagram"
    not_applicable: ClassVar[dict[str, str]] = {
        "recipient_gone": "posts go to the campaign's own business account: no one can leave it",
        "inbound": "pledgebot only publishes on Instagram; it reads no comments or messages",
        "delete": "Instagram's API deletes no published post: a withdrawal lists it for staff",
    }
    delete_again = None

    async def start(self) -> None:
        self.sandbox = GraphSandbox()
        await self.sandbox.start()
        self.public = PublicMedia()
        await self.public.start()
        self.image = write_jpeg(self.public.media_dir / "telegram" / "contract.jpg")
        self.public.add_update(self.image)

    async def stop(self) -> None:
        await self.sandbox.stop()
        await self.public.stop()

    def secrets(self) -> list[str]:
        sandbox = self.sandbox
        return [sandbox.ig_token, sandbox.page_token, REFUSED_TOKEN, MEDIA_KEY]

    async def adapter(self, *, bad_credentials: bool = False) -> Any:
        settings = InstagramSettings(
            enabled=True,
            ig_user_id=self.sandbox.ig_user_id,
            graph_url=self.sandbox.base_url,
            request_timeout=3,
            poll_interval=0.05,
            publish_timeout=5,
        )
        token = REFUSED_TOKEN if bad_credentials else self.sandbox.ig_token
        channel = InstagramChannel(
            settings, {"access_token": SecretStr(token)}, media_urls=self.public.urls
        )
        return WithTestImage(channel, self.image)

    def recipient(self) -> str:
        return "timeline"

    def received(self) -> list[str]:
        return self.sandbox.captions()

    async def fail_next_send(self, how: str) -> bool | None:
        kinds = {"rate_limited": "rate_limited", "transient": "server_error"}
        kinds["unauthorized"] = "expired_token"
        if how not in kinds:
            return None
        self.sandbox.fail_next(kinds[how], "media")
        return True

    async def gone_recipient(self) -> str | None:
        return None

    async def push_inbound(self, text: str) -> bool | None:
        return None

    def too_long(self) -> str:
        return "Child labour ends with all of us. " * 70  # 2,380 characters; a caption: 2,200

    def gone(self, external_id: str) -> bool | None:
        return None
