"""The `pledgebot` command as a person runs it: exit codes, stdout vs stderr, one-line errors.

Data goes to stdout, everything else to stderr; an error changes nothing in the database.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from sqlalchemy import func, select
from typer.testing import CliRunner

from bot.cli import main as cli_module
from bot.community import contacts
from bot.community.importer import import_pledgemakers, import_updates
from bot.core.errors import ScheduleError, UserInputError
from bot.core.models import InviteToken, OutboxMessage, Run, utcnow
from bot.delivery import pauses
from bot.scheduling import runs
from bot.service.app import App, build_app
from bot.service.status import collect
from bot.settings.config import load_config
from tests.auxil.cli import pledgebot
from tests.auxil.live import Live
from tests.conftest import ROOT, SAMPLE_CSV, write_config

TOKEN = "123456:TEST-TOKEN-for-the-cli"
GH = "gh-min-labour"  # English, government; bound to chat 700 below
ILO = "ilo"  # bound to chat 701 below
UNBOUND = "ng-agri-union"  # in the sample, never invited
LINK = re.compile(r"^https://t\.me/pledge_test_bot\?start=([A-Za-z0-9_-]{1,64})$")


def run_cli(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return pledgebot(cwd, *args, token=TOKEN, **env)


def assert_error(proc: subprocess.CompletedProcess[str], line: str, code: int = 1) -> None:
    assert (proc.returncode, proc.stdout, proc.stderr) == (code, "", line + "\n")


def open_app(folder: Path) -> App:
    return build_app(load_config(folder / "config.toml", required=True))


def db_count(folder: Path, model: Any, *where: Any) -> int:
    app = open_app(folder)
    try:
        with app.db.session() as session:
            query = select(func.count()).select_from(model).where(*where)
            return int(session.scalar(query) or 0)
    finally:
        app.close()


def nothing_queued(folder: Path) -> bool:
    return db_count(folder, Run) == 0 and db_count(folder, OutboxMessage) == 0


@pytest.fixture
def folder(tmp_path: Path) -> Iterator[Path]:
    """A config folder: sample pledgemakers imported, gh-min-labour and ilo bound on Telegram."""
    write_config(tmp_path, extra='bot_username = "pledge_test_bot"')
    app = open_app(tmp_path)
    try:
        app.db.upgrade()
        with app.db.session() as session:
            import_pledgemakers(session, SAMPLE_CSV)
        for chat, pledgemaker in ((700, GH), (701, ILO)):
            with app.db.session() as session:
                token = contacts.create_invite(session, pledgemaker, "telegram").token
            with app.db.session() as session:
                assert contacts.redeem(session, token, "telegram", str(chat)) is not None
    finally:
        app.close()
    yield tmp_path


# -- help and usage ----------------------------------------------------------------------------------
def command_paths(group: Any, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every command path under a (typer-vendored) click group."""
    for name, command in sorted(group.commands.items()):
        yield (*prefix, name)
        if hasattr(command, "commands"):
            yield from command_paths(command, (*prefix, name))


def test_help_works_on_every_command_and_subcommand(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli_module, "setup_logging", lambda *_: None)  # keep pytest's logging
    paths = list(command_paths(typer.main.get_command(cli_module.cli)))
    assert ("campaign", "fire") in paths and ("export", "replies") in paths and ("run",) in paths
    assert len(paths) >= 24
    runner = CliRunner()
    for path in [(), *paths]:
        result = runner.invoke(cli_module.cli, [*path, "--help"], prog_name="pledgebot")
        assert result.exit_code == 0, (path, result.output)
        assert result.output.startswith(f"Usage: {' '.join(('pledgebot', *path))} "), path


def test_help_through_the_console_script(tmp_path: Path) -> None:
    top = run_cli(tmp_path, "--help")
    assert top.returncode == 0 and top.stdout.startswith("Usage: pledgebot [OPTIONS] COMMAND")
    for command in ("db", "import", "schedules", "contacts", "campaign", "outbox", "export"):
        assert f" {command} " in top.stdout, command
    assert list(tmp_path.iterdir()) == [], "--help creates no database"


def test_unknown_command_is_a_usage_error(tmp_path: Path) -> None:
    proc = run_cli(tmp_path, "nosuch")
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.splitlines()[-1] == "Error: No such command 'nosuch'."
    assert proc.stderr.startswith("Usage: pledgebot [OPTIONS] COMMAND [ARGS]...")


# -- contacts invite -----------------------------------------------------------------------------------
def test_invite_prints_one_unwrapped_link_and_each_call_a_new_token(folder: Path) -> None:
    tokens = []
    for _ in range(2):
        proc = run_cli(folder, "contacts", "invite", GH, COLUMNS="20")
        assert proc.returncode == 0, proc.stderr
        [line] = proc.stdout.splitlines()
        assert proc.stdout == line + "\n"
        match = LINK.match(line)
        assert match, line
        tokens.append(match.group(1))
        assert proc.stderr.startswith("single use, valid until ")
    assert tokens[0] != tokens[1]
    app = open_app(folder)
    try:
        with app.db.session() as session:
            rows = {t.token: t for t in session.scalars(select(InviteToken))}
        assert all(rows[t].pledgemaker_id == GH and rows[t].used_at is None for t in tokens)
    finally:
        app.close()


def test_invite_learns_the_username_from_get_me_before_run_ever_started(tmp_path: Path) -> None:
    from pledgebot_sandbox import SandboxThread

    with SandboxThread(bot_username="campaign_sandbox_bot") as sandbox:
        write_config(tmp_path, base_url=sandbox.base_url)
        app = open_app(tmp_path)
        app.db.upgrade()
        with app.db.session() as session:
            import_pledgemakers(session, SAMPLE_CSV)
        app.close()
        proc = pledgebot(tmp_path, "contacts", "invite", GH, token=sandbox.token)
    assert proc.returncode == 0, proc.stderr
    assert re.fullmatch(
        r"https://t\.me/campaign_sandbox_bot\?start=[A-Za-z0-9_-]{32}\n", proc.stdout
    )


def test_invite_for_an_unknown_pledgemaker(folder: Path) -> None:
    before = db_count(folder, InviteToken)
    proc = run_cli(folder, "contacts", "invite", "nobody")
    assert_error(proc, "no pledgemaker with id 'nobody' (import them first)")
    assert db_count(folder, InviteToken) == before


# -- campaign fire -------------------------------------------------------------------------------------
def test_dry_run_prints_the_messages_and_enqueues_nothing(folder: Path) -> None:
    proc = run_cli(folder, "campaign", "fire", "act-checkin", "--dry-run")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert "--- telegram 700 (gh-min-labour)" in lines
    assert "--- telegram 701 (ilo)" in lines
    assert "<b>Act</b> · Ministry of Employment and Labour Relations, Ghana" in lines
    assert lines[-1] == "would send: 2"
    assert nothing_queued(folder)


def test_whole_audience_without_yes_and_no_tty_is_refused(folder: Path) -> None:
    proc = run_cli(folder, "campaign", "fire", "act-checkin")
    assert_error(proc, "refusing to message a whole audience without --yes")
    assert nothing_queued(folder)


def test_each_fire_with_yes_is_a_new_run_and_cancel_cancels_one_run(folder: Path) -> None:
    first = run_cli(folder, "campaign", "fire", "act-checkin", "--yes")
    second = run_cli(folder, "campaign", "fire", "act-checkin", "-y")
    assert first.stdout == "run 1: queued 2 (skipped: no contact 38)\n", first.stderr
    assert second.stdout == "run 2: queued 2 (skipped: no contact 38)\n", second.stderr
    assert db_count(folder, Run) == 2
    assert db_count(folder, OutboxMessage, OutboxMessage.state == "pending") == 4

    cancel = run_cli(folder, "outbox", "cancel", "--run", "1")
    assert (cancel.returncode, cancel.stdout) == (0, "cancelled: 2\n"), cancel.stderr
    cancelled = OutboxMessage.state == "cancelled"
    assert db_count(folder, OutboxMessage, OutboxMessage.run_id == 1, cancelled) == 2
    assert db_count(folder, OutboxMessage, OutboxMessage.run_id == 2, cancelled) == 0
    assert db_count(folder, OutboxMessage, OutboxMessage.state == "pending") == 2


def test_fire_to_one_pledgemaker(folder: Path) -> None:
    unreachable = run_cli(folder, "campaign", "fire", "act-checkin", "--to", UNBOUND)
    assert_error(unreachable, f"pledgemaker {UNBOUND!r} cannot be reached on telegram: no contact")
    app = open_app(folder)
    try:
        spec = app.schedules().get("act-checkin").spec
        with pytest.raises(UserInputError) as caught:  # what `--to nobody` prints, exit 1
            runs.fire(app.db, app.templates, spec, utcnow(), trigger="manual", only="nobody")
        assert str(caught.value) == "no pledgemaker with id 'nobody'"
    finally:
        app.close()
    assert nothing_queued(folder)

    one = run_cli(folder, "campaign", "fire", "act-checkin", "--to", GH)  # no --yes needed
    assert (one.returncode, one.stdout) == (0, "run 1: queued 1\n"), one.stderr
    assert db_count(folder, OutboxMessage, OutboxMessage.recipient == "700") == 1
    assert db_count(folder, OutboxMessage) == 1


def test_unknown_campaign_suggests_the_closest(folder: Path) -> None:
    app = open_app(folder)
    try:
        with pytest.raises(ScheduleError) as caught:  # `campaign fire act-chekin`: exit 1
            app.schedules().get("act-chekin")
    finally:
        app.close()
    assert caught.value.exit_code == 1
    assert str(caught.value) == "schedules: no campaign 'act-chekin' (did you mean 'act-checkin'?)"


# -- pause / resume / status ---------------------------------------------------------------------------
def test_pause_and_resume_show_in_status(folder: Path) -> None:
    paused = run_cli(folder, "pause", "act-checkin")
    assert (paused.returncode, paused.stdout) == (0, "paused: act-checkin\n"), paused.stderr
    status = run_cli(folder, "status")
    assert status.returncode == 0, status.stderr
    lines = status.stdout.splitlines()
    assert "paused: act-checkin" in lines
    assert "contacts active: 2" in lines
    assert "channel telegram: no traffic yet" in lines

    resumed = run_cli(folder, "resume", "act-checkin")
    assert (resumed.returncode, resumed.stdout) == (0, "resumed: act-checkin\n"), resumed.stderr
    app = open_app(folder)
    try:
        assert collect(app)["paused"] == "none"  # what `pledgebot status` prints next
        pauses.set_paused(app.db, "*", True)
        assert collect(app)["paused"] == "all sending"
    finally:
        app.close()


# -- export ----------------------------------------------------------------------------------------
RECEIVED = "Nous avons formé 40 inspecteurs 🎉 <b>&amp; not bold</b> & \"quoted\" 'single' < >"


async def test_export_replies_json_is_exactly_what_was_received(live: Live, tmp_path: Path) -> None:
    await live.bind(GH, 601)
    await live.fire("act-checkin", to=GH)
    live.sandbox.push_message(601, RECEIVED)
    live.sandbox.push_message(601, "👍")
    await live.settle()

    proc = await asyncio.to_thread(run_cli, tmp_path, "export", "replies", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    replies = json.loads(proc.stdout)  # stdout holds the JSON array and nothing else
    assert isinstance(replies, list)
    assert [r["text"] for r in replies] == [RECEIVED, "👍"]
    answer, thumbs = replies
    assert (answer["pledgemaker_id"], answer["pillar"], answer["acknowledgement"]) == (
        GH,
        "act",
        False,
    )
    assert (thumbs["pledgemaker_id"], thumbs["acknowledgement"]) == (GH, True)
    assert answer["original_text"] is None and answer["chat_id"] == "601"
    assert "🎉" in proc.stdout, "emoji are written as themselves, not \\u escapes"


def test_export_updates_csv_has_a_header_row(folder: Path) -> None:
    app = open_app(folder)
    try:
        with app.db.session() as session:
            import_updates(session, ROOT / "data" / "sample" / "updates.csv")
    finally:
        app.close()
    proc = run_cli(folder, "export", "updates", "--format", "csv")
    assert proc.returncode == 0, proc.stderr
    records = list(csv.reader(io.StringIO(proc.stdout, newline="")))
    assert records[0] == [
        "id",
        "pledgemaker_id",
        "pillar",
        "kind",
        "text",
        "media",
        "moderation",
        "consent_to_publish",
        "source",
        "source_ref",
        "prompt_id",
        "created_at",
    ]
    assert len(records) == 9
    assert {r[9] for r in records[1:]} == {f"form-000{n}" for n in range(1, 9)}


def test_export_in_an_unknown_format_is_an_error(folder: Path) -> None:
    proc = run_cli(folder, "export", "replies", "--format", "xml")
    assert_error(proc, "--format must be csv or json (got 'xml')")


# -- bugs found while writing these tests ------------------------------------------------------------
def test_pausing_a_misspelt_campaign_is_an_error(folder: Path) -> None:
    from bot.core.models import CampaignControl

    proc = run_cli(folder, "pause", "act-chekin")
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert "'act-chekin'" in proc.stderr and "did you mean 'act-checkin'?" in proc.stderr
    assert db_count(folder, CampaignControl) == 0


def test_the_possible_duplicates_can_be_listed_and_are_counted_as_such(folder: Path) -> None:
    """After a crash, which messages may have reached someone twice is visible, not just a
    count: `outbox list` marks them and `--possible-duplicates` lists only them."""
    run_cli(folder, "campaign", "fire", "act-checkin", "--yes")
    app = open_app(folder)
    try:
        with app.db.session() as session:
            first = session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)).first()
            assert first is not None
            first.possible_duplicate, flagged = True, first.id
    finally:
        app.close()
    listed = run_cli(folder, "outbox", "list", "--possible-duplicates", COLUMNS="200")
    assert listed.returncode == 0, listed.stderr
    rows = [line for line in listed.stdout.splitlines() if re.match(r"^\W*\d+\s", line)]
    assert len(rows) == 1 and re.match(rf"^\W*{flagged}\s", rows[0]) and " yes " in rows[0]
    everything = run_cli(folder, "outbox", "list", COLUMNS="200")
    assert sum(" yes " in line for line in everything.stdout.splitlines()) == 1
    status = run_cli(folder, "status")
    assert "possible duplicates (resent after a crash or a timeout): 1" in status.stdout
