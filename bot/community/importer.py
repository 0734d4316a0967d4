"""CSV import of pledgemakers and journey updates: upsert by stable id, all or nothing.

Every bad row is reported with its line number and reason; if any row is bad nothing is written.
A whole file is read and checked (``bot.community.csv_rows``, against ``row_models``) before the
database is touched, and the changes are then written with one bulk statement per kind: the write
transaction (on SQLite the database's write lock, which ``pledgebot run`` needs too) lasts only
as long as the writing. An optional column absent from the file leaves what is stored alone; an
empty cell clears it. A handle column's values live in the handles table, one row per network.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import UTC
from pathlib import Path
from typing import IO, Any

from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.orm import Session

from bot.community.csv_rows import Parsed, read
from bot.community.row_models import HANDLE_COLUMNS, PLEDGEMAKER_COLUMNS, PledgemakerRow, UpdateRow
from bot.core import csv_safety
from bot.core.errors import Problem
from bot.core.models import Handle, JourneyUpdate, Pledgemaker, utcnow
from bot.delivery import outbox


@dataclass
class ImportResult:
    created: int
    updated: int
    warnings: list[Problem] = field(default_factory=list)


UPDATE_COLUMNS = ("pledgemaker_id", "pillar", "kind", "text", "consent_to_publish", "created_at")


def import_pledgemakers(session: Session, path: Path, *, data: bytes | None = None) -> ImportResult:
    """Create or change pledgemakers by id; only the columns the file has are changed."""
    # Everything that needs no database first: SQLite's write lock is taken by the first
    # statement and held until the caller commits.
    parsed = read(path, PledgemakerRow, data=data)
    given = [c for c in PLEDGEMAKER_COLUMNS if c in parsed.columns and c not in HANDLE_COLUMNS]
    networks = [network for c, network in HANDLE_COLUMNS.items() if c in parsed.columns]
    now = utcnow()
    rows = []
    for line, row in parsed.rows:
        values = row.model_dump()
        theirs = {network: values.pop(column) for column, network in HANDLE_COLUMNS.items()}
        wanted = {network: theirs[network] for network in networks}
        rows.append((line, {"created_at": now, "updated_at": now, **values}, wanted))
    digests = {
        hashlib.sha256(values["id"].encode()).hexdigest(): values["id"] for _, values, _ in rows
    }
    lines = {values["id"]: line for line, values, _ in rows}
    table = Pledgemaker.__table__.c  # Core rows: the ORM would build an object per row
    erased = select(table.id, table.erased_ref, table.erased_at).where(table.erased_at.is_not(None))
    for anonymous, ref, when in session.execute(erased):
        if (erased_id := digests.get(ref)) is not None:
            parsed.problem(
                lines[erased_id],
                f"id {erased_id!r}: erased on request on {when:%Y-%m-%d}; remove this row",
            )
        if anonymous in lines:
            parsed.problem(lines[anonymous], f"id {anonymous!r} is an erased pledgemaker's")
    parsed.raise_problems()
    query = select(*(table[c] for c in given)).where(table.erased_at.is_(None))
    stored = {values[0]: values for values in session.execute(query).tuples().all()}
    _warn_about_case(parsed, stored, "pledgemaker")
    held = _stored_handles(session, networks)
    created: list[dict[str, Any]] = []
    changed: list[dict[str, Any]] = []
    handles = _HandleChanges()
    for _, values, wanted in rows:
        moved = handles.compare(values["id"], wanted, held.get(values["id"], {}))
        before = stored.get(values["id"])
        if before is None:
            created.append(values)  # a column absent from the file: empty
            continue
        diff = {c: values[c] for c, old in zip(given, before, strict=True) if values[c] != old}
        if diff or moved:
            changed.append({"id": values["id"], **diff, "updated_at": now})
    _write(session, Pledgemaker, created, changed)
    handles.write(session)
    return ImportResult(len(created), len(changed), parsed.warnings)


def _stored_handles(session: Session, networks: Collection[str]) -> dict[str, dict[str, str]]:
    """pledgemaker id → network → value, for the networks whose column the file has."""
    if not networks:
        return {}
    held: dict[str, dict[str, str]] = defaultdict(dict)
    query = select(Handle.pledgemaker_id, Handle.network, Handle.value).where(
        Handle.network.in_(networks)
    )
    for pledgemaker_id, network, value in session.execute(query):
        held[pledgemaker_id][network] = value
    return held


@dataclass
class _HandleChanges:
    """What an import does to the handles table: rows to insert, change and delete."""

    added: list[dict[str, str]] = field(default_factory=list)
    changed: list[dict[str, str]] = field(default_factory=list)
    cleared: list[dict[str, str]] = field(default_factory=list)

    def compare(
        self, pledgemaker_id: str, wanted: dict[str, str | None], held: dict[str, str]
    ) -> bool:
        """Note what makes ``held`` into ``wanted`` (None: no handle); whether anything does."""
        differs = False
        for network, value in wanted.items():
            old = held.get(network)
            if value == old:
                continue
            differs = True
            key = {"_pledgemaker": pledgemaker_id, "_network": network}
            if value is None:
                self.cleared.append(key)
            elif old is None:
                self.added.append(
                    {"pledgemaker_id": pledgemaker_id, "network": network, "value": value}
                )
            else:
                self.changed.append({**key, "value": value})
        return differs

    def write(self, session: Session) -> None:
        """After the pledgemakers' own rows (a new pledgemaker's handles refer to it)."""
        table = Handle.__table__  # Core executemany: no ORM object per row
        if self.added:
            session.execute(insert(table), self.added)
        key = (table.c.pledgemaker_id == bindparam("_pledgemaker")) & (
            table.c.network == bindparam("_network")
        )
        if self.changed:
            statement = update(table).where(key).values(value=bindparam("value"))
            session.execute(statement, self.changed)
        if self.cleared:
            session.execute(delete(table).where(key), self.cleared)


def import_updates(session: Session, path: Path) -> ImportResult:
    """Create or change journey updates by their id in the file (``source_ref``). Changed text
    goes back to moderation (its approval was of other words); consent is what the row says."""
    parsed = read(path, UpdateRow)  # before the first statement: no lock yet
    known = set(session.scalars(select(Pledgemaker.id).where(Pledgemaker.erased_at.is_(None))))
    by_case = {pledgemaker.casefold(): pledgemaker for pledgemaker in known}
    for line, row in parsed.rows:
        if row.pledgemaker_id not in known:
            hint = by_case.get(row.pledgemaker_id.casefold())
            parsed.problem(
                line,
                f"pledgemaker_id: no pledgemaker {row.pledgemaker_id!r}"
                + (f" (did you mean {hint!r}?)" if hint else ""),
            )
    parsed.raise_problems()
    table = JourneyUpdate.__table__.c
    columns = [table.source_ref, table.id, *(table[c] for c in UPDATE_COLUMNS)]
    stored = {
        values[0]: values
        for values in session.execute(select(*columns).where(table.source == "import"))
        .tuples()
        .all()
    }
    _warn_about_case(parsed, stored, "update")
    created: list[dict[str, Any]] = []
    changed: list[dict[str, Any]] = []
    for _, row in parsed.rows:
        values = row.model_dump(include=set(UPDATE_COLUMNS))
        values["created_at"] = row.submitted_at.astimezone(UTC)
        before = stored.get(row.id)
        if before is None:
            created.append(
                {
                    **values,
                    "source": "import",
                    "source_ref": row.id,
                    "media": [],
                    "moderation": "pending",
                    "last_reply_at": None,
                }
            )
            continue
        old = dict(zip(UPDATE_COLUMNS, before[2:], strict=True))
        diff = {c: v for c, v in values.items() if v != old[c]}
        if "text" in diff:  # nobody has reviewed these words: moderate again, drop an old edit
            diff |= {
                "moderation": "pending",
                "moderated_at": None,
                "moderation_note": None,
                "edited_text": None,
            }
        if diff:
            changed.append({"id": before[1], **diff})
    _write(session, JourneyUpdate, created, changed)
    # A post queued from the old words, or with a consent the row now takes back, must not go.
    reworded = [c["id"] for c in changed if "text" in c]
    declined = [c["id"] for c in changed if c.get("consent_to_publish") is False]
    outbox.cancel_posts_of(session, reworded, "the update's text changed in an import")
    outbox.cancel_posts_of(session, declined, "consent withdrawn in an import")
    return ImportResult(len(created), len(changed), parsed.warnings)


def _warn_about_case(parsed: Parsed, stored: Collection[str], noun: str) -> None:
    by_case = {key.casefold(): key for key in stored}
    for line, row in parsed.rows:
        other = by_case.get(row.id.casefold())
        if other is not None and row.id not in stored:
            parsed.warn(
                line,
                f"id {row.id!r} differs only in case from the stored {other!r}: "
                f"a new {noun} is made",
            )


def _write(
    session: Session, model: type[Any], created: list[dict[str, Any]], changed: list[dict[str, Any]]
) -> None:
    """Core executemany statements (the ORM's bulk paths cost a few Python calls per row): one
    INSERT for the new rows, one UPDATE by primary key per set of changed columns."""
    table = model.__table__
    if created:
        session.execute(insert(table), created)
    by_columns: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
    for values in changed:
        by_columns[tuple(sorted(values))].append(values)
    for columns, rows in by_columns.items():
        statement = update(table).where(table.c.id == bindparam("_id"))
        statement = statement.values({c: bindparam(c) for c in columns if c != "id"})
        session.execute(statement, [{**values, "_id": values["id"]} for values in rows])


def export_pledgemakers(session: Session, stream: IO[str]) -> int:
    """Every pledgemaker (not erased) as CSV in the import's own format: export, edit, import."""
    own = [c for c in PLEDGEMAKER_COLUMNS if c not in HANDLE_COLUMNS]
    query = select(*(getattr(Pledgemaker, c) for c in own)).where(Pledgemaker.erased_at.is_(None))
    people = session.execute(query.order_by(Pledgemaker.id)).tuples().all()
    held = _stored_handles(session, HANDLE_COLUMNS.values())
    csv_safety.write_records(
        stream,
        PLEDGEMAKER_COLUMNS,
        (
            {
                **dict(zip(own, person, strict=True)),
                **{c: held.get(person[0], {}).get(n) for c, n in HANDLE_COLUMNS.items()},
            }
            for person in people
        ),
    )
    return len(people)
