"""Reading an import file: the header, then every row validated against a pydantic model.

Nothing here touches the database, so an import reads and checks a whole file before it takes
the write lock. Every problem is located (``file:line: column: what``) and collected: the
importer reports them all and writes nothing.
"""

from __future__ import annotations

import csv
import difflib
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ValidationError

from bot.core.csv_safety import unescape
from bot.core.errors import ImportRowsError, Problem

# csv's own limit (128 KiB a field, process-wide) fails with "field larger than field limit",
# naming neither the column nor a limit. The whole file is in memory already, so a field can be
# no longer than it: lift csv's limit and let each column's max_length speak instead.
csv.field_size_limit(max(csv.field_size_limit(), 2**31 - 1))

SEPARATORS = {";": "semicolons (;)", "\t": "tabs"}
# Unicode's control characters (category Cc); a multi-line column may hold tabs and line breaks.
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
MULTILINE_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
LINE_BREAKS = {"\n": "a line break", "\r": "a line break", "\x00": "a NUL byte"}


class RowModel(BaseModel):
    """A row of an import file; ``multiline`` columns may hold line breaks and tabs."""

    multiline: ClassVar[frozenset[str]] = frozenset()
    noun: ClassVar[str] = "row"


@dataclass
class Parsed:
    """A file's valid rows (with their first line), the named columns it has, what is wrong."""

    file: str
    columns: frozenset[str]
    rows: list[tuple[int, Any]] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)

    def problem(self, line: int, message: str) -> None:
        self.problems.append(Problem(self.file, line, message))

    def warn(self, line: int, message: str) -> None:
        self.warnings.append(Problem(self.file, line, message))

    def raise_problems(self) -> None:
        """Every problem, in the file's order; nothing is imported if there is one."""
        if self.problems:
            raise ImportRowsError(sorted(self.problems, key=lambda p: p.line or 0))


def read(path: Path, model: type[RowModel], *, data: bytes | None = None) -> Parsed:
    """Parse and validate a CSV file (or ``data`` uploaded under that name). A file that cannot
    be read as a table raises ImportRowsError at once; row problems are collected in the result."""
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
    columns, problems = _check_header(shown, header, model)
    if problems:
        raise ImportRowsError(problems)
    parsed = Parsed(shown, frozenset(columns))
    seen: dict[str, int] = {}
    folded: dict[str, tuple[str, int]] = {}
    for start, record in _records(reader, parsed):
        if len(record) > len(columns) and not any(c.strip() for c in record[len(columns) :]):
            record = record[: len(columns)]  # a spreadsheet's empty columns after the last one
        if len(record) != len(columns):
            parsed.problem(start, f"expected {len(columns)} fields, found {len(record)}")
            continue
        cells = dict(zip(columns, (unescape(c) for c in record), strict=True))
        row = _validate(parsed, start, model, cells)
        row_id = cells.get("id", "").strip()
        if row_id in seen:
            parsed.problem(start, f"id {row_id!r} repeats line {seen[row_id]}")
            continue
        if row_id:
            seen[row_id] = start
            other = folded.setdefault(row_id.casefold(), (row_id, start))
            if other[0] != row_id:
                parsed.warn(
                    start,
                    f"id {row_id!r} differs only in case from {other[0]!r} on line {other[1]}: "
                    f"they are two different {model.noun}s",
                )
        if row is not None:
            parsed.rows.append((start, row))
    return parsed


def _records(reader: Any, parsed: Parsed) -> Iterator[tuple[int, list[str]]]:
    """Each non-blank record with the line it starts on (a quoted field may span lines)."""
    line = reader.line_num + 1
    while True:
        try:
            record = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            parsed.problem(line, f"malformed CSV: {exc}")
            return
        start, line = line, reader.line_num + 1
        if any(cell.strip() for cell in record):
            yield start, record


def _validate(
    parsed: Parsed, line: int, model: type[RowModel], cells: dict[str, str]
) -> RowModel | None:
    flagged = set()
    for name, value in cells.items():
        if complaint := _control_character(value, multiline=name in model.multiline):
            parsed.problem(line, f"{name}: {complaint}")
            flagged.add(name)
    try:
        row = model.model_validate(cells)
    except ValidationError as exc:
        for error in exc.errors():
            name = ".".join(str(p) for p in error["loc"])
            if name not in flagged:
                parsed.problem(line, f"{name}: {_message(error)}")
        return None
    return None if flagged else row


def _control_character(value: str, *, multiline: bool) -> str | None:
    found = (MULTILINE_CONTROL if multiline else CONTROL).search(value)
    if found is None:
        return None
    char = found.group()
    what = LINE_BREAKS.get(char, f"the control character U+{ord(char):04X}")
    kind = "text without" if multiline else "one line of text without"
    return f"must be {kind} control characters (found {what} at character {found.start() + 1})"


def _message(error: Any) -> str:
    value = error["input"]
    if error["type"] == "string_too_long":
        limit = error["ctx"]["max_length"]
        return f"{len(value):,} characters, more than the limit of {limit:,}"
    message = str(error["msg"]).removeprefix("Value error, ")
    if repr(value) not in message:  # vocabulary errors already quote the value
        message += f" (got {_shown(value)})"
    return message


def _shown(value: Any) -> str:
    if isinstance(value, str) and len(value) > 80:
        return f"{value[:60]!r}… ({len(value):,} characters)"
    return repr(value)


def _check_header(
    shown: str, raw: list[str], model: type[RowModel]
) -> tuple[list[str], list[Problem]]:
    """The named columns, in order (a spreadsheet's empty ones at the end dropped), and what is
    wrong with the header."""
    fields = list(model.model_fields)
    header = [h.strip() for h in raw]
    while header and not header[-1]:
        header.pop()
    for separator, name in SEPARATORS.items():
        split = {part.strip() for cell in raw for part in cell.split(separator)}
        if len(split & set(fields)) > len(set(header) & set(fields)):
            return header, [
                Problem(
                    shown,
                    1,
                    f"the columns are separated by {name}, not commas: save the file as "
                    "CSV UTF-8 (comma-delimited)",
                )
            ]
    problems = [
        Problem(shown, 1, f"column {index} has no name")
        for index, column in enumerate(header, 1)
        if not column
    ]
    named = [c for c in header if c]
    problems += [
        Problem(shown, 1, f"column {column!r} appears more than once")
        for column in sorted({c for c in named if named.count(c) > 1})
    ]
    if not header or header[0].lower() != "id":  # 'ID' is answered by the hint below
        problems.append(Problem(shown, 1, "the first column must be 'id'"))
    for column in named:
        if column not in fields:
            hint = _closest(column, fields)
            problems.append(
                Problem(
                    shown,
                    1,
                    f"unknown column {column!r}" + (f" (did you mean {hint!r}?)" if hint else ""),
                )
            )
    required = [name for name, info in model.model_fields.items() if info.is_required()]
    missing = [name for name in required if name not in header]
    if missing:
        problems.append(Problem(shown, 1, f"missing column(s): {', '.join(missing)}"))
    return header, problems


def _closest(column: str, fields: list[str]) -> str | None:
    """The column meant: the same name in other case or spacing ('Pledge Date'), or a typo."""
    normal = column.casefold().replace(" ", "_").replace("-", "_")
    by_normal = {f.casefold(): f for f in fields}
    if normal in by_normal:
        return by_normal[normal]
    hint = difflib.get_close_matches(normal, list(by_normal), n=1)
    return by_normal[hint[0]] if hint else None
