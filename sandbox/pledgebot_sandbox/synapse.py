"""A real Synapse homeserver on loopback, for the Matrix tests and for ``pledgebot demo`` (the
faulty proxy to put in front of it is ``synapse_proxy``'s).

Synapse pulls in Twisted, so it lives in its own virtual environment, built once (~30 s, from
PyPI) by ``build_venv()`` or ``python -m pledgebot_sandbox.synapse``. Where (``venv_path()``):
``$PLEDGEBOT_SYNAPSE_VENV`` if set; else ``.cache/synapse-venv`` in the source checkout this
package runs from (an editable install: the tests, ``make demo``), whatever the working
directory; else — pledgebot installed as a package — ``.cache/synapse-venv`` in the working
directory. Each ``Synapse()``: SQLite in a temporary folder, loopback only, a free port, no
federation, registration closed but for the shared-secret admin API, cheap password hashing. Its
message rate limit is tight on purpose (``THROTTLED``): every account is exempted by the admin
API unless registered ``throttled=True``, so one test can meet a real 429 while the others never
do.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pledgebot_sandbox._server import end_process, free_port

VENV_ENV = "PLEDGEBOT_SYNAPSE_VENV"
REQUIREMENT = "matrix-synapse>=1.163,<2"
SERVER_NAME = "localhost"
THROTTLED = {"per_second": 0.01, "burst_count": 3}  # rc_message for accounts not exempted
LOOSE = {"per_second": 1000, "burst_count": 1000}


class SynapseUnavailable(RuntimeError):
    """Synapse's venv could not be built (no route to PyPI?): the message says why, in a line."""


def venv_path() -> Path:
    """Where Synapse's venv lives (see the module docstring for the order)."""
    if override := os.environ.get(VENV_ENV):
        return Path(override).expanduser().resolve()
    checkout = Path(__file__).resolve().parents[2]
    here = checkout / "sandbox" / "pledgebot_sandbox"
    if (checkout / "pyproject.toml").is_file() and here.is_dir():
        return checkout / ".cache" / "synapse-venv"
    return Path.cwd() / ".cache" / "synapse-venv"


def venv_ready(venv: Path | None = None) -> bool:
    """Built already (``build_venv`` returns at once)."""
    marker = (venv or venv_path()) / ".pledgebot-installed"
    return marker.is_file() and marker.read_text() == REQUIREMENT


def _clean_env() -> dict[str, str]:
    """Our environment without what would make Synapse's python see pledgebot's packages."""
    return {
        k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")
    }


def build_venv(venv: Path | None = None) -> Path:
    """Synapse's own virtual environment (built once; ~30 s here); returns its python.
    Raises ``SynapseUnavailable`` when it cannot be built (pip's last words in the message)."""
    venv = venv or venv_path()
    python = venv / "bin" / "python"
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(venv.parent / "synapse-venv.lock", "w") as lock:  # xdist workers build it once
        fcntl.flock(lock, fcntl.LOCK_EX)
        if venv_ready(venv):
            return python
        shutil.rmtree(venv, ignore_errors=True)
        steps = (
            [sys.executable, "-m", "venv", str(venv)],
            [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
             REQUIREMENT],
        )  # fmt: skip
        for step in steps:
            done = subprocess.run(
                step,
                capture_output=True,
                text=True,
                env=_clean_env(),
                cwd=venv.parent,  # `python -m` puts the folder first on sys.path: not the repo
            )
            if done.returncode != 0:
                shutil.rmtree(venv, ignore_errors=True)  # half a venv would look built next time
                said = [line.strip() for line in (done.stderr + done.stdout).splitlines()]
                last = next((line for line in reversed(said) if line), f"exit {done.returncode}")
                raise SynapseUnavailable(f"could not build Synapse's venv in {venv}: {last}")
        (venv / ".pledgebot-installed").write_text(REQUIREMENT)
    return python


@dataclass(frozen=True)
class Account:
    user_id: str
    access_token: str
    device_id: str


class Synapse:
    """One Synapse process on loopback, with the admin calls the tests need."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="pledgebot-synapse-"))
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.shared_secret = secrets.token_urlsafe(32)
        self.process: subprocess.Popen[bytes] | None = None
        self.admin: Account | None = None
        self.started_in = 0.0

    def config(self) -> dict[str, Any]:
        data = self.folder
        return {
            "server_name": SERVER_NAME,
            "pid_file": str(data / "homeserver.pid"),
            "listeners": [
                {
                    "port": self.port,
                    "bind_addresses": ["127.0.0.1"],
                    "type": "http",
                    "tls": False,
                    "x_forwarded": False,
                    "resources": [{"names": ["client"], "compress": False}],
                }
            ],
            "database": {"name": "sqlite3", "args": {"database": str(data / "homeserver.db")}},
            "log_config": str(data / "log.yaml"),
            "media_store_path": str(data / "media"),
            "signing_key_path": str(data / "signing.key"),
            "registration_shared_secret": self.shared_secret,
            "enable_registration": False,
            "report_stats": False,
            "macaroon_secret_key": secrets.token_urlsafe(32),
            "form_secret": secrets.token_urlsafe(32),
            "trusted_key_servers": [],
            "suppress_key_server_warning": True,
            "federation_domain_whitelist": [],  # talk to no other server
            "presence": {"enabled": False},
            "url_preview_enabled": False,
            "bcrypt_rounds": 4,  # test accounts: registering costs milliseconds
            "rc_message": THROTTLED,
            "rc_login": {"address": LOOSE, "account": LOOSE, "failed_attempts": LOOSE},
            "rc_registration": LOOSE,
            "rc_joins": {"local": LOOSE, "remote": LOOSE},
            "rc_joins_per_room": LOOSE,
            "rc_invites": {"per_room": LOOSE, "per_user": LOOSE, "per_issuer": LOOSE},
            "rc_room_creation": LOOSE,
            "rc_media_create": LOOSE,
        }

    def start(self, python: Path | None = None) -> None:
        python = python or build_venv()
        began = time.monotonic()
        config = self.folder / "homeserver.yaml"
        config.write_text(json.dumps(self.config(), indent=1))  # JSON is YAML
        (self.folder / "log.yaml").write_text(
            json.dumps(
                {
                    "version": 1,
                    "formatters": {
                        "plain": {"format": "%(asctime)s %(name)s %(levelname)s %(message)s"}
                    },
                    "handlers": {
                        "file": {
                            "class": "logging.FileHandler",
                            "formatter": "plain",
                            "filename": str(self.folder / "homeserver.log"),
                        }
                    },
                    "root": {"level": "WARNING", "handlers": ["file"]},
                    "disable_existing_loggers": False,
                }
            )
        )
        command = [str(python), "-m", "synapse.app.homeserver", "-c", str(config)]
        subprocess.run(
            [*command, "--generate-keys"],
            check=True,
            capture_output=True,
            env=_clean_env(),
            cwd=self.folder,
        )
        output = open(self.folder / "stdout.log", "wb")  # noqa: SIM115 - the process holds it
        self.process = subprocess.Popen(
            command, stdout=output, stderr=subprocess.STDOUT, env=_clean_env(), cwd=self.folder
        )
        deadline = time.monotonic() + 60
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"Synapse exited at start:\n{self.log_tail()}")
            with contextlib.suppress(OSError):
                self.request("GET", "/_matrix/client/versions")
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"Synapse did not answer within 60 s:\n{self.log_tail()}")
            time.sleep(0.1)
        self.started_in = time.monotonic() - began
        self.admin = self.register("admin", admin=True)

    def log_tail(self) -> str:
        found = [
            path.read_text(errors="replace")[-3000:]
            for path in (self.folder / "stdout.log", self.folder / "homeserver.log")
            if path.exists()
        ]
        return "\n".join(found)

    def stop(self) -> None:
        if self.process is not None:
            end_process(self.process)
        self.process = None
        shutil.rmtree(self.folder, ignore_errors=True)

    # -- the client-server and admin APIs, synchronously ---------------------------------------
    def request(
        self, method: str, path: str, body: Any = None, token: str | None = None
    ) -> dict[str, Any]:
        """One JSON request; an error status raises ``urllib.error.HTTPError``."""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base_url + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        with urllib.request.urlopen(request, timeout=30) as answer:
            raw = answer.read()
        return json.loads(raw) if raw else {}

    def register(self, name: str, *, admin: bool = False, throttled: bool = False) -> Account:
        """A new account through the shared-secret admin API (HMAC-SHA1 over nonce, name,
        password and admin flag); exempt from rate limits unless ``throttled``."""
        name = f"{name}-{secrets.token_hex(3)}" if name != "admin" else name
        password = secrets.token_urlsafe(12)
        nonce = self.request("GET", "/_synapse/admin/v1/register")["nonce"]
        mac = hmac.new(self.shared_secret.encode(), digestmod=hashlib.sha1)
        for part in (nonce, name, password):
            mac.update(part.encode() + b"\x00")
        mac.update(b"admin" if admin else b"notadmin")
        made = self.request(
            "POST",
            "/_synapse/admin/v1/register",
            {
                "nonce": nonce,
                "username": name,
                "password": password,
                "admin": admin,
                "mac": mac.hexdigest(),
            },
        )
        account = Account(made["user_id"], made["access_token"], made["device_id"])
        if not throttled:
            assert self.admin is not None or admin
            self.override_ratelimit(
                account.user_id, 0, 0, token=(self.admin or account).access_token
            )
        return account

    def override_ratelimit(self, user_id: str, per_second: int, burst: int, *, token: str) -> None:
        """0, 0: no rate limit at all for the account."""
        self.request(
            "POST",
            f"/_synapse/admin/v1/users/{urllib.parse.quote(user_id)}/override_ratelimit",
            {"messages_per_second": per_second, "burst_count": burst},
            token=token,
        )

    def create_room(
        self, owner: Account, *, invite: tuple[str, ...] = (), direct: bool = True
    ) -> str:
        answer = self.request(
            "POST",
            "/_matrix/client/v3/createRoom",
            {"preset": "trusted_private_chat", "is_direct": direct, "invite": list(invite)},
            token=owner.access_token,
        )
        return str(answer["room_id"])

    def join(self, account: Account, room_id: str) -> None:
        self.request(
            "POST",
            f"/_matrix/client/v3/join/{urllib.parse.quote(room_id)}",
            {},
            token=account.access_token,
        )

    def leave(self, account: Account, room_id: str) -> None:
        self.request(
            "POST",
            f"/_matrix/client/v3/rooms/{urllib.parse.quote(room_id)}/leave",
            {},
            token=account.access_token,
        )

    def say(self, account: Account, room_id: str, content: dict[str, Any]) -> str:
        txn = secrets.token_hex(8)
        answer = self.request(
            "PUT",
            f"/_matrix/client/v3/rooms/{urllib.parse.quote(room_id)}/send/m.room.message/{txn}",
            content,
            token=account.access_token,
        )
        return str(answer["event_id"])

    def messages(self, reader: Account, room_id: str) -> list[dict[str, Any]]:
        """Every m.room.message in the room, oldest first, as ``reader`` sees them."""
        path = (
            f"/_matrix/client/v3/rooms/{urllib.parse.quote(room_id)}/messages?dir=f&limit=1000"
            "&filter=" + urllib.parse.quote(json.dumps({"types": ["m.room.message"]}))
        )
        return list(self.request("GET", path, token=reader.access_token)["chunk"])


def main() -> None:
    """Build the venv ahead of time (``make test``, ``.ci/run``) and say how long it took."""
    began = time.monotonic()
    try:
        python = build_venv()
    except SynapseUnavailable as exc:
        sys.exit(str(exc))
    print(f"synapse venv: {python} ({time.monotonic() - began:.1f} s)", file=sys.stderr)
    if os.environ.get("SYNAPSE_SMOKE"):
        server = Synapse()
        try:
            server.start(python)
            print(f"synapse started in {server.started_in:.1f} s", file=sys.stderr)
        finally:
            server.stop()


if __name__ == "__main__":
    main()
