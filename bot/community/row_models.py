"""The rows of the two import files as pydantic models: each column and its rule.

pledgemakers.csv has a column per network where a pledgemaker has a handle or an address: its
name and its rule come from the channel's spec (``ChannelSpec.handle``, ``handle_shape``), so a
channel with a handle brings its column along; the value is stored in the handles table under
the channel's name (``bot.core.models.Handle``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from datetime import date, datetime, timedelta
from typing import Annotated, Any, ClassVar

from pydantic import (
    AfterValidator,
    BeforeValidator,
    ConfigDict,
    Field,
    create_model,
    field_validator,
)

from bot.channels.registry import known_channels, spec
from bot.channels.spec import HandleShape
from bot.community.csv_rows import RowModel
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

MAX_TEXT = 20_000  # characters of a pledge or an update: far above any real one
MAX_HANDLE = 300  # a handle without a shape of its own: one line (``Handle.value``'s length)
# UTC offsets in use run from -12:00 (Baker Island) to +14:00 (Kiribati).
OFFSETS = (timedelta(hours=-12), timedelta(hours=14))
_OFFSET_RULE = "the UTC offset must be between -12:00 and +14:00"


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


def _blank_is_none(value: Any) -> Any:
    return None if isinstance(value, str) and not value.strip() else value


def _folded(value: Any) -> Any:
    return value.strip().lower() if isinstance(value, str) else value


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
Website = Annotated[
    str | None,
    BeforeValidator(_blank_is_none),
    _shaped(r"https?://\S+", "must start with https:// (or http://)"),
]


def _handle(shape: HandleShape | None) -> Any:
    """The type of a handle column: empty is None; else the network's shape, if it has one."""
    if shape is None:
        return Annotated[str | None, BeforeValidator(_blank_is_none), Field(max_length=MAX_HANDLE)]
    folded = (BeforeValidator(_folded),) if shape.lower else ()
    checks = (BeforeValidator(_blank_is_none), *folded, _shaped(shape.pattern, shape.rule))
    return Annotated[(str | None, *checks)]


class _Pledge(RowModel):
    """The columns every pledgemakers.csv has; the optional ones are added below."""

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


# pledgemakers.csv column → the network (a registered channel) whose handle it holds.
HANDLE_COLUMNS = {
    found.handle: name for name in known_channels() if (found := spec(name)).handle is not None
}
# The optional columns in the order users know (the README's table, every export so far); the
# handle column of a channel added later comes after them.
KNOWN_ORDER = (
    *("x_handle", "website", "fediverse_handle", "email", "matrix_id", "bluesky_handle"),
    "linkedin_organization_id",
)
_OPTIONAL: dict[str, Any] = {
    "website": (Website, None),
    **{
        column: (_handle(spec(network).handle_shape), None)
        for column, network in HANDLE_COLUMNS.items()
    },
}
PledgemakerRow: type[RowModel] = create_model(
    "PledgemakerRow",
    __base__=_Pledge,
    **{
        column: _OPTIONAL[column]
        for column in sorted(
            _OPTIONAL, key=lambda c: KNOWN_ORDER.index(c) if c in KNOWN_ORDER else len(KNOWN_ORDER)
        )
    },
)
PLEDGEMAKER_COLUMNS = list(PledgemakerRow.model_fields)


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
