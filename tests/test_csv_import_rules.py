"""CSV import defects of issue 16: a re-import without optional columns (item 2), changed text
of an approved update (item 3), the messages for odd files (item 17) and the write transaction
of a long import (item 6)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import time_machine
from sqlalchemy import event, select

from bot.community import review
from bot.community.importer import import_pledgemakers, import_updates
from bot.community.row_models import HANDLE_COLUMNS
from bot.core.errors import ImportRowsError
from bot.core.models import JourneyUpdate, Pledgemaker, utcnow
from bot.service import feed
from bot.service.app import App, build_app
from bot.settings.config import Config
from tests.auxil.cli import pledgebot

HEADER = (
    "id,name,country,region,sector,language,timezone,pledge_title,pledge_text,pledge_date,"
    "x_handle,website"
)
ROW = (
    "new-ngo,New NGO,GH,africa,ngo,en,Africa/Accra,No child labour,We act.,2021-06-12,"
    "@newngo,https://example.org"
)
NETWORKS = "email,matrix_id,fediverse_handle,bluesky_handle,linkedin_organization_id"
ADDRESSES = "info@ngo.example,@ngo:matrix.org,@ngo@mastodon.social,@ngo.bsky.social,1234"
UPDATES = "id,pledgemaker_id,pillar,kind,text,submitted_at,consent_to_publish"


def row(**changes: str) -> str:
    values = dict(zip(HEADER.split(","), ROW.split(","), strict=True)) | changes
    return ",".join(values.values())


@pytest.fixture
def empty_app(config: Config) -> Iterator[App]:
    app = build_app(config)
    app.db.upgrade()
    yield app
    app.close()


def write(tmp_path: Path, text: str | bytes, name: str = "in.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    return path


def problems(app: App, path: Path, importer: Any = import_pledgemakers) -> list[str]:
    with pytest.raises(ImportRowsError) as caught, app.db.session() as session:
        importer(session, path)
    return [str(p).removeprefix(str(path)) for p in caught.value.problems]


def networks(app: App, pledgemaker_id: str = "new-ngo") -> tuple[Any, ...]:
    with app.db.session() as session:
        found = session.get(Pledgemaker, pledgemaker_id)
        assert found is not None
        given = [found.handles.get(HANDLE_COLUMNS[column]) for column in NETWORKS.split(",")]
        return (*given, found.handles.get("x"), found.website, found.name)


# -- item 2: a column absent from the file leaves what is stored alone -----------------------------
def test_a_reimport_without_the_optional_columns_keeps_them(app: App, tmp_path: Path) -> None:
    full = write(tmp_path, f"{HEADER},{NETWORKS}\n{ROW},{ADDRESSES}\n", "full.csv")
    with app.db.session() as session:
        import_pledgemakers(session, full)
    kept = networks(app)
    assert kept[:5] == tuple(ADDRESSES.split(","))

    short = "id,name,country,region,sector,language,timezone,pledge_title,pledge_text,pledge_date"
    renamed = ",".join(row(name="Renamed NGO").split(",")[:10])
    with app.db.session() as session:
        result = import_pledgemakers(session, write(tmp_path, f"{short}\n{renamed}\n"))
    assert (result.created, result.updated) == (0, 1)
    assert networks(app) == (*kept[:-1], "Renamed NGO"), "absent columns are left alone"

    with app.db.session() as session:
        result = import_pledgemakers(
            session, write(tmp_path, f"{HEADER}\n{row(name='Renamed NGO')}\n")
        )
    assert (result.created, result.updated) == (0, 0), "same values in the columns given"

    emptied = f"{HEADER},email,matrix_id\n{row(name='Renamed NGO', x_handle='')},,\n"
    with app.db.session() as session:
        result = import_pledgemakers(session, write(tmp_path, emptied))
    assert (result.created, result.updated) == (0, 1)
    assert networks(app) == (
        None,
        None,
        "@ngo@mastodon.social",
        "@ngo.bsky.social",
        "1234",
        None,
        "https://example.org",
        "Renamed NGO",
    ), "an empty cell in a column that is there clears it"


def test_a_new_pledgemaker_without_the_optional_columns_has_them_empty(
    empty_app: App, tmp_path: Path
) -> None:
    short = "id,name,country,region,sector,language,timezone,pledge_title,pledge_text,pledge_date"
    with empty_app.db.session() as session:
        import_pledgemakers(session, write(tmp_path, f"{short}\n{','.join(ROW.split(',')[:10])}\n"))
    assert networks(empty_app) == (None,) * 7 + ("New NGO",)


# -- item 3: changed text goes back to moderation ----------------------------------------------------
def _updates(tmp_path: Path, text: str, consent: str = "yes") -> Path:
    return write(
        tmp_path,
        f"{UPDATES}\nu1,ilo,act,progress,{text},2021-07-14T10:15:00+00:00,{consent}\n",
        "updates.csv",
    )


def _update(app: App) -> JourneyUpdate:
    with app.db.session() as session:
        found = session.scalar(select(JourneyUpdate).where(JourneyUpdate.source_ref == "u1"))
        assert found is not None
        session.expunge(found)
        return found


def _feed_texts(app: App) -> list[str]:
    with app.db.session() as session:
        return [entry.text for entry in feed.entries(session)]


@time_machine.travel("2026-03-02 09:00:00+00:00", tick=False)
def test_changed_text_of_an_approved_update_is_moderated_again(app: App, tmp_path: Path) -> None:
    with app.db.session() as session:
        import_updates(session, _updates(tmp_path, "We trained 40 inspectors."))
    first = _update(app).id
    with app.db.session() as session:
        review.approve(session, first).edited_text = "We trained 40 labour inspectors."
    assert _feed_texts(app) == ["We trained 40 labour inspectors."]

    with app.db.session() as session:
        same = import_updates(session, _updates(tmp_path, "We trained 40 inspectors.", "yes"))
    assert (same.created, same.updated) == (0, 0)
    assert _update(app).moderation == "approved", "an unchanged row keeps its approval"

    changed_text = "We trained 40 inspectors. Visit evil.example for more!"
    with app.db.session() as session:
        result = import_updates(session, _updates(tmp_path, changed_text, "no"))
    assert (result.created, result.updated) == (0, 1)
    update = _update(app)
    assert (update.text, update.moderation, update.moderated_at) == (changed_text, "pending", None)
    assert update.edited_text is None, "the edit was of other words"
    assert update.consent_to_publish is False, "consent is what the new row says"
    assert _feed_texts(app) == [], "nothing unreviewed is published"

    with app.db.session() as session:
        review.approve(session, update.id)
        import_updates(session, _updates(tmp_path, changed_text, "yes"))
    assert (_update(app).moderation, _update(app).consent_to_publish) == ("approved", True)
    assert _feed_texts(app) == [changed_text], "consent alone changed: approval stands"


def _queue_post(app: App, update_id: int, key: str) -> int:
    """A post of the update waiting in the outbox, as the amplify planner leaves it."""
    from bot.core.models import OutboxMessage, Post
    from bot.delivery import outbox
    from bot.delivery.messages import PlannedMessage

    with app.db.session() as session:
        outbox.enqueue(session, [PlannedMessage(key, "x", "timeline", "the old words")])
        first = session.scalar(select(OutboxMessage.id).where(OutboxMessage.idempotency_key == key))
        assert first is not None
        session.add(
            Post(
                journey_update_id=update_id,
                pledgemaker_id="ilo",
                campaign_id="journeys",
                channel="x",
                first_outbox_id=first,
            )
        )
        return first


@pytest.mark.parametrize(
    "text,consent,why",
    [
        ("We trained 41 inspectors.", "yes", "the update's text changed in an import"),
        ("We trained 40 inspectors.", "no", "consent withdrawn in an import"),
    ],
    ids=["reworded", "consent-taken-back"],
)
@time_machine.travel("2026-03-02 09:00:00+00:00", tick=False)
def test_a_post_queued_from_what_an_import_changes_is_cancelled(
    app: App, tmp_path: Path, text: str, consent: str, why: str
) -> None:
    from bot.core.models import OutboxMessage

    with app.db.session() as session:
        import_updates(session, _updates(tmp_path, "We trained 40 inspectors."))
    update_id = _update(app).id
    with app.db.session() as session:
        review.approve(session, update_id)
    queued = _queue_post(app, update_id, f"amplify:journeys:{update_id}:x")
    with app.db.session() as session:
        import_updates(session, _updates(tmp_path, text, consent))
    with app.db.session() as session:
        post = session.get(OutboxMessage, queued)
        assert post is not None
        assert (post.state, post.last_error, post.failure_class) == (
            "cancelled",
            f"cancelled: {why}",
            "withdrawn",
        ), "never sent: nobody approved these words, or they said no"


# -- item 17: odd files get a clear line -------------------------------------------------------------
def test_a_huge_field_names_its_column_and_the_limit(empty_app: App, tmp_path: Path) -> None:
    huge = "x" * 5_000_000
    path = write(tmp_path, f"{HEADER}\n{row(pledge_text=huge)}\n")
    assert problems(empty_app, path) == [
        ":2: pledge_text: 5,000,000 characters, more than the limit of 20,000"
    ]


@pytest.mark.parametrize(
    ("separator", "named"), [(";", "semicolons (;)"), ("\t", "tabs")], ids=["semicolon", "tab"]
)
def test_another_separator_is_named(
    empty_app: App, tmp_path: Path, separator: str, named: str
) -> None:
    text = HEADER.replace(",", separator) + "\n" + ROW.replace(",", separator) + "\n"
    assert problems(empty_app, write(tmp_path, text)) == [
        f":1: the columns are separated by {named}, not commas: save the file as "
        "CSV UTF-8 (comma-delimited)"
    ]


def test_a_spreadsheets_empty_trailing_columns_are_ignored(empty_app: App, tmp_path: Path) -> None:
    with empty_app.db.session() as session:
        result = import_pledgemakers(session, write(tmp_path, f"{HEADER},,\n{ROW},,\n"))
    assert result.created == 1
    text = f"{HEADER},,\n{row(id='a')},,\n{row(id='b')},,surprise\n"
    assert problems(empty_app, write(tmp_path, text)) == [":3: expected 12 fields, found 14"]
    middle = HEADER.replace(",website", ",,website")
    assert problems(empty_app, write(tmp_path, f"{middle}\n{ROW}\n")) == [
        ":1: column 12 has no name"
    ]


def test_capitalised_headers_get_a_did_you_mean(empty_app: App, tmp_path: Path) -> None:
    header = HEADER.replace("id,name", "ID,Name").replace("pledge_date", "Pledge Date")
    assert problems(empty_app, write(tmp_path, f"{header}\n{ROW}\n")) == [
        ":1: unknown column 'ID' (did you mean 'id'?)",
        ":1: unknown column 'Name' (did you mean 'name'?)",
        ":1: unknown column 'Pledge Date' (did you mean 'pledge_date'?)",
        ":1: missing column(s): id, name, pledge_date",
    ]


def test_an_update_repeating_the_id_of_a_bad_row_is_reported(app: App, tmp_path: Path) -> None:
    text = (
        f"{UPDATES}\n"
        "u1,ilo,acting,progress,Text,2021-07-14T10:15:00+00:00,yes\n"
        "u1,ilo,act,progress,Text,2021-07-14T10:15:00+00:00,yes\n"
    )
    assert problems(app, write(tmp_path, text), import_updates) == [
        ":2: pillar: unknown pillar 'acting' (did you mean 'act'?)",
        ":3: id 'u1' repeats line 2",
    ]


@pytest.mark.parametrize("offset", ["+25:00", "+15:00", "-13:00"])
def test_an_impossible_utc_offset_is_said_plainly(app: App, tmp_path: Path, offset: str) -> None:
    text = f"{UPDATES}\nu1,ilo,act,progress,Text,2021-07-14T10:15:00{offset},yes\n"
    assert problems(app, write(tmp_path, text), import_updates) == [
        ":2: submitted_at: the UTC offset must be between -12:00 and +14:00 "
        f"(got '2021-07-14T10:15:00{offset}')"
    ]


def test_the_extreme_real_offsets_are_fine(app: App, tmp_path: Path) -> None:
    text = (
        f"{UPDATES}\nu1,ilo,act,progress,Text,2021-07-14T10:15:00+14:00,yes\n"
        "u2,ilo,act,progress,Text,2021-07-14T10:15:00-12:00,yes\n"
    )
    with app.db.session() as session:
        assert import_updates(session, write(tmp_path, text)).created == 2


def test_a_nul_byte_or_a_line_break_in_a_name_is_refused(empty_app: App, tmp_path: Path) -> None:
    lines = [
        HEADER,
        row(id="a", name="New\x00NGO"),
        row(id="b", name='"New\nNGO"'),
        row(id="c", pledge_title="Tab\there"),
        row(id="d", pledge_text="Nul\x00here"),
        row(id="e", pledge_text='"Two\nlines\tand a tab"'),
    ]
    assert problems(empty_app, write(tmp_path, "\n".join(lines) + "\n")) == [
        ":2: name: must be one line of text without control characters "
        "(found a NUL byte at character 4)",
        ":3: name: must be one line of text without control characters "
        "(found a line break at character 4)",
        ":5: pledge_title: must be one line of text without control characters "
        "(found the control character U+0009 at character 4)",
        ":6: pledge_text: must be text without control characters "
        "(found a NUL byte at character 4)",
    ]


def test_ids_differing_only_in_case_are_imported_with_a_warning(app: App, tmp_path: Path) -> None:
    text = f"{HEADER}\n{row(id='New-NGO')}\n{row(id='new-ngo')}\n{row(id='ILO')}\n"
    write(tmp_path, text, "people.csv")
    proc = pledgebot(tmp_path, "import", "pledgemakers", "people.csv")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "pledgemakers created: 3\npledgemakers updated: 0\n"
    assert proc.stderr.splitlines() == [
        "warning: people.csv:3: id 'new-ngo' differs only in case from 'New-NGO' on line 2: "
        "they are two different pledgemakers",
        "warning: people.csv:4: id 'ILO' differs only in case from the stored 'ilo': "
        "a new pledgemaker is made",
    ]
    with app.db.session() as session:
        ids = set(session.scalars(select(Pledgemaker.id)))
    assert {"New-NGO", "new-ngo", "ILO", "ilo"} <= ids


def test_an_update_for_a_pledgemaker_in_other_case_gets_a_hint(app: App, tmp_path: Path) -> None:
    text = f"{UPDATES}\nu1,ILO,act,progress,Text,2021-07-14T10:15:00+00:00,yes\n"
    assert problems(app, write(tmp_path, text), import_updates) == [
        ":2: pledgemaker_id: no pledgemaker 'ILO' (did you mean 'ilo'?)"
    ]


# -- item 6: check everything first, then write in a few statements --------------------------------
def _statements(app: App) -> list[str]:
    seen: list[str] = []

    @event.listens_for(app.db.engine, "before_cursor_execute")
    def _record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement.split()[0].upper())

    return seen


def test_an_import_writes_with_a_few_bulk_statements(empty_app: App, tmp_path: Path) -> None:
    """The write transaction (on SQLite, the write lock `pledgebot run` needs) runs a few
    statements whatever the number of rows, whichever columns changed in each."""
    rows = [row(id=f"org-{n}", name=f"Org {n}") for n in range(300)]
    with empty_app.db.session() as session:
        import_pledgemakers(session, write(tmp_path, "\n".join([HEADER, *rows]) + "\n"))
    seen = _statements(empty_app)
    changed = [r.replace(",Org ", ",New ") for r in rows[:100]]
    changed += [r.replace("No child labour", "Other title") for r in rows[100:200]]
    changed += [row(id=f"more-{n}") for n in range(100)]
    with empty_app.db.session() as session:
        result = import_pledgemakers(session, write(tmp_path, "\n".join([HEADER, *changed])))
    assert (result.created, result.updated) == (100, 200)
    # One INSERT per table (the new rows, their X handles), one UPDATE per set of changed
    # columns; SELECTs of the erased, the stored rows and their handles.
    assert seen.count("UPDATE") == 2 and seen.count("INSERT") == 2 and len(seen) <= 8, seen


def test_a_bad_file_is_refused_before_the_database_is_touched(
    empty_app: App, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file is read and checked before the first statement (which, on SQLite, takes the
    write lock that `pledgebot run` needs)."""
    seen = _statements(empty_app)
    assert problems(empty_app, write(tmp_path, f"{HEADER.upper()}\n{ROW}\n"))
    assert seen == []
    from bot.community import importer

    read_at: list[int] = []
    real = importer.read

    def reading(*args: Any, **kwargs: Any) -> Any:
        read_at.append(len(seen))
        return real(*args, **kwargs)

    monkeypatch.setattr(importer, "read", reading)
    with empty_app.db.session() as session:
        import_pledgemakers(session, write(tmp_path, f"{HEADER}\n{ROW}\n"))
    assert read_at == [0], "no statement ran before the file was read and checked"
    assert "INSERT" in seen


def test_the_dashboard_import_shows_the_warnings(app: App) -> None:
    from tests.test_web_auth import signed_in
    from tests.test_web_pledgemakers import csrf

    editor = signed_in(app, "editor@example.org", "editor")
    text = f"{HEADER}\n{row(id='ILO')}\n"
    done = editor.post(
        "/pledgemakers/import",
        data={"csrf": csrf(editor)},
        files={"file": ("people.csv", text.encode(), "text/csv")},
    )
    assert done.status_code == 200
    assert "1 new, 0 updated" in done.text
    assert "Warning: people.csv:2: id &#39;ILO&#39; differs only in case" in done.text


def test_the_id_of_an_erased_pledgemakers_record_is_refused(app: App, tmp_path: Path) -> None:
    with app.db.session() as session:
        found = session.get(Pledgemaker, "ilo")
        assert found is not None
        found.handles.clear()  # as an erasure does: nothing refers to the old id any more
        session.flush()
        found.id, found.erased_at, found.name = "erased-0a1b2c3d4e5f", utcnow(), ""
    path = write(tmp_path, f"{HEADER}\n{row(id='erased-0a1b2c3d4e5f')}\n")
    assert problems(app, path) == [":2: id 'erased-0a1b2c3d4e5f' is an erased pledgemaker's"]
    with app.db.session() as session:
        assert session.get(Pledgemaker, "erased-0a1b2c3d4e5f").name == ""  # type: ignore[union-attr]
