"""The sandboxes and the demo are not part of pledgebot: `pip install pledgebot` leaves them out,
and `pledgebot demo` without them says how to get them, in one line. Nor are the networks' client
libraries and the heavy features' ones: they are extras (tests/test_extras.py).

They are the separate distribution ``pledgebot-sandbox`` (sandbox/pyproject.toml, import name
``pledgebot_sandbox``), installed by ``make install``/``make demo``/``make test`` only.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from bot.cli.serve import DEMO_NEEDS_SANDBOXES

ROOT = Path(__file__).resolve().parents[1]


def build_wheel(project: Path, out: Path) -> Path:
    """The wheel pip builds from ``project`` (a copy: no build/ in the tree)."""
    src = out / "src"
    shutil.copytree(
        project,
        src,
        ignore=shutil.ignore_patterns(
            ".venv", ".git", "__pycache__", "*.egg-info", "build", "tests", "demo-data", ".*"
        ),
    )
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out), str(src)],
        check=True,
        capture_output=True,
        timeout=240,
    )
    (wheel,) = out.glob("*.whl")
    return wheel


@pytest.fixture(scope="module")
def pledgebot_wheel_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    shutil.copytree(ROOT, out / "checkout", ignore=shutil.ignore_patterns(*_NOT_SOURCE))
    return build_wheel(out / "checkout", out)


@pytest.fixture(scope="module")
def pledgebot_wheel(pledgebot_wheel_file: Path) -> list[str]:
    return zipfile.ZipFile(pledgebot_wheel_file).namelist()


_NOT_SOURCE = (".venv", ".git", ".cache", "test-artifacts", "demo-data", "__pycache__", ".*")


def test_the_pledgebot_wheel_has_no_sandbox_and_no_demo(pledgebot_wheel: list[str]) -> None:
    assert (
        "bot/cli/main.py" in pledgebot_wheel
        and "bot/channels/telegram/adapter.py" in pledgebot_wheel
    )
    leaked = [n for n in pledgebot_wheel if "sandbox" in n or n.startswith("bot/demo")]
    assert leaked == []
    assert {n.split("/")[0] for n in pledgebot_wheel} == {"bot", "pledgebot-0.1.0.dist-info"}


# The per-network and heavy libraries (and what only they need): never in a plain install.
EXTRAS_LIBRARIES = (
    "python-telegram-bot", "tweepy", "oauthlib", "mastodon-py", "atproto", "matrix-nio",
    "aiohttp", "aiosmtplib", "matplotlib", "scikit-learn", "stop-words", "snowballstemmer",
    "psycopg", "redis",
)  # fmt: skip


def test_a_plain_install_requires_none_of_the_extras_libraries(pledgebot_wheel_file: Path) -> None:
    metadata = zipfile.ZipFile(pledgebot_wheel_file).read("pledgebot-0.1.0.dist-info/METADATA")
    fields = [line.split(": ", 1) for line in metadata.decode().splitlines() if ": " in line]
    requires = [Requirement(value) for key, value in fields if key == "Requires-Dist"]
    optional = [r for r in requires if r.marker is not None and "extra" in str(r.marker)]
    plain = {canonicalize_name(r.name) for r in requires if r not in optional}
    extras = {canonicalize_name(r.name) for r in optional}
    assert plain & set(EXTRAS_LIBRARIES) == set()
    assert set(EXTRAS_LIBRARIES) <= extras
    offered = {value for key, value in fields if key == "Provides-Extra"}
    assert {"telegram", "x", "bluesky", "matrix", "reports", "all", "dev"} <= offered
    assert len(plain) <= 24, sorted(plain)  # 37 before the extras


def test_the_sandbox_distribution_has_the_sandboxes_and_the_demo(tmp_path: Path) -> None:
    names = zipfile.ZipFile(build_wheel(ROOT / "sandbox", tmp_path)).namelist()
    for module in ("telegram", "x", "mail", "mastodon", "synapse", "demo", "demo_reach"):
        assert f"pledgebot_sandbox/{module}.py" in names
    assert not [n for n in names if n.startswith("bot/")]


class _SandboxImports(ast.NodeVisitor):
    """Each import of ``pledgebot_sandbox`` as ``file:function`` (``<module>`` at the top)."""

    def __init__(self, file: str) -> None:
        self.file, self.where, self.found = file, ["<module>"], list[str]()

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self.where.append(node.name)
        self.generic_visit(node)
        self.where.pop()

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Import(self, node: ast.Import) -> None:
        self._check([a.name for a in node.names])

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        self._check([node.module or ""] if node.level == 0 else [])

    def _check(self, modules: list[str]) -> None:
        if any(m.split(".")[0] == "pledgebot_sandbox" for m in modules):
            self.found.append(f"{self.file}:{self.where[-1]}")


def test_nothing_in_bot_imports_the_sandboxes_but_the_demo_command() -> None:
    """The product never needs them: one lazy import, inside ``pledgebot demo``, and no other."""
    found: set[str] = set()
    for path in sorted((ROOT / "bot").rglob("*.py")):
        visitor = _SandboxImports(path.relative_to(ROOT).as_posix())
        visitor.visit(ast.parse(path.read_text(encoding="utf-8")))
        found.update(visitor.found)
    assert found == {"bot/cli/serve.py:demo"}


def _pledgebot_without_sandboxes(*args: str) -> subprocess.CompletedProcess[str]:
    """``pledgebot ARGS`` in a fresh process where ``pledgebot_sandbox`` is not installed."""
    code = (
        "import sys\n"
        "class NotInstalled:\n"  # what Python says when no finder has it: no such module
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'pledgebot_sandbox':\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
        "sys.meta_path.insert(0, NotInstalled())\n"
        "from bot.cli.main import main\n"
        "sys.argv = ['pledgebot', *sys.argv[1:]]\n"
        "main()\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={**os.environ, "COLUMNS": "120"},
    )


def test_demo_without_the_sandboxes_says_how_to_get_them_in_one_line() -> None:
    done = _pledgebot_without_sandboxes("demo", "--channels", "telegram")
    assert done.stderr.splitlines() == [
        "the demo needs the sandboxes: pip install -e ./sandbox (make demo does it)"
    ]
    assert done.stderr.strip() == DEMO_NEEDS_SANDBOXES
    assert done.returncode == 2
    assert done.stdout == ""


def test_demo_help_works_without_the_sandboxes() -> None:
    done = _pledgebot_without_sandboxes("demo", "--help")
    assert done.returncode == 0, done.stderr
    assert "--pledgemakers" in done.stdout and "--channels" in done.stdout
