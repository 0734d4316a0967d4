"""The Matrix tests' Synapse: the launcher lives in ``pledgebot_sandbox.synapse`` (``pledgebot demo``
uses it too) and is re-exported here; what is the tests' own is ``shared()``, one server per
test process. ``python -m tests.channels.synapse`` still builds Synapse's venv ahead of time."""

from __future__ import annotations

import atexit

from pledgebot_sandbox._server import free_port
from pledgebot_sandbox.synapse import (
    LOOSE,
    REQUIREMENT,
    SERVER_NAME,
    THROTTLED,
    VENV_ENV,
    Account,
    Synapse,
    SynapseUnavailable,
    build_venv,
    main,
    venv_path,
    venv_ready,
)
from pledgebot_sandbox.synapse_proxy import FaultyProxy

__all__ = [
    "LOOSE",
    "REQUIREMENT",
    "SERVER_NAME",
    "THROTTLED",
    "VENV_ENV",
    "Account",
    "FaultyProxy",
    "Synapse",
    "SynapseUnavailable",
    "build_venv",
    "free_port",
    "shared",
    "venv_path",
    "venv_ready",
]

_shared: Synapse | None = None


def shared() -> Synapse:
    """The test process's one Synapse, started on first use and stopped at exit."""
    global _shared
    if _shared is None:
        server = Synapse()
        try:
            server.start()
        except BaseException:
            server.stop()
            raise
        atexit.register(server.stop)
        _shared = server
    return _shared


if __name__ == "__main__":
    main()
