"""CSV import: every bad row with its physical line and field, all or nothing, upsert by id."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bot.community.importer import import_pledgemakers, import_updates
from bot.core.errors import ImportRowsError
from bot.core.models import JourneyUpdate, Pledgemaker
from bot.service.app import App, build_app
from bot.settings.config import Config, load_config
from tests.auxil.cli import pledgebot
from tests.conftest import ROOT

SAMPLE_UPDATES = ROOT / "data" / "sample" / "updates.csv"
HEADER = (
    "id,name,country,region,sector,language,timezone,pledge_title,pledge_text,pledge_date,"
    "x_handle,website"
)
GOOD_ROW = (
    "new-ngo,New NGO,GH,africa,ngo,en,Africa/Accra,No child labour,We act.,2021-06-12,"
    "@newngo,https://example.org"
)
UPDATES_HEADER = "id,pledgemaker_id,pillar,kind,text,submitted_at,consent_to_publish"


def row(**changes: str) -> str:
    """GOOD_ROW with some fields replaced (id too, so rows do not repeat)."""
    values = dict(zip(HEADER.split(","), GOOD_ROW.split(","), strict=True))
    values.update(changes)
    return ",".join(values.values())


def run_cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return pledgebot(cwd, *args)  # importing needs no secret


@pytest.fixture
def empty_app(config: Config) -> Iterator[App]:
    app = build_app(config)
    app.db.upgrade()
    yield app
    app.close()


def count(app: App, model: type) -> int:
    with app.db.session() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def names(app: App) -> dict[str, str]:
    with app.db.session() as session:
        return dict(session.execute(select(Pledgemaker.id, Pledgemaker.name)).all())


def write(tmp_path: Path, text: str | bytes, name: str = "in.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    return path


def rejected(app: App, path: Path, importer=import_pledgemakers) -> list[str]:  # type: ignore[no-untyped-def]
    """Import and expect every problem; return them without the file prefix."""
    with pytest.raises(ImportRowsError) as caught, app.db.session() as session:
        importer(session, path)
    lines = [str(p) for p in caught.value.problems]
    assert str(caught.value).splitlines() == lines
    return [line.removeprefix(str(path)) for line in lines]


# -- each bad row: its line, its field, nothing imported -----------------------------------------
@pytest.mark.parametrize(
    ("bad", "expected"),
    [
        pytest.param(
            row(id="a", country="XX"),
            ":3: country: unknown country code (ISO 3166-1 alpha-2) 'XX'",
            id="country",
        ),
        pytest.param(
            row(id="a", region="afrika"),
            ":3: region: unknown region 'afrika' (did you mean 'africa'?)",
            id="region-typo",
        ),
        pytest.param(
            row(id="a", sector="charity"),
            ":3: sector: unknown sector 'charity'",
            id="sector",
        ),
        pytest.param(
            row(id="a", language="de"),
            ":3: language: unknown language 'de'",
            id="language",
        ),
        pytest.param(
            row(id="a", timezone="Africa/Acra"),
            ":3: timezone: unknown IANA time zone 'Africa/Acra' (did you mean 'Africa/Accra'?)",
            id="timezone",
        ),
        pytest.param(
            row(id="a", pledge_date="2021-02-30"),
            ":3: pledge_date: day is out of range for month (got '2021-02-30')",
            id="date",
        ),
        pytest.param(
            row(id="a", pledge_date="12/06/2021"),
            ":3: pledge_date: not an ISO 8601 value like 2021-06-12 (got '12/06/2021')",
            id="date-format",
        ),
        pytest.param(
            row(id="a", pledge_date="1609459200"),
            ":3: pledge_date: not an ISO 8601 value like 2021-06-12 (got '1609459200')",
            id="date-timestamp",
        ),
        pytest.param(
            row(id="a", x_handle="ilo"),
            ":3: x_handle: must be @ and 1-15 letters, digits or '_' (got 'ilo')",
            id="x-handle",
        ),
        pytest.param(
            row(id="a", website="www.example.org"),
            ":3: website: must start with https:// (or http://) (got 'www.example.org')",
            id="website",
        ),
        pytest.param(
            row(id="a b"),
            ":3: id: must be 1-64 letters, digits, '_', '.' or '-', starting with a letter or digit"
            " (got 'a b')",
            id="id",
        ),
        pytest.param(
            row(id="a", name=""),
            ":3: name: String should have at least 1 character (got '')",
            id="empty-name",
        ),
        pytest.param(row(id="a") + ",extra", ":3: expected 12 fields, found 13", id="too-many"),
        pytest.param(row(id="a").rsplit(",", 1)[0], ":3: expected 12 fields, found 11", id="short"),
        pytest.param(row(), ":3: id 'new-ngo' repeats line 2", id="duplicate-id"),
        pytest.param(
            row(id="a", name='"Bad"quote'),
            ":3: malformed CSV: ',' expected after '\"'",
            id="malformed-quote",
        ),
    ],
)
def test_bad_row_is_reported_with_line_and_field_and_nothing_is_imported(
    app: App, tmp_path: Path, bad: str, expected: str
) -> None:
    before = names(app)
    path = write(tmp_path, f"{HEADER}\n{GOOD_ROW}\n{bad}\n")
    assert rejected(app, path) == [expected]
    assert names(app) == before, "the good row on line 2 must not be imported either"


def test_every_bad_row_at_once_through_the_cli(tmp_path: Path, config_path: Path) -> None:
    lines = [
        HEADER,
        row(id="ok-1"),
        row(id="b-3", country="XX"),
        "",  # a blank line is skipped but still counted
        row(id="b-5", region="asia", sector="charity"),
        row(id="ok-6", pledge_text='"Two\nlines"'),  # one record over lines 6 and 7
        row(id="b-8", language="de"),
        row(id="ok-1"),
    ]
    path = write(tmp_path, "\n".join(lines) + "\n", "people.csv")
    proc = run_cli(tmp_path, "import", "pledgemakers", "people.csv")
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert "Traceback" not in proc.stderr
    assert proc.stderr.splitlines() == [
        "people.csv:3: country: unknown country code (ISO 3166-1 alpha-2) 'XX'",
        "people.csv:5: region: unknown region 'asia' (did you mean 'asia_pacific'?)",
        "people.csv:5: sector: unknown sector 'charity'",
        "people.csv:8: language: unknown language 'de'",
        "people.csv:9: id 'ok-1' repeats line 2",
    ]
    app = build_app(load_config(config_path, required=True))
    try:
        assert count(app, Pledgemaker) == 0, "nothing imported, not even the good rows"
    finally:
        app.close()
    assert path.read_text(encoding="utf-8").count("\n") == 9


def test_embedded_newlines_shift_later_line_numbers(empty_app: App, tmp_path: Path) -> None:
    text = (
        f"{HEADER}\n"
        + row(id="a1", pledge_text='"First line\nsecond line\nthird line"')
        + "\n"
        + row(id="a2", country="XX")
        + "\n"
    )
    assert rejected(empty_app, write(tmp_path, text)) == [
        ":5: country: unknown country code (ISO 3166-1 alpha-2) 'XX'"
    ]


def test_crlf_line_endings_and_a_byte_order_mark_are_fine(empty_app: App, tmp_path: Path) -> None:
    text = "\ufeff" + f"{HEADER}\r\n{GOOD_ROW}\r\n" + row(id="b", country="XX") + "\r\n"
    assert rejected(empty_app, write(tmp_path, text)) == [
        ":3: country: unknown country code (ISO 3166-1 alpha-2) 'XX'"
    ]
    with empty_app.db.session() as session:
        result = import_pledgemakers(
            session, write(tmp_path, "\ufeff" + f"{HEADER}\r\n{GOOD_ROW}\r\n")
        )
    assert (result.created, result.updated) == (1, 0)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            HEADER.replace(",timezone", "") + "\n",
            [":1: missing column(s): timezone"],
            id="missing-column",
        ),
        pytest.param(
            HEADER.replace("x_handle", "twitter") + "\n",
            [":1: unknown column 'twitter'"],
            id="unknown-column",
        ),
        pytest.param(
            HEADER.replace("pledge_date", "pledgedate") + "\n",
            [
                ":1: unknown column 'pledgedate' (did you mean 'pledge_date'?)",
                ":1: missing column(s): pledge_date",
            ],
            id="column-typo",
        ),
        pytest.param(
            "name,id" + HEADER.removeprefix("id,name") + "\n",
            [":1: the first column must be 'id'"],
            id="id-not-first",
        ),
        pytest.param("", [":1: empty file: a header row is required"], id="empty-file"),
    ],
)
def test_header_problems(empty_app: App, tmp_path: Path, text: str, expected: list[str]) -> None:
    assert rejected(empty_app, write(tmp_path, text + GOOD_ROW + "\n" if text else "")) == expected
    assert count(empty_app, Pledgemaker) == 0


def test_non_utf8_file_is_refused_and_nothing_imported(empty_app: App, tmp_path: Path) -> None:
    data = f"{HEADER}\n{GOOD_ROW}\n".encode() + row(id="b", name="Café").encode("latin-1") + b"\n"
    path = write(tmp_path, data)
    offset = data.index(b"\xe9")
    [problem] = rejected(empty_app, path)
    assert problem.endswith(f": not UTF-8 (byte {offset})") and problem.startswith(":")
    assert count(empty_app, Pledgemaker) == 0


def test_missing_file_is_one_line(empty_app: App, tmp_path: Path) -> None:
    path = tmp_path / "nope.csv"
    assert rejected(empty_app, path) == [": cannot read: No such file or directory"]


# -- upsert and the samples -------------------------------------------------------------------------
def test_samples_import_40_pledgemakers_and_8_updates(tmp_path: Path, config_path: Path) -> None:
    first = run_cli(tmp_path, "import", "pledgemakers", str(ROOT / "data/sample/pledgemakers.csv"))
    assert (first.returncode, first.stdout) == (
        0,
        "pledgemakers created: 40\npledgemakers updated: 0\n",
    ), first.stderr
    updates = run_cli(tmp_path, "import", "updates", str(SAMPLE_UPDATES))
    assert (updates.returncode, updates.stdout) == (
        0,
        "updates created: 8\nupdates updated: 0\n",
    ), updates.stderr
    app = build_app(load_config(config_path, required=True))
    try:
        assert (count(app, Pledgemaker), count(app, JourneyUpdate)) == (40, 8)
    finally:
        app.close()


def test_reimport_with_one_changed_name_updates_one_row(app: App, tmp_path: Path) -> None:
    sample = (ROOT / "data/sample/pledgemakers.csv").read_text(encoding="utf-8")
    assert "Smallholder Tea Growers Association of Kericho" in sample
    changed = sample.replace(
        "Smallholder Tea Growers Association of Kericho", "Kericho Tea Growers (renamed)"
    )
    path = write(tmp_path, changed, "renamed.csv")
    proc = run_cli(tmp_path, "import", "pledgemakers", "renamed.csv")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "pledgemakers created: 0\npledgemakers updated: 1\n"
    assert count(app, Pledgemaker) == 40
    assert names(app)["ke-tea-growers"] == "Kericho Tea Growers (renamed)"
    with app.db.session() as session:
        again = import_pledgemakers(session, path)
    assert (again.created, again.updated) == (0, 0), "an unchanged re-import changes nothing"


def test_reimport_of_updates_is_an_upsert(app: App, tmp_path: Path) -> None:
    with app.db.session() as session:
        first = import_updates(session, SAMPLE_UPDATES)
    text = SAMPLE_UPDATES.read_text(encoding="utf-8").replace(",no\n", ",yes\n", 1)
    with app.db.session() as session:
        second = import_updates(session, write(tmp_path, text))
    assert ((first.created, first.updated), (second.created, second.updated)) == ((8, 0), (0, 1))
    assert count(app, JourneyUpdate) == 8


def test_update_for_an_unknown_pledgemaker_is_a_row_error(app: App, tmp_path: Path) -> None:
    lines = SAMPLE_UPDATES.read_text(encoding="utf-8").splitlines()
    lines[4] = lines[4].replace("cl-mintrab", "cl-mintrab-typo")
    path = write(tmp_path, "\n".join(lines) + "\n")
    assert rejected(app, path, import_updates) == [
        ":5: pledgemaker_id: no pledgemaker 'cl-mintrab-typo'"
    ]
    assert count(app, JourneyUpdate) == 0, "the seven good rows are not imported either"


@pytest.mark.parametrize(
    ("bad", "expected"),
    [
        pytest.param(
            "u2,ilo,act,progress,Text,2021-07-14T10:15:00,yes",
            ":3: submitted_at: needs a UTC offset, e.g. 2021-06-12T09:30:00+00:00 "
            "(got '2021-07-14T10:15:00')",
            id="naive-time",
        ),
        pytest.param(
            "u2,ilo,acting,progress,Text,2021-07-14T10:15:00+00:00,yes",
            ":3: pillar: unknown pillar 'acting' (did you mean 'act'?)",
            id="pillar",
        ),
        pytest.param(
            "u2,ilo,act,progress,Text,2021-07-14T10:15:00+00:00,maybe",
            ":3: consent_to_publish: Input should be a valid boolean, unable to interpret "
            "input (got 'maybe')",
            id="consent",
        ),
    ],
)
def test_bad_update_rows(app: App, tmp_path: Path, bad: str, expected: str) -> None:
    good = "u1,ilo,act,progress,Text,2021-07-14T10:15:00+00:00,yes"
    path = write(tmp_path, f"{UPDATES_HEADER}\n{good}\n{bad}\n")
    assert rejected(app, path, import_updates) == [expected]
    assert count(app, JourneyUpdate) == 0


# -- bugs found while writing these tests ------------------------------------------------------------
def test_a_repeated_column_is_a_header_error(empty_app: App, tmp_path: Path) -> None:
    header = HEADER.replace("name,", "name,name,", 1)
    record = ",".join(["new-ngo", "First name", "Second name", *GOOD_ROW.split(",")[2:]])
    path = write(tmp_path, f"{header}\n{record}\n")
    problems = rejected(empty_app, path)
    assert len(problems) == 1 and problems[0].startswith(":1: ") and "'name'" in problems[0]
    assert count(empty_app, Pledgemaker) == 0


def test_non_utf8_byte_is_reported_with_its_line(empty_app: App, tmp_path: Path) -> None:
    data = f"{HEADER}\n{GOOD_ROW}\n".encode() + row(id="b", name="Café").encode("latin-1") + b"\n"
    problems = rejected(empty_app, write(tmp_path, data))
    assert len(problems) == 1 and problems[0].startswith(":3: not UTF-8")


def test_unknown_pledgemaker_is_listed_with_the_other_row_errors(app: App, tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f"{UPDATES_HEADER}\n"
        "u1,ilo,acting,progress,Text,2021-07-14T10:15:00+00:00,yes\n"
        "u2,nobody,act,progress,Text,2021-07-14T10:15:00+00:00,yes\n",
    )
    assert rejected(app, path, import_updates) == [
        ":2: pillar: unknown pillar 'acting' (did you mean 'act'?)",
        ":3: pledgemaker_id: no pledgemaker 'nobody'",
    ]


def test_the_optional_addresses_and_handles_of_other_networks(app: App, tmp_path: Path) -> None:
    header = f"{HEADER},email,matrix_id,bluesky_handle,linkedin_organization_id,fediverse_handle"
    good = f"{row(id='nets')},Info@NGO.example,@ngo:matrix.org,@NGO.bsky.social,1234,@ngo@mastodon.social"
    import_pledgemakers_ok = write(tmp_path, f"{header}\n{good}\n")
    with app.db.session() as session:
        import_pledgemakers(session, import_pledgemakers_ok)
    with app.db.session() as session:
        found = session.get(Pledgemaker, "nets")
        assert found is not None
        handles = found.handles
        assert (handles.get("email"), handles.get("matrix"), handles.get("bluesky")) == (
            "info@ngo.example",
            "@ngo:matrix.org",
            "@ngo.bsky.social",
        )
        assert handles.get("linkedin") == "1234"
    bad = [
        f"{row(id='b1')},two@a.example;three@b.example,,,,",
        f"{row(id='b2')},,ngo:matrix.org,,,",
        f"{row(id='b3')},,,ngo.bsky.social,,",
        f"{row(id='b4')},,,,urn:li:organization:12,",
    ]
    path = write(tmp_path, header + "\n" + "\n".join(bad) + "\n")
    assert rejected(app, path) == [
        ":2: email: must be one email address, e.g. info@example.org "
        "(got 'two@a.example;three@b.example')",
        ":3: matrix_id: must be a Matrix user id, e.g. @ilo:matrix.org (got 'ngo:matrix.org')",
        ":4: bluesky_handle: must be @ and a Bluesky handle, e.g. @ilo.bsky.social "
        "(got 'ngo.bsky.social')",
        ":5: linkedin_organization_id: must be the number of their LinkedIn page "
        "(urn:li:organization:N) (got 'urn:li:organization:12')",
    ]
