"""CSV import of pledgemakers and journey updates: upsert by stable id, all or nothing.

Every bad row is reported with its line number and reason; if any row is bad nothing is written.
A whole file is read and checked (``bot.community.csv_rows``) before the database is touched, and
the
changes are then written with one bulk statement per kind: the write transaction (on SQLite the
database's write lock, which ``pledgebot run`` needs too) lasts only as long as the writing.
An optional column absent from the file leaves what is stored alone; an empty cell clears it.
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import IO, Annotated, Any, ClassVar

from pydantic import (
    AfterValidator,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
)
from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.orm import Session

from bot.community.csv_rows import Parsed, RowModel, read
from bot.core import csv_safety
from bot.core.errors import Problem
from bot.core.models import JourneyUpdate, Pledgemaker, utcnow
from bot.core.vocab import (
    LANGUAGES,
    PILLARS,
    REGIONS,
    SECTORS,
    UPDATE_KINDS,
    country_codes,
    require_known,
    time_zones,
)
from bot.delivery import outbox

MAX_TEXT = 20_000  # characters of a pledge or an update: far above any real one
# UTC offsets in use run from -12:00 (Baker Island) to +14:00 (Kiribati).
OFFSETS = (timedelta(hours=-12), timedelta(hours=14))


def _vocabulary(known: Callable[[], Iterable[str]], what: str) -> AfterValidator:
    def check(value: str) -> str:
        choices = known()
        return value if value in choices else require_known(value, choices, what)

    return AfterValidator(check)


def _shaped(pattern: str, rule: str) -> AfterValidator:
    compiled = re.compile(pattern)

    def check(value: str | None) -> str | None:
        if value is not None and not compiled.fullmatch(value):
            raise ValueError(rule)
        return value

    return AfterValidator(check)


def _iso(parse: Callable[[str], Any], example: str) -> BeforeValidator:
    """Only ISO 8601 text: pydantic alone would also take a Unix timestamp as a date."""

    def check(value: Any) -> Any:
        text = str(value).strip()
        try:
            return parse(text)
        except ValueError as exc:
            if str(exc).startswith("offset must be"):  # Python's words for +25:00
                raise ValueError(_OFFSET_RULE) from None
            if re.match(r"\d{4}-\d{2}-\d{2}", text) and "isoformat" not in str(exc):
                raise ValueError(str(exc)) from None  # the right shape, an impossible value
            raise ValueError(f"not an ISO 8601 value like {example}") from None

    return BeforeValidator(check)


_OFFSET_RULE = "the UTC offset must be between -12:00 and +14:00"


def _blank_is_none(value: Any) -> Any:
    return None if isinstance(value, str) and not value.strip() else value


StableId = Annotated[
    str,
    _shaped(
        r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}",
        "must be 1-64 letters, digits, '_', '.' or '-', starting with a letter or digit",
    ),
]
Country = Annotated[str, _vocabulary(country_codes, "country code (ISO 3166-1 alpha-2)")]
Region = Annotated[str, _vocabulary(lambda: REGIONS, "region")]
Sector = Annotated[str, _vocabulary(lambda: SECTORS, "sector")]
Language = Annotated[str, _vocabulary(lambda: LANGUAGES, "language")]
TimeZone = Annotated[str, _vocabulary(time_zones, "IANA time zone")]
Pillar = Annotated[str, _vocabulary(lambda: PILLARS, "pillar")]
Kind = Annotated[str, _vocabulary(lambda: UPDATE_KINDS, "kind")]
Handle = Annotated[
    str | None,
    BeforeValidator(_blank_is_none),
    _shaped(r"@[A-Za-z0-9_]{1,15}", "must be @ and 1-15 letters, digits or '_'"),
]
FediverseHandle = Annotated[
    str | None,
    BeforeValidator(_blank_is_none),
    _shaped(
        r"(?=.{5,300}$)@[A-Za-z0-9_]+(?:[.-]+[A-Za-z0-9_]+)*@(?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,63}",
        "must be @user@instance.domain (e.g. @ilo@mastodon.social), at most 300 characters",
    ),
]
Email = Annotated[
    str | None,
    BeforeValidator(_blank_is_none),
    BeforeValidator(lambda v: v.strip().lower() if isinstance(v, str) else v),
    _shaped(
        r"(?=.{3,254}$)[^@\s,;<>\"]+@[^@\s,;<>\"]+\.[A-Za-z]{2,63}",
        "must be one email address, e.g. info@example.org",
    ),
]
MatrixId = Annotated[
    str | None,
    BeforeValidator(_blank_is_none),
    _shaped(
        r"(?=.{3,255}$)@[a-z0-9._=/+-]+:[A-Za-z0-9.-]+(?::\d{1,5})?",
        "must be a Matrix user id, e.g. @ilo:matrix.org",
    ),
]
BlueskyHandle = Annotated[
    str | None,
    BeforeValidator(_blank_is_none),
    BeforeValidator(lambda v: v.strip().lower() if isinstance(v, str) else v),
    _shaped(
        r"(?=.{4,254}$)@(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,61}[a-z0-9]",
        "must be @ and a Bluesky handle, e.g. @ilo.bsky.social",
    ),
]
LinkedInPage = Annotated[
    str | None,
    BeforeValidator(_blank_is_none),
    _shaped(
        r"[1-9][0-9]{0,19}", "must be the number of their LinkedIn page (urn:li:organization:N)"
    ),
]
Website = Annotated[
    str | None,
    BeforeValidator(_blank_is_none),
    _shaped(r"https?://\S+", "must start with https:// (or http://)"),
]


class PledgemakerRow(RowModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    multiline: ClassVar[frozenset[str]] = frozenset({"pledge_text"})
    noun: ClassVar[str] = "pledgemaker"
    id: StableId
    name: str = Field(min_length=1, max_length=300)
    country: Country
    region: Region
    sector: Sector
    language: Language
    timezone: TimeZone
    pledge_title: str = Field(min_length=1, max_length=300)
    pledge_text: str = Field(min_length=1, max_length=MAX_TEXT)
    pledge_date: Annotated[date, _iso(date.fromisoformat, "2021-06-12")]
    x_handle: Handle = None
    website: Website = None
    fediverse_handle: FediverseHandle = None
    email: Email = None
    matrix_id: MatrixId = None
    bluesky_handle: BlueskyHandle = None
    linkedin_organization_id: LinkedInPage = None


class UpdateRow(RowModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    multiline: ClassVar[frozenset[str]] = frozenset({"text"})
    noun: ClassVar[str] = "update"
    id: StableId
    pledgemaker_id: str = Field(min_length=1)
    pillar: Pillar
    kind: Kind
    text: str = Field(min_length=1, max_length=MAX_TEXT)
    submitted_at: Annotated[datetime, _iso(datetime.fromisoformat, "2021-06-12T09:30:00+00:00")]
    consent_to_publish: bool

    @field_validator("submitted_at")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        offset = value.utcoffset()
        if offset is None:
            raise ValueError("needs a UTC offset, e.g. 2021-06-12T09:30:00+00:00")
        if not OFFSETS[0] <= offset <= OFFSETS[1]:
            raise ValueError(_OFFSET_RULE)
        return value


@dataclass
class ImportResult:
    created: int
    updated: int
    warnings: list[Problem] = field(default_factory=list)


PLEDGEMAKER_COLUMNS = list(PledgemakerRow.model_fields)
UPDATE_COLUMNS = ("pledgemaker_id", "pillar", "kind", "text", "consent_to_publish", "created_at")


def import_pledgemakers(session: Session, path: Path, *, data: bytes | None = None) -> ImportResult:
    """Create or change pledgemakers by id; only the columns the file has are changed."""
    # Everything that needs no database first: SQLite's write lock is taken by the first
    # statement and held until the caller commits.
    parsed = read(path, PledgemakerRow, data=data)
    given = [c for c in PLEDGEMAKER_COLUMNS if c in parsed.columns]
    now = utcnow()
    rows = [
        (line, {"created_at": now, "updated_at": now, **row.model_dump()})
        for line, row in parsed.rows
    ]
    digests = {
        hashlib.sha256(values["id"].encode()).hexdigest(): values["id"] for _, values in rows
    }
    lines = {values["id"]: line for line, values in rows}
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
    created: list[dict[str, Any]] = []
    changed: list[dict[str, Any]] = []
    for _, values in rows:
        before = stored.get(values["id"])
        if before is None:
            created.append(values)  # a column absent from the file: empty
            continue
        diff = {c: values[c] for c, old in zip(given, before, strict=True) if values[c] != old}
        if diff:
            changed.append({"id": values["id"], **diff, "updated_at": now})
    _write(session, Pledgemaker, created, changed)
    return ImportResult(len(created), len(changed), parsed.warnings)


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
    query = select(*(getattr(Pledgemaker, c) for c in PLEDGEMAKER_COLUMNS)).where(
        Pledgemaker.erased_at.is_(None)
    )
    people = session.execute(query.order_by(Pledgemaker.id)).tuples().all()
    csv_safety.write_records(
        stream,
        PLEDGEMAKER_COLUMNS,
        (dict(zip(PLEDGEMAKER_COLUMNS, p, strict=True)) for p in people),
    )
    return len(people)
