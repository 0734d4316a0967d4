"""docs/add-a-campaign-kind.md, proved: its steps, followed exactly for a trivial kind (``hello``:
one fixed greeting to everyone in an audience) in a copy of the package — nothing else edited —
give a kind whose campaign passes ``schedules check``, shows in the preview, and fires once into
the outbox.

The real tree is never touched: bot/ and templates/ are copied to a temporary folder, the steps
are applied there, and everything runs in child processes that import that copy, their clock
frozen on a Monday morning."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from tests.conftest import ROOT, SAMPLE_CSV

NAME = "hello"
DOC = ROOT / "docs" / "add-a-campaign-kind.md"
NOW = datetime(2026, 11, 30, 6, 0, tzinfo=UTC)  # a Monday; the campaign fires at 08:00 UTC

# What the doc's module leaves out for brevity: its imports.
IMPORTS = """
from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from sqlalchemy.orm import Session

from bot.campaigns.base import (
    SAMPLE_PLEDGEMAKER,
    Kind,
    Plan,
    RunContext,
    TemplateCheck,
    line_of,
    reachable,
)
from bot.campaigns.spec import CampaignBase
from bot.delivery.messages import PlannedMessage
from bot.text.templates import Templates
"""

GREETING = {
    "en": "<b>Hello</b>, {{ pledgemaker.name }}!",
    "fr": "<b>Bonjour</b>, {{ pledgemaker.name }} !",
    "es": "<b>Hola</b>, {{ pledgemaker.name }}!",
}

# The pledgemakers of the sample data, three of them reachable on Telegram.
SEED = """
import sys
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select

from bot.community.importer import import_pledgemakers
from bot.core.models import Contact, Pledgemaker
from bot.service.app import build_app
from bot.settings.config import load_config

app = build_app(load_config("config.toml", required=True))
app.db.upgrade()
with app.db.session() as session:
    import_pledgemakers(session, Path(sys.argv[1]))
    english = select(Pledgemaker).where(Pledgemaker.language == "en").order_by(Pledgemaker.id)
    for number, pledgemaker in enumerate(session.scalars(english.limit(3))):
        session.add(
            Contact(
                pledgemaker_id=pledgemaker.id,
                channel="telegram",
                address=f"70{number}",
                bound_at=datetime(2026, 1, 5, tzinfo=UTC),
            )
        )
app.close()
"""

OUTBOX = """
import json

from sqlalchemy import select

from bot.core.models import OutboxMessage
from bot.service.app import build_app
from bot.settings.config import load_config

app = build_app(load_config("config.toml", required=True))
with app.db.session() as session:
    rows = session.scalars(select(OutboxMessage).order_by(OutboxMessage.id))
    print(json.dumps([[m.campaign_id, m.recipient, m.state, m.text] for m in rows]))
app.close()
"""


def doc() -> str:
    return DOC.read_text(encoding="utf-8")


def block(language: str, starting: str) -> str:
    """The doc's one code block in ``language`` that starts with ``starting``."""
    found = re.findall(rf"^```{language}\n({re.escape(starting)}.*?)^```", doc(), flags=re.M | re.S)
    assert len(found) == 1, f"one ```{language} block starting {starting!r} in {DOC.name}"
    return str(found[0])


# -- following the steps ---------------------------------------------------------------------


def the_module(copy: Path) -> None:
    docstring, body = block("python", f'"""The ``{NAME}`` kind').split("\n", 1)
    (copy / "bot" / "campaigns" / f"{NAME}.py").write_text(f"{docstring}\n{IMPORTS}{body}")


def the_registry(copy: Path) -> None:
    registry = copy / "bot" / "campaigns" / "registry.py"
    text = registry.read_text(encoding="utf-8")
    imports = re.search(r"^from bot\.campaigns import (.+)$", text, flags=re.M)
    assert imports is not None, "the registry imports the kinds' modules"
    names = sorted([*imports.group(1).split(", "), NAME])
    line = f'    "{NAME}": {NAME}.KIND,\n'
    assert line in block("python", "from bot.campaigns import"), "the doc shows the line to add"
    text = text.replace(imports.group(0), f"from bot.campaigns import {', '.join(names)}")
    assert text.count("\n}\n") == 1, "KINDS ends the one dict of the registry"
    registry.write_text(text.replace("\n}\n", f"\n{line}}}\n"), encoding="utf-8")


def its_templates(copy: Path) -> None:
    folder = copy / "templates" / NAME
    folder.mkdir()
    for language, text in GREETING.items():
        (folder / f"greeting.{language}.j2").write_text(text + "\n", encoding="utf-8")


def an_example_schedule(copy: Path) -> None:
    (copy / "schedules").mkdir()
    (copy / "schedules" / f"{NAME}.toml.example").write_text(
        block("toml", "# A greeting"), encoding="utf-8"
    )


STEPS = {
    "The module": the_module,
    "The registry": the_registry,
    "Its templates": its_templates,
    "An example schedule": an_example_schedule,
}


def copy_of_the_package(copy: Path) -> None:
    junk = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "bot", copy / "bot", ignore=junk)
    shutil.copytree(ROOT / "templates", copy / "templates", ignore=junk)


def run(copy: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Python in the copy: ``bot`` is the copy's; ``tests`` (the frozen clock) the real one."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env["PYTHONPATH"] = os.pathsep.join([str(copy), str(ROOT)])
    proc = subprocess.run(
        [sys.executable, *args], cwd=copy, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stdout + proc.stderr
    return proc


def pledgebot(copy: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run(copy, "-m", "tests.auxil.frozen", NOW.isoformat(), *args)


def test_the_walkthrough_names_exactly_the_steps_this_test_follows() -> None:
    headings = re.findall(r"^## \d+\. ([^:\n]+)", doc(), flags=re.M)
    assert headings == list(STEPS)


def test_a_kind_added_by_the_walkthrough_is_checked_previewed_and_fired(tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    copy_of_the_package(copy)
    for step in STEPS.values():
        step(copy)
    where = run(copy, "-c", "import bot; print(bot.__file__)")
    assert where.stdout.strip() == str(copy / "bot" / "__init__.py")

    example = copy / "schedules" / f"{NAME}.toml.example"
    checked = pledgebot(copy, "schedules", "check", str(example))
    assert checked.stdout.strip() == "1 campaign(s) in 1 file(s): OK", checked.stderr
    assert checked.stderr == "", "every language rendered, nothing to warn about"

    (copy / "config.toml").write_text('[database]\nurl = "sqlite:///hello.db"\n')
    shutil.copy(example, copy / "schedules" / f"{NAME}.toml")  # as the comms team would
    run(copy, "-c", SEED, str(SAMPLE_CSV))

    shown = pledgebot(copy, "schedules", "preview", "--days", "7", "--format", "json")
    preview = json.loads(shown.stdout)
    assert [(p["campaign"], p["recipient"], p["send_utc"]) for p in preview] == [
        ("hello-everyone", address, "2026-11-30T08:00:00+00:00")
        for address in ("700", "701", "702")
    ], "Monday 09:00 in Zurich, to the three reachable English speakers"

    fired = pledgebot(copy, "campaign", "fire", "hello-everyone", "--yes")
    assert re.fullmatch(r"run \d+: queued 3 \(skipped: no contact \d+\)\n", fired.stdout)

    queued = json.loads(run(copy, "-c", OUTBOX).stdout)
    greeted = {recipient: text for _, recipient, _, text in queued}
    assert [(campaign, state) for campaign, _, state, _ in queued] == [
        ("hello-everyone", "pending")
    ] * 3
    assert sorted(greeted) == ["700", "701", "702"]
    assert all(re.fullmatch(r"<b>Hello</b>, .+!\n?", text) for text in greeted.values())
    assert [p["text"] for p in preview] == [html.unescape(text) for text in greeted.values()], (
        "the preview showed what was then queued"
    )
