"""docs/add-a-channel.md, proved: its steps, followed exactly for a trivial channel (a board of
notes) in a copy of the package — nothing else edited — give a channel that passes the shared
contract and its spec checks, and that a post is planned for and sent through.

The real tree is never touched: bot/, templates/, the sandboxes and the channel tests are copied
to a temporary folder, the steps are applied there, and the checks run in child processes that
import that copy."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pledgebot_sandbox
from tests.conftest import ROOT

NAME = "board"
DOC = ROOT / "docs" / "add-a-channel.md"

# What the steps add, as files laid out like the tree they go into (the templates and the
# registry and harness-table lines are written below).
ADDED = ROOT / "tests" / "data" / "add_a_channel"


# -- following the steps ---------------------------------------------------------------------


def add_line_after(path: Path, anchor: str, line: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert text.count(anchor) == 1, f"{path}: {anchor!r}"
    path.write_text(text.replace(anchor, anchor + line), encoding="utf-8")


def add_line_before(path: Path, anchor: str, line: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert text.count(anchor) == 1, f"{path}: {anchor!r}"
    path.write_text(text.replace(anchor, line + anchor), encoding="utf-8")


def added(copy: Path, path: str) -> None:
    target = copy / path
    target.parent.mkdir(parents=True, exist_ok=True)
    if (ADDED / path).is_dir():
        shutil.copytree(ADDED / path, target)
    else:
        shutil.copy(ADDED / path, target)


def the_folder(copy: Path) -> None:
    added(copy, f"bot/channels/{NAME}")


def the_registry(copy: Path) -> None:
    registry = copy / "bot" / "channels" / "registry.py"
    add_line_before(
        registry,
        "from bot.channels.bluesky import spec",
        f"from bot.channels.{NAME} import spec as {NAME}\n",
    )
    add_line_after(registry, "    for spec in (\n", f"        {NAME}.SPEC,\n")


def its_post_templates(copy: Path) -> None:
    for kind in ("amplify", "knowledge"):
        for language in ("en", "fr", "es"):
            (copy / "templates" / kind / f"{NAME}.{language}.j2").write_text(
                "{{ credit }}: {{ text }}\n"
            )


def a_sandbox(copy: Path) -> None:
    added(copy, f"sandbox/pledgebot_sandbox/{NAME}.py")


def a_contract_harness(copy: Path) -> None:
    added(copy, f"tests/channels/harness_{NAME}.py")
    harnesses = copy / "tests" / "channels" / "harnesses.py"
    add_line_before(
        harnesses,
        "from tests.channels.harness_bluesky import",
        f"from tests.channels.harness_{NAME} import BoardHarness\n",
    )
    add_line_after(harnesses, "HARNESSES = {\n", f'    "{NAME}": BoardHarness,\n')


def a_platform_page(copy: Path) -> None:
    added(copy, f"docs/platforms/{NAME}.md")


STEPS = {
    "The folder": the_folder,
    "The registry": the_registry,
    "Its post templates": its_post_templates,
    "A sandbox": a_sandbox,
    "A contract harness": a_contract_harness,
    "A platform page": a_platform_page,
}


def copy_of_the_package(copy: Path) -> None:
    junk = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "bot", copy / "bot", ignore=junk)
    shutil.copytree(ROOT / "templates", copy / "templates", ignore=junk)
    sandbox = Path(pledgebot_sandbox.__file__).parent
    shutil.copytree(sandbox, copy / "sandbox" / "pledgebot_sandbox", ignore=junk)
    (copy / "tests").mkdir()
    for part in ("__init__.py", "conftest.py"):
        shutil.copy(ROOT / "tests" / part, copy / "tests" / part)
    for part in ("auxil", "channels"):
        shutil.copytree(ROOT / "tests" / part, copy / "tests" / part, ignore=junk)
    shutil.copy(ROOT / "pyproject.toml", copy / "pyproject.toml")


def run(copy: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env["PYTHONPATH"] = os.pathsep.join([str(copy), str(copy / "sandbox")])
    return subprocess.run(
        [sys.executable, *args], cwd=copy, env=env, capture_output=True, text=True, timeout=600
    )


def test_the_walkthrough_names_exactly_the_steps_this_test_follows() -> None:
    headings = re.findall(r"^## \d+\. ([^:\n]+)", DOC.read_text(encoding="utf-8"), flags=re.M)
    assert headings == list(STEPS)


def test_a_channel_added_by_the_walkthrough_passes_the_contract_and_sends_a_post(
    tmp_path: Path,
) -> None:
    copy = tmp_path / "copy"
    copy_of_the_package(copy)
    for step in STEPS.values():
        step(copy)

    where = run(copy, "-c", "import bot, pledgebot_sandbox.board; print(bot.__file__)")
    assert where.stdout.strip() == str(copy / "bot" / "__init__.py"), where.stderr

    checked = run(
        copy, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rs",
        "tests/channels/test_specs.py",
        "tests/channels/test_contract.py", "-k", f"test_specs or {NAME} or every_registered",
    )  # fmt: skip
    assert checked.returncode == 0, checked.stdout[-4000:] + checked.stderr[-2000:]
    assert re.search(r"\b\d+ passed, 2 skipped\b", checked.stdout), checked.stdout[-2000:]
    assert "not applicable to board: a board only shows notes" in checked.stdout

    words = "We trained forty labour inspectors in Kumasi and Tamale this quarter. " * 4
    shutil.copy(ADDED / "send_a_post.py", copy)
    sent = run(copy, "send_a_post.py", words)
    assert sent.returncode == 0, sent.stderr[-4000:]
    result = json.loads(sent.stdout)
    assert NAME in result["known"]
    assert result["destinations"] == {NAME: "timeline"} and result["skipped"] == {}
    parts = result["outbox"]
    assert len(parts) == 2, "split into a thread at the spec's 200 characters"
    assert all(state == "sent" and note for state, note, _, _ in parts)
    assert result["board"] == [text for *_, text in parts]
    assert result["board"][0].startswith("ILO & partners: We trained"), "plain text: not escaped"
    assert all(len(text) <= 200 for text in result["board"])
    assert result["link"] == f"https://board.example/notes/{parts[0][1]}"
