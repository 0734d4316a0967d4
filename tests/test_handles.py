"""Pledgemakers' handles live in one table, a row per network (issue 17): pledgemakers.csv names
each network's column after its channel's spec, a list reads every handle in one query, and an
erasure deletes them."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event, select
from starlette.testclient import TestClient

from bot.channels.registry import known_channels, spec
from bot.community import erasure
from bot.community.row_models import HANDLE_COLUMNS, PLEDGEMAKER_COLUMNS
from bot.core.models import Handle, Pledgemaker
from bot.service import feed
from bot.service.app import App
from tests.test_feed import add_update
from tests.test_web_auth import signed_in

GH = "gh-min-labour"  # no X handle in the sample
ILO = "ilo"  # @ilo in the sample
THEIRS = {
    "x": "@MELR_Ghana",
    "email": "desk@melr.example",
    "matrix": "@melr:matrix.org",
    "mastodon": "@melr@mastodon.social",
    "bluesky": "@melr.bsky.social",
    "linkedin": "1234",
}


def set_handles(app: App, pledgemaker_id: str, handles: dict[str, str]) -> None:
    with app.db.session() as session:
        person = session.get(Pledgemaker, pledgemaker_id)
        assert person is not None
        person.handles.update(handles)


def test_each_channel_with_a_handle_has_its_column_in_pledgemakers_csv() -> None:
    with_handle = {name for name in known_channels() if spec(name).handle}
    assert set(HANDLE_COLUMNS.values()) == with_handle == set(THEIRS)
    assert {spec(name).handle for name in with_handle} <= set(PLEDGEMAKER_COLUMNS)


def test_erasure_deletes_their_handles_and_only_theirs(app: App) -> None:
    set_handles(app, GH, THEIRS)
    with app.db.session() as session:
        held = erasure.export_data(session, GH)["pledgemaker"]
    assert {network: held[column] for column, network in HANDLE_COLUMNS.items()} == THEIRS
    with app.db.session() as session:
        anonymous = erasure.erase(session, GH).new_id
    with app.db.session() as session:
        left = set(session.execute(select(Handle.pledgemaker_id, Handle.network)).tuples())
    assert not {owner for owner, _ in left} & {GH, anonymous}
    assert (ILO, "x") in left, "the others keep theirs"


def test_the_feed_reads_every_credit_line_with_one_query_for_handles(app: App) -> None:
    people = [GH, ILO, "ng-agri-union", "ke-tea-growers"]
    for n, pledgemaker_id in enumerate(people):
        set_handles(app, pledgemaker_id, {"x": f"@maker{n}"})
        add_update(app, pledgemaker_id, f"Update {n} of {pledgemaker_id}.")
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    event.listen(app.db.engine, "before_cursor_execute", record)
    try:
        with app.db.session() as session:
            credits = {entry.credit for entry in feed.entries(session)}
    finally:
        event.remove(app.db.engine, "before_cursor_execute", record)
    assert all(f"(@maker{n})" in " ".join(credits) for n in range(len(people)))
    assert sum("FROM handles" in s for s in statements) == 1, statements


def test_their_page_shows_the_handles_staff_write_to(app: App) -> None:
    set_handles(app, GH, THEIRS)
    editor: TestClient = signed_in(app, "editor@example.org", "editor")
    page = editor.get(f"/pledgemakers/{GH}").text
    assert " · X @MELR_Ghana · desk@melr.example · Matrix @melr:matrix.org" in page
