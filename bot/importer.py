"""CSV import of pledgemakers and journey updates: upsert by stable id, all or nothing.

Every bad row is reported with its line number and reason; if any row is bad nothing is written.
"""

from __future__ import annotations

import csv
import difflib
import hashlib
import io
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import IO, Annotated, Any
from zoneinfo import ZoneInfo

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.errors import ImportRowsError, Problem
from bot.models import JourneyUpdate, Pledgemaker
from bot.vocab import (
    LANGUAGES,
    PILLARS,
    REGIONS,
    SECTORS,
    UPDATE_KINDS,
    country_codes,
    require_known,
    time_zones,
)


def _vocabulary(known: Callable[[], Iterable[str]], what: str) -> AfterValidator:
    return AfterValidator(lambda value: require_known(value, known(), what))


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
            if re.match(r"\d{4}-\d{2}-\d{2}", text):  # the right shape, an impossible value
                raise ValueError(str(exc)) from None
            raise ValueError(f"not an ISO 8601 value like {example}") from None

    return BeforeValidator(check)


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


class PledgemakerRow(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    id: StableId
    name: str = Field(min_length=1, max_length=300)
    country: Country
    region: Region
    sector: Sector
    language: Language
    timezone: TimeZone
    pledge_title: str = Field(min_length=1, max_length=300)
    pledge_text: str = Field(min_length=1)
    pledge_date: Annotated[date, _iso(date.fromisoformat, "2021-06-12")]
    x_handle: Handle = None
    website: Website = None
    fediverse_handle: FediverseHandle = None
    email: Email = None
    matrix_id: MatrixId = None
    bluesky_handle: BlueskyHandle = None
    linkedin_organization_id: LinkedInPage = None


class UpdateRow(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    id: StableId
    pledgemaker_id: str = Field(min_length=1)
    pillar: Pillar
    kind: Kind
    text: str = Field(min_length=1)
    submitted_at: Annotated[datetime, _iso(datetime.fromisoformat, "2021-06-12T09:30:00+00:00")]
    consent_to_publish: bool

    @field_validator("submitted_at")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("needs a UTC offset, e.g. 2021-06-12T09:30:00+00:00")
        return value


@dataclass
class ImportResult:
    created: int
    updated: int


def read_rows(
    path: Path,
    model: type[BaseModel],
    check: Callable[[Any], str | None] | None = None,
    *,
    data: bytes | None = None,
) -> list[tuple[int, BaseModel]]:
    """Parse and validate a CSV file (or ``data`` uploaded under that name); raise
    ImportRowsError listing every bad row."""
    shown = str(path)
    try:
        text = (path.read_bytes() if data is None else data).decode("utf-8-sig")
    except OSError as exc:
        raise ImportRowsError(
            [Problem(shown, None, f"cannot read: {exc.strerror or exc}")]
        ) from None
    except UnicodeDecodeError as exc:
        line = exc.object[: exc.start].count(b"\n") + 1
        raise ImportRowsError([Problem(shown, line, f"not UTF-8 (byte {exc.start})")]) from None
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader)
    except StopIteration:
        raise ImportRowsError([Problem(shown, 1, "empty file: a header row is required")]) from None
    except csv.Error as exc:
        raise ImportRowsError([Problem(shown, 1, f"malformed CSV: {exc}")]) from None
    problems = _check_header(shown, [h.strip() for h in header], model)
    if problems:
        raise ImportRowsError(problems)
    columns = [h.strip() for h in header]
    rows: list[tuple[int, BaseModel]] = []
    seen: dict[str, int] = {}
    line = reader.line_num + 1
    while True:
        try:
            record = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            problems.append(Problem(shown, line, f"malformed CSV: {exc}"))
            break
        start, line = line, reader.line_num + 1
        if not any(cell.strip() for cell in record):
            continue
        if len(record) != len(columns):
            problems.append(
                Problem(shown, start, f"expected {len(columns)} fields, found {len(record)}")
            )
            continue
        try:
            row = model.model_validate(dict(zip(columns, record, strict=True)))
        except ValidationError as exc:
            for error in exc.errors():
                field = ".".join(str(p) for p in error["loc"])
                message = str(error["msg"]).removeprefix("Value error, ")
                got = repr(error["input"])
                if got not in message:  # vocabulary errors already quote the value
                    message += f" (got {got})"
                problems.append(Problem(shown, start, f"{field}: {message}"))
            continue
        if check is not None and (complaint := check(row)):
            problems.append(Problem(shown, start, complaint))
            continue
        row_id = row.id
        if row_id in seen:
            problems.append(Problem(shown, start, f"id {row_id!r} repeats line {seen[row_id]}"))
            continue
        seen[row_id] = start
        rows.append((start, row))
    if problems:
        raise ImportRowsError(problems)
    return rows


def _check_header(shown: str, header: list[str], model: type[BaseModel]) -> list[Problem]:
    fields = list(model.model_fields)
    problems = [
        Problem(shown, 1, f"column {column!r} appears more than once")
        for column in sorted({c for c in header if header.count(c) > 1})
    ]
    if not header or header[0] != "id":
        problems.append(Problem(shown, 1, "the first column must be 'id'"))
    for column in header:
        if column not in fields:
            hint = difflib.get_close_matches(column, fields, n=1)
            problems.append(
                Problem(
                    shown,
                    1,
                    f"unknown column {column!r}"
                    + (f" (did you mean {hint[0]!r}?)" if hint else ""),
                )
            )
    required = [name for name, info in model.model_fields.items() if info.is_required()]
    missing = [name for name in required if name not in header]
    if missing:
        problems.append(Problem(shown, 1, f"missing column(s): {', '.join(missing)}"))
    return problems


def import_pledgemakers(session: Session, path: Path, *, data: bytes | None = None) -> ImportResult:
    erased: dict[str, datetime] = {
        ref: when
        for ref, when in session.execute(
            select(Pledgemaker.erased_ref, Pledgemaker.erased_at).where(
                Pledgemaker.erased_ref.is_not(None)
            )
        )
    }

    def not_erased(row: PledgemakerRow) -> str | None:
        when = erased.get(hashlib.sha256(row.id.encode()).hexdigest())
        if when is None:
            return None
        return f"id {row.id!r}: erased on request on {when:%Y-%m-%d}; remove this row"

    rows = read_rows(path, PledgemakerRow, not_erased if erased else None, data=data)
    existing = {p.id: p for p in session.scalars(select(Pledgemaker))}
    created = updated = 0
    for _, row in rows:
        values = row.model_dump()
        current = existing.get(values["id"])
        if current is None:
            session.add(Pledgemaker(**values))
            created += 1
        else:
            changed = False
            for key, value in values.items():
                if getattr(current, key) != value:
                    setattr(current, key, value)
                    changed = True
            updated += changed
    return ImportResult(created, updated)


def import_updates(session: Session, path: Path) -> ImportResult:
    known = set(session.scalars(select(Pledgemaker.id)))

    def unknown_pledgemaker(row: UpdateRow) -> str | None:
        if row.pledgemaker_id in known:
            return None
        return f"pledgemaker_id: no pledgemaker {row.pledgemaker_id!r}"

    rows = read_rows(path, UpdateRow, unknown_pledgemaker)
    existing = {
        u.source_ref: u
        for u in session.scalars(select(JourneyUpdate).where(JourneyUpdate.source == "import"))
    }
    created = updated = 0
    for _, row in rows:
        data = row.model_dump()
        values = {
            "pledgemaker_id": data["pledgemaker_id"],
            "pillar": data["pillar"],
            "kind": data["kind"],
            "text": data["text"],
            "consent_to_publish": data["consent_to_publish"],
            "created_at": data["submitted_at"].astimezone(ZoneInfo("UTC")),
        }
        current = existing.get(data["id"])
        if current is None:
            session.add(
                JourneyUpdate(
                    source="import",
                    source_ref=data["id"],
                    media=[],
                    moderation="pending",
                    last_reply_at=None,
                    **values,
                )
            )
            created += 1
        else:
            changed = any(getattr(current, k) != v for k, v in values.items())
            for key, value in values.items():
                setattr(current, key, value)
            updated += changed
    return ImportResult(created, updated)


PLEDGEMAKER_COLUMNS = list(PledgemakerRow.model_fields)


def export_pledgemakers(session: Session, stream: IO[str]) -> int:
    """Every pledgemaker (not erased) as CSV in the import's own format: export, edit, import."""
    writer = csv.writer(stream)
    writer.writerow(PLEDGEMAKER_COLUMNS)
    count = 0
    query = select(Pledgemaker).where(Pledgemaker.erased_at.is_(None)).order_by(Pledgemaker.id)
    for person in session.scalars(query):
        writer.writerow(
            [
                value.isoformat() if isinstance(value, date) else ("" if value is None else value)
                for value in (getattr(person, column) for column in PLEDGEMAKER_COLUMNS)
            ]
        )
        count += 1
    return count
