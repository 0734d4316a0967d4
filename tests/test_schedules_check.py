"""`pledgebot schedules check`: every problem of every file as ``file:line: message``, exit 1.

It validates and renders every template in every language and applies nothing. It never creates
a database; when there is one, it warns of audiences that match no pledgemaker.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from bot.channels.registry import plain_text_channels
from bot.core.errors import ScheduleError
from bot.scheduling.schedules import load_schedules
from bot.text.templates import Templates
from tests.auxil.cli import pledgebot
from tests.conftest import ROOT, write_config

TEMPLATES = Templates(ROOT / "templates", plain_text=plain_text_channels())


def run_cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return pledgebot(cwd, *args)  # checking schedules needs no secret


def problems_of(tmp_path: Path, **files: str) -> list[str]:
    """Write schedule files into tmp_path/s/ and return load_schedules' problems as lines."""
    folder = tmp_path / "s"
    folder.mkdir(exist_ok=True)
    for name, text in files.items():
        (folder / f"{name}.toml").write_text(text, encoding="utf-8")
    with pytest.raises(ScheduleError) as caught:
        load_schedules([folder], TEMPLATES)
    lines = [str(problem) for problem in caught.value.problems]
    assert str(caught.value).splitlines() == lines
    prefix = f"{folder}/"
    return [line.removeprefix(prefix) for line in lines]


GOOD = """[[campaign]]
id = "good-one"
kind = "followup"
pillar = "act"
cron = "0 10 1 * *"
timezone = "Africa/Accra"
"""


# -- through the CLI: exit codes, stdout vs stderr, no database -----------------------------------
def test_misspelt_key_is_reported_with_its_line_and_a_suggestion(tmp_path: Path) -> None:
    write_config(tmp_path)
    (tmp_path / "schedules" / "x.toml").write_text(
        '# a comment\n\n[[campaign]]\nid = "typo"\nkind = "followup"\npillar = "act"\n'
        'cronn = "0 10 1 * *"\n',
        encoding="utf-8",
    )
    proc = run_cli(tmp_path, "schedules", "check", "schedules/x.toml")
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert proc.stderr == "schedules/x.toml:7: unknown field 'cronn' (did you mean 'cron'?)\n"
    assert not (tmp_path / "pledgebot.db").exists(), "schedules check must not touch the database"


MANY_PROBLEMS = """# every campaign here has one mistake
[[campaign]]
id = "bad-cron"
kind = "followup"
pillar = "act"
cron = "0 25 1 * *"

[[campaign]]
id = "bad-zone"
kind = "followup"
pillar = "act"
cron = "0 10 1 * *"
timezone = "Europe/Zurch"

[[campaign]]
id = "bad-kind"
kind = "folowup"
pillar = "act"

[[campaign]]
id = "no-pillar"
kind = "followup"
cron = "0 10 1 * *"

[[campaign]]
id = "bad-audience"
kind = "followup"
pillar = "inspire"
audience = { sector = ["goverment"] }

[[campaign]]
id = "bad-country"
kind = "followup"
pillar = "inspire"
audience = { country = ["GH", "XX"] }

[[campaign]]
id = "bad-template"
kind = "followup"
pillar = "act"
template = "followup/actt"

[[campaign]]
id = "fine"
kind = "followup"
pillar = "scale_up"
"""

MANY_EXPECTED = [
    "schedules/many.toml:6: cron: bad cron expression '0 25 1 * *': Error validating expression "
    "'25': the last value (25) is higher than the maximum value (23)",
    "schedules/many.toml:13: timezone: unknown time zone 'Europe/Zurch' "
    "(did you mean 'Europe/Zurich'?)",
    "schedules/many.toml:17: kind must be one of followup, amplify, knowledge, digest, announce (got 'folowup')",
    "schedules/many.toml:20: pillar is required",
    "schedules/many.toml:29: audience.sector: unknown sector 'goverment' "
    "(did you mean 'government'?)",
    "schedules/many.toml:35: audience.country: unknown country code (ISO 3166-1 alpha-2) 'XX'",
    "schedules/many.toml:41: unknown template 'followup/actt' "
    f"(no {ROOT / 'templates' / 'followup' / 'actt.en.j2'})",
]


def test_every_problem_of_a_file_in_one_run(tmp_path: Path) -> None:
    write_config(tmp_path)
    (tmp_path / "schedules" / "many.toml").write_text(MANY_PROBLEMS, encoding="utf-8")
    proc = run_cli(tmp_path, "schedules", "check", "schedules/many.toml")
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert "Traceback" not in proc.stderr
    assert proc.stderr.splitlines() == MANY_EXPECTED
    assert not (tmp_path / "pledgebot.db").exists()


def test_the_repositorys_own_schedules_pass(tmp_path: Path) -> None:
    write_config(tmp_path)  # its [paths] schedules is a copy of the repository's schedules/
    proc = run_cli(tmp_path, "schedules", "check")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "6 campaign(s) in 2 file(s): OK\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.toml", "data", "schedules"]

    found = load_schedules([ROOT / "schedules"], TEMPLATES)  # and the original, in place
    assert sorted(found.campaigns) == [
        "act-cadence",
        "act-checkin",
        "global-estimates",
        "inspire-checkin",
        "journeys",
        "scale-up-checkin",
    ]


def test_template_with_an_undefined_variable_names_file_and_language(tmp_path: Path) -> None:
    templates = tmp_path / "tpl"
    shutil.copytree(ROOT / "templates", templates)
    broken = templates / "followup" / "act.fr.j2"
    broken.write_text("<b>Agir</b> · {{ pledgemaker.nme }}\n", encoding="utf-8")
    (tmp_path / "schedules").mkdir()
    schedule = tmp_path.resolve() / "schedules" / "act.toml"
    schedule.write_text(campaign('pillar = "act"\ntemplate = "followup/act"\n'), encoding="utf-8")
    config = write_config(tmp_path)
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace(f'templates = "{ROOT / "templates"}"', 'templates = "tpl"'))
    proc = run_cli(tmp_path, "schedules", "check")
    assert proc.returncode == 1
    assert proc.stdout == ""
    [line] = proc.stderr.splitlines()  # only French is broken: one problem
    assert line.startswith(f"{schedule}:6: template 'followup/act' (fr): ")
    assert f"{templates.resolve() / 'followup' / 'act.fr.j2'}:1: " in line
    assert line.endswith("act.fr.j2:1: undefined variable pledgemaker.nme"), "as written"
    assert not (tmp_path / "pledgebot.db").exists()


# -- each kind of mistake, exactly ------------------------------------------------------------------
def campaign(body: str) -> str:
    return f'# header comment\n[[campaign]]\nid = "c-one"\nkind = "followup"\n{body}'


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            campaign('pillar = "act"\ncronn = "0 10 * * *"\n'),
            ["x.toml:6: unknown field 'cronn' (did you mean 'cron'?)"],
            id="misspelt-key",
        ),
        pytest.param(
            campaign('pillar = "act"\ncron = "61 * * * *"\n'),
            [
                "x.toml:6: cron: bad cron expression '61 * * * *': Error validating expression "
                "'61': the last value (61) is higher than the maximum value (59)"
            ],
            id="bad-cron",
        ),
        pytest.param(
            campaign('pillar = "act"\ncron = "0 10 * *"\n'),
            [
                "x.toml:6: cron: bad cron expression '0 10 * *': Wrong number of fields; "
                "got 4, expected 5"
            ],
            id="cron-wrong-field-count",
        ),
        pytest.param(
            campaign('pillar = "act"\ntimezone = "America/Sao_Polo"\n'),
            [
                "x.toml:6: timezone: unknown time zone 'America/Sao_Polo' "
                "(did you mean 'America/Sao_Paulo'?)"
            ],
            id="zone-typo",
        ),
        pytest.param(
            '[[campaign]]\nid = "c-one"\nkind = "newsletter"\npillar = "act"\n',
            [
                "x.toml:3: kind must be one of followup, amplify, knowledge, digest, announce (got 'newsletter')"
            ],
            id="unknown-kind",
        ),
        pytest.param(
            '[[campaign]]\nid = "c-one"\npillar = "act"\n',
            [
                "x.toml:1: kind must be one of followup, amplify, knowledge, digest, announce (missing)"
            ],
            id="missing-kind",
        ),
        pytest.param(
            campaign('cron = "0 10 * * *"\n'),
            ["x.toml:2: pillar is required"],
            id="missing-pillar",
        ),
        pytest.param(
            campaign('pillar = "scaleup"\n'),
            ["x.toml:5: pillar must be one of act, inspire or scale_up (got 'scaleup')"],
            id="unknown-pillar",
        ),
        pytest.param(
            campaign('pillar = "act"\naudience = { sector = ["buisness"] }\n'),
            ["x.toml:6: audience.sector: unknown sector 'buisness' (did you mean 'business'?)"],
            id="sector-typo",
        ),
        pytest.param(
            campaign(
                'pillar = "act"\naudience = { region = ["africa"], country = ["GH", "GHA"] }\n'
            ),
            [
                "x.toml:6: audience.country: unknown country code (ISO 3166-1 alpha-2) 'GHA' "
                "(did you mean 'GH'?)"
            ],
            id="country-typo",
        ),
        pytest.param(
            campaign('pillar = "act"\naudience = { sectors = ["ngo"] }\n'),
            ["x.toml:6: unknown field 'sectors' (did you mean 'sector'?)"],
            id="audience-key-typo",
        ),
        pytest.param(
            campaign('pillar = "act"\ntemplate = "followup/nope"\n'),
            [
                "x.toml:6: unknown template 'followup/nope' "
                f"(no {ROOT / 'templates' / 'followup' / 'nope.en.j2'})"
            ],
            id="unknown-template",
        ),
        pytest.param(
            campaign('pillar = "act"\ngrace = "6 hours"\n'),
            ["x.toml:6: grace: not a duration like '30d', '6h', '15m' or '45s' (got '6 hours')"],
            id="bad-grace",
        ),
        pytest.param(
            campaign('pillar = "act"\nchannels = ["telegram", "whatsapp"]\n'),
            ["x.toml:6: channels: unknown channel 'whatsapp'"],
            id="unknown-channel",
        ),
        pytest.param(
            '[[campaign]]\nid = "c-one"\nkind = "followup"\npillar = "act\n',
            ["x.toml:4: invalid TOML: Illegal character '\\n'"],
            id="invalid-toml",
        ),
        pytest.param(
            '[campaign]\nid = "c-one"\nkind = "followup"\npillar = "act"\n',
            ["x.toml:1: use [[campaign]] (an array of tables)"],
            id="single-table",
        ),
        pytest.param(
            GOOD + '\n[[campaing]]\nid = "c-two"\n',
            ["x.toml:8: unknown table 'campaing' (expected [[campaign]])"],
            id="unknown-table",
        ),
        pytest.param(
            GOOD + '\n[[campaign]]\nid = "good-one"\nkind = "followup"\npillar = "inspire"\n',
            ["x.toml:8: duplicate campaign id 'good-one' (first defined at {folder}/x.toml:1)"],
            id="duplicate-in-one-file",
        ),
        pytest.param(
            campaign('pillar = "act"\ncron = "0 99 * * *"\ntimezone = "Mars/Base"\nfoo = 1\n'),
            [
                "x.toml:6: cron: bad cron expression '0 99 * * *': Error validating expression "
                "'99': the last value (99) is higher than the maximum value (23)",
                "x.toml:7: timezone: unknown time zone 'Mars/Base'",
                "x.toml:8: unknown field 'foo'",
            ],
            id="three-problems-in-one-campaign",
        ),
    ],
)
def test_each_mistake_has_its_exact_line_and_message(
    tmp_path: Path, text: str, expected: list[str]
) -> None:
    folder = tmp_path / "s"
    expected = [line.replace("{folder}", str(folder)) for line in expected]
    assert problems_of(tmp_path, x=text) == expected


def test_duplicate_campaign_id_across_two_files(tmp_path: Path) -> None:
    other = '# copy\n\n[[campaign]]\nid = "good-one"\nkind = "followup"\npillar = "inspire"\n'
    folder = tmp_path / "s"
    assert problems_of(tmp_path, a=GOOD, b=other) == [
        f"b.toml:3: duplicate campaign id 'good-one' (first defined at {folder}/a.toml:1)"
    ]


def test_problems_of_every_file_are_reported_together(tmp_path: Path) -> None:
    assert problems_of(
        tmp_path,
        a=campaign('pillar = "act"\ncronn = "0 10 * * *"\n'),
        b='[[campaign]]\nid = "c-two"\nkind = "followup"\npillar = "inspire"\ngrace = "x"\n',
        c=GOOD,
    ) == [
        "a.toml:6: unknown field 'cronn' (did you mean 'cron'?)",
        "b.toml:5: grace: not a duration like '30d', '6h', '15m' or '45s' (got 'x')",
    ]


def test_a_valid_file_loads_with_its_line(tmp_path: Path) -> None:
    folder = tmp_path / "s"
    folder.mkdir()
    (folder / "ok.toml").write_text("\n\n" + GOOD, encoding="utf-8")
    found = load_schedules([folder], TEMPLATES)
    loaded = found.campaigns["good-one"]
    assert (loaded.file, loaded.line) == (str(folder / "ok.toml"), 3)
    assert loaded.spec.template_name() == "followup/act"


# -- bugs found while writing these tests ------------------------------------------------------------
@pytest.mark.parametrize(
    "body",
    [
        '[campaign.audience]\nsector = ["goverment"]\n',
        'audience.sector = ["goverment"]\n',
    ],
    ids=["sub-table", "dotted-key"],
)
def test_audience_written_as_a_sub_table_or_dotted_key_has_its_own_line(
    tmp_path: Path, body: str
) -> None:
    text = campaign('pillar = "act"\n' + body)
    line = len(text.splitlines())  # the sector line is the file's last line
    assert problems_of(tmp_path, x=text) == [
        f"x.toml:{line}: audience.sector: unknown sector 'goverment' (did you mean 'government'?)"
    ]


def test_array_table_header_with_spaces_keeps_line_numbers(tmp_path: Path) -> None:
    text = GOOD + '\n[[ campaign ]]\nid = "c-two"\nkind = "followup"\npillar = "actt"\n'
    assert problems_of(tmp_path, x=text) == [
        "x.toml:11: pillar must be one of act, inspire or scale_up (got 'actt')"
    ]


def test_template_may_use_every_pledgemaker_column(tmp_path: Path) -> None:
    templates = tmp_path / "tpl"
    shutil.copytree(ROOT / "templates", templates)
    (templates / "followup" / "act.en.j2").write_text(
        "{{ pledgemaker.name }} pledged on {{ pledgemaker.pledge_date }}\n", encoding="utf-8"
    )
    found = load_schedules(
        [ROOT / "schedules"], Templates(templates, plain_text=plain_text_channels())
    )
    assert "act-checkin" in found.campaigns
