"""The campaign kinds: the registry is what schedule files accept, each kind's model answers to
its registry name, and each kind has an example in schedules/ that passes ``schedules check``."""

from __future__ import annotations

import re
import typing
from datetime import UTC, datetime
from pathlib import Path

import pytest
import time_machine

from bot.campaigns.registry import KINDS
from bot.channels.registry import plain_text_channels
from bot.core.errors import ScheduleError
from bot.scheduling.schedules import load_schedules
from bot.text.templates import Templates
from tests.conftest import ROOT

SCHEDULES = ROOT / "schedules"
TEMPLATES = Templates(ROOT / "templates", plain_text=plain_text_channels())
EXAMPLES = sorted([*SCHEDULES.glob("*.toml"), *SCHEDULES.glob("*.toml.example")])


def problems(tmp_path: Path, kind: str) -> list[str]:
    path = tmp_path / "kind.toml"
    path.write_text(f'[[campaign]]\nid = "some-campaign"\nkind = "{kind}"\n', encoding="utf-8")
    try:
        load_schedules([path], TEMPLATES)
    except ScheduleError as exc:
        return [problem.message for problem in exc.problems]
    return []


def test_the_kinds_schedule_files_accept_are_the_registrys(tmp_path: Path) -> None:
    (refused,) = problems(tmp_path, "nope")
    listed = re.fullmatch(r"kind must be one of (.+) \(got 'nope'\)", refused)
    assert listed is not None, refused
    assert listed.group(1).split(", ") == list(KINDS)
    for name in KINDS:
        assert not any(p.startswith("kind ") for p in problems(tmp_path, name)), name


@pytest.mark.parametrize("name", list(KINDS))
def test_each_kinds_model_is_named_as_in_the_registry(name: str) -> None:
    annotation = KINDS[name].model.model_fields["kind"].annotation
    assert typing.get_origin(annotation) is typing.Literal
    assert typing.get_args(annotation) == (name,)


def test_every_kind_has_an_example_in_schedules() -> None:
    shown = {
        kind
        for path in EXAMPLES
        for kind in re.findall(r'^kind = "([a-z_]+)"', path.read_text("utf-8"), flags=re.M)
    }
    assert shown == set(KINDS)


@time_machine.travel(datetime(2026, 11, 30, 6, tzinfo=UTC), tick=False)
@pytest.mark.parametrize("example", EXAMPLES, ids=lambda path: path.name)
def test_each_example_passes_the_check(example: Path) -> None:
    found = load_schedules([example], TEMPLATES, base_dir=ROOT)
    assert found.campaigns, f"{example.name} declares campaigns"
    assert found.warnings == [], found.warnings
