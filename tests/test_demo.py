"""`pledgebot demo` runs the whole loop and prints one `label: number` line per figure, on
every chat channel asked for (`--channels`), each against its real local server; one update
goes out on every public network's sandbox, and its links are printed."""

from __future__ import annotations

import contextlib
import importlib.util
import re
import signal
import subprocess
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import Session

from bot.core.media_urls import KEY_ENV
from bot.core.models import (
    Consent,
    Contact,
    InviteToken,
    JourneyUpdate,
    OutboxMessage,
    Pledgemaker,
    Post,
    Prompt,
    Reply,
)
from bot.core.models import InboundEvent as EventRow
from pledgebot_sandbox import demo_reach
from pledgebot_sandbox.demo_channels import ANSWERS
from pledgebot_sandbox.synapse import VENV_ENV, venv_path
from tests.auxil.cli import PLEDGEBOT, pledgebot
from tests.conftest import ROOT, cli_env

CONFIG = str(ROOT / "config.toml")
# The tests' own Synapse venv, wherever the demo runs from (built by `make test`, or here once).
SYNAPSE = {VENV_ENV: str(venv_path())}


def summary_of(done: subprocess.CompletedProcess[str]) -> dict[str, str]:
    assert done.returncode == 0, done.stderr
    return dict(line.split(": ", 1) for line in done.stdout.splitlines())


def test_the_demo_works_unchanged_two_years_from_now(tmp_path: Path) -> None:
    """The samples carry no date that runs out: the same loop with the clock in late 2028."""
    done = pledgebot(
        tmp_path,
        "--config",
        CONFIG,
        "demo",
        "--channels",
        "telegram",
        "--pledgemakers",
        "9",
        "--folder",
        str(tmp_path),
        timeout=300,
        now=datetime(2028, 12, 8, 9, 30, tzinfo=UTC),
    )
    lines = summary_of(done)
    assert lines["prompts sent"] == "9" and lines["messages failed"] == "0"
    assert lines["posts on X"] == lines["posts on the Telegram channel"] == "3"
    assert "/status/" in lines["posted update 1 to"]


def test_demo_runs_the_whole_loop_and_prints_a_summary(tmp_path: Path) -> None:
    """All 40 sample pledgemakers on Telegram: every way of answering, consent, posts."""
    done = pledgebot(
        tmp_path,
        "--config",
        CONFIG,
        "demo",
        "--channels",
        "telegram",
        "--folder",
        str(tmp_path),
        timeout=300,
    )
    lines = summary_of(done)
    assert lines["pledgemakers imported"] == "40"
    assert lines["invitations accepted"] == "40"
    assert lines["prompts sent"] == "40"
    assert int(lines["replies stored"]) > int(lines["journey updates"]) > 0
    assert int(lines["updates act"]) == int(lines["journey updates"])
    assert int(lines["updates with media"]) > 0 and int(lines["prompts snoozed"]) > 0
    assert lines["opted out"] == "1" and lines["messages failed"] == "0"
    assert int(lines["consents given"]) > 0 and int(lines["consents declined"]) > 0
    assert lines["posts on X"] == lines["posts on the Telegram channel"] == "3"
    assert int(lines["X posts incl. thread parts"]) > 3, "a long answer became a thread"
    assert lines["thank-yous with a link to the post"] == "3", "one per update, not per network"
    assert Path(lines["database"]).is_file()
    assert Path(lines["database"]).parent == tmp_path
    assert lines["telegram answers linked"] == "25" and "email invited" not in lines
    assert_one_update_reached_every_network(done.stderr, lines)


NETWORKS = ["x", "telegram", "bluesky", "linkedin", "facebook", "instagram", "mastodon"]
MASTODON_SKIPPED = "demo: continuing without mastodon: mastodon-mock not installed"


def sent_posts(database: str) -> dict[int, set[str]]:
    """Per journey update, the networks where its post went out (its first part sent)."""
    engine = create_engine(f"sqlite:///{database}")
    try:
        with Session(engine) as session:
            rows = session.execute(
                select(Post.journey_update_id, Post.channel, OutboxMessage.external_id)
                .join(OutboxMessage, Post.first_outbox_id == OutboxMessage.id)
                .where(OutboxMessage.state == "sent")
            ).all()
    finally:
        engine.dispose()
    found: dict[int, set[str]] = {}
    for update_id, channel, external_id in rows:
        assert external_id, (update_id, channel)
        found.setdefault(update_id, set()).add(channel)
    return found


def assert_one_update_reached_every_network(stderr: str, lines: dict[str, str]) -> None:
    """From the database: one update posted on all seven networks (six, and one line saying
    why, without mastodon-mock); the summary prints that update's link on each."""
    expected = list(NETWORKS)
    if importlib.util.find_spec("mastodon_mock") is None:
        expected.remove("mastodon")
        assert stderr.count(MASTODON_SKIPPED) == 1, stderr
    else:
        assert MASTODON_SKIPPED not in stderr
    reached = sent_posts(lines["database"])
    everywhere = [u for u, networks in reached.items() if networks == set(expected)]
    assert everywhere, reached
    label = next(label for label in lines if label.startswith("posted update "))
    update_id = int(label.split()[2])
    assert update_id in everywhere
    links = dict(part.split(" ", 1) for part in lines[label].split(", "))
    assert list(links) == expected
    assert links["x"].startswith("https://x.com/i/web/status/")
    assert links["telegram"].startswith("https://t.me/c/")
    assert links["bluesky"].startswith("https://bsky.app/profile/did:")
    assert links["linkedin"].startswith("https://www.linkedin.com/feed/update/urn:li:")
    assert links["facebook"].startswith("https://www.facebook.com/")
    assert links["instagram"].isdigit(), "the sandbox's media id: no public link without a look-up"
    if "mastodon" in links:
        assert re.fullmatch(r"https?://\S+/@pledgebot/\d+", links["mastodon"]), links
    assert lines["posts on instagram"] == "1", "only the update with a photo"


def linked_answers(database: str) -> dict[str, list[str]]:
    """Per channel, the texts of the journey updates made from answers linked to a prompt that
    was sent on that channel — read from the demo's database, not from what it printed."""
    engine = create_engine(f"sqlite:///{database}")
    try:
        with Session(engine) as session:
            rows = session.execute(
                select(OutboxMessage.channel, JourneyUpdate.text)
                .join(Prompt, JourneyUpdate.prompt_id == Prompt.id)
                .join(OutboxMessage, Prompt.outbox_id == OutboxMessage.id)
                .where(JourneyUpdate.source == "reply")
            ).all()
            replies = dict(
                session.execute(
                    select(Reply.channel, func.count())
                    .where(Reply.prompt_id.is_not(None))
                    .group_by(Reply.channel)
                ).all()
            )
    finally:
        engine.dispose()
    found: dict[str, list[str]] = {}
    for channel, text in rows:
        found.setdefault(channel, []).append(text)
    assert all(replies.get(channel, 0) >= len(texts) for channel, texts in found.items())
    return found


def test_demo_invites_links_answers_and_consents_on_telegram_email_and_matrix(
    tmp_path: Path,
) -> None:
    """Nine pledgemakers, three per channel: each joins (the bot invites the email and Matrix
    ones itself), gets the prompt on their channel and answers it there, then answers the
    consent question (by typing, by mail and on Matrix); what they agreed to share is posted."""
    done = pledgebot(
        tmp_path,
        "--config",
        CONFIG,
        "demo",
        "--channels",
        "telegram,email,matrix",
        "--pledgemakers",
        "9",
        "--folder",
        str(tmp_path),
        timeout=300,
        **SYNAPSE,
    )
    lines = summary_of(done)
    for channel in ("telegram", "email", "matrix"):
        assert lines[f"{channel} invited"] == lines[f"{channel} joined"] == "3", channel
        assert lines[f"{channel} prompts sent"] == "3", channel
    assert lines["messages failed"] == "0"
    assert lines["email joined via reply to the bot's invitation mail"] == "2"
    assert lines["email joined via mailto link's code"] == "1"
    assert lines["matrix joined via the bot's room invite, accepted"] == "3"
    linked = linked_answers(lines["database"])
    # Telegram's three: a long answer after a button, a reply to the prompt, and /stop.
    assert len(linked["telegram"]) == int(lines["telegram answers linked"]) == 2
    words = {text for texts in ANSWERS.values() for text in texts}
    for channel in ("email", "matrix"):
        assert len(linked[channel]) == int(lines[f"{channel} answers linked"]) == 3, channel
        # Exactly what they wrote: the mail clients' quoted prompt is stripped.
        assert set(linked[channel]) <= words, linked[channel]
        assert lines[f"{channel} consents given"] == "2", channel
        assert lines[f"{channel} consents declined"] == "1", channel

    found = read_back(lines["database"])
    # Bound through the bot's own invitations: sent to the address on their record, used.
    assert sorted(found.invited["email"]) == [(False, True)] + [(True, True)] * 2
    assert found.invited["matrix"] == [(True, True)] * 3
    # The consent questions answered by typing a number or a word, both ways on each channel.
    for channel in ("email", "matrix"):
        assert sorted(found.consents[channel]) == ["no", "yes", "yes"], channel
        typed = found.typed[channel]
        assert sorted(outcome.rsplit(" ", 1)[1] for outcome, _ in typed) == ["no", "yes", "yes"]
    assert {text for _, text in found.typed["email"]} == {"1", "yes", "2"}
    assert {text for _, text in found.typed["matrix"]} == {"1", "yes", "no"}
    # Their updates took part: at least one of them went out on X (three slots, five eligible).
    assert found.on_x.get("email", 0) + found.on_x.get("matrix", 0) >= 1, found.on_x
    amplified = sum(int(lines[f"{c} updates amplified"]) for c in ("telegram", "email", "matrix"))
    assert amplified == int(lines["posts on X"]) == 3


@dataclass
class ReadBack:
    """What the demo's database says, per chat channel."""

    invited: dict[str, list[tuple[bool, bool]]]  # (sent to their address, used) per invitation
    consents: dict[str, list[str]]  # each recorded answer
    typed: dict[str, list[tuple[str, str]]]  # (outcome, text) of each typed consent answer
    on_x: dict[str, int]  # updates of pledgemakers on the channel posted on X


def read_back(database: str) -> ReadBack:
    engine = create_engine(f"sqlite:///{database}")
    found = ReadBack({}, {}, {}, {})
    try:
        with Session(engine) as session:
            for invite, pledgemaker in session.execute(
                select(InviteToken, Pledgemaker).join(Pledgemaker)
            ).all():
                own = dict(pledgemaker.handles)
                bound = session.scalar(
                    select(Contact).where(
                        Contact.channel == invite.channel, Contact.address == invite.used_by
                    )
                )
                used = bound is not None and bound.pledgemaker_id == pledgemaker.id
                sent = invite.address is not None and invite.address == own.get(invite.channel)
                found.invited.setdefault(invite.channel, []).append((sent, used))
            for channel, answer in session.execute(
                select(Contact.channel, Consent.answer).join(Contact)
            ).all():
                found.consents.setdefault(channel, []).append(answer)
            for event in session.scalars(
                select(EventRow).where(EventRow.outcome.like("typed update %: consent %"))
            ):
                typed = (str(event.outcome), str(event.payload["text"]))
                found.typed.setdefault(event.channel, []).append(typed)
            found.on_x = dict(
                session.execute(
                    select(Contact.channel, func.count())
                    .select_from(Post)
                    .join(JourneyUpdate, Post.journey_update_id == JourneyUpdate.id)
                    .join(Contact, JourneyUpdate.contact_id == Contact.id)
                    .where(Post.channel == "x")
                    .group_by(Contact.channel)
                ).all()
            )
    finally:
        engine.dispose()
    return found


def test_an_unknown_channel_is_a_clear_error_naming_the_valid_ones(tmp_path: Path) -> None:
    done = pledgebot(tmp_path, "--config", CONFIG, "demo", "--channels", "telegram,fax")
    assert done.returncode == 1
    assert done.stderr.strip() == (
        "demo: --channels: unknown channel 'fax'; valid: telegram, email, matrix"
    )
    assert not (tmp_path / "demo-data").exists(), "nothing started"
    helped = pledgebot(tmp_path, "demo", "--help")
    text = " ".join(helped.stdout.split())
    assert "--channels LIST" in text and "from telegram, email, matrix" in text


def test_without_synapse_matrix_is_skipped_unless_asked_for(tmp_path: Path) -> None:
    """No way to PyPI (here: an index nobody answers): Synapse's venv cannot be built. Asked
    for by name, matrix is a one-line error; by default the demo says so and goes on."""
    (tmp_path / "no-wheels").mkdir()
    offline = {
        VENV_ENV: str(tmp_path / "synapse-venv"),
        "PIP_INDEX_URL": "http://127.0.0.1:9/simple",
        "PIP_FIND_LINKS": str(tmp_path / "no-wheels"),  # not a local wheelhouse either
        "PIP_RETRIES": "0",
        "PIP_NO_CACHE_DIR": "1",
    }
    asked = pledgebot(
        tmp_path, "--config", CONFIG, "demo", "--channels", "matrix", timeout=120, **offline
    )
    assert asked.returncode == 1
    said = [line for line in asked.stderr.splitlines() if line.startswith("demo:")]
    assert len(said) == 1, asked.stderr
    assert said[0].startswith("demo: cannot run matrix: could not build Synapse's venv in ")
    default = pledgebot(
        tmp_path, "--config", CONFIG, "demo", "--pledgemakers", "2", timeout=300, **offline
    )
    lines = summary_of(default)
    assert "demo: continuing without matrix: could not build Synapse's venv" in default.stderr
    assert "matrix invited" not in lines
    assert lines["telegram prompts sent"] == lines["email prompts sent"] == "1"


def test_demo_then_serves_the_dashboard_on_its_data_until_interrupted(tmp_path: Path) -> None:
    """`pledgebot demo --dashboard`: the loop, then the dashboard (any free port) with a
    sign-in made for the demo; Ctrl-C stops everything cleanly."""
    config = tmp_path / "config.toml"
    config.write_text(
        (ROOT / "config.toml").read_text(encoding="utf-8").replace("port = 8080", "port = 0"),
        encoding="utf-8",
    )
    for folder in ("templates", "schedules", "data"):
        (tmp_path / folder).symlink_to(ROOT / folder)
    command = ["--config", str(config), "demo", "--dashboard", "--channels", "telegram"]
    process = subprocess.Popen(
        [PLEDGEBOT, *command, "--folder", "demo"],
        cwd=tmp_path,
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        deadline = time.monotonic() + 240
        seen = []
        while not any(line.startswith("dashboard: http") for line in seen):
            assert time.monotonic() < deadline and process.poll() is None, "".join(seen)
            seen.append(process.stderr.readline())
        found = re.search(r"dashboard: (http://\S+) — sign in as (\S+) with (\S+) ", seen[-1])
        assert found is not None, seen[-1]
        url, email, password = found.groups()
        with httpx.Client(base_url=url, follow_redirects=True) as browser:
            form = browser.get("/login").text
            token = re.search(r'name="csrf" value="([^"]+)"', form)
            assert token is not None
            signed = browser.post(
                "/login", data={"csrf": token.group(1), "email": email, "password": password}
            )
            assert signed.status_code == 200
            report = browser.get("/reports.csv", params={"by": "channel"}).text
            # One row per channel, the public networks' too: Telegram's has the 40 prompts.
            rows = report.splitlines()[1:]
            assert any(row.startswith("telegram,40,") for row in rows), report
            assert browser.get("/inbox").text.count('id="reply-') >= 30, "the replies stored"
        process.send_signal(signal.SIGINT)
        output, errors = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, errors
    assert "Traceback" not in errors
    assert "pledgemakers imported: 40" in output


async def test_without_mastodon_mock_the_demo_says_so_in_one_line_and_goes_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """mastodon-mock is a requirement of the sandboxes: without it the other networks still start and are
    configured; Mastodon is left out, with one line saying how to get it."""
    monkeypatch.setattr(demo_reach, "MASTODON_PACKAGE", "mastodon_mock_not_installed")
    for env in [*demo_reach.ENV.values(), KEY_ENV]:
        monkeypatch.delenv(env, raising=False)
    said: list[str] = []
    async with contextlib.AsyncExitStack() as stack:
        reach = demo_reach.Reach()
        await reach.start(stack, said.append)
        assert said == [
            "demo: continuing without mastodon: mastodon-mock not installed (the sandboxes' "
            "requirements): pip install -e ./sandbox"
        ]
        assert said[0].startswith(MASTODON_SKIPPED)
        assert reach.networks == ["bluesky", "linkedin", "facebook", "instagram"]
        assert sorted(reach.settings()) == sorted(reach.networks)
        assert reach.public_base_url.startswith("http://127.0.0.1:")
