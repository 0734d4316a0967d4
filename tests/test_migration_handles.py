"""Revision 0011 moves the six per-network columns of pledgemakers into the handles table with
their data, and its downgrade puts them back — on SQLite and on PostgreSQL, with foreign keys
enforced and other rows referring to the pledgemakers (as in a database in use)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import inspect, text

from bot.core.db import MIGRATIONS, Database

COLUMNS = {  # the former column of each network
    "x": "x_handle",
    "mastodon": "fediverse_handle",
    "email": "email",
    "matrix": "matrix_id",
    "bluesky": "bluesky_handle",
    "linkedin": "linkedin_organization_id",
}
PEOPLE = {  # pledgemaker → their values in the six columns (None: NULL)
    "ilo": {
        "x_handle": "@ilo",
        "fediverse_handle": "@ilo@mastodon.social",
        "email": "info@ilo.example",
        "matrix_id": "@ilo:matrix.org",
        "bluesky_handle": "@ilo.bsky.social",
        "linkedin_organization_id": "1234",
    },
    "gh": {"x_handle": "@MELR_Ghana", "email": "desk@melr.example"},
    "ngo": {"matrix_id": "@ngo:example.org", "x_handle": ""},  # an empty cell: no handle
    "quiet": {},
}


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    if request.param == "postgresql":
        url = request.getfixturevalue("postgres_database")
    else:
        url = f"sqlite:///{tmp_path / 'handles.db'}"
    db = Database(url)
    yield db
    db.dispose()


def migrate(db: Database, target: str, *, down: bool = False) -> None:
    """As ``Database.upgrade`` runs Alembic, to any revision."""
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with db.engine.connect() as connection:
        cfg.attributes["connection"] = connection
        (command.downgrade if down else command.upgrade)(cfg, target)


def at_0010_with_people(db: Database) -> None:
    migrate(db, "0010")
    with db.engine.begin() as connection:
        for person, values in PEOPLE.items():
            columns = ", ".join(["id", *values])
            marks = ", ".join(f":{c}" for c in ["id", *values])
            connection.execute(
                text(
                    f"INSERT INTO pledgemakers ({columns}, name, country, region, sector, "
                    "language, timezone, pledge_title, pledge_text, pledge_date, created_at, "
                    f"updated_at) VALUES ({marks}, 'N', 'GH', 'africa', 'ngo', 'en', 'UTC', "
                    "'T', 'P', '2021-06-12', '2021-06-12 00:00:00', '2021-06-12 00:00:00')"
                ),
                {"id": person, **values},
            )
            connection.execute(  # a row referring to them: a table copy would break it
                text(
                    "INSERT INTO contacts (pledgemaker_id, channel, address, status, bound_at) "
                    "VALUES (:id, 'telegram', :id, 'active', '2021-06-12 00:00:00')"
                ),
                {"id": person},
            )


def test_the_upgrade_carries_every_handle_and_the_downgrade_restores_them(
    database: Database,
) -> None:
    at_0010_with_people(database)
    migrate(database, "0011")
    with database.engine.connect() as connection:
        moved = set(connection.execute(text("SELECT pledgemaker_id, network, value FROM handles")))
        left = {c["name"] for c in inspect(connection).get_columns("pledgemakers")}
    expected = {
        (person, network, values[column])
        for person, values in PEOPLE.items()
        for network, column in COLUMNS.items()
        if values.get(column)
    }
    assert moved == expected
    assert len(moved) == 9
    assert not left & set(COLUMNS.values()), "the six columns are gone"

    migrate(database, "0010", down=True)
    with database.engine.connect() as connection:
        names = ", ".join(COLUMNS.values())
        back = {
            row[0]: dict(zip(COLUMNS.values(), row[1:], strict=True))
            for row in connection.execute(text(f"SELECT id, {names} FROM pledgemakers"))
        }
        tables = set(inspect(connection).get_table_names())
    assert "handles" not in tables
    assert back == {
        person: {column: values.get(column) or None for column in COLUMNS.values()}
        for person, values in PEOPLE.items()
    }

    migrate(database, "head")  # and up again: the same rows
    with database.engine.connect() as connection:
        again = set(connection.execute(text("SELECT pledgemaker_id, network, value FROM handles")))
    assert again == expected
