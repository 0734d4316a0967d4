"""The `pledgebot` command as a plain install runs it, without some extras:
``python -m tests.auxil.without EXTRA[,EXTRA…] ARGS…`` (``all``: every one).

What an extra brings beyond the core — the distributions its requirements pull in that the core's
do not (read from pyproject.toml and the installed metadata) — cannot be imported: a finder placed
first on ``sys.meta_path`` answers for their modules what Python answers when nothing provides a
module (``ModuleNotFoundError: No module named 'atproto_client'``). Everything else is real.
"""

from __future__ import annotations

import importlib.metadata as metadata
import sys
import tomllib
from collections.abc import Iterable
from functools import cache
from importlib.machinery import ModuleSpec
from pathlib import Path
from types import ModuleType

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
EXTRAS = PROJECT["optional-dependencies"]


def extra_requirements(extra: str) -> list[str]:
    """An extra's requirements, ``pledgebot[…]`` ones (``all``, ``dev``) expanded."""
    found = []
    for raw in EXTRAS[extra]:
        requirement = Requirement(raw)
        if canonicalize_name(requirement.name) == "pledgebot":
            found += [r for named in sorted(requirement.extras) for r in extra_requirements(named)]
        else:
            found.append(raw)
    return found


def closure(requirements: Iterable[str]) -> set[str]:
    """The distributions these requirements install (canonical names), markers evaluated here."""
    found: set[str] = set()
    seen: set[tuple[str, str]] = set()
    todo = [Requirement(raw) for raw in requirements]
    while todo:
        requirement = todo.pop()
        name = canonicalize_name(requirement.name)
        for extra in ("", *requirement.extras):
            if (name, extra) in seen:
                continue
            seen.add((name, extra))
            found.add(name)
            try:
                needed = metadata.requires(name) or []
            except metadata.PackageNotFoundError:
                continue
            for raw in needed:
                sub = Requirement(raw)
                if sub.marker is None or sub.marker.evaluate({"extra": extra}):
                    todo.append(sub)
    return found


@cache
def core() -> frozenset[str]:
    return frozenset(closure(PROJECT["dependencies"]))


def brought_by(extras: Iterable[str]) -> set[str]:
    """The distributions these extras add to a plain install."""
    return closure(r for extra in extras for r in extra_requirements(extra)) - core()


def modules_of(distributions: set[str]) -> set[str]:
    """The top-level modules only these distributions provide."""
    return {
        module
        for module, providers in metadata.packages_distributions().items()
        if providers and all(canonicalize_name(p) in distributions for p in providers)
    }


class NotInstalled:
    """A meta path finder that has none of ``modules`` (nor anything inside them)."""

    def __init__(self, modules: set[str]) -> None:
        self.modules = modules

    def find_spec(
        self, name: str, path: object = None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if name.partition(".")[0] in self.modules:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


def every_extra() -> list[str]:
    return [extra for extra in EXTRAS if extra not in ("all", "dev")]


def block(extras: list[str]) -> None:
    """From now on in this process, what these extras bring cannot be imported."""
    blocked = modules_of(brought_by(every_extra() if extras == ["all"] else extras))
    sys.meta_path.insert(0, NotInstalled(blocked))
    for name in [n for n in sys.modules if n.partition(".")[0] in blocked]:  # e.g. packaging
        del sys.modules[name]


def main() -> None:
    block(sys.argv[1].split(","))
    sys.argv = ["pledgebot", *sys.argv[2:]]
    from bot.cli.main import main as command

    command()


if __name__ == "__main__":
    main()
