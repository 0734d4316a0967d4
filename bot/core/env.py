"""Settings that name an environment variable instead of holding a secret (``token_env``):
the configuration file and every channel's settings model use the same check."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator

ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _env_name(value: str) -> str:
    if not ENV_NAME.fullmatch(value):
        raise ValueError(
            "must be the name of an environment variable (letters, digits, _), "
            "not the secret itself"
        )
    return value


# A setting that names the environment variable holding a secret (e.g. token_env).
EnvVarName = Annotated[str, AfterValidator(_env_name)]
