"""Every pledgemaker-facing text in English, French and Spanish; dates and numbers per locale."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path
from types import SimpleNamespace

from bot.channels.registry import plain_text_channels
from bot.core.vocab import LANGUAGES
from bot.text.templates import Templates
from tests.auxil.cli import pledgebot
from tests.conftest import ROOT, write_config

TEMPLATES = Templates(ROOT / "templates", plain_text=plain_text_channels())
PLEDGEMAKER = SimpleNamespace(
    name="Cooperativa", pledge_title="Cacao sin trabajo infantil", pledge_date=date(2021, 3, 2)
)


def test_every_template_and_phrase_exists_in_every_language() -> None:
    names = {p.name.split(".")[0] for p in (ROOT / "templates" / "followup").glob("*.j2")}
    assert {"act", "inspire", "scale_up", "reminder"} <= names
    for name in names:
        assert TEMPLATES.untranslated(f"followup/{name}") == [], name
    problems, warnings = TEMPLATES.check_phrases()
    assert (problems, warnings) == ([], [])


def test_dates_and_numbers_follow_the_readers_language() -> None:
    rendered = {
        language: TEMPLATES.render(
            "followup/act",
            language,
            pledgemaker=PLEDGEMAKER,
            pillar="act",
            campaign_id="c",
            buttons=True,
        )
        for language in LANGUAGES
    }
    assert "of 2 March 2021" in rendered["en"]
    assert "du 2 mars 2021" in rendered["fr"]
    assert "del 2 de marzo de 2021" in rendered["es"]
    number = TEMPLATES.env.from_string("{{ 12345.5 | number }}")
    assert [number.render(language=lang) for lang in LANGUAGES] == [
        "12,345.5",
        "12\u202f345,5",  # French groups digits with a narrow no-break space
        "12.345,5",
    ]


def test_a_missing_translation_is_a_warning_and_english_is_used(tmp_path: Path) -> None:
    templates = tmp_path / "tpl"
    shutil.copytree(ROOT / "templates", templates)
    (templates / "followup" / "inspire.es.j2").unlink()
    config = write_config(tmp_path)
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace(f'templates = "{ROOT / "templates"}"', 'templates = "tpl"'))
    proc = pledgebot(tmp_path, "schedules", "check")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.endswith("file(s): OK\n")
    assert "warning: " in proc.stderr and "'followup/inspire' has no es translation" in proc.stderr
    english = Templates(templates, plain_text=plain_text_channels()).render(
        "followup/inspire",
        "es",
        pledgemaker=PLEDGEMAKER,
        pillar="inspire",
        campaign_id="c",
        buttons=False,
    )
    assert english.startswith("<b>Inspire</b>")
