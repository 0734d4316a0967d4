"""Schedule mistakes that used to pass silently or read badly: facts outside the project, a
cron that never fires, an audience of nobody, Jinja's wording of an undefined variable, and a
preview that showed escaped text, length 0 and no reason for sending nothing."""

from __future__ import annotations

import json
import re
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
import time_machine
from starlette.testclient import TestClient

from bot.channels.registry import plain_text_channels
from bot.scheduling.schedules import load_schedules
from bot.service.app import App
from bot.text.templates import Templates
from tests.auxil.cli import pledgebot
from tests.conftest import ROOT, write_config
from tests.test_web_auth import signed_in

NOW = datetime(2026, 11, 30, 6, 0, tzinfo=UTC)
AMPLIFY = "2026-amplify.toml"
FACTS = 'facts = "data/knowledge"'
TEMPLATES = Templates(ROOT / "templates", plain_text=plain_text_channels())


# -- facts must stay inside the project folder ----------------------------------------------------
def test_facts_outside_the_config_folder_are_refused_without_reading_them(tmp_path: Path) -> None:
    write_config(tmp_path)
    schedule = tmp_path / "schedules" / AMPLIFY
    text = schedule.read_text(encoding="utf-8")
    line = text.splitlines().index(next(ln for ln in text.splitlines() if ln.startswith(FACTS)))
    for outside in ("/etc", "../../etc", "data/../../etc"):
        schedule.write_text(text.replace(FACTS, f'facts = "{outside}"'), encoding="utf-8")
        proc = pledgebot(tmp_path, "schedules", "check")
        assert (proc.returncode, proc.stdout) == (1, ""), proc.stderr
        assert proc.stderr == (
            f"{tmp_path / 'schedules' / AMPLIFY}:{line + 1}: facts: {outside!r} is outside the "
            "project folder (where the config file is): keep fact files inside it, e.g. "
            "'data/knowledge'\n"
        )


def test_a_link_the_administrator_put_in_the_project_is_followed(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """What is judged is the path as written (an editor can type a path, not make a link): a
    link placed in the project by whoever runs the server — data/ on another disk — is theirs."""
    write_config(tmp_path)
    shared = tmp_path_factory.mktemp("shared-disk") / "knowledge"
    shutil.copytree(tmp_path / "data" / "knowledge", shared)
    (tmp_path / "data" / "elsewhere").symlink_to(shared)
    schedule = tmp_path / "schedules" / AMPLIFY
    text = schedule.read_text(encoding="utf-8")
    schedule.write_text(text.replace(FACTS, 'facts = "data/elsewhere"'), encoding="utf-8")
    loaded = load_schedules([tmp_path / "schedules"], TEMPLATES, base_dir=tmp_path)
    assert loaded.get("global-estimates").spec.facts == tmp_path / "data" / "elsewhere"


@pytest.mark.parametrize("app", ["sqlite"], indirect=True)
def test_the_schedule_editor_refuses_facts_elsewhere_and_names_no_server_file(app: App) -> None:
    editor: TestClient = signed_in(app, "editor@example.org", "editor")
    page = editor.get(f"/schedules/{AMPLIFY}").text
    fields = dict(re.findall(r'name="(csrf|base)" value="([^"]+)"', page))
    before = (app.config.path("schedules") / AMPLIFY).read_text(encoding="utf-8")
    response = editor.post(
        f"/schedules/{AMPLIFY}",
        data={**fields, "text": before.replace(FACTS, 'facts = "/etc"')},
    )
    assert response.status_code == 400
    assert "is outside the project folder" in response.text
    assert "passwd" not in response.text and "hosts" not in response.text, "no file of /etc named"
    assert (app.config.path("schedules") / AMPLIFY).read_text(encoding="utf-8") == before


# -- warnings of `schedules check` ----------------------------------------------------------------
NEVER = """[[campaign]]
id = "leap-day"
kind = "followup"
pillar = "act"
cron = "0 10 31 2 *"
"""


def only_schedule(folder: Path, text: str) -> None:
    (folder / "schedules").mkdir()
    (folder / "schedules" / "x.toml").write_text(text, encoding="utf-8")
    write_config(folder)


def test_a_cron_that_never_fires_is_a_warning_on_its_line(tmp_path: Path) -> None:
    only_schedule(tmp_path, NEVER)
    proc = pledgebot(tmp_path, "schedules", "check", now=NOW)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == (
        f"warning: {tmp_path / 'schedules' / 'x.toml'}:5: leap-day: cron '0 10 31 2 *' never fires from 2026-11-30: "
        "it sends nothing\n"
    )


def test_a_cron_that_fires_only_after_the_active_window_is_a_warning(tmp_path: Path) -> None:
    # 29 February: next in 2028, after the window closes
    only_schedule(
        tmp_path,
        NEVER.replace("31 2", "29 2") + "active = { from = 2026-03-01, until = 2027-12-31 }\n",
    )
    proc = pledgebot(tmp_path, "schedules", "check", now=NOW)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == (
        f"warning: {tmp_path / 'schedules' / 'x.toml'}:5: leap-day: cron '0 10 29 2 *' never fires from 2026-11-30 "
        "to 2027-12-31: it sends nothing\n"
    )
    with time_machine.travel(NOW, tick=False):  # and in the window that includes a 29 Feb: none
        only = tmp_path / "ok"
        only.mkdir()
        only_schedule(only, NEVER.replace("31 2", "29 2"))
        assert load_schedules([only / "schedules"], TEMPLATES).warnings == []


def test_a_once_that_is_past_is_a_warning_and_the_example_is_not_past(tmp_path: Path) -> None:
    """A copied example whose date has gone by would never fire: `check` says so."""
    only_schedule(
        tmp_path,
        '[[campaign]]\nid = "launch"\nkind = "followup"\npillar = "act"\n'
        "once = 2026-11-02T08:00:00\n",
    )
    proc = pledgebot(tmp_path, "schedules", "check", now=NOW)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == (
        f"warning: {tmp_path / 'schedules' / 'x.toml'}:5: launch: once 2026-11-02 08:00:00 is "
        "past: it sends nothing\n"
    )
    example = ROOT / "schedules" / "announce.toml.example"
    with time_machine.travel(datetime(2030, 1, 1, tzinfo=UTC)):  # the example has no date to lapse
        shown = load_schedules([example], TEMPLATES, base_dir=ROOT)
    assert shown.warnings == []


def test_an_audience_that_matches_nobody_is_a_warning(app: App, config_path: Path) -> None:
    folder = config_path.parent
    schedule = folder / "schedules" / "2026-followups.toml"
    text = schedule.read_text(encoding="utf-8")
    old = next(ln for ln in text.splitlines() if ln.startswith("audience = "))
    line = text.splitlines().index(old) + 1
    schedule.write_text(text.replace(old, 'audience = { country = ["IS"] }'), encoding="utf-8")
    proc = pledgebot(folder, "schedules", "check", now=NOW)
    assert proc.returncode == 0, proc.stderr
    campaign = re.findall(r'^id = "([^"]+)"', text[: text.index(old)], re.M)[-1]
    assert proc.stderr == (
        f"warning: {schedule}:{line}: {campaign}: the audience matches no "
        "pledgemaker, so it sends nothing\n"
    )


# -- preview ----------------------------------------------------------------------------------------
def test_preview_says_why_a_run_sends_nothing(app: App, config_path: Path) -> None:
    """Nobody has a chat: the slot is listed with its reason, and the summary says so."""
    proc = pledgebot(
        config_path.parent,
        *("schedules", "preview", "--days", "60", "--campaign", "inspire-checkin"),
        "--include-skipped",
        COLUMNS="200",
        now=NOW,
    )
    assert proc.returncode == 0, proc.stderr
    assert "(skipped: no contact 40)" in proc.stdout
    assert (
        proc.stderr == "0 message(s) in the next 60 day(s); 1 slot(s) send nothing (listed above)\n"
    )
    plain = pledgebot(
        config_path.parent,
        *("schedules", "preview", "--days", "60", "--campaign", "inspire-checkin"),
        now=NOW,
    )
    assert plain.stderr.endswith("; 1 slot(s) send nothing (--include-skipped says why)\n")


def test_preview_shows_the_text_as_read_and_the_length_telegram_counts(
    app: App, config_path: Path
) -> None:
    from bot.core.models import Contact, Pledgemaker, utcnow

    with app.db.session() as session:
        person = session.get(Pledgemaker, "gh-min-labour")
        assert person is not None
        person.name = "Ministère de l'Emploi & du Travail"
        session.add(
            Contact(
                pledgemaker_id="gh-min-labour", channel="telegram", address="1", bound_at=utcnow()
            )
        )
    proc = pledgebot(
        config_path.parent,
        *("schedules", "preview", "--days", "40", "--format", "json"),
        *("--campaign", "act-cadence"),
        now=NOW,
    )
    assert proc.returncode == 0, proc.stderr
    [item] = json.loads(proc.stdout)
    assert "Ministère de l'Emploi & du Travail" in item["text"]
    assert "&#39;" not in item["text"] and "&amp;" not in item["text"]
    visible = re.sub(r"<[^>]+>", "", item["text"])  # Telegram counts the text after parsing
    assert item["length"] == len(visible.encode("utf-16-le")) // 2 > 0
